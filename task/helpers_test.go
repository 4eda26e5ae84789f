package task

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"testing"
	"time"

	"github.com/trovedb/trove"
	"github.com/trovedb/trove/cluster"
	"github.com/trovedb/trove/engine"
)

const testCapacity = 64 << 20

// testCluster is k in-process nodes, each with a runtime.
type testCluster struct {
	nodes []*cluster.Node
	rts   []*Runtime
}

// newCluster starts k nodes (insecure, on loopback) and a runtime on each
// with the config cfgs(i) gives (nil: one of 2 CPUs). Cleanup checks that
// every node is drained, then closes them.
func newCluster(t testing.TB, k int, cfgs func(i int) Config) *testCluster {
	t.Helper()
	tc := &testCluster{nodes: make([]*cluster.Node, k), rts: make([]*Runtime, k)}
	for i := range k {
		cfg := cluster.Config{
			Store:    engine.Config{Capacity: testCapacity, Name: fmt.Sprintf("task-%c", 'a'+i)},
			Name:     fmt.Sprintf("node-%c", 'a'+i),
			Insecure: true,
			Logger:   slog.New(slog.NewTextHandler(io.Discard, nil)),
			// As cluster's tests: faster failure detection than memberlist's
			// defaults, but not so fast that a node slowed by -race is
			// declared dead while alive.
			ProbeInterval: 400 * time.Millisecond, ProbeTimeout: 300 * time.Millisecond, SuspicionMult: 3,
			GossipInterval: 50 * time.Millisecond, PushPullInterval: time.Second,
			StatsInterval: 100 * time.Millisecond,
		}
		if i > 0 {
			cfg.Join = []string{tc.nodes[0].Addr()}
		}
		n, err := cluster.Open(context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		tc.nodes[i] = n
	}
	t.Cleanup(func() {
		for i, rt := range tc.rts {
			if rt != nil && !tc.closed(i) {
				_ = rt.Close()
			}
		}
		for i, n := range tc.nodes {
			if !tc.closed(i) {
				requireDrained(t, n)
			}
		}
		for i, n := range tc.nodes {
			if !tc.closed(i) {
				if err := n.Close(); err != nil {
					t.Error(err)
				}
			}
		}
	})
	// Every node sees every other alive (a generous bound).
	deadline := time.Now().Add(20 * time.Second)
	for _, n := range tc.nodes {
		for _, o := range tc.nodes {
			for {
				m, ok := n.Lookup(o.ID())
				if ok && m.State == cluster.StateAlive {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("%s does not see %s alive", n.Name(), o.Name())
				}
				time.Sleep(5 * time.Millisecond)
			}
		}
	}
	for i, n := range tc.nodes {
		cfg := Config{CPUs: 2}
		if cfgs != nil {
			cfg = cfgs(i)
		}
		rt, err := Start(n, cfg)
		if err != nil {
			t.Fatal(err)
		}
		tc.rts[i] = rt
	}
	// Every runtime sees every other.
	for _, rt := range tc.rts {
		for {
			rt.refresh(context.Background())
			rt.view.mu.Lock()
			n := len(rt.view.m)
			rt.view.mu.Unlock()
			if n == k {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("runtime of %s sees %d runtimes, want %d", rt.name, n, k)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	return tc
}

// killed marks nodes the test crashed or closed itself.
var killedNodes = map[*cluster.Node]bool{}

func (tc *testCluster) closed(i int) bool { return killedNodes[tc.nodes[i]] }

// requireDrained waits (a generous bound: releases are batched, refs
// dropped by the garbage collector) until n holds no objects, bytes, pins,
// borrows, futures, results or owed releases, then checks its store.
func requireDrained(t testing.TB, n *cluster.Node) {
	t.Helper()
	busy := func() string {
		st, cs := n.Local().Stats(), n.Stats()
		if st.Objects != 0 || st.ObjectBytes != 0 || st.Used != 0 || st.PinnedObjects != 0 || st.Views != 0 ||
			cs.OwnedBorrowed != 0 || cs.Borrowing != 0 || cs.OwedUpdates != 0 || cs.Futures != 0 || cs.Results != 0 {
			return fmt.Sprintf("node %s: objects=%d bytes=%d used=%d pinned=%d views=%d owned-borrowed=%d borrowing=%d owed=%d futures=%d results=%d",
				n.Name(), st.Objects, st.ObjectBytes, st.Used, st.PinnedObjects, st.Views,
				cs.OwnedBorrowed, cs.Borrowing, cs.OwedUpdates, cs.Futures, cs.Results)
		}
		return ""
	}
	deadline := time.Now().Add(20 * time.Second)
	for busy() != "" && time.Now().Before(deadline) {
		runtime.GC()
		time.Sleep(5 * time.Millisecond)
	}
	if s := busy(); s != "" {
		for o := range n.Local().Objects() {
			s += fmt.Sprintf("\n  %+v", o)
		}
		t.Fatalf("not drained after every ref was dropped: %s", s)
	}
	n.Local().WaitIdle()
	if err := n.Local().Check(); err != nil {
		t.Fatal(err)
	}
}

// get decodes ref's value through st, failing the test on error.
func get[T any](t *testing.T, st trove.Store, ref trove.Ref) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	v, err := trove.GetValue[T](ctx, st, ref)
	if err != nil {
		t.Fatalf("get %s: %v", ref.ID(), err)
	}
	return v
}

// index is the index of the node named name.
func (tc *testCluster) index(name string) int {
	for i, n := range tc.nodes {
		if n.Name() == name {
			return i
		}
	}
	panic("no node " + name)
}

// crash stops node i without leaving, and waits (a generous bound) until
// every other node has declared it dead.
func (tc *testCluster) crash(t *testing.T, i int) {
	t.Helper()
	n := tc.nodes[i]
	killedNodes[n] = true
	if err := n.CloseAbruptly(); err != nil {
		t.Log(err)
	}
	_ = tc.rts[i].Close()
	for j, o := range tc.nodes {
		if j == i {
			continue
		}
		select {
		case <-o.Dead(n.ID()):
		case <-time.After(30 * time.Second):
			t.Fatalf("%s never learnt that %s died", o.Name(), n.Name())
		}
	}
}

package cluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/trovedb/trove"
	"github.com/trovedb/trove/engine"
)

// testCapacity is each test node's arena: small, so that tests start fast.
const testCapacity = 64 << 20

// newCluster starts k nodes on 127.0.0.1:0 (Insecure unless certs gives each
// node's directory), each joining the first, and closes them at the end of the
// test after checking that every node that is still running is empty.
func newCluster(t *testing.T, k int, certs []string, opts ...func(i int, c *Config)) []*Node {
	t.Helper()
	nodes := make([]*Node, k)
	for i := range nodes {
		cfg := Config{
			Store:    engine.Config{Capacity: testCapacity, Name: fmt.Sprintf("test-%c", 'a'+i)},
			Name:     fmt.Sprintf("node-%c", 'a'+i),
			Insecure: certs == nil,
			// Small chunks, so that a test's pull uses several streams.
			ChunkSize: 1 << 20,
			// Faster failure detection than memberlist's defaults, but not so
			// fast that a node slowed by -race on a loaded 2-core machine is
			// declared dead while alive (50 ms probe timeouts once did that in CI).
			ProbeInterval: 400 * time.Millisecond, ProbeTimeout: 300 * time.Millisecond, SuspicionMult: 3,
			GossipInterval: 50 * time.Millisecond, PushPullInterval: time.Second,
		}
		if certs != nil {
			cfg.CertsDir, cfg.Name = certs[i], ""
		}
		for _, o := range opts {
			o(i, &cfg)
		}
		if i > 0 {
			cfg.Join = []string{nodes[0].Addr()}
		}
		n, err := Open(context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		nodes[i] = n
	}
	// Wait (a generous bound) until every node sees every other alive.
	deadline := time.Now().Add(20 * time.Second)
	for _, n := range nodes {
		for _, o := range nodes {
			for {
				m, ok := n.members.Lookup(o.self)
				if ok && m.State == StateAlive {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("%s does not see %s alive: %+v", n.Name(), o.Name(), m)
				}
				time.Sleep(5 * time.Millisecond)
			}
		}
	}
	t.Cleanup(func() {
		for _, n := range nodes {
			if !n.closed() {
				requireDrained(t, n)
			}
		}
		for _, n := range nodes {
			if err := n.Close(); err != nil {
				t.Error(err)
			}
		}
	})
	return nodes
}

// makeCerts makes a CA and one node directory per name.
func makeCerts(t *testing.T, names ...string) []string {
	t.Helper()
	root := t.TempDir()
	ca := filepath.Join(root, "ca")
	if err := CreateCA(ca); err != nil {
		t.Fatal(err)
	}
	var dirs []string
	for _, n := range names {
		d := filepath.Join(root, n)
		if err := CreateNodeCert(ca, d, n, "127.0.0.1"); err != nil {
			t.Fatal(err)
		}
		dirs = append(dirs, d)
	}
	return dirs
}

// requireDrained waits (a generous bound: releases are batched and refs dropped
// by the garbage collector) until n holds no objects, bytes, pins, borrows or
// owed releases, then checks its store.
func requireDrained(t *testing.T, nodes ...*Node) {
	t.Helper()
	for _, n := range nodes {
		busy := func() string {
			st := n.local.Stats()
			if st.Objects != 0 || st.ObjectBytes != 0 || st.Used != 0 || st.PinnedObjects != 0 || st.Views != 0 ||
				n.own.len() != 0 || n.bor.len() != 0 || n.outq.pending() != 0 || n.pulls.len() != 0 {
				return fmt.Sprintf("node %s: objects=%d bytes=%d used=%d pinned=%d views=%d owned-borrowed=%d borrowing=%d owed=%d pulls=%d",
					n.Name(), st.Objects, st.ObjectBytes, st.Used, st.PinnedObjects, st.Views, n.own.len(), n.bor.len(), n.outq.pending(), n.pulls.len())
			}
			return ""
		}
		deadline := time.Now().Add(20 * time.Second)
		for busy() != "" && time.Now().Before(deadline) {
			runtime.GC()
			time.Sleep(5 * time.Millisecond)
		}
		if s := busy(); s != "" {
			t.Fatalf("not drained after every ref was dropped: %s", s)
		}
		n.local.WaitIdle()
		if err := n.local.Check(); err != nil {
			t.Fatal(err)
		}
	}
}

// crash stops n without leaving: its transport and store close, and the
// cluster learns of it only when the test declares it dead (kill).
func (n *Node) crash(t *testing.T) {
	t.Helper()
	n.markClosed()
	if err := n.shutdown(); err != nil {
		t.Log(err)
	}
}

// crashDead crashes n (no Leave) and waits, with a generous bound, until
// every survivor's membership has declared it dead.
func crashDead(t *testing.T, n *Node, survivors ...*Node) {
	t.Helper()
	n.crash(t)
	deadline := time.Now().Add(20 * time.Second)
	for _, s := range survivors {
		for !s.isDead(n.self) && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		if !s.isDead(n.self) {
			t.Fatalf("%s never learnt that %s died", s.Name(), n.Name())
		}
	}
}

func pattern(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = seed + byte(i*7) + byte(i>>12)
	}
	return b
}

// getBytes borrows id on n and returns a copy of its bytes.
func getBytes(t *testing.T, ctx context.Context, n *Node, ref trove.Ref) []byte {
	t.Helper()
	obj, err := n.Get(ctx, ref)
	if err != nil {
		t.Fatalf("get %s on %s: %v", ref.ID(), n.Name(), err)
	}
	defer obj.Release()
	return bytes.Clone(obj.Bytes())
}

func TestOpenNeedsCredentials(t *testing.T) {
	_, err := Open(context.Background(), Config{})
	if err == nil || !strings.Contains(err.Error(), "CertsDir") || !strings.Contains(err.Error(), "Insecure") {
		t.Fatalf("Open without credentials: %v, want an error naming CertsDir and Insecure", err)
	}
}

func TestGetAcrossNodes(t *testing.T) {
	ctx := context.Background()
	nodes := newCluster(t, 3, nil)
	a, b, c := nodes[0], nodes[1], nodes[2]
	if ms := c.Members(); len(ms) != 3 {
		t.Fatalf("members: %v", ms)
	}
	small, large := pattern(1<<10, 1), pattern(5<<20+123, 2)
	rs, err := a.Put(ctx, small)
	if err != nil {
		t.Fatal(err)
	}
	rl, err := a.Put(ctx, large)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []*Node{b, c} {
		bs, err := n.Borrow(rs.ID())
		if err != nil {
			t.Fatal(err)
		}
		bl, err := n.Borrow(rl.ID())
		if err != nil {
			t.Fatal(err)
		}
		if got := getBytes(t, ctx, n, bs); !bytes.Equal(got, small) {
			t.Fatalf("small object on %s differs", n.Name())
		}
		// Concurrent Gets share one pull.
		var wg sync.WaitGroup
		for range 4 {
			wg.Go(func() {
				if got := getBytes(t, ctx, n, bl); !bytes.Equal(got, large) {
					t.Errorf("large object on %s differs", n.Name())
				}
			})
		}
		wg.Wait()
		if f := n.local.Stats().Fetches; f != 2 {
			t.Errorf("%s made %d fetches for two objects, want 2 (concurrent Gets share one)", n.Name(), f)
		}
		// A second Get reads the local copy.
		if got := getBytes(t, ctx, n, bl); !bytes.Equal(got, large) {
			t.Fatal("large copy differs")
		}
		if f := n.local.Stats().Fetches; f != 2 {
			t.Errorf("a Get of a local copy fetched again: %d fetches", f)
		}
		bs.Drop()
		bl.Drop()
	}
	rs.Drop()
	rl.Drop()
}

func TestGetWaitsForOwnerSeal(t *testing.T) {
	ctx := context.Background()
	nodes := newCluster(t, 2, nil)
	a, b := nodes[0], nodes[1]
	want := pattern(2<<20, 3)
	bld, err := a.local.Create(ctx, len(want))
	if err != nil {
		t.Fatal(err)
	}
	ref, err := b.Borrow(bld.Ref().ID())
	if err != nil {
		t.Fatal(err)
	}
	// A Get with a deadline times out while the owner has not sealed.
	tctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	_, err = b.Get(tctx, ref)
	cancel()
	if !errors.Is(err, trove.ErrGetTimeout) {
		t.Fatalf("Get of an unsealed remote object past its deadline: %v, want ErrGetTimeout", err)
	}
	var (
		mu     sync.Mutex
		events []string
	)
	note := func(s string) { mu.Lock(); events = append(events, s); mu.Unlock() }
	done := make(chan []byte)
	go func() {
		obj, err := b.Get(ctx, ref)
		if err != nil {
			t.Error(err)
			close(done)
			return
		}
		note("got")
		done <- bytes.Clone(obj.Bytes())
		obj.Release()
	}()
	// The Get is blocked on the owner: wait until B's fetch is under way.
	ready, _, err := b.Wait(ctx, []trove.Ref{ref}, 0)
	if err != nil || len(ready) != 0 {
		t.Fatalf("Wait(0) before the seal: ready=%v err=%v", ready, err)
	}
	select {
	case <-done:
		t.Fatal("Get returned before the owner sealed")
	default:
	}
	copy(bld.Bytes(), want)
	note("sealed")
	if err := bld.Seal(); err != nil {
		t.Fatal(err)
	}
	got := <-done
	if !bytes.Equal(got, want) {
		t.Fatal("bytes differ")
	}
	mu.Lock()
	if fmt.Sprint(events) != "[sealed got]" {
		t.Fatalf("events %v, want the Get after the seal", events)
	}
	mu.Unlock()
	ref.Drop()
	bld.Ref().Drop()
}

func TestWaitAcrossOwnersKeepsOrder(t *testing.T) {
	ctx := context.Background()
	nodes := newCluster(t, 3, nil)
	a, b, c := nodes[0], nodes[1], nodes[2]
	ra, err := a.Put(ctx, pattern(300<<10, 4))
	if err != nil {
		t.Fatal(err)
	}
	bc, err := c.local.Create(ctx, 10)
	if err != nil {
		t.Fatal(err)
	}
	rb, err := b.Put(ctx, []byte("local"))
	if err != nil {
		t.Fatal(err)
	}
	pc, err := b.Borrow(bc.Ref().ID())
	if err != nil {
		t.Fatal(err)
	}
	pa, err := b.Borrow(ra.ID())
	if err != nil {
		t.Fatal(err)
	}
	refs := []trove.Ref{pc, pa, rb}
	ready, pending, err := b.Wait(ctx, refs, 2)
	if err != nil {
		t.Fatal(err)
	}
	if len(ready) != 2 || ready[0].ID() != pa.ID() || ready[1].ID() != rb.ID() || len(pending) != 1 || pending[0].ID() != pc.ID() {
		t.Fatalf("Wait(2): ready %v pending %v", ready, pending)
	}
	go func() {
		copy(bc.Bytes(), "0123456789")
		_ = bc.Seal()
	}()
	ready, _, err = b.Wait(ctx, refs, 3)
	if err != nil {
		t.Fatal(err)
	}
	if len(ready) != 3 || ready[0].ID() != pc.ID() || ready[1].ID() != pa.ID() || ready[2].ID() != rb.ID() {
		t.Fatalf("Wait(3): ready %v, want input order", ready)
	}
	if got := getBytes(t, ctx, b, pc); string(got) != "0123456789" {
		t.Fatalf("got %q", got)
	}
	// Wait(2) gave up its fetch of pc, still pending then: that is a
	// cancellation, not a failed fetch.
	if st := b.Stats(); st.FetchErrors != 0 || st.FetchesCancelled == 0 {
		t.Fatalf("fetch errors %d, cancelled %d: want 0 errors and Wait(2)'s abandoned fetch counted as cancelled", st.FetchErrors, st.FetchesCancelled)
	}
	for _, r := range []trove.Ref{ra, rb, pc, pa, bc.Ref()} {
		r.Drop()
	}
}

// box is a value holding refs, for the nested-refs test.
type box struct {
	Name  string
	Inner []trove.Ref
}

func TestNestedRefsAcrossNodes(t *testing.T) {
	ctx := context.Background()
	nodes := newCluster(t, 3, nil)
	a, b, c := nodes[0], nodes[1], nodes[2]
	small, large := pattern(100, 5), pattern(2<<20, 6)
	i1, err := a.Put(ctx, small)
	if err != nil {
		t.Fatal(err)
	}
	i2, err := c.Put(ctx, large) // owned by a third node
	if err != nil {
		t.Fatal(err)
	}
	i2a, err := a.Borrow(i2.ID())
	if err != nil {
		t.Fatal(err)
	}
	outer, err := trove.PutValue(ctx, a, box{Name: "x", Inner: []trove.Ref{i1, i2a}})
	if err != nil {
		t.Fatal(err)
	}
	// Only the container keeps the inner objects on A.
	i1.Drop()
	i2a.Drop()
	i2.Drop()
	ob, err := b.Borrow(outer.ID())
	if err != nil {
		t.Fatal(err)
	}
	outer.Drop()
	v, err := trove.GetValue[box](ctx, b, ob)
	if err != nil {
		t.Fatal(err)
	}
	// B's nested refs are registered with their owners; the container can go.
	ob.Drop()
	runtime.GC()
	if v.Name != "x" || len(v.Inner) != 2 {
		t.Fatalf("value %+v", v)
	}
	if got := getBytes(t, ctx, b, v.Inner[0]); !bytes.Equal(got, small) {
		t.Fatal("inner small differs")
	}
	if got := getBytes(t, ctx, b, v.Inner[1]); !bytes.Equal(got, large) {
		t.Fatal("inner large differs")
	}
	for _, r := range v.Inner {
		r.Drop()
	}
}

// borrowerCount is how many nodes borrow id from this owner.
func (t *ownerTable) borrowerCount(id trove.ObjectID) int {
	sh := t.shard(id)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	n := 0
	if m := sh.m[id]; m != nil {
		m.each(func(*borrower) { n++ })
	}
	return n
}

// A small object fetched once is kept in the small-object cache: fetching it
// again after its copy was evicted asks nobody. With the cache off, the owner
// answers again.
func TestSmallObjectCache(t *testing.T) {
	for _, tc := range []struct {
		name               string
		cacheBytes         int64
		wantHits, wantAsks int64 // of the second fetch: from the cache, or from the owner
	}{
		{"on", 0, 1, 1},
		{"off", -1, 0, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			nodes := newCluster(t, 2, nil, func(_ int, c *Config) { c.SmallCacheBytes = tc.cacheBytes })
			a, b := nodes[0], nodes[1]
			small := pattern(2<<10, 7)
			r, br := putBorrowed(t, a, b, small)
			if got := getBytes(t, ctx, b, br); !bytes.Equal(got, small) {
				t.Fatal("small object differs")
			}
			b.small.wait() // ristretto applies sets asynchronously
			if !b.local.EvictCopy(r.ID()) {
				t.Fatal("EvictCopy of an unpinned copy did not evict it")
			}
			if got := getBytes(t, ctx, b, br); !bytes.Equal(got, small) {
				t.Fatal("small object fetched again differs")
			}
			st := b.Stats()
			if st.RemoteGets != 2 || st.CacheHits != tc.wantHits || st.RemoteInline != tc.wantAsks {
				t.Fatalf("two fetches: %d remote gets, %d cache hits, %d answered by the owner; want 2, %d, %d",
					st.RemoteGets, st.CacheHits, st.RemoteInline, tc.wantHits, tc.wantAsks)
			}
			br.Drop()
			r.Drop()
		})
	}
}

// putBorrowed puts data on owner and borrows the object by its ID on borrower
// (which registers it with the owner): the owner's ref and the borrower's.
func putBorrowed(t *testing.T, owner, borrower *Node, data []byte) (own, borrowed trove.Ref) {
	t.Helper()
	own, err := owner.Put(context.Background(), data)
	if err != nil {
		t.Fatal(err)
	}
	borrowed, err = borrower.Borrow(own.ID())
	if err != nil {
		t.Fatal(err)
	}
	return own, borrowed
}

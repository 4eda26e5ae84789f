package main

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"sync"
	"testing"
	"time"

	"github.com/trovedb/trove"
	"github.com/trovedb/trove/tools/netcluster/netns"
)

// The namespace-cluster tests: real troved processes in network namespaces on
// a bridge, links capped with tbf. They need root and iproute2 and skip with
// the reason otherwise. netns.New's flock keeps two runs (this package's tests
// in two processes, or a test and a benchmark) from sharing the bridge.

var bin struct {
	once      sync.Once
	path, dir string
	err       error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if bin.dir != "" {
		os.RemoveAll(bin.dir)
	}
	os.Exit(code)
}

// startCluster builds troved once per run and starts n nodes; the cluster is
// closed, and the machine checked for leftovers, at the end of the test.
func startCluster(t *testing.T, n int, rate string, args ...string) *Cluster {
	t.Helper()
	if err := netns.Available(); err != nil {
		t.Skip(err)
	}
	if testing.Short() {
		t.Skip("starts troved processes in network namespaces")
	}
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("go is not on PATH: cannot build troved")
	}
	bin.once.Do(func() {
		if bin.dir, bin.err = os.MkdirTemp("", "netcluster-test-bin-"); bin.err == nil {
			bin.path, bin.err = BuildTroved(context.Background(), bin.dir)
		}
	})
	if bin.err != nil {
		t.Fatal(bin.err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, err := Start(ctx, Options{Nodes: n, Rate: rate, Capacity: "128MiB", PullSources: -1, Troved: bin.path, Args: args,
		Log: t.Logf})
	if err != nil {
		if errors.Is(err, netns.ErrUnavailable) {
			t.Skip(err)
		}
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			for _, nd := range c.Nodes {
				t.Logf("%s's log:\n%s", nd.Name, nd.Log())
			}
		}
		if err := c.Close(); err != nil {
			t.Error(err)
		}
		if left, err := netns.Leftovers(); err != nil || len(left) > 0 {
			t.Errorf("left on the machine after Close: %v (%v)", left, err)
		}
	})
	return c
}

// fastProbes declare a silent node dead within a few seconds (troved's own
// default is ~6 s), generous enough for -race on a busy machine.
var fastProbes = []string{"-probe-interval", "400ms", "-probe-timeout", "300ms", "-request-timeout", "3s"}

func TestBroadcastFourNodes(t *testing.T) {
	c := startCluster(t, 4, "1gbit")
	res, err := Broadcast(context.Background(), c, BroadcastOptions{Size: 24 << 20, Seed: 1, Timeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range res.Gets {
		t.Logf("%s: %v", c.Nodes[g.Node].Name, g.Duration)
	}
	for i := 1; i < 4; i++ {
		if res.LinkIn[i] < uint64(res.Size) {
			t.Errorf("%s's link received %d bytes, less than the object's %d", c.Nodes[i].Name, res.LinkIn[i], res.Size)
		}
	}
	var served int64
	for _, s := range res.ServedBytes {
		served += s
	}
	if served != 3*int64(res.Size) {
		t.Errorf("the nodes served %d object bytes in all (%v), want 3 × %d", served, res.ServedBytes, res.Size)
	}
	if res.OriginEgress() < uint64(res.Size) {
		t.Errorf("origin egress %d, less than one copy (%d): the origin must have sent the first", res.OriginEgress(), res.Size)
	}
}

// TestHolderKilledMidBroadcast: node 1 pulls the object first and so becomes a
// holder the owner names before the origin; nodes 2 and 3 then pull, from it,
// and node 1 is killed with SIGKILL while they are pulling. Both must finish,
// from the origin, with every byte right, and the survivors drain.
func TestHolderKilledMidBroadcast(t *testing.T) {
	c := startCluster(t, 4, "200mbit", fastProbes...)
	const size = 32 << 20
	killed := make(chan error, 1)
	res, err := Broadcast(context.Background(), c, BroadcastOptions{Size: size, Seed: 7, Timeout: 90 * time.Second,
		Seeded: []int{1}, SeedSettle: time.Second, Getters: []int{2, 3},
		Started: func() {
			go func() {
				// Kill node 1 once it has sent an eighth of a copy: mid-pull
				// at 200 Mbit/s (~1.3 s per copy, two pullers sharing it).
				deadline := time.Now().Add(30 * time.Second)
				for time.Now().Before(deadline) {
					if cn, err := c.Nodes[1].Host.Counters(); err == nil && cn.OutBytes > size/8 {
						break
					}
					time.Sleep(2 * time.Millisecond)
				}
				killed <- c.Nodes[1].Kill()
			}()
		}})
	if kerr := <-killed; kerr != nil {
		t.Fatal(kerr)
	}
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range res.Gets {
		t.Logf("%s: %v", c.Nodes[g.Node].Name, g.Duration)
	}
	if res.LinkOut[1] < size/8 {
		t.Fatalf("node 1 sent %d bytes during the broadcast: it was not serving when killed (want ≥ %d)", res.LinkOut[1], size/8)
	}
	if res.LinkOut[1] >= 2*size {
		t.Fatalf("node 1 sent %d bytes, both whole copies: it was killed after the pulls, not during", res.LinkOut[1])
	}
	if res.OriginEgress() < size/2 {
		t.Fatalf("the origin sent %d bytes: the pulls cannot have finished from it", res.OriginEgress())
	}
}

// TestPartitionedNodeTimesOut: node 2's link is cut; its Get ends at its
// deadline with ErrGetTimeout (no hang, no other error), and after the link
// is healed the same ref's Get succeeds, every byte right.
func TestPartitionedNodeTimesOut(t *testing.T) {
	// The partition must heal before the membership declares the cut node
	// dead (a node declared dead does not come back: docs/netcluster.md), and
	// it lasts the Get's 2 s deadline and more on a loaded machine: slow
	// failure detection (8 × 1 s of suspicion at the least) keeps it clear.
	c := startCluster(t, 3, "1gbit", "-probe-interval", "1s", "-probe-timeout", "500ms", "-suspicion-mult", "8", "-request-timeout", "3s")
	ctx := context.Background()
	const size = 8 << 20
	b, err := c.Nodes[0].Client.Create(ctx, size)
	if err != nil {
		t.Fatal(err)
	}
	fill(b.Bytes(), 3)
	if err := b.Seal(); err != nil {
		t.Fatal(err)
	}
	ref := b.Ref()
	defer ref.Drop()
	cut := c.Nodes[2]
	r, err := cut.Client.Borrow(ref.ID())
	if err != nil {
		t.Fatal(err)
	}
	defer r.Drop()
	if err := cut.Host.Partition(ctx); err != nil {
		t.Fatal(err)
	}
	gctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	obj, err := cut.Client.Get(gctx, r)
	cancel()
	if err == nil {
		obj.Release()
		t.Fatal("a Get on a partitioned node succeeded")
	}
	if !errors.Is(err, trove.ErrGetTimeout) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Get on a partitioned node: %v, want ErrGetTimeout (and context.DeadlineExceeded)", err)
	}
	if err := cut.Host.Heal(ctx); err != nil {
		t.Fatal(err)
	}
	gctx, cancel = context.WithTimeout(ctx, 30*time.Second)
	obj, err = cut.Client.Get(gctx, r)
	cancel()
	if err != nil {
		t.Fatalf("Get after the partition healed: %v", err)
	}
	want := make([]byte, size)
	fill(want, 3)
	if d := firstDiff(obj.Bytes(), want); d >= 0 {
		t.Fatalf("Get after the partition healed: first wrong byte at %d", d)
	}
	obj.Release()
	r.Drop()
	ref.Drop()
	for _, n := range c.Nodes {
		if err := n.AwaitDrained(ctx, 30*time.Second); err != nil {
			t.Error(err)
		}
	}
}

// TestLossyLinkCompletes: 5% of node 1's packets are dropped both ways; its
// Get and node 2's complete with every byte right, and the drop counters
// show the program dropped packets.
func TestLossyLinkCompletes(t *testing.T) {
	c := startCluster(t, 3, "1gbit")
	if err := c.Nodes[1].Host.SetLoss(0.05); err != nil {
		if errors.Is(err, netns.ErrUnavailable) {
			t.Skip(err)
		}
		t.Fatal(err)
	}
	res, err := Broadcast(context.Background(), c, BroadcastOptions{Size: 16 << 20, Seed: 5, Timeout: 90 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	d := res.Drops[1]
	t.Logf("drops on node 1: %d of what it sent, %d of what it received; gets %+v", d.Out, d.In, res.Gets)
	if d.Out == 0 || d.In == 0 {
		t.Fatalf("drops %+v: want packets dropped in both directions at 5%%", d)
	}
	if res.Drops[2] != (netns.Drops{}) {
		t.Fatalf("node 2 has no loss set, yet drops %+v", res.Drops[2])
	}
}

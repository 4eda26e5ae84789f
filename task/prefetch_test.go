package task

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/trovedb/trove"
)

// onlyB places a call on node-b of prefetchCluster (its one slot).
var onlyB = Resource("B", 1)

// prefetchCluster is node-a (the caller, owner of the arguments) and node-b
// with one CPU and the custom resource B every call here asks for, plus
// node-c when three are asked for.
func prefetchCluster(t *testing.T, k int) *testCluster {
	return newCluster(t, k, func(i int) Config {
		if i == 1 {
			return Config{CPUs: 1, Resources: map[string]float64{"B": 1}}
		}
		return Config{CPUs: 2}
	})
}

// bigArg puts 1 MiB of float64s (pulled in chunks, larger than
// InlineThreshold) through st and returns the ref and their sum.
func bigArg(t *testing.T, ctx context.Context, st trove.Store) (trove.Ref, float64) {
	t.Helper()
	xs := make([]float64, 1<<17)
	var sum float64
	for i := range xs {
		xs[i] = float64(i % 7)
		sum += xs[i]
	}
	r, err := trove.PutValue(ctx, st, xs)
	if err != nil {
		t.Fatal(err)
	}
	return r, sum
}

// waitQueued waits (a generous bound) until rt has n calls queued, each
// holding its borrowed ref arguments.
func waitQueued(t *testing.T, rt *Runtime, n int) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		rt.ex.mu.Lock()
		held := 0
		for _, j := range rt.ex.byID {
			if j.pf == nil {
				continue
			}
			j.pf.mu.Lock()
			if j.pf.refs != nil {
				held++
			}
			j.pf.mu.Unlock()
		}
		queued := len(rt.ex.byID)
		rt.ex.mu.Unlock()
		if queued == n && held == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("node %s: %d calls queued, %d holding their arguments; want %d of each", rt.name, queued, held, n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitBorrowing waits (a generous bound) until node i borrows n objects.
func waitBorrowing(t *testing.T, tc *testCluster, i int, n int) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for tc.nodes[i].Stats().Borrowing != n {
		if time.Now().After(deadline) {
			t.Fatalf("node %s borrows %d objects, want %d", tc.nodes[i].Name(), tc.nodes[i].Stats().Borrowing, n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// A node with one slot running queued calls that share one large ref
// argument one after another, each ending before the next starts, pulls it
// once: the queued calls hold it.
func TestPrefetchSharedArgPulledOnce(t *testing.T) {
	tc := prefetchCluster(t, 2)
	ctx := testCtx(t)
	a := tc.rts[0]
	key, g := newGate(t)
	big, _ := bigArg(t, ctx, a)
	const n = 4
	fn := blockBigFn.Options(onlyB)
	var refs []trove.Ref
	for range n {
		r, err := fn.Remote(ctx, a, Val(key), Ref[[]float64](big))
		if err != nil {
			t.Fatal(err)
		}
		refs = append(refs, r)
	}
	big.Drop() // the calls hold it
	for i, r := range refs {
		if got := g.waitStart(t, ctx); got != "node-b" {
			t.Fatalf("call %d ran on %s, want node-b", i, got)
		}
		waitQueued(t, tc.rts[1], n-1-i)
		g.release <- struct{}{}
		if got := get[int](t, a, r); got != 1<<17 {
			t.Fatalf("call %d saw %d floats, want %d", i, got, 1<<17)
		}
		r.Drop()
	}
	if p := tc.nodes[1].Stats().Pulls; p != 1 {
		t.Fatalf("node-b pulled the shared argument %d times for %d calls, want once", p, n)
	}
	waitBorrowing(t, tc, 1, 0)
}

// A queued call's argument is fetched while it waits behind a blocked call
// that does not use it: the copy is on its node before it starts, and the
// call pulls nothing more.
func TestPrefetchBeforeStart(t *testing.T) {
	tc := prefetchCluster(t, 2)
	ctx := testCtx(t)
	a, b := tc.rts[0], tc.nodes[1]
	key, g := newGate(t)
	blocker, err := blockFn.Options(onlyB).Remote(ctx, a, Val(key))
	if err != nil {
		t.Fatal(err)
	}
	g.waitStart(t, ctx)
	big, sum := bigArg(t, ctx, a)
	r, err := sumFloatsFn.Options(onlyB).Remote(ctx, a, Ref[[]float64](big))
	if err != nil {
		t.Fatal(err)
	}
	big.Drop()
	waitQueued(t, tc.rts[1], 1)
	deadline := time.Now().Add(20 * time.Second)
	for b.Stats().Pulls != 1 || b.Local().Stats().ObjectBytes < 8<<17 {
		if time.Now().After(deadline) {
			t.Fatalf("node-b has not fetched the queued call's argument: pulls %d, %d bytes", b.Stats().Pulls, b.Local().Stats().ObjectBytes)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if st := tc.rts[1].ex.status(); st.running != 1 || st.queued != 1 {
		t.Fatalf("node-b runs %d and queues %d calls, want the blocker running and the call queued", st.running, st.queued)
	}
	g.release <- struct{}{}
	if got := get[float64](t, a, r); got != sum {
		t.Fatalf("sum = %v, want %v", got, sum)
	}
	if p := b.Stats().Pulls; p != 1 {
		t.Fatalf("node-b pulled the argument %d times, want once (before the call started)", p)
	}
	get[string](t, a, blocker)
	r.Drop()
	blocker.Drop()
}

// A queued call that ends without running (withdrawn, its caller dead, its
// node's runtime closed) lets go of its held arguments at once, while the
// call ahead of it still runs.
func TestPrefetchReleased(t *testing.T) {
	cases := []struct {
		name string
		k    int
		end  func(t *testing.T, tc *testCluster, cancel context.CancelFunc)
	}{
		{"withdrawn", 2, func(t *testing.T, tc *testCluster, cancel context.CancelFunc) { cancel() }},
		{"caller died", 3, func(t *testing.T, tc *testCluster, cancel context.CancelFunc) { tc.crash(t, 2) }},
		{"closed", 2, func(t *testing.T, tc *testCluster, cancel context.CancelFunc) {
			go func() { _ = tc.rts[1].Close() }() // waits for the blocker, which its context ends
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tc := prefetchCluster(t, c.k)
			ctx := testCtx(t)
			a := tc.rts[0]
			caller := tc.rts[c.k-1] // node-c, which dies, or node-b itself
			if c.k == 2 {
				caller = a
			}
			key, g := newGate(t)
			blocker, err := blockFn.Options(onlyB).Remote(ctx, a, Val(key))
			if err != nil {
				t.Fatal(err)
			}
			g.waitStart(t, ctx)
			big, _ := bigArg(t, ctx, a) // owned by node-a, which stays
			arg := big
			if caller != a {
				arg = mustBorrow(t, caller, big)
			}
			callCtx, cancel := context.WithCancel(ctx)
			defer cancel()
			r, err := sumFloatsFn.Options(onlyB).Remote(callCtx, caller, Ref[[]float64](arg))
			if err != nil {
				t.Fatal(err)
			}
			waitQueued(t, tc.rts[1], 1)
			waitBorrowing(t, tc, 1, 1)
			c.end(t, tc, cancel)
			waitBorrowing(t, tc, 1, 0) // the blocker still runs (or is ending)
			switch c.name {
			case "withdrawn":
				if _, err := trove.GetValue[float64](ctx, caller, r); err == nil {
					t.Fatal("a withdrawn call's result was readable")
				}
			case "closed":
				r.Drop()
				blocker.Drop()
				big.Drop()
				return // its caller learns of the closed runtime in its own time
			}
			if g.runs.Load() != 1 || tc.rts[1].ex.status().running != 1 {
				t.Fatal("the blocker no longer runs: the held arguments were let go because it ended, not the queued call")
			}
			g.release <- struct{}{}
			get[string](t, a, blocker)
			r.Drop()
			blocker.Drop()
			big.Drop()
		})
	}
}

// A call queued for a worker process holds and fetches its argument while
// it waits, as an in-process one: the worker reads the node's copy, fetched
// before the call started.
func TestPrefetchWorker(t *testing.T) {
	wn := newWorkerNode(t, 2, 1)
	wn.startWorker(t, 1)
	ctx := ctx30(t)
	a, b := wn.rts[0], wn.nodes[1]
	dir := t.TempDir()
	blocker, err := wHold.Remote(ctx, a, Val(dir))
	if err != nil {
		t.Fatal(err)
	}
	big, sum := bigArg(t, ctx, a)
	r, err := wSum.Remote(ctx, a, Ref[[]float64](big))
	if err != nil {
		t.Fatal(err)
	}
	big.Drop()
	waitQueued(t, wn.rts[1], 1)
	deadline := time.Now().Add(20 * time.Second)
	for b.Stats().Pulls != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("node-b has not fetched the queued call's argument: pulls %d", b.Stats().Pulls)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if st := wn.rts[1].ex.status(); st.running != 1 || st.queued != 1 {
		t.Fatalf("node-b runs %d and queues %d calls, want the blocker running and the call queued", st.running, st.queued)
	}
	if err := os.WriteFile(filepath.Join(dir, "release"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if got := get[float64](t, a, r); got != sum {
		t.Fatalf("sum = %v, want %v", got, sum)
	}
	if p := b.Stats().Pulls; p != 1 {
		t.Fatalf("node-b pulled the argument %d times, want once", p)
	}
	get[string](t, a, blocker)
	r.Drop()
	blocker.Drop()
}

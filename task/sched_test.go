package task

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/trovedb/trove"
)

// waitStatus polls (bounded, 10 s) until the executor's figures are want.
func waitStatus(t *testing.T, rt *Runtime, queued, running int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		st := rt.ex.status()
		if st.queued == queued && st.running == running {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("node %s: %d queued, %d running; want %d, %d", rt.name, st.queued, st.running, queued, running)
		}
		time.Sleep(time.Millisecond)
	}
}

// At most CPUs calls run at once; the others wait, and start in FIFO order.
func TestSlotsAndQueueing(t *testing.T) {
	tc := newCluster(t, 1, func(int) Config { return Config{CPUs: 2} })
	ctx := testCtx(t)
	rt := tc.rts[0]
	key, g := newGate(t)
	var refs []trove.Ref
	for range 5 {
		r, err := blockFn.Remote(ctx, rt, Val(key))
		if err != nil {
			t.Fatal(err)
		}
		refs = append(refs, r)
	}
	g.waitStart(t, ctx)
	g.waitStart(t, ctx)
	waitStatus(t, rt, 3, 2)
	if n := g.runs.Load(); n != 2 {
		t.Fatalf("%d calls run on 2 slots", n)
	}
	free, err := rt.AvailableResources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if free[CPU] != 0 {
		t.Fatalf("available %v with both slots busy", free)
	}
	// Release one at a time: the queued calls start in the order they were made.
	for i := 2; i < 5; i++ {
		g.release <- struct{}{}
		g.waitStart(t, ctx)
		waitStatus(t, rt, 4-i, 2)
		c := rt.calls.get(refs[i].ID())
		if ready, _ := rt.node.Local().Ready(refs[i]); ready {
			t.Fatalf("call %d finished before it was released", i)
		}
		_ = c
	}
	close(g.release)
	for _, r := range refs {
		if got := get[string](t, rt, r); got != "node-a" {
			t.Fatalf("ran on %q", got)
		}
		r.Drop()
	}
	waitStatus(t, rt, 0, 0)
}

// A call asking for a custom resource waits for it; calls that fit go first.
func TestCustomResources(t *testing.T) {
	tc := newCluster(t, 2, func(i int) Config {
		if i == 1 {
			return Config{CPUs: 4, Resources: map[string]float64{"Custom": 1}}
		}
		return Config{CPUs: 1}
	})
	ctx := testCtx(t)
	a, b := tc.rts[0], tc.rts[1]
	total, err := a.ClusterResources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if total[CPU] != 5 || total["Custom"] != 1 {
		t.Fatalf("cluster resources %v, want CPU 5, Custom 1", total)
	}
	// The membership gossips each runtime's resources (trove status lists them).
	deadline := time.Now().Add(15 * time.Second)
	for {
		m, _ := a.node.Lookup(b.node.ID())
		rs := m.Resources.All()
		if m.Slots == 4 && len(rs) == 2 && rs[0].Name == "CPU" && rs[0].Total == 4 && rs[1].Name == "Custom" && rs[1].Total == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("node-a sees node-b offer %d slots, %+v; want 4 and CPU 4, Custom 1", m.Slots, rs)
		}
		time.Sleep(10 * time.Millisecond)
	}
	key, g := newGate(t)
	custom := blockFn.Options(Resource("Custom", 1))
	r1, err := custom.Remote(ctx, a, Val(key))
	if err != nil {
		t.Fatal(err)
	}
	if n := g.waitStart(t, ctx); n != "node-b" {
		t.Fatalf("a Custom call ran on %s", n)
	}
	r2, err := custom.Remote(ctx, a, Val(key)) // waits for Custom on node-b
	if err != nil {
		t.Fatal(err)
	}
	waitStatus(t, b, 1, 1)
	// A CPU-only call placed on node-b (its argument is there: small
	// literals travel in the submit and do not pull a call to its caller,
	// stored objects do) goes ahead of the waiting one.
	keyRef, err := trove.PutValue(ctx, b, key)
	if err != nil {
		t.Fatal(err)
	}
	defer keyRef.Drop()
	r3, err := blockFn.Remote(ctx, b, Ref[string](keyRef))
	if err != nil {
		t.Fatal(err)
	}
	if n := g.waitStart(t, ctx); n != "node-b" {
		t.Fatalf("the CPU-only call ran on %s", n)
	}
	waitStatus(t, b, 1, 2)
	// More than any node has: the call fails, saying what to change.
	r4, err := blockFn.Options(Resource("Custom", 2)).Remote(ctx, a, Val(key))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := trove.GetValue[string](ctx, a, r4); err == nil || !strings.Contains(err.Error(), "task.Config") {
		t.Fatalf("an infeasible call: %v, want an error naming task.Config", err)
	}
	r4.Drop()
	close(g.release)
	for _, r := range []trove.Ref{r1, r2, r3} {
		get[string](t, a, mustBorrow(t, a, r))
		r.Drop()
	}
	if got := g.runs.Load(); got != 3 {
		t.Fatalf("%d runs, want 3", got)
	}
}

// Cancelling the caller's context before the call starts withdraws it, on
// the caller's node and on another.
func TestWithdraw(t *testing.T) {
	tc := newCluster(t, 2, func(i int) Config {
		if i == 1 {
			return Config{CPUs: 1, Resources: map[string]float64{"B": 1}}
		}
		return Config{CPUs: 1, Resources: map[string]float64{"A": 1}}
	})
	ctx := testCtx(t)
	key, g := newGate(t)
	for _, tt := range []struct {
		name string
		fn   *Func1[string, string]
		exec *Runtime
	}{
		{"local", blockFn.Options(Resource("A", 1)), tc.rts[0]},
		{"remote", blockFn.Options(Resource("B", 1)), tc.rts[1]},
	} {
		t.Run(tt.name, func(t *testing.T) {
			before := g.runs.Load()
			busy, err := tt.fn.Remote(ctx, tc.rts[0], Val(key))
			if err != nil {
				t.Fatal(err)
			}
			g.waitStart(t, ctx)
			cctx, cancel := context.WithCancel(ctx)
			queued, err := tt.fn.Remote(cctx, tc.rts[0], Val(key))
			if err != nil {
				t.Fatal(err)
			}
			waitStatus(t, tt.exec, 1, 1)
			cancel()
			_, err = trove.GetValue[string](ctx, tc.rts[0], queued)
			if err == nil || !strings.Contains(err.Error(), "withdrawn") {
				t.Fatalf("Get of a withdrawn call: %v", err)
			}
			waitStatus(t, tt.exec, 0, 1)
			g.release <- struct{}{}
			get[string](t, tc.rts[0], busy)
			if n := g.runs.Load() - before; n != 1 {
				t.Fatalf("%d runs, want 1 (the withdrawn call must not run)", n)
			}
			busy.Drop()
			queued.Drop()
		})
	}
	// A context already ended: the call is withdrawn at once.
	kr, err := trove.PutValue(ctx, tc.rts[0], key)
	if err != nil {
		t.Fatal(err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	r, err := countFn.Remote(cctx, tc.rts[0], Ref[string](kr))
	kr.Drop()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := trove.GetValue[string](ctx, tc.rts[0], r); err == nil || !strings.Contains(err.Error(), "withdrawn") {
		t.Fatalf("Get of a call made with an ended context: %v", err)
	}
	r.Drop()
}

// A call whose node dies before it finishes runs again elsewhere; a result
// lost with its node is computed again from its call, or, when it cannot
// be, Get says why.
func TestNodeDeath(t *testing.T) {
	tc := newCluster(t, 3, func(i int) Config {
		if i == 0 {
			return Config{CPUs: 1}
		}
		return Config{CPUs: 1, Resources: map[string]float64{"W": 1}}
	})
	ctx := testCtx(t)
	a := tc.rts[0]
	key, g := newGate(t)
	r, err := blockFn.Options(Resource("W", 1)).Remote(ctx, a, Val(key))
	if err != nil {
		t.Fatal(err)
	}
	first := g.waitStart(t, ctx)
	dead, live := tc.index(first), 3-tc.index(first)
	tc.crash(t, dead)
	if n := g.waitStart(t, ctx); n != tc.nodes[live].Name() {
		t.Fatalf("retried on %s, want %s", n, tc.nodes[live].Name())
	}
	close(g.release)
	if got := get[string](t, a, r); got != tc.nodes[live].Name() {
		t.Fatalf("result from %q", got)
	}
	r.Drop()
}

// A sealed result lost with its node is computed again (lineage), or, with
// no retries left, Get fails with ErrObjectLost saying why.
func TestLineage(t *testing.T) {
	tc := newCluster(t, 3, func(i int) Config {
		if i == 0 {
			return Config{CPUs: 1}
		}
		// node-b and node-c both run W calls; "node-b"/"node-c" pin one.
		return Config{CPUs: 1, Resources: map[string]float64{"W": 1, fmt.Sprintf("node-%c", 'a'+i): 1}}
	})
	ctx := testCtx(t)
	a := tc.rts[0]
	xs := make([]float64, 1<<16) // an argument of 512 KiB, kept by the lineage
	for i := range xs {
		xs[i] = 1
	}
	resolved := func(ref trove.Ref) trove.NodeID {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for time.Now().Before(deadline) {
			c := a.calls.get(ref.ID())
			c.mu.Lock()
			done, node := c.done, c.node
			c.mu.Unlock()
			if done {
				return node
			}
			time.Sleep(time.Millisecond)
		}
		t.Fatalf("call %s never finished", ref.ID())
		return trove.NodeID{}
	}
	fn := doubleFn.Options(Resource("W", 1)) // a result of 512 KiB: not inline, so no copy at the caller
	r, err := fn.Remote(ctx, a, Val(xs))
	if err != nil {
		t.Fatal(err)
	}
	holder := nodeName(a.node, resolved(r)) // sealed there, never fetched by the caller
	once, err := fn.Options(Resource(holder, 1), MaxRetries(0)).Remote(ctx, a, Val(xs))
	if err != nil {
		t.Fatal(err)
	}
	resolved(once)
	tc.crash(t, tc.index(holder))
	if got := get[[]float64](t, a, r); len(got) != len(xs) || got[0] != 2 || got[len(got)-1] != 2 {
		t.Fatalf("recomputed %d values, first %v", len(got), got[:1])
	}
	if n := nodeName(a.node, resolved(r)); n == holder {
		t.Fatalf("recomputed on the dead node %s", n)
	}
	_, err = trove.GetValue[[]float64](ctx, a, once)
	if !errors.Is(err, trove.ErrObjectLost) || !strings.Contains(err.Error(), "MaxRetries") {
		t.Fatalf("a lost result with no retries left: %v, want ErrObjectLost naming MaxRetries", err)
	}
	r.Drop()
	once.Drop()
}

// Large literal arguments are stored once per call, in the caller's node;
// small ones travel inside the submit and are stored where the call runs.
func TestLargeValPutOnce(t *testing.T) {
	tc := newCluster(t, 2, func(i int) Config {
		if i == 1 {
			return Config{CPUs: 1, Resources: map[string]float64{"B": 1}}
		}
		return Config{CPUs: 1}
	})
	ctx := testCtx(t)
	a := tc.rts[0]
	key, g := newGate(t)
	xs := make([]float64, 1<<17)
	before := a.node.Local().Stats().Puts
	r, err := blockBigFn.Options(Resource("B", 1)).Remote(ctx, a, Val(key), Val(xs))
	if err != nil {
		t.Fatal(err)
	}
	g.waitStart(t, ctx)
	if n := a.node.Local().Stats().Puts - before; n != 1 {
		t.Fatalf("%d puts on the caller's node for one call with a large and a small literal, want 1 (the large one)", n)
	}
	// The executing node holds a copy of the large one, and its own object
	// of the small one (from the submit).
	var copies, own int
	for o := range tc.nodes[1].Local().Objects() {
		switch {
		case o.Secondary && o.Size > 1<<20:
			copies++
		case !o.Secondary && o.Size < 1<<10:
			own++
		default:
			t.Fatalf("the executing node holds %+v before the call returned", o)
		}
	}
	if copies != 1 || own != 1 {
		t.Fatalf("the executing node holds %d copies of the large literal and %d objects of its own, want 1 and 1", copies, own)
	}
	close(g.release)
	if got := get[int](t, a, r); got != len(xs) {
		t.Fatalf("len = %d", got)
	}
	r.Drop()
}

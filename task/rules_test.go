package task

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/trovedb/trove"
)

// gate lets a test see a call start (and where) and decide when it ends.
type gate struct {
	started chan string   // the node's name, as each run starts
	release chan struct{} // one receive per run; closed: all go
	runs    atomic.Int32
}

var gates sync.Map // key → *gate

func newGate(t *testing.T) (string, *gate) {
	key := t.Name()
	g := &gate{started: make(chan string, 64), release: make(chan struct{})}
	gates.Store(key, g)
	t.Cleanup(func() { gates.Delete(key) })
	return key, g
}

func (g *gate) waitStart(t *testing.T, ctx context.Context) string {
	t.Helper()
	select {
	case n := <-g.started:
		return n
	case <-ctx.Done():
		t.Fatalf("no call started: %v", ctx.Err())
		return ""
	}
}

var (
	blockFn = Define1("test.block", func(ctx context.Context, key string) (string, error) {
		v, _ := gates.Load(key)
		g := v.(*gate)
		g.runs.Add(1)
		name := FromContext(ctx).Node().Name()
		g.started <- name
		select {
		case <-g.release:
		case <-ctx.Done():
			return "", ctx.Err()
		}
		return name, nil
	})
	sumFloatsFn = Define1("test.sumfloats", func(ctx context.Context, xs []float64) (float64, error) {
		var s float64
		for _, x := range xs {
			s += x
		}
		return s, nil
	})
	doubleFn = Define1("test.double", func(ctx context.Context, xs []float64) ([]float64, error) {
		out := make([]float64, len(xs))
		for i, x := range xs {
			out[i] = 2 * x
		}
		return out, nil
	})
	scaleInPlaceFn = Define1("test.scaleinplace", func(ctx context.Context, xs []float64) (int, error) {
		xs[0] *= 2 // the argument is read-only memory: this faults
		return len(xs), nil
	})
	// nestedFn reports, for each nested ref, whether its bytes were on the
	// executing node before the function asked for them, then Gets them.
	nestedFn = Define1("test.nested", func(ctx context.Context, v holder) (string, error) {
		rt := FromContext(ctx)
		var out []string
		for _, r := range v.Refs {
			obj, err := rt.Node().Local().TryGet(r)
			if err != nil {
				return "", err
			}
			here := obj != nil
			if obj != nil {
				obj.Release()
			}
			s, err := trove.GetValue[string](ctx, rt, r)
			if err != nil {
				return "", err
			}
			out = append(out, fmt.Sprintf("%s:%v", s, here))
			r.Drop()
		}
		return v.Name + "=" + strings.Join(out, ","), nil
	})
	blockBigFn = Define2("test.blockbig", func(ctx context.Context, key string, xs []float64) (int, error) {
		v, _ := gates.Load(key)
		g := v.(*gate)
		g.started <- FromContext(ctx).Node().Name()
		select {
		case <-g.release:
		case <-ctx.Done():
			return 0, ctx.Err()
		}
		return len(xs), nil
	})
	countFn = Define1("test.count", func(ctx context.Context, key string) (string, error) {
		v, _ := gates.Load(key)
		g := v.(*gate)
		g.runs.Add(1)
		return FromContext(ctx).Node().Name(), nil
	})
)

type holder struct {
	Name string
	Refs []trove.Ref
}

// Top-level refs are resolved before the call (large ones read in place,
// read-only: a write fails the call); nested refs arrive as refs, not fetched.
func TestArguments(t *testing.T) {
	tc := newCluster(t, 3, func(i int) Config {
		if i == 2 {
			return Config{CPUs: 2, Resources: map[string]float64{"only-c": 1}}
		}
		return Config{CPUs: 2}
	})
	ctx := testCtx(t)
	a, b := tc.rts[0], tc.nodes[1]
	xs := make([]float64, 1<<17) // 1 MiB: larger than InlineThreshold
	var want float64
	for i := range xs {
		xs[i] = float64(i % 10)
		want += xs[i]
	}
	big, err := trove.PutValue(ctx, b, xs) // owned by node-b
	if err != nil {
		t.Fatal(err)
	}
	ref := mustBorrow(t, a, big)
	onC := sumFloatsFn.Options(Resource("only-c", 1))
	r, err := onC.Remote(ctx, a, Ref[[]float64](ref))
	if err != nil {
		t.Fatal(err)
	}
	if got := get[float64](t, a, r); got != want {
		t.Fatalf("sum = %v, want %v", got, want)
	}
	r.Drop()

	w, err := scaleInPlaceFn.Options(Resource("only-c", 1)).Remote(ctx, a, Ref[[]float64](ref))
	if err != nil {
		t.Fatal(err)
	}
	_, err = trove.GetValue[int](ctx, a, w)
	var te *TaskError
	if !errors.As(err, &te) || te.Node != "node-c" || !strings.Contains(err.Error(), "read-only") {
		t.Fatalf("a write into a read-only argument: %v, want a TaskError from node-c naming the fault", err)
	}
	w.Drop()
	big.Drop()

	// Nested refs: a value holding refs to two objects of node-a's.
	var inner []trove.Ref
	for _, s := range []string{"x", "y"} {
		ir, err := trove.PutValue(ctx, a, s)
		if err != nil {
			t.Fatal(err)
		}
		inner = append(inner, ir)
	}
	n, err := nestedFn.Options(Resource("only-c", 1)).Remote(ctx, a, Val(holder{Name: "h", Refs: inner}))
	if err != nil {
		t.Fatal(err)
	}
	for _, ir := range inner {
		ir.Drop() // the call's argument holds them
	}
	if got := get[string](t, a, n); got != "h=x:false,y:false" {
		t.Fatalf("nested = %q, want both refs live and not fetched before the function asked", got)
	}
	n.Drop()
}

// A call runs where most of its arguments' bytes are; a busy node's calls
// queue, and a call asking for a custom resource runs only where it is.
func TestLocality(t *testing.T) {
	tc := newCluster(t, 3, nil)
	ctx := testCtx(t)
	a := tc.rts[0]
	key, g := newGate(t)
	close(g.release)
	for i, n := range tc.nodes {
		// An object of 1 MiB owned by node i, passed from node-a.
		big, err := trove.PutValue(ctx, n, make([]float64, 1<<17))
		if err != nil {
			t.Fatal(err)
		}
		r, err := sumFloatsFn.Remote(ctx, a, Ref[[]float64](mustBorrow(t, a, big)))
		if err != nil {
			t.Fatal(err)
		}
		get[float64](t, a, r)
		c := a.calls.get(r.ID())
		c.mu.Lock()
		ran := c.node
		c.mu.Unlock()
		if ran != n.ID() {
			t.Errorf("a call on %s's object ran on %s", n.Name(), nodeName(a.node, ran))
		}
		r.Drop()
		big.Drop()
		_ = i
	}
	// A result of a call that ran on node-c is there: a call on it runs there too.
	c := tc.rts[2]
	r1, err := countFn.Remote(ctx, c, Val(key))
	if err != nil {
		t.Fatal(err)
	}
	_ = r1
	r1.Drop()
}

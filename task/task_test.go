package task

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/trovedb/trove"
)

var (
	sumFn = Define1("test.sum", func(ctx context.Context, nums []int64) (int64, error) {
		var s int64
		for _, n := range nums {
			s += n
		}
		return s, nil
	})
	addFn  = Define2("test.add", func(ctx context.Context, a, b int64) (int64, error) { return a + b, nil })
	failFn = Define1("test.fail", func(ctx context.Context, msg string) (int, error) {
		return 0, errors.New(msg)
	})
	panicFn = Define0("test.panic", func(ctx context.Context) (int, error) {
		var m map[string]int
		m["x"] = 1 // panics: assignment to entry in nil map
		return 0, nil
	})
	whereFn = Define0("test.where", func(ctx context.Context) (string, error) {
		return FromContext(ctx).Node().Name(), nil
	})
)

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// A call's result is Get-able from every node, by value and by ref.
func TestRemoteResultEverywhere(t *testing.T) {
	tc := newCluster(t, 3, nil)
	ctx := testCtx(t)
	rt := tc.rts[0]
	ref, err := sumFn.Remote(ctx, rt, Val([]int64{23, 42, 93}))
	if err != nil {
		t.Fatal(err)
	}
	if ref.ID().Node() != rt.Node().ID() {
		t.Fatalf("the result %s is not owned by the caller's node %s", ref.ID(), rt.Node().ID())
	}
	if got := get[int64](t, rt, ref); got != 158 {
		t.Fatalf("sum = %d, want 158", got)
	}
	for _, n := range tc.nodes[1:] {
		b, err := n.Borrow(ref.ID())
		if err != nil {
			t.Fatal(err)
		}
		if got := get[int64](t, n, b); got != 158 {
			t.Fatalf("sum on %s = %d", n.Name(), got)
		}
		b.Drop()
	}
	// The result as an argument of another call, on another node's runtime.
	r2, err := addFn.Remote(ctx, tc.rts[1], Ref[int64](mustBorrow(t, tc.rts[1], ref)), Val[int64](2))
	if err != nil {
		t.Fatal(err)
	}
	if got := get[int64](t, tc.rts[2], mustBorrow(t, tc.rts[2], r2)); got != 160 {
		t.Fatalf("add = %d", got)
	}
	ref.Drop()
	r2.Drop()
}

func mustBorrow(t *testing.T, st trove.Store, ref trove.Ref) trove.Ref {
	t.Helper()
	b, err := st.Borrow(ref.ID())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Drop)
	return b
}

// An error or a panic fails Get with ErrTaskFailed naming function and node.
func TestTaskErrors(t *testing.T) {
	tc := newCluster(t, 2, nil)
	ctx := testCtx(t)
	rt := tc.rts[0]
	for _, tt := range []struct {
		name string
		call func() (trove.Ref, error)
		want string
	}{
		{"error", func() (trove.Ref, error) { return failFn.Remote(ctx, rt, Val("bad input 7")) }, "bad input 7"},
		{"panic", func() (trove.Ref, error) { return panicFn.Remote(ctx, rt) }, "assignment to entry in nil map"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ref, err := tt.call()
			if err != nil {
				t.Fatal(err)
			}
			defer ref.Drop()
			_, err = trove.GetValue[int](ctx, rt, ref)
			var te *TaskError
			if !errors.Is(err, ErrTaskFailed) || !errors.As(err, &te) {
				t.Fatalf("err = %v, want a TaskError", err)
			}
			if !strings.Contains(err.Error(), tt.want) || te.Node == "" || !strings.HasPrefix(te.Func, "test.") {
				t.Fatalf("err = %v (func %q node %q), want it to name the function, the node and %q", err, te.Func, te.Node, tt.want)
			}
			// Another node's Get of the result fails the same way.
			b := mustBorrow(t, tc.nodes[1], ref)
			_, err = trove.GetValue[int](ctx, tc.nodes[1], b)
			if !errors.Is(err, ErrTaskFailed) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err on node-b = %v, want ErrTaskFailed with %q", err, tt.want)
			}
		})
	}
}

package trove_test

import (
	"context"
	"testing"

	"github.com/trovedb/trove"
	"github.com/trovedb/trove/zerocopy"
)

// fuzzNode makes object IDs the same in every run, so refs in the seeds name objects
// that the fuzz store holds and binding is exercised, not only rejected.
var fuzzNode = trove.NodeID{'f', 'u', 'z', 'z'}

type fuzzValue struct {
	N int
	S string
	F []float32
	T zerocopy.Tensor
	R trove.Ref
	M map[string]trove.Ref
	A any
	P *fuzzValue
	L []trove.Ref // kept in the ref table (TagRefFields)
}

// fuzzStore returns a store whose first object (the inner one the seeds refer to) is
// already there: the caller drops the returned ref.
func fuzzStore(t testing.TB) (*testStore, trove.Ref) {
	st := newTestStoreNode(t, fuzzNode)
	inner, err := st.Put(context.Background(), []byte("inner"))
	if err != nil {
		t.Fatal(err)
	}
	return st, inner
}

// FuzzDecodeValue: reading arbitrary object bytes as a value never panics, never
// leaks a pin or a ref, and fails with an error when the bytes are not a value.
func FuzzDecodeValue(f *testing.F) {
	st, inner := fuzzStore(f)
	tn, _ := zerocopy.NewTensor([]int{2, 3}, []float64{1, 2, 3, 4, 5, 6})
	seeds := []any{
		42, "text", []float32{1, 2, 3}, []byte("bytes"), tn,
		fuzzValue{N: 1, S: "s", F: []float32{1}, T: tn, R: inner, M: map[string]trove.Ref{"k": inner}, A: inner,
			P: &fuzzValue{A: []any{tn, inner}}},
		fuzzValue{N: 2, L: []trove.Ref{inner}}, // TagRefFields over L's run of the table
		[]trove.Ref{inner, {}},                 // TagRefList over the ref table
		[]trove.Ref{inner, inner},              // a repeat: an array of refs and a ref table
		[]trove.Ref{}, []trove.Ref(nil),        // TagRefList over 0 and no table; null
	}
	for _, s := range seeds {
		ref, err := trove.PutValue(context.Background(), st, s)
		if err != nil {
			f.Fatal(err)
		}
		obj, err := st.Get(context.Background(), ref)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(append([]byte(nil), obj.Bytes()...))
		obj.Release()
		ref.Drop()
	}
	inner.Drop()

	f.Fuzz(func(t *testing.T, b []byte) {
		st, inner := fuzzStore(t)
		defer inner.Drop()
		ref, err := st.Put(context.Background(), b)
		if err != nil {
			t.Fatal(err)
		}
		defer ref.Drop()
		decodeFuzz[int](t, st, ref)
		decodeFuzz[string](t, st, ref)
		decodeFuzz[[]float32](t, st, ref)
		decodeFuzz[[]byte](t, st, ref)
		decodeFuzz[zerocopy.Tensor](t, st, ref)
		decodeFuzz[fuzzValue](t, st, ref)
		decodeFuzz[map[string]trove.Ref](t, st, ref)
		decodeFuzz[[]trove.Ref](t, st, ref)
		decodeFuzz[[]any](t, st, ref)
		decodeFuzz[any](t, st, ref)
	})
}

func decodeFuzz[T any](t *testing.T, st *testStore, ref trove.Ref) {
	ctx := context.Background()
	if v, err := trove.GetValue[T](ctx, st, ref); err == nil {
		dropRefs(&v)
	}
	v, obj, err := trove.ViewValue[T](ctx, st, ref)
	if err != nil {
		if obj != nil {
			t.Fatalf("ViewValue returned a view with an error: %v", err)
		}
		return
	}
	dropRefs(&v)
	obj.Release()
	if _, pins := st.counts(); pins != 0 {
		t.Fatalf("%d pins left after reading as %T", pins, v)
	}
}

package engine

import (
	"context"
	"slices"
	"testing"

	"github.com/trovedb/trove"
)

func TestInspect(t *testing.T) {
	s := newStore(t, Config{})
	ctx := context.Background()
	inner, err := s.Put(ctx, make([]byte, 200<<10))
	if err != nil {
		t.Fatal(err)
	}
	outers := make([]trove.Ref, 3)
	for i := range outers {
		if outers[i], err = s.PutFunc(ctx, 10, []trove.Ref{inner}, func([]byte) error { return nil }); err != nil {
			t.Fatal(err)
		}
	}
	d, ok := s.Inspect(inner.ID())
	var want []trove.ObjectID
	for _, o := range outers {
		want = append(want, o.ID())
	}
	slices.SortFunc(want, func(a, b trove.ObjectID) int { return slices.Compare(a[:], b[:]) })
	if !ok || d.Size != 200<<10 || d.Where != "memory" || d.ContainedByCount != 3 || d.Captured != 3 ||
		!slices.Equal(d.ContainedBy, want) || d.ContainsCount != 0 || d.Refs != 4 {
		t.Fatalf("inner: %+v", d)
	}
	d, ok = s.Inspect(outers[1].ID())
	if !ok || d.ContainsCount != 1 || !slices.Equal(d.Contains, []trove.ObjectID{inner.ID()}) || d.ContainedByCount != 0 || d.Where != "heap" {
		t.Fatalf("outer: %+v", d)
	}
	if _, ok := s.Inspect(trove.NewObjectID(trove.NewNodeID(), 1)); ok {
		t.Fatal("an unknown ID inspected")
	}
	for _, o := range outers {
		o.Drop()
	}
	inner.Drop()
	if _, ok := s.Inspect(inner.ID()); ok {
		t.Fatal("a freed object inspected")
	}
	requireEmpty(t, s)
}

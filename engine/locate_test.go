package engine

import (
	"context"
	"testing"

	"github.com/trovedb/trove"
)

func TestLocateAndTryGet(t *testing.T) {
	ctx := context.Background()
	s := newStore(t, Config{})
	small, err := s.Put(ctx, []byte("small"))
	if err != nil {
		t.Fatal(err)
	}
	big, err := s.Put(ctx, pattern(DefaultInlineThreshold+1, 3))
	if err != nil {
		t.Fatal(err)
	}
	b, err := s.Create(ctx, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if b.ArenaOffset() < 0 {
		t.Fatalf("a 1 MiB builder has arena offset %d", b.ArenaOffset())
	}
	off := b.ArenaOffset()

	// A pending object: TryGet does not block and gives no view.
	if o, err := s.TryGet(b.Ref()); o != nil || err != nil {
		t.Fatalf("TryGet of a pending object = %v, %v; want nil, nil", o, err)
	}
	if ok, err := s.Ready(b.Ref()); ok || err != nil {
		t.Fatalf("Ready of a pending object = %v, %v", ok, err)
	}
	if err := b.Seal(); err != nil {
		t.Fatal(err)
	}
	if b.ArenaOffset() != -1 {
		t.Fatal("ArenaOffset after Seal is not -1")
	}

	for _, tc := range []struct {
		ref   trove.Ref
		place Place
		off   int64
	}{
		{small, PlaceHeap, 0},
		{b.Ref(), PlaceArena, off},
	} {
		o, err := s.TryGet(tc.ref)
		if err != nil || o == nil {
			t.Fatalf("TryGet of a sealed object = %v, %v", o, err)
		}
		loc, err := s.Locate(o)
		if err != nil || loc.Place != tc.place || (tc.place == PlaceArena && loc.Offset != tc.off) {
			t.Fatalf("Locate = %+v, %v; want %v at %d", loc, err, tc.place, tc.off)
		}
		o.Release()
		if _, err := s.Locate(o); err == nil {
			t.Fatal("Locate of a released view succeeded")
		}
	}

	// A value containing big: the listing says big is captured once.
	outer, err := s.PutFunc(ctx, 8, []trove.Ref{big}, func([]byte) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	view, err := s.Get(ctx, big)
	if err != nil {
		t.Fatal(err)
	}
	got := map[trove.ObjectID]ObjectInfo{}
	for info := range s.Objects() {
		got[info.ID] = info
	}
	if len(got) != 4 {
		t.Fatalf("listing has %d objects, want 4: %+v", len(got), got)
	}
	if i := got[big.ID()]; i.Captured != 1 || i.Refs != 2 || i.Pins != 1 || i.Where != "memory" || i.Size != DefaultInlineThreshold+1 {
		t.Fatalf("big: %+v", i)
	}
	if i := got[small.ID()]; i.Where != "heap" || i.Size != 5 || i.State != "sealed" {
		t.Fatalf("small: %+v", i)
	}
	view.Release()
	for _, r := range []trove.Ref{small, big, b.Ref(), outer} {
		r.Drop()
	}
	requireEmpty(t, s)
}

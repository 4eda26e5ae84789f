package cluster

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/trovedb/trove"
)

// Room for pulls: a pull waits for room or evicts secondary copies, and
// received copies always give way, so a node full of other nodes' objects
// never deadlocks (Ray #62093: 52 GB of received copies that could be
// neither spilled nor evicted hung a task forever).

// smallB gives node B (the second) an arena of capacity bytes. These tests
// need no fast failure detection: the membership's default probes keep a
// node busy under -race on a loaded machine from being declared dead.
func smallB(capacity int64) func(int, *Config) {
	return func(i int, c *Config) {
		c.ProbeInterval, c.ProbeTimeout, c.SuspicionMult = 0, 0, 0
		if i == 1 {
			c.Store.Capacity = capacity
		}
	}
}

// TestPullsMakeRoom: B, with room for 8 of them, pulls 24 objects A owns, one
// after another, each view released before the next Get. Whether B keeps its
// refs (its arena full of unpinned copies of other nodes' objects, which must
// give way) or drops them, every pull succeeds with the right bytes, and B
// ends at zero.
func TestPullsMakeRoom(t *testing.T) {
	const (
		size    = 1 << 20 // pulled: above the inline threshold
		objects = 24
	)
	for _, tc := range []struct {
		name     string
		keepRefs bool
	}{{"refs-dropped", false}, {"refs-kept", true}} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			nodes := newCluster(t, 2, nil, smallB(8*size))
			a, b := nodes[0], nodes[1]
			capacity := b.local.Stats().Capacity
			var owned, borrowed []trove.Ref
			defer func() {
				for _, r := range append(owned, borrowed...) {
					r.Drop()
				}
			}()
			for i := range objects {
				r, err := a.Put(ctx, pattern(size, byte(i)))
				if err != nil {
					t.Fatal(err)
				}
				owned = append(owned, r)
			}
			for i, r := range owned {
				br, err := b.Borrow(r.ID())
				if err != nil {
					t.Fatal(err)
				}
				// A deadline far beyond any pull here: a pull that cannot
				// make room fails with it instead of hanging the test.
				gctx, cancel := context.WithTimeout(ctx, 20*time.Second)
				got := getBytes(t, gctx, b, br)
				cancel()
				if !bytes.Equal(got, pattern(size, byte(i))) {
					t.Fatalf("object %d on B differs", i)
				}
				if used := b.local.Stats().Used; used > capacity {
					t.Fatalf("B uses %d bytes of its %d", used, capacity)
				}
				if tc.keepRefs {
					borrowed = append(borrowed, br)
				} else {
					br.Drop()
				}
			}
			// One fetch per object, or more: a copy evicted before its Get
			// pinned it is fetched again (engine.Remote).
			st := b.local.Stats()
			if st.Fetches < objects {
				t.Fatalf("B made %d fetches for %d objects", st.Fetches, objects)
			}
			if tc.keepRefs {
				// 24 MiB of copies cannot all be in 8 MiB: the older gave way.
				if st.Evictions == 0 {
					t.Fatalf("B holds refs to %d MiB of copies in %d MiB and evicted none: %+v", objects, capacity>>20, st)
				}
				// The first copy was evicted; a Get of it fetches again.
				if got := getBytes(t, ctx, b, borrowed[0]); !bytes.Equal(got, pattern(size, 0)) {
					t.Fatal("object 0 fetched again differs")
				}
				if f := b.local.Stats().Fetches; f <= st.Fetches {
					t.Fatalf("a Get of an evicted copy did not fetch it again: %d fetches before, %d after", st.Fetches, f)
				}
			}
		})
	}
}

// TestPullIntoPinnedStoreFails: B's arena is full of its own primaries, each
// pinned by a view, so nothing can be evicted or spilled. A pull into it
// fails with ErrStoreFull once its deadline passes (it does not hang), the
// failure loses nothing, and once the views are released the same Get
// succeeds.
func TestPullIntoPinnedStoreFails(t *testing.T) {
	const size = 1 << 20
	ctx := context.Background()
	nodes := newCluster(t, 2, nil, smallB(8*size))
	a, b := nodes[0], nodes[1]
	want := pattern(2*size, 9)
	owned, err := a.Put(ctx, want)
	if err != nil {
		t.Fatal(err)
	}
	defer owned.Drop()

	// Fill B with pinned primaries: Put until one finds no room.
	var (
		refs  []trove.Ref
		views []*trove.Object
	)
	for {
		pctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
		r, err := b.Put(pctx, pattern(size, byte(len(refs))))
		cancel()
		if errors.Is(err, trove.ErrStoreFull) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		obj, err := b.Get(ctx, r)
		if err != nil {
			t.Fatal(err)
		}
		refs, views = append(refs, r), append(views, obj)
		if len(refs) > 16 {
			t.Fatalf("B took %d MiB in an 8 MiB arena", len(refs))
		}
	}
	if len(refs) == 0 {
		t.Fatal("B could not store one object")
	}

	br, err := b.Borrow(owned.ID())
	if err != nil {
		t.Fatal(err)
	}
	defer br.Drop()
	gctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	type result struct {
		obj *trove.Object
		err error
	}
	done := make(chan result, 1)
	go func() {
		obj, err := b.Get(gctx, br)
		done <- result{obj, err}
	}()
	var res result
	select {
	case res = <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("a pull into an arena full of pinned objects hung past its deadline")
	}
	if res.err == nil {
		res.obj.Release()
		t.Fatal("a pull into an arena full of pinned objects succeeded")
	}
	if !errors.Is(res.err, trove.ErrStoreFull) {
		t.Fatalf("pull into a full arena: %v, want ErrStoreFull", res.err)
	}
	if !errors.Is(res.err, trove.ErrGetTimeout) || !errors.Is(res.err, context.DeadlineExceeded) {
		t.Fatalf("pull into a full arena: %v, want it to match ErrGetTimeout and context.DeadlineExceeded too", res.err)
	}
	t.Logf("the error: %v", res.err)
	if gctx.Err() == nil {
		t.Fatalf("the pull failed before its deadline: %v", res.err)
	}
	var full *trove.StoreFullError
	if !errors.As(res.err, &full) || !strings.Contains(res.err.Error(), "capacity") {
		t.Fatalf("store full error %q does not say how full the store was and what to raise", res.err)
	}
	// Nothing was lost: B's own objects are intact and still pinned.
	for i, obj := range views {
		if !bytes.Equal(obj.Bytes(), pattern(size, byte(i))) {
			t.Fatalf("B's object %d changed", i)
		}
	}
	if st := b.local.Stats(); st.PinnedObjects != int64(len(views)) {
		t.Fatalf("B has %d pinned objects, want its %d", st.PinnedObjects, len(views))
	}
	// With the views released (B's primaries may now be spilled), the same
	// ref's Get succeeds.
	for _, obj := range views {
		obj.Release()
	}
	for _, r := range refs {
		r.Drop()
	}
	if got := getBytes(t, ctx, b, br); !bytes.Equal(got, want) {
		t.Fatal("the object pulled after the failure differs")
	}
}

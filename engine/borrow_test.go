package engine

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"testing"

	"github.com/trovedb/trove"
)

// putN puts n small objects (mixing inline and arena ones) and returns their refs
// and IDs.
func putN(t *testing.T, s *Store, n int) ([]trove.Ref, []trove.ObjectID) {
	t.Helper()
	refs := make([]trove.Ref, n)
	ids := make([]trove.ObjectID, n)
	for i := range refs {
		size := 8
		if i%7 == 0 {
			size = DefaultInlineThreshold + 1
		}
		r, err := s.Put(context.Background(), pattern(size, byte(i)))
		if err != nil {
			t.Fatal(err)
		}
		refs[i], ids[i] = r, r.ID()
	}
	return refs, ids
}

func dropAll(refs []trove.Ref) {
	for _, r := range refs {
		r.Drop()
	}
}

// The sizes exercise both ways BorrowAll looks IDs up: one by one, and by shard.
var borrowSizes = []int{1, 5, minGroupedBorrow + 3}

func TestBorrowAllDropEach(t *testing.T) {
	for _, n := range borrowSizes {
		t.Run(fmt.Sprintf("n=%d", n), func(t *testing.T) {
			s := newStore(t, Config{})
			ctx := context.Background()
			orig, ids := putN(t, s, n)
			ids = append(ids, ids[0]) // a repeat gets a handle and a count of its own
			refs, err := s.BorrowAll(ids)
			if err != nil {
				t.Fatal(err)
			}
			if len(refs) != len(ids) {
				t.Fatalf("%d refs for %d IDs", len(refs), len(ids))
			}
			dropAll(orig)
			for i, r := range refs {
				if r.ID() != ids[i] || !r.Bound() || r.Dropped() {
					t.Fatalf("ref %d: %v bound=%v dropped=%v, want a live handle to %s", i, r, r.Bound(), r.Dropped(), ids[i])
				}
				if h, ok := r.Hint(s); !ok || h.(*entry).id != ids[i] {
					t.Fatalf("ref %d: hint %v %v", i, h, ok)
				}
				obj, err := s.Get(ctx, r)
				if err != nil {
					t.Fatalf("ref %d: %v", i, err)
				}
				obj.Release()
			}
			if got := s.Stats().Objects; got != int64(n) {
				t.Fatalf("%d objects after dropping the originals; the borrowed refs hold %d", got, n)
			}

			// Each member goes at once, alone; the repeat's count outlives the first.
			refs[0].Drop()
			refs[0].Drop() // no-op
			if !refs[0].Dropped() || refs[len(refs)-1].Dropped() {
				t.Fatal("Drop of one member must drop that member only")
			}
			if _, err := s.Get(ctx, refs[0]); !errors.Is(err, trove.ErrInvalidRef) {
				t.Fatalf("Get through a dropped member: %v", err)
			}
			if got := s.Stats().Objects; got != int64(n) {
				t.Fatalf("%d objects: the repeated ID's second handle must still hold it", got)
			}
			refs[len(refs)-1].Drop()
			if got := s.Stats().Objects; got != int64(n-1) {
				t.Fatalf("%d objects after dropping both handles to the first, want %d", got, n-1)
			}
			dropAll(refs)
			runtime.GC() // the batch's cleanup must skip dropped members (a second release panics)
			requireEmpty(t, s)
		})
	}
}

func TestBorrowAllCollectedTogether(t *testing.T) {
	s := newStore(t, Config{})
	orig, ids := putN(t, s, minGroupedBorrow+3)
	refs, err := s.BorrowAll(ids)
	if err != nil {
		t.Fatal(err)
	}
	dropAll(orig)
	refs[1].Drop() // released now, and not again by the cleanup
	if got := s.Stats().Objects; got != int64(len(ids)-1) {
		t.Fatalf("%d objects after dropping one member, want %d", got, len(ids)-1)
	}
	kept := refs[len(refs)-1]
	refs = nil
	// One member reachable keeps the whole batch: the documented price of batching.
	for range 3 {
		runtime.GC()
		runtime.Gosched()
	}
	if got := s.Stats().Objects; got != int64(len(ids)-1) {
		t.Fatalf("%d objects while one member is reachable, want %d: a batch is collected as a whole", got, len(ids)-1)
	}
	runtime.KeepAlive(kept)
	kept = trove.Ref{}
	if !collectUntil(func() bool { return s.Stats().Objects == 0 }) {
		t.Fatalf("an unreachable batch was not released by the GC: %d objects left", s.Stats().Objects)
	}
	requireEmpty(t, s)
}

func TestBorrowAllFails(t *testing.T) {
	for _, n := range borrowSizes {
		for _, where := range []string{"first", "middle", "last"} {
			for _, why := range []string{"unknown", "freed"} {
				t.Run(fmt.Sprintf("n=%d/%s/%s", n, where, why), func(t *testing.T) {
					s := newStore(t, Config{})
					ctx := context.Background()
					orig, ids := putN(t, s, n)
					var bad trove.ObjectID
					var wantErr error
					var view *trove.Object
					switch why {
					case "unknown":
						bad, wantErr = trove.NewObjectID(s.Node(), 1<<40), trove.ErrUnknownObject
					case "freed": // in the table with no refs, kept by a pin
						r, err := s.Put(ctx, []byte("pinned"))
						if err != nil {
							t.Fatal(err)
						}
						if view, err = s.Get(ctx, r); err != nil {
							t.Fatal(err)
						}
						bad, wantErr = r.ID(), trove.ErrObjectFreed
						r.Drop()
					}
					at := map[string]int{"first": 0, "middle": n / 2, "last": n}[where]
					ids = append(ids[:at:at], append([]trove.ObjectID{bad}, ids[at:]...)...)
					refs, err := s.BorrowAll(ids)
					if !errors.Is(err, wantErr) || !strings.Contains(err.Error(), bad.String()) || refs != nil {
						t.Fatalf("BorrowAll = %v, %v; want no refs and an error matching %v that names %s", refs, err, wantErr, bad)
					}
					view.Release()
					// No count was kept: dropping the originals empties the store.
					dropAll(orig)
					requireEmpty(t, s)
				})
			}
		}
	}
}

func TestBorrowAllEdges(t *testing.T) {
	s := newStore(t, Config{})
	if refs, err := s.BorrowAll(nil); refs != nil || err != nil {
		t.Fatalf("BorrowAll(nil) = %v, %v; want nothing", refs, err)
	}
	orig, ids := putN(t, s, 2)
	dropAll(orig)
	if _, err := s.BorrowAll(ids); !errors.Is(err, trove.ErrUnknownObject) {
		t.Fatalf("BorrowAll of freed objects: %v, want ErrUnknownObject", err)
	}
	requireEmpty(t, s)
	s.Close()
	if _, err := s.BorrowAll(ids); !errors.Is(err, trove.ErrClosed) {
		t.Fatalf("BorrowAll after Close: %v, want ErrClosed", err)
	}
}

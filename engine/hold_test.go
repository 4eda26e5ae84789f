package engine

import (
	"context"
	"errors"
	"runtime"
	"testing"

	"github.com/trovedb/trove"
)

// A Hold counts like a Ref's handle: the object lives while either does, a Get
// through it sees the bytes, and Unhold of the last count frees the object.
func TestHold(t *testing.T) {
	ctx := context.Background()
	for _, size := range []int{100, 1 << 20} { // inline, arena
		s := newStore(t, Config{Capacity: 16 << 20})
		data := pattern(size, 7)
		h, err := s.PutHold(ctx, size, nil, func(dst []byte) error { copy(dst, data); return nil })
		if err != nil {
			t.Fatal(err)
		}
		if h.IsZero() || h.ID().IsZero() {
			t.Fatalf("size %d: PutHold gave %v", size, h.ID())
		}
		if !s.ReadyHold(h) {
			t.Fatalf("size %d: a sealed object is not ready", size)
		}
		obj, err := s.TryGetHold(h)
		if err != nil || obj == nil || string(obj.Bytes()) != string(data) {
			t.Fatalf("size %d: TryGetHold: %v, %v", size, obj, err)
		}
		obj.Release()

		// A second count by ID and one through a ref: three holders, freed with the last.
		h2, err := s.HoldID(h.ID())
		if err != nil {
			t.Fatal(err)
		}
		ref, err := s.Borrow(h.ID())
		if err != nil {
			t.Fatal(err)
		}
		h3, err := s.HoldRef(ref)
		if err != nil {
			t.Fatal(err)
		}
		ref.Drop()
		s.Unhold(h)
		s.Unhold(h2)
		// No garbage collection frees a held object: only Unhold does.
		runtime.GC()
		runtime.GC()
		if got := s.Stats().Objects; got != 1 {
			t.Fatalf("size %d: %d objects with one hold left, want 1", size, got)
		}
		obj, err = s.TryGetHold(h3)
		if err != nil || obj == nil || string(obj.Bytes()) != string(data) {
			t.Fatalf("size %d: through the last hold: %v, %v", size, obj, err)
		}
		obj.Release()
		s.Unhold(h3)
		requireEmpty(t, s)
		if _, err := s.HoldID(h.ID()); !errors.Is(err, trove.ErrUnknownObject) {
			t.Fatalf("size %d: HoldID of a freed object: %v, want ErrUnknownObject", size, err)
		}
	}
}

// A failed fill stores nothing and gives no Hold; a zero Hold and a dropped ref
// are errors, not crashes.
func TestHoldErrors(t *testing.T) {
	s := newStore(t, Config{Capacity: 16 << 20})
	boom := errors.New("boom")
	if _, err := s.PutHold(context.Background(), 10, nil, func([]byte) error { return boom }); !errors.Is(err, boom) {
		t.Fatalf("PutHold with a failing fill: %v", err)
	}
	if _, err := s.TryGetHold(Hold{}); !errors.Is(err, trove.ErrInvalidRef) {
		t.Fatalf("TryGetHold of the zero Hold: %v", err)
	}
	if s.ReadyHold(Hold{}) {
		t.Fatal("the zero Hold is ready")
	}
	s.Unhold(Hold{}) // nothing to give back
	ref, err := s.Put(context.Background(), []byte("x"))
	if err != nil {
		t.Fatal(err)
	}
	ref.Drop()
	if _, err := s.HoldRef(ref); !errors.Is(err, trove.ErrInvalidRef) {
		t.Fatalf("HoldRef of a dropped ref: %v", err)
	}
	requireEmpty(t, s)
}

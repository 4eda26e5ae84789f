package engine

import (
	"context"
	"fmt"

	"github.com/trovedb/trove"
)

// A Hold is one count on an object, as a Ref's handle is, without a handle for
// the garbage collector to watch: taking one and giving it back cost no
// runtime.AddCleanup and no Cleanup.Stop (together about a tenth of a small Put
// made through the ipc daemon). It is for holders that always give their counts
// back explicitly, such as the ipc daemon, which holds objects on behalf of other
// processes and gives them back when those say so or disconnect.
//
// The holder MUST give each Hold back exactly once, with Unhold: nothing else
// ever does. A Hold that is lost keeps its object (and its memory) until the
// store is closed; one given back twice takes a count someone else holds, and
// panics if the count underflows. A Hold is a value: a copy is the same count,
// not another one. The zero Hold holds nothing.
type Hold struct{ e *entry }

// ID returns the ID of the held object (the zero ID for the zero Hold).
func (h Hold) ID() trove.ObjectID {
	if h.e == nil {
		return trove.ObjectID{}
	}
	return h.e.id
}

// IsZero reports whether h is the zero Hold.
func (h Hold) IsZero() bool { return h.e == nil }

// PutHold is PutFunc returning a Hold on the new object instead of a Ref.
func (s *Store) PutHold(ctx context.Context, size int, contains []trove.Ref, fill func(dst []byte) error) (Hold, error) {
	e, err := s.putFunc(ctx, size, contains, fill)
	if err != nil {
		return Hold{}, err
	}
	return Hold{e}, nil
}

// HoldID takes a Hold on the object id names, as Borrow takes a Ref. It fails
// with trove.ErrUnknownObject if the store has no such object, and
// trove.ErrObjectFreed if its last count went meanwhile. With a Config.Remote,
// a foreign ID is held as Borrow holds it: the first count makes a remote entry
// and calls Remote.Borrowed before HoldID returns (remote.go).
func (s *Store) HoldID(id trove.ObjectID) (Hold, error) {
	if s.closed.Load() {
		return Hold{}, trove.ErrClosed
	}
	if s.foreign(id) {
		e := s.foreignEntry(id)
		if err := s.ensureBorrowed(e); err != nil {
			s.decRef(e)
			return Hold{}, fmt.Errorf("hold %s: %w", id, err)
		}
		return Hold{e}, nil
	}
	e := s.lookup(id)
	if err := takeRef(e); err != nil {
		return Hold{}, fmt.Errorf("hold %s: %w", id, err)
	}
	return Hold{e}, nil
}

// HoldRef takes a Hold on ref's object: one more count, independent of ref,
// which stays valid (drop it when done with it, as ever).
func (s *Store) HoldRef(ref trove.Ref) (Hold, error) {
	e, err := s.entryOf(ref)
	if err != nil {
		return Hold{}, fmt.Errorf("hold: %w", err)
	}
	// ref's handle counts, so the count cannot reach zero under us.
	if !e.addRef() {
		return Hold{}, fmt.Errorf("hold %s: %w", e.id, trove.ErrObjectFreed)
	}
	return Hold{e}, nil
}

// Unhold gives h's count back; the object is freed if that was the last count
// and nothing pins it. See Hold: exactly once per Hold.
func (s *Store) Unhold(h Hold) {
	if h.e != nil {
		s.decRef(h.e)
	}
}

// TryGetHold is TryGet for a held object: a view if it is sealed and in memory,
// (nil, nil) if a Get would wait. The caller MUST Release the view.
func (s *Store) TryGetHold(h Hold) (*trove.Object, error) {
	if h.e == nil {
		return nil, fmt.Errorf("get: zero hold: %w", trove.ErrInvalidRef)
	}
	return s.tryGet(h.e)
}

// ReadyHold is Ready for a held object.
func (s *Store) ReadyHold(h Hold) bool {
	if h.e == nil {
		return false
	}
	st := wordState(h.e.rc.Load())
	return st.ready() && !s.absent(st)
}

package trove

import (
	"runtime"
	"sync/atomic"
	"unsafe"
)

// Ref is a handle to an object, like a future: it can exist before the object's
// value does, and Get resolves it. A Ref keeps its object alive until the handle is
// dropped: by Drop, or by the garbage collector once no copy of the Ref is reachable.
//
// Ref values are cheap to copy, and copies share one handle: dropping any copy drops
// them all. To hold an object independently, ask the store for another handle
// (Store.Borrow). The zero Ref refers to nothing and is rejected with ErrInvalidRef.
//
// Refs made together are collected together. The refs a store hands out in one batch
// (NewRefBatch: a store's BorrowAll, and so every ref GetValue and ViewValue decode
// from one value on a store that has BorrowAll, as the engine does) share one
// allocation and one GC cleanup. Drop releases a member's object
// at once, as for any ref; but the garbage collector releases an undropped member
// only when EVERY member of its batch is unreachable. Keeping one ref of a decoded
// []Ref keeps the objects of all its siblings that were not dropped. Drop the refs
// you are done with, or copy the one you keep with Store.Borrow and let the batch go.
//
// Compare refs by ID(): two handles to one object are different Ref values.
type Ref struct {
	h *refHandle
}

// A Ref is one pointer: cheap to copy, and a []Ref is a plain array of pointers.
var _ = [1]struct{}{}[unsafe.Sizeof(Ref{})-unsafe.Sizeof(uintptr(0))]

// refHandle is what a Ref points to and what the GC watches: the cleanup is
// attached to it (to the first handle of a batch), so nothing the cleanup holds may
// reference it. Its state is elsewhere (s), where the cleanup can reach it.
//
// A handle is the first field of a singleRef (NewRef; s.single is set), an element
// of a batch's handles (NewRefBatch), or unbound (unboundRef: no owner, so nothing
// ever releases it).
type refHandle struct {
	s     *refState // inside this handle's singleRef, or an element of its batch's states
	owner RefOwner  // nil for a ref decoded from bytes and not yet bound to a store
}

// refState is what releasing a handle needs, kept apart from the handle so that a
// batch's cleanup can hold its members' states without holding their handles.
type refState struct {
	id      ObjectID
	hint    any // the owner's pointer to its own record, returned by Hint
	dropped atomic.Bool
	single  bool // the handle is a singleRef's, with a cleanup of its own
}

// singleRef is a handle with its cleanup and state, in one allocation: what NewRef
// makes. The handle comes first, so the cleanup attached to it is attached to the
// allocation, and a *refHandle whose state is single converts to its *singleRef.
type singleRef struct {
	h       refHandle
	cleanup runtime.Cleanup // stopped by Drop
	s       refState
}

// A single handle costs one 80-byte allocation (plus the runtime's cleanup record);
// a member of a batch costs 64 bytes in its batch's two arrays.
var (
	_ = [1]struct{}{}[unsafe.Sizeof(singleRef{})-80]
	_ = [1]struct{}{}[unsafe.Sizeof(refHandle{})+unsafe.Sizeof(refState{})-64]
)

// single returns the singleRef that h is the first field of. h.s.single must be set.
func (h *refHandle) single() *singleRef { return (*singleRef)(unsafe.Pointer(h)) }

// RefOwner is for store implementations: it is implemented by stores that hand out
// refs.
type RefOwner interface {
	// ReleaseRef gives back the count that one handle held. It is called exactly
	// once per handle: by Ref.Drop, or, if the handle became unreachable first, by
	// the garbage collector from a cleanup goroutine. It must not block for long.
	ReleaseRef(id ObjectID, hint any)
}

type refCleanup struct {
	id    ObjectID
	owner RefOwner
	hint  any
}

// NewRef is for store implementations: it returns a new handle to id, owned by
// owner. Users get refs from Put, Create and Borrow. The owner must
// already count this handle: its ReleaseRef(id, hint) will be called exactly once.
// hint is returned by Hint and lets the owner skip a table lookup; it must not
// reference the returned Ref.
//
// A store using a Ref must keep it reachable (runtime.KeepAlive) until it has pinned
// the object, or the garbage collector may release the handle mid-call.
func NewRef(id ObjectID, owner RefOwner, hint any) Ref {
	r := &singleRef{h: refHandle{owner: owner}, s: refState{id: id, hint: hint, single: true}}
	r.h.s = &r.s
	r.cleanup = runtime.AddCleanup(&r.h, func(c refCleanup) { c.owner.ReleaseRef(c.id, c.hint) },
		refCleanup{id: id, owner: owner, hint: hint})
	return Ref{h: &r.h}
}

// refBatch is the argument of a batch's cleanup: the members' states, never their
// handles (which would keep the batch reachable forever).
type refBatch struct {
	owner  RefOwner
	states []refState
}

// releaseBatch is a batch's cleanup: it releases every member not dropped yet. It
// runs once every handle of the batch is unreachable, so no Drop can race with it;
// the compare-and-swap is for clarity, not need.
func releaseBatch(b refBatch) {
	for i := range b.states {
		if s := &b.states[i]; !s.dropped.Load() && s.dropped.CompareAndSwap(false, true) {
			b.owner.ReleaseRef(s.id, s.hint)
		}
	}
}

// NewRefBatch is for store implementations: it returns new handles to ids, in
// order, owned by owner, as NewRef does for many objects at once (a BorrowAll).
// The owner must
// already count each handle: its ReleaseRef(ids[i], hints[i]) will be called exactly
// once per handle. hints must be as long as ids (it panics otherwise), and no hint
// may reference the returned refs. A repeated ID gets a handle of its own.
//
// The handles share one allocation and one GC cleanup, which is what makes a batch
// cheap (NewRef's cleanup costs more per handle the more handles exist). The price
// is the one the Ref documentation states: a member that is not dropped is released
// only when all of the batch is unreachable. Ref.Drop of a member releases it at
// once, as for any ref.
func NewRefBatch(ids []ObjectID, owner RefOwner, hints []any) []Ref {
	if len(hints) != len(ids) {
		panic("trove: NewRefBatch: hints and ids differ in length")
	}
	if len(ids) == 0 {
		return nil
	}
	states := make([]refState, len(ids))
	handles := make([]refHandle, len(ids))
	refs := make([]Ref, len(ids))
	for i, id := range ids {
		states[i].id, states[i].hint = id, hints[i]
		handles[i] = refHandle{s: &states[i], owner: owner}
		refs[i] = Ref{h: &handles[i]}
	}
	// Every member points into handles, so the cleanup runs once none is reachable.
	runtime.AddCleanup(&handles[0], releaseBatch, refBatch{owner: owner, states: states})
	return refs
}

// unboundRef returns a ref that names id but belongs to no store: what decoding a
// value yields before the nested refs are bound to the store's handles. It has no
// owner, so nothing releases it, and it needs no cleanup.
func unboundRef(id ObjectID) Ref {
	r := &struct {
		h refHandle
		s refState
	}{s: refState{id: id}}
	r.h.s = &r.s
	return Ref{h: &r.h}
}

// ID returns the ID of the object the ref names (the zero ID for the zero Ref).
func (r Ref) ID() ObjectID {
	if r.h == nil {
		return ObjectID{}
	}
	return r.h.s.id
}

// IsZero reports whether r is the zero Ref.
func (r Ref) IsZero() bool { return r.h == nil }

// Dropped reports whether r's handle has been dropped (by Drop, for a member of a
// batch; a handle the GC released is unreachable, so nobody can ask).
func (r Ref) Dropped() bool { return r.h != nil && r.h.s.dropped.Load() }

// String returns "Ref(<object ID>)", as Ray prints ObjectRef(<hex>).
func (r Ref) String() string { return "Ref(" + r.ID().String() + ")" }

// Drop gives back the handle's hold on the object, for r and every copy of r. It is
// safe to call more than once and from several goroutines; only the first call
// counts. Using r after Drop fails with ErrInvalidRef. For a member of a batch it
// releases that member only; its siblings are unaffected.
func (r Ref) Drop() {
	h := r.h
	if h == nil || h.owner == nil || !h.s.dropped.CompareAndSwap(false, true) {
		return
	}
	if h.s.single {
		h.single().cleanup.Stop()
	} // else the batch's cleanup skips dropped members
	h.owner.ReleaseRef(h.s.id, h.s.hint)
}

// Hint is for store implementations: it returns the hint that owner attached to r
// in NewRef, and true, if r is a live (not dropped) handle owned by owner. Stores
// use it to find their record of the
// object without a lookup, and to reject refs from other stores.
func (r Ref) Hint(owner RefOwner) (any, bool) {
	h := r.h
	if h == nil || h.owner != owner || h.s.dropped.Load() {
		return nil, false
	}
	return h.s.hint, true
}

// Bound reports whether r belongs to a store. Refs decoded from a value's bytes are
// unbound until GetValue binds them.
func (r Ref) Bound() bool { return r.h != nil && r.h.owner != nil }

package trove

import (
	"runtime"
	"sync/atomic"
)

// Ref is a handle to an object, like a future: it can exist before the object's
// value does, and Get resolves it. A Ref keeps its object alive until the handle is
// dropped: by Drop, or by the garbage collector once no copy of the Ref is reachable.
//
// Ref values are cheap to copy, and copies share one handle: dropping any copy drops
// them all. To hold an object independently, ask the store for another handle
// (Store.Borrow). The zero Ref refers to nothing and is rejected with ErrInvalidRef.
//
// Compare refs by ID(): two handles to one object are different Ref values.
type Ref struct {
	h *refHandle
}

// refHandle is the shared state of one handle. The GC cleanup is attached to it, so
// it must not be referenced from anything the cleanup itself holds.
type refHandle struct {
	id      ObjectID
	owner   RefOwner // nil for a ref decoded from bytes and not yet bound to a store
	hint    any      // the owner's pointer to its own record, returned by Hint
	dropped atomic.Bool
	cleanup runtime.Cleanup
}

// RefOwner is implemented by stores that hand out refs.
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

// NewRef returns a new handle to id, owned by owner. It is for store
// implementations; users get refs from Put, Create and Borrow. The owner must
// already count this handle: its ReleaseRef(id, hint) will be called exactly once.
// hint is returned by Hint and lets the owner skip a table lookup; it must not
// reference the returned Ref.
//
// A store using a Ref must keep it reachable (runtime.KeepAlive) until it has pinned
// the object, or the garbage collector may release the handle mid-call.
func NewRef(id ObjectID, owner RefOwner, hint any) Ref {
	h := &refHandle{id: id, owner: owner, hint: hint}
	h.cleanup = runtime.AddCleanup(h, func(c refCleanup) { c.owner.ReleaseRef(c.id, c.hint) },
		refCleanup{id: id, owner: owner, hint: hint})
	return Ref{h: h}
}

// unboundRef returns a ref that names id but belongs to no store: what decoding a
// value yields before the nested refs are bound with Store.Borrow.
func unboundRef(id ObjectID) Ref { return Ref{h: &refHandle{id: id}} }

// ID returns the ID of the object the ref names (the zero ID for the zero Ref).
func (r Ref) ID() ObjectID {
	if r.h == nil {
		return ObjectID{}
	}
	return r.h.id
}

// IsZero reports whether r is the zero Ref.
func (r Ref) IsZero() bool { return r.h == nil }

// Dropped reports whether r's handle has been dropped.
func (r Ref) Dropped() bool { return r.h != nil && r.h.dropped.Load() }

// String returns "Ref(<object ID>)", as Ray prints ObjectRef(<hex>).
func (r Ref) String() string { return "Ref(" + r.ID().String() + ")" }

// Drop gives back the handle's hold on the object, for r and every copy of r. It is
// safe to call more than once and from several goroutines; only the first call
// counts. Using r after Drop fails with ErrInvalidRef.
func (r Ref) Drop() {
	h := r.h
	if h == nil || h.owner == nil || !h.dropped.CompareAndSwap(false, true) {
		return
	}
	h.cleanup.Stop()
	h.owner.ReleaseRef(h.id, h.hint)
}

// Hint returns the hint that owner attached to r in NewRef, and true, if r is a live
// (not dropped) handle owned by owner. Stores use it to find their record of the
// object without a lookup, and to reject refs from other stores.
func (r Ref) Hint(owner RefOwner) (any, bool) {
	h := r.h
	if h == nil || h.owner != owner || h.dropped.Load() {
		return nil, false
	}
	return h.hint, true
}

// Bound reports whether r belongs to a store. Refs decoded from a value's bytes are
// unbound until GetValue binds them.
func (r Ref) Bound() bool { return r.h != nil && r.h.owner != nil }

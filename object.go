package trove

import "sync/atomic"

// Object is a read-only, zero-copy view of a sealed object, returned by Get. It pins
// the object (which can then be neither freed nor moved) until Release.
//
// The caller MUST call Release when done with the bytes. The garbage collector never
// releases a pin, since the bytes may still be in use; a view that is never released
// keeps its object in memory for the life of the store.
type Object struct {
	id       ObjectID
	data     []byte
	owner    ViewOwner
	hint     any
	released atomic.Bool
}

// ViewOwner is for store implementations: it is implemented by stores that hand
// out views.
type ViewOwner interface {
	// ReleaseView gives back the pin one view held. It is called at most once per
	// view, by Object.Release.
	ReleaseView(id ObjectID, hint any)
}

// NewObject is for store implementations: it returns a view of data, which must be
// the object's read-only bytes. owner.ReleaseView(id, hint) is called once, on
// Release. Users get views from Get.
func NewObject(id ObjectID, data []byte, owner ViewOwner, hint any) *Object {
	return &Object{id: id, data: data, owner: owner, hint: hint}
}

// MakeObjects is for store implementations: it returns n uninitialised views in one
// allocation, for a store that hands out many at once (GetAll) and fills each with
// InitObject. Until then they are not views: do not return them.
func MakeObjects(n int) []Object { return make([]Object, n) }

// InitObject is for store implementations: it makes o, from MakeObjects, a view of
// data as NewObject would. It panics if o is already a view.
func InitObject(o *Object, id ObjectID, data []byte, owner ViewOwner, hint any) {
	if o.owner != nil {
		panic("trove: InitObject on an object that is already a view")
	}
	o.id, o.data, o.owner, o.hint = id, data, owner, hint
}

// Hint is for store implementations: it returns the hint that owner attached to o,
// and true, if o is an unreleased view owned by owner. Stores use it to find their
// record of the object.
func (o *Object) Hint(owner ViewOwner) (any, bool) {
	if o == nil || o.owner != owner || o.released.Load() {
		return nil, false
	}
	return o.hint, true
}

// ID returns the object's ID.
func (o *Object) ID() ObjectID { return o.id }

// Bytes returns the object's bytes, read-only and without a copy. The slice is valid
// only until Release; writing through it faults, as the memory is mapped read-only
// (small objects kept in the Go heap are not protected by the hardware, but must not
// be written either).
func (o *Object) Bytes() []byte { return o.data }

// Size returns the object's size in bytes.
func (o *Object) Size() int { return len(o.data) }

// Release gives back the view's pin. The bytes must not be used afterwards. Calling
// Release more than once is safe; only the first call counts.
func (o *Object) Release() {
	if o == nil || !o.released.CompareAndSwap(false, true) {
		return
	}
	if o.owner != nil {
		o.owner.ReleaseView(o.id, o.hint)
	}
}

// ReleaseAll releases every non-nil view in objs.
func ReleaseAll(objs []*Object) {
	for _, o := range objs {
		o.Release()
	}
}

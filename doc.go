// Package trove is a shared-memory object store in the spirit of Ray's remote
// objects. A program puts a value once and gets back a [Ref], a small handle that
// works like a future: it can exist before its value, be passed around, and be
// resolved with Get. Reading an object gives a read-only, zero-copy view of the
// stored bytes. Objects are immutable once sealed, reference counted, and freed
// when the last ref is dropped.
//
// This package holds what every store shares: the [Store] interface, [Ref] and
// [Object], [ObjectID], the errors, and typed values on top of Store. The stores
// themselves are elsewhere, and all offer the same method set: the in-process
// store (package engine), and a client of the node's daemon (package net/ipc).
//
//	st, err := engine.Open(engine.Config{})   // or ipc.Dial(ipc.DefaultSocket())
//	ref, err := st.Put(ctx, data)             // ray.put: one copy into the store, sealed
//	obj, err := st.Get(ctx, ref)              // ray.get: zero-copy, read-only view
//	use(obj.Bytes()); obj.Release()           // a view pins its object until Release
//	ref.Drop()                                // or let the garbage collector drop it
//
// # Putting and getting
//
// [Store.Put] copies bytes in once; [Store.PutFunc] lets the caller write them in
// place. [Store.Get] blocks until the object is sealed and returns an [Object];
// [Store.GetAll] does so for many refs, in input order. [Store.Wait] returns as
// soon as a number of refs are ready, keeping the input order, as ray.wait does.
// [Store.Borrow] makes a new, independent handle from an [ObjectID], for an ID
// that came from elsewhere (a file, a message, another process).
//
// Where Ray takes a timeout, trove takes the context: a Get or Wait whose
// deadline passes fails with [ErrGetTimeout], which also matches
// context.DeadlineExceeded. A creator that finds the store full waits for room
// until its context ends, then fails with [ErrStoreFull] or [ErrOutOfDisk], whose
// wrapping errors ([StoreFullError], [OutOfDiskError]) carry the figures.
//
// # Typed values
//
// [PutValue] and [GetValue] store and load Go values (encoded as CBOR). Refs
// nested anywhere in a value are recorded, so the inner objects live as long as
// the outer one, and come back from GetValue as live handles. Tensors
// ([zerocopy.Tensor]) and a top-level numeric slice are stored out-of-band and
// [ViewValue] reads them in place, like numpy arrays in Ray's object store. Bytes
// that are not a value of the type asked for fail with [ErrBadValue].
//
// # Lifetimes
//
// A [Ref] keeps its object alive. The object is freed when the last handle is
// dropped (with [Ref.Drop], or by the garbage collector once the handle is
// unreachable), no view pins it, and no stored object contains it. Copies of a Ref
// value share one handle: dropping any copy drops them all.
//
// An [Object] returned by Get is a read-only, zero-copy view of the stored bytes and
// pins the object until [Object.Release]. The caller MUST call Release exactly once
// when done: the garbage collector never releases a pin, because the bytes may still
// be in use. The slice returned by [Object.Bytes] is valid only until Release; writing
// through it faults (the memory is mapped read-only).
//
// # Errors
//
// The sentinel errors are in errors.go, grouped by when they happen: using a
// handle ([ErrInvalidRef], [ErrObjectFreed], [ErrUnknownObject]), waiting
// ([ErrGetTimeout], [ErrObjectAborted], [ErrObjectEvicted], [ErrSpillCorrupt]),
// creating ([ErrStoreFull], [ErrOutOfDisk], [ErrObjectTooLarge], [ErrSealed]),
// and the store itself ([ErrClosed]). Returned errors wrap them with the object
// and the figures involved; test for them with errors.Is. Every store, in process
// or across a socket, returns the same ones.
//
// # For store implementations
//
// These are the hooks a store uses to hand out refs and views; a program that
// only uses a store never needs them. [NewRef] and [NewRefBatch] make handles
// owned by a [RefOwner], which hears of each one's drop exactly once;
// [NewObject], [MakeObjects] and [InitObject] make views owned by a [ViewOwner],
// which hears of each one's release. [Ref.Hint] and [Object.Hint] give a store
// back the record it attached, and [Ref.Bound] says whether a ref decoded from
// bytes belongs to a store yet. [ContextError] is the error of a wait that its
// context ended, as every store reports it. [TagRef] and [TagRefList] are the
// CBOR tag numbers of refs inside encoded values.
//
// # Invariants
//
//   - An ObjectID names its owner node in its first 8 bytes; IDs are never reused.
//   - A sealed object never changes.
//   - Each Ref handle gives back its count exactly once (Drop or GC, never both).
//   - Each Object view gives back its pin exactly once (Release; a second call is a no-op).
package trove

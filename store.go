package trove

import "context"

// Store is the method set shared by every trove store: the in-process store
// (engine.Store), a client of the node's daemon, and a cluster node. Code written
// against Store runs unchanged on any of them.
type Store interface {
	// Put copies data into the store once and returns a ref to the sealed object.
	// If the store is full it waits for room until ctx ends, then fails with
	// ErrStoreFull.
	Put(ctx context.Context, data []byte) (Ref, error)

	// PutFunc creates an object of size bytes, lets fill write it in place (the
	// slice is valid only during the call), and seals it. The object keeps every
	// ref in contains alive until it is freed itself: use it for values that
	// hold refs. If fill returns an error, nothing is stored and that error is
	// returned.
	PutFunc(ctx context.Context, size int, contains []Ref, fill func(dst []byte) error) (Ref, error)

	// Get blocks until ref's object is sealed, then returns a read-only view that
	// pins it until Release. If ctx's deadline passes first it fails with
	// ErrGetTimeout; if ctx is cancelled, with ctx's error.
	Get(ctx context.Context, ref Ref) (*Object, error)

	// GetAll is Get for many refs: views in input order. On error it returns no
	// views (it releases those it had taken).
	GetAll(ctx context.Context, refs []Ref) ([]*Object, error)

	// Wait blocks until numReturns of refs are ready (sealed) and returns the
	// ready and the pending refs, each in input order. If ctx ends first it
	// returns what was ready by then and ctx's error. At most numReturns refs are
	// returned as ready.
	Wait(ctx context.Context, refs []Ref, numReturns int) (ready, pending []Ref, err error)

	// Borrow returns a new, independent handle to an object the store holds
	// (created, pending, or known through a containing object). It fails with
	// ErrUnknownObject or ErrObjectFreed if there is no such object.
	Borrow(id ObjectID) (Ref, error)
}

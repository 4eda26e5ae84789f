package engine

import (
	"context"
	"fmt"

	"github.com/trovedb/trove"
)

// Results computed on other nodes (the seam remote functions use).
//
// A remote call's result is owned by the caller's node (its ID names that
// node) but written where the call runs. Two calls make that possible:
//
//   - Future, on the owner: a ref to a new ID of this store with no bytes
//     yet, held as a remote entry (remote.go) as if another node owned it. A
//     Get of it asks Config.Remote.Fetch for a copy, which the cluster layer
//     pulls from the node that wrote the result, once there is one; the copy
//     is a secondary copy (evicted under pressure, fetched again). When its
//     last handle is gone the store calls Remote.Released with the ID, as for
//     a borrowed foreign object, so the cluster can tell the writer to free
//     the primary.
//   - CreateResult, on the node that ran the call: a builder for that
//     foreign ID whose object is this node's primary copy (spilled under
//     pressure, never evicted), not a secondary one; if this store already
//     has a remote entry for the ID (a ref to the future borrowed here), that
//     entry becomes the primary. Aborting that builder (its writer gave up or
//     died) makes the entry a remote entry again, not an aborted object, so
//     that the call run again can write it and its Gets still wait.

// Future returns a ref to a new object this store owns whose bytes another
// node will write (see above). It needs a Config.Remote.
func (s *Store) Future() (trove.Ref, error) {
	if s.closed.Load() {
		return trove.Ref{}, trove.ErrClosed
	}
	if s.cfg.Remote == nil {
		return trove.Ref{}, fmt.Errorf("engine: a future needs a store opened with Config.Remote (a cluster node): nothing else could write it")
	}
	id := trove.NewObjectID(s.cfg.Node, s.seq.Add(1))
	e := &entry{id: id, off: offNone, more: &entryMore{arena: true, secondary: true, foreign: &foreignMore{borrowed: true}}}
	e.rc.Store(refOne | uint64(stateRemote)<<stateShift)
	sh := s.shardFor(e)
	sh.mu.Lock()
	sh.mu.m[id] = e
	sh.mu.Unlock()
	sh.objects.Add(1)
	sh.remote.Add(1)
	return trove.NewRef(id, s, e), nil
}

// CreateResult makes a pending primary copy of id, a future of another node
// (or of this store: Future), for this node to write a result into; it
// keeps each of contains alive until the object is freed. The object lives
// in the arena whatever its size. It fails with ErrCopyExists if the store
// already has a copy of id (sealed or pending), and with ErrUnknownObject
// for an ID of this store that is not a future still referenced.
func (s *Store) CreateResult(ctx context.Context, id trove.ObjectID, size int, contains []trove.Ref) (*Builder, error) {
	if id.IsZero() || s.cfg.Remote == nil {
		return nil, fmt.Errorf("create the result %s: a result needs a nonzero ID and a store opened with Config.Remote: %w", id, trove.ErrUnknownObject)
	}
	if !s.foreign(id) && s.lookup(id) == nil {
		return nil, fmt.Errorf("create the result %s: this store has no such future (its refs were all dropped): %w", id, trove.ErrUnknownObject)
	}
	return s.builderOf(s.createEntry(ctx, id, size, contains, true))
}

// revivePrimary is reviveCopy for CreateResult: the entry becomes a primary
// copy holding children.
func (s *Store) revivePrimary(ctx context.Context, e *entry, size int, children []*entry) (*entry, error) {
	e, err := s.reviveCopy(ctx, e, size)
	if err != nil {
		s.dropChildren(children)
		return nil, err
	}
	sh := s.shardFor(e)
	sh.mu.Lock()
	e.more.secondary = false
	e.more.children = children
	sh.mu.Unlock()
	return e, nil
}

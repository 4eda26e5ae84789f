package engine

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/trovedb/trove"
)

// Objects owned by other nodes.
//
// The engine never speaks to the network. A store opened with Config.Remote learns
// of objects owned elsewhere through that interface, which the cluster layer
// implements: the engine asks it to fetch a copy of a foreign ID into the store,
// tells it when this node takes its first handle to a foreign ID (so that the
// owner records this node as a borrower), and when this node's last handle is
// gone. Everything above the engine (the ipc server, typed values, the demo) then
// works with refs owned by any node without knowing about nodes.
//
// A foreign ID's entry. Borrow (or BorrowAll, as GetValue does for nested refs) of
// a foreign ID the store has no entry for makes a remote entry: it holds the
// handle's ref and no memory, and its size is unknown until a copy is fetched
// (Stats().RemoteObjects counts such entries; Objects lists them in state
// "remote"). A Get of a remote entry, or of an evicted copy, fetches a copy with
// Remote.Fetch, which fills it through CreateCopy: the same entry becomes a
// pending copy, then a sealed one, then perhaps evicted again (a later Get
// fetches again). A copy whose fetch fails after CreateCopy (its builder is
// aborted) goes back to remote, not to aborted: a later Get may try again.
//
// Owner side. The cluster keeps an owner's primary copy alive for every node
// that borrows it by holding one engine ref per borrowing node (Borrow on the
// owner's store; drop it when that node releases the object or is declared
// dead). The engine needs no count of its own for that: a primary lives while
// any ref does, so "local handles, containing objects and borrowing nodes" are
// all refs. Chunk servers read sealed objects with PinByID, and an owner that
// frees an object tells the holders of copies, who call EvictCopy.

// Remote is how a store reaches objects owned by other nodes: the cluster layer
// implements it (a test double in the engine's tests). The store calls it
// without holding any of its locks: Borrowed from the Borrow's goroutine,
// Released from whichever goroutine lets go of the last hold (a Drop, a
// Release, a GC cleanup, the evictor), Fetch from a goroutine of its own.
type Remote interface {
	// Fetch brings a sealed copy of id, an object owned by another node, into
	// st: it asks the owner for the size (waiting, as a future, until the owner
	// has sealed the object), calls st.CreateCopy(ctx, id, size), writes the
	// bytes into the builder, and seals it; on any failure after CreateCopy it
	// aborts the builder. It returns once the copy is sealed, or with an error
	// that wraps the cause (trove.ErrOwnerDied, ErrObjectLost,
	// ErrNodeUnreachable, or ctx's error), which the store returns to every Get
	// waiting on this fetch, with errors.Is intact.
	//
	// The store calls Fetch when a Get, GetAll or Wait needs the value of a
	// foreign ID it holds a ref to but has no copy of (never fetched, or
	// evicted). It runs in a goroutine of its own, at most one per ID at a time:
	// concurrent Gets of the ID on this node share one Fetch, each waiting
	// with its own context. ctx is cancelled when every Get and Wait waiting on
	// the fetch has gone, or the store closes: Fetch must then return promptly.
	// A Get arriving after that waits for it to return, then starts a new
	// Fetch. A Fetch that returns nil without a sealed copy (or whose copy is
	// evicted before the Get can pin it) makes the Get fetch again, up to
	// maxFetchRounds times, then fail with ErrObjectEvicted. If CreateCopy fails with
	// ErrCopyExists, a copy is already there or being made: return (that error,
	// or nil) and the waiting Gets look again.
	//
	// The builder's Ref is a handle like any other: drop it once the builder is
	// sealed or aborted (the refs that asked for the fetch hold the copy), or
	// the copy stays referenced until the garbage collector finds it.
	Fetch(ctx context.Context, id trove.ObjectID, st *Store) error

	// Borrowed reports that this store took its first handle to foreign id
	// (Borrow, BorrowAll, or the nested refs of a decoded value): the cluster
	// registers this node as a borrower with the owner. The engine calls it
	// synchronously, before that Borrow returns (a concurrent Borrow of the
	// same ID waits for it too), so that the registration precedes the release
	// of whatever carried the ID: Ray's rule that a borrower is registered with
	// the owner before the object that carried the ref can be freed. An error
	// fails the Borrow (the handle is given back, and Released is not called
	// for this registration). ctx ends when the store closes; bound the call
	// with the cluster's own timeout (ErrNodeUnreachable).
	//
	// BorrowAll calls it once per newly borrowed ID, one after the other:
	// keep it cheap (one round trip at most).
	Borrowed(ctx context.Context, id trove.ObjectID) error

	// Released reports that this store's last handle (refs, pins, containing
	// objects) of a foreign id it had reported Borrowed is gone and that its
	// local copy, if any, has been freed. It is called exactly once per
	// successful Borrowed, after the memory is given back. Count them: this
	// node borrows id while its Borrowed calls outnumber its Released ones.
	// (The two may cross: a Borrow racing the free of the last handle makes a
	// new entry, whose Borrowed can come before the old entry's Released.) It must not block:
	// the cluster queues it and tells the owner in batches. It may be called
	// from a garbage-collector cleanup goroutine.
	Released(id trove.ObjectID)
}

// remoteState is a Store's part of the cluster seam.
type remoteState struct {
	life    context.Context // cancelled by Close: the parent of every Fetch's ctx
	stop    context.CancelFunc
	fetches atomic.Uint64 // Remote.Fetch calls, since Open
	running atomic.Int64  // fetch goroutines that have not finished
}

// fetch is one attempt, under way, to bring a copy of a foreign object into the
// store. Its fields other than done and cancel are guarded by the entry's shard's
// mu; err is written before done is closed and read after.
type fetch struct {
	done      chan struct{} // closed when Remote.Fetch returned
	cancel    context.CancelFunc
	err       error // Remote.Fetch's error, wrapped
	waiters   int   // Gets and Waits waiting for it; at zero it is cancelled
	abandoned bool  // cancelled because every waiter had gone
	finished  bool  // Remote.Fetch returned

	// room is the size of the copy whose CreateCopy is waiting for arena room
	// (allocateNoting), 0 when it is not waiting: a Get whose deadline passes
	// then fails with ErrStoreFull, not with "still pending".
	room atomic.Int64
}

// foreignMore is the part of a foreign object's entryMore that concerns the
// Remote; guarded by the shard's mu.
type foreignMore struct {
	fetch    *fetch        // the fetch of a copy under way
	reg      *registration // the Remote.Borrowed call under way
	borrowed bool          // Remote.Borrowed succeeded: Released is owed when freed
}

// foreignLocked returns e's foreignMore, making it if need be. The caller holds
// the shard's mu; e is an arena object (e.more is set).
func foreignLocked(e *entry) *foreignMore {
	if e.more.foreign == nil {
		e.more.foreign = &foreignMore{}
	}
	return e.more.foreign
}

// registration is a Remote.Borrowed call under way, which other Borrows of the
// ID wait for. err is written before done is closed.
type registration struct {
	done chan struct{}
	err  error
}

func (s *Store) startRemote() {
	s.rem.life, s.rem.stop = context.WithCancel(context.Background())
}

// foreign reports whether id is owned by another node and a Remote is
// configured to reach it.
func (s *Store) foreign(id trove.ObjectID) bool {
	return s.cfg.Remote != nil && id.Node() != s.cfg.Node && !id.IsZero()
}

// absent reports whether a Get of an object in state st must fetch it through
// the Remote: a remote entry, or an evicted copy when a Remote can fetch it again.
func (s *Store) absent(st state) bool {
	return st == stateRemote || (st == stateEvicted && s.cfg.Remote != nil)
}

// foreignEntry returns id's entry with one ref taken for the caller, making a
// remote entry if the store has none, or only one whose last ref is gone (being
// freed: the new entry takes its place in the table). The caller checked
// s.foreign(id).
func (s *Store) foreignEntry(id trove.ObjectID) *entry {
	sh := &s.shards[shardOf(id)]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	return s.foreignEntryLocked(sh, id)
}

// foreignEntryLocked is foreignEntry for the caller holding sh.mu.
func (s *Store) foreignEntryLocked(sh *shard, id trove.ObjectID) *entry {
	if e := sh.mu.m[id]; e != nil && e.addRef() {
		return e
	}
	e := &entry{id: id, off: offNone, more: &entryMore{arena: true, secondary: true, foreign: &foreignMore{}}}
	e.rc.Store(refOne | uint64(stateRemote)<<stateShift)
	sh.mu.m[id] = e
	sh.objects.Add(1)
	sh.remote.Add(1)
	return e
}

// ensureBorrowed makes sure the Remote has been told of this node's handle to
// e, a foreign entry the caller holds a ref on: it calls Remote.Borrowed if
// nobody has for this entry, or waits for the call another Borrow is making.
func (s *Store) ensureBorrowed(e *entry) error {
	sh := s.shardFor(e)
	for {
		sh.mu.Lock()
		fm := foreignLocked(e)
		if fm.borrowed {
			sh.mu.Unlock()
			return nil
		}
		if r := fm.reg; r != nil {
			sh.mu.Unlock()
			<-r.done
			if r.err != nil {
				return r.err
			}
			continue
		}
		r := &registration{done: make(chan struct{})}
		fm.reg = r
		sh.mu.Unlock()
		err := s.cfg.Remote.Borrowed(s.rem.life, e.id)
		if err != nil {
			err = fmt.Errorf("register this node as a borrower of %s with node %s: %w", e.id, e.id.Node(), err)
		}
		sh.mu.Lock()
		fm.reg, fm.borrowed, r.err = nil, err == nil, err
		sh.mu.Unlock()
		close(r.done)
		return err
	}
}

// released tells the Remote that a freed foreign entry's last handle is gone.
// The caller is release, after the entry's memory was given back.
func (s *Store) released(e *entry) {
	if fm := e.more.foreign; fm != nil && fm.borrowed { // no lock: e is freed, nobody else touches it
		fm.borrowed = false
		s.cfg.Remote.Released(e.id)
	}
}

// forgetCopy turns e, a secondary copy whose builder is being aborted, back
// into a remote entry (a later Get fetches again): its size is unknown again.
// Its memory is already freed.
func (s *Store) forgetCopy(e *entry) {
	sh := s.shardFor(e)
	sh.mu.Lock()
	n := e.more.size
	e.more.size, e.data = 0, nil
	sh.mu.Unlock()
	sh.bytes.Add(-n)
	sh.remote.Add(1)
}

// joinFetch makes the caller a waiter of the fetch of e under way, starting one
// if there is none. It returns nil (and no error) if e is no longer absent: the
// caller looks at it again.
func (s *Store) joinFetch(e *entry) (*fetch, error) {
	sh := s.shardFor(e)
	sh.mu.Lock()
	if !s.absent(wordState(e.rc.Load())) {
		sh.mu.Unlock()
		return nil, nil
	}
	fm := foreignLocked(e)
	if f := fm.fetch; f != nil {
		f.waiters++
		sh.mu.Unlock()
		return f, nil
	}
	if !e.addRef() { // the fetch's own ref: e stays in the table while it runs
		sh.mu.Unlock()
		return nil, fmt.Errorf("fetch %s: %w", e.id, trove.ErrObjectFreed)
	}
	ctx, cancel := context.WithCancel(s.rem.life)
	f := &fetch{done: make(chan struct{}), cancel: cancel, waiters: 1}
	fm.fetch = f
	sh.mu.Unlock()
	s.rem.running.Add(1)
	go s.runFetch(ctx, e, f)
	return f, nil
}

// runFetch runs one Remote.Fetch of e and wakes everyone waiting on it.
func (s *Store) runFetch(ctx context.Context, e *entry, f *fetch) {
	err := s.cfg.Remote.Fetch(ctx, e.id, s)
	s.rem.fetches.Add(1)
	if err != nil {
		err = fmt.Errorf("fetch %s from node %s: %w", e.id, e.id.Node(), err)
	}
	sh := s.shardFor(e)
	sh.mu.Lock()
	f.err, f.finished = err, true
	e.more.foreign.fetch = nil
	sh.mu.Unlock()
	f.cancel()
	// The fetch's ref goes before its waiters wake (they hold refs of their
	// own), so that one that drops its last ref sees the object freed.
	s.decRef(e)
	close(f.done)
	s.wakeWaiters(e) // Waits registered on e
	s.rem.running.Add(-1)
}

// leaveFetch takes a waiter off f; the last one to go cancels it.
func (s *Store) leaveFetch(e *entry, f *fetch) {
	sh := s.shardFor(e)
	sh.mu.Lock()
	f.waiters--
	last := f.waiters == 0 && !f.finished
	if last {
		f.abandoned = true
	}
	sh.mu.Unlock()
	if last {
		f.cancel()
	}
}

// awaitFetch waits, as a Get, for a fetch of e (joining or starting one). It
// returns nil when the caller should look at e again (a copy arrived, or is
// being made), or the fetch's error, or ctx's.
func (s *Store) awaitFetch(ctx context.Context, e *entry) error {
	for {
		f, err := s.joinFetch(e)
		if f == nil {
			return err
		}
		select {
		case <-f.done:
		case <-ctx.Done():
			need := f.room.Load() // before leaving: the last to leave ends the wait
			s.leaveFetch(e, f)
			if need > 0 {
				// The owner has sealed it; this node found no room for the
				// copy (nothing it holds could give way) before the deadline.
				return fmt.Errorf("no room on this node for a copy of it: %w", s.fullError(need, trove.ContextError(ctx)))
			}
			return trove.ContextError(ctx)
		case <-s.closing:
			s.leaveFetch(e, f)
			return trove.ErrClosed
		}
		s.leaveFetch(e, f)
		switch {
		case f.err == nil, errors.Is(f.err, ErrCopyExists):
			return nil
		case f.abandoned && ctx.Err() == nil && !s.closed.Load():
			continue // its waiters had gone before this Get joined: start again
		}
		return f.err
	}
}

// maxFetchRounds bounds how many fetches of one object a Get makes in a row when
// each succeeds but the copy is gone again before the Get can pin it (evicted at
// once: memory is far too small for the copies being pulled).
const maxFetchRounds = 4

// errNoCopy is a Get's error after maxFetchRounds such fetches.
func errNoCopy(id trove.ObjectID) error {
	return fmt.Errorf("get %s: fetched a copy %d times and each was gone before it could be read (evicted at once, or Remote.Fetch returned without sealing one); raise Config.Capacity or release views: %w",
		id, maxFetchRounds, trove.ErrObjectEvicted)
}

// joinedFetch is a fetch a Wait or GetAll waits on, to be left when it returns.
type joinedFetch struct {
	e *entry
	f *fetch
}

// leaveFetches leaves every fetch in joined.
func (s *Store) leaveFetches(joined []joinedFetch) {
	for _, j := range joined {
		s.leaveFetch(j.e, j.f)
	}
}

// prefetch starts (or joins) fetches of every absent object among refs, so that
// GetAll pulls them in parallel rather than one after the other.
func (s *Store) prefetch(refs []trove.Ref) []joinedFetch {
	var joined []joinedFetch
	for _, r := range refs {
		e, err := s.entryOf(r)
		if err != nil || !s.absent(wordState(e.rc.Load())) {
			continue
		}
		if f, _ := s.joinFetch(e); f != nil {
			joined = append(joined, joinedFetch{e, f})
		}
	}
	return joined
}

// waitFetched is Wait's readiness of e, an absent object: it joins e's fetch (once
// per Wait, recorded in joined) and reports whether that fetch has ended (with
// a copy, or with an error that Get will report).
func (s *Store) waitFetched(e *entry, joined *[]joinedFetch) (bool, error) {
	for i, j := range *joined {
		if j.e != e {
			continue
		}
		select {
		case <-j.f.done:
		default:
			return false, nil
		}
		if !j.f.abandoned { // written before done was closed
			return true, nil
		}
		// Cancelled before this Wait joined it (its waiters had gone): fetch again.
		s.leaveFetch(e, j.f)
		*joined = append((*joined)[:i], (*joined)[i+1:]...)
		break
	}
	f, err := s.joinFetch(e)
	if err != nil {
		return false, err
	}
	if f == nil { // a copy arrived meanwhile
		return wordState(e.rc.Load()).ready(), nil
	}
	*joined = append(*joined, joinedFetch{e, f})
	return false, nil
}

// PinByID returns a view of the sealed object id, as Get does for a ref: it
// waits while the object is pending (until ctx ends), and restores a spilled
// object from disk. It never fetches: a foreign object this node has no copy
// of fails with ErrObjectEvicted. It is for the cluster's chunk server, which
// reads objects by the IDs peers ask for. The caller MUST Release the view.
func (s *Store) PinByID(ctx context.Context, id trove.ObjectID) (*trove.Object, error) {
	if s.closed.Load() {
		return nil, fmt.Errorf("pin %s: %w", id, trove.ErrClosed)
	}
	e := s.lookup(id)
	if e == nil {
		return nil, fmt.Errorf("pin %s: %w", id, trove.ErrUnknownObject)
	}
	if !e.addRef() { // held while waiting or restoring, like a Get's handle
		return nil, fmt.Errorf("pin %s: %w", id, trove.ErrObjectFreed)
	}
	defer s.decRef(e)
	for {
		if s.closed.Load() {
			return nil, fmt.Errorf("pin %s: %w", id, trove.ErrClosed)
		}
		st, err := s.pin(e)
		switch {
		case st == stateSealed && err == nil:
			return trove.NewObject(e.id, e.data, s, e), nil
		case st == stateSpilled:
			if err := s.restore(ctx, e); err != nil {
				return nil, fmt.Errorf("pin %s: %w", id, err)
			}
		case st == statePending:
			if err := s.waitOne(ctx, e); err != nil {
				return nil, fmt.Errorf("pin %s: %w", id, err)
			}
		case err == nil: // absent: remote, or evicted with a Remote
			return nil, fmt.Errorf("pin %s: this node has no copy: %w", id, trove.ErrObjectEvicted)
		default:
			return nil, err
		}
	}
}

// EvictCopy frees this node's secondary copy of id now, if it is sealed and no
// view pins it, and reports whether it did; the entry stays while refs hold it
// (a later Get fetches again). The cluster calls it when an owner frees an
// object and tells the holders of copies to drop them. A pinned copy stays
// readable until its views are released (as Ray keeps a copy its readers
// use), and is freed with its last ref or evicted under pressure. Primary
// objects are never touched: EvictCopy of one reports false.
func (s *Store) EvictCopy(id trove.ObjectID) bool {
	e := s.lookup(id)
	if e == nil || e.more == nil || !e.more.secondary || !e.more.arena {
		return false
	}
	p := &s.pressure
	p.lru.Lock()
	w := e.rc.Load()
	held := wordState(w) == stateSealed && wordPins(w) == 0 && w&holdBit == 0 && e.rc.CompareAndSwap(w, w|holdBit)
	if held {
		p.lru.secondary.Remove(e)
	}
	p.lru.Unlock()
	return held && s.evictHeld(e) >= 0
}

package engine

import (
	"context"
	"fmt"
	"runtime"
	"sync/atomic"

	"github.com/trovedb/trove"
)

// Put copies data into the store once and returns a ref to the sealed object.
// Objects up to InlineThreshold are kept in the Go heap, larger ones in shared
// memory. If the arena is full, Put waits for room until ctx ends, then fails with
// ErrStoreFull (and nothing already stored is touched).
func (s *Store) Put(ctx context.Context, data []byte) (trove.Ref, error) {
	e, err := s.create(ctx, len(data), nil)
	if err != nil {
		return trove.Ref{}, err
	}
	copy(s.writable(e), data)
	s.seal(e, false) // the creator's count becomes the handle's
	return trove.NewRef(e.id, s, e), nil
}

// PutFunc creates an object of size bytes, calls fill to write it in place, and
// seals it: one write, no intermediate buffer. dst is valid only during fill. The
// object holds a ref on each of contains until it is freed. If fill fails the
// object is aborted and fill's error returned.
func (s *Store) PutFunc(ctx context.Context, size int, contains []trove.Ref, fill func(dst []byte) error) (trove.Ref, error) {
	e, err := s.putFunc(ctx, size, contains, fill)
	if err != nil {
		return trove.Ref{}, err
	}
	return trove.NewRef(e.id, s, e), nil
}

// putFunc is PutFunc up to the handle: it returns the sealed entry holding one
// count, the creator's, for the caller's handle or Hold.
func (s *Store) putFunc(ctx context.Context, size int, contains []trove.Ref, fill func(dst []byte) error) (*entry, error) {
	e, err := s.create(ctx, size, contains)
	if err != nil {
		return nil, err
	}
	sealed := false
	defer func() {
		if !sealed { // fill failed or panicked: nothing is stored
			s.abort(e, true) // and the creator's hold: no handle was made
		}
	}()
	if err := fill(s.writable(e)); err != nil {
		return nil, err
	}
	s.seal(e, false) // the creator's count becomes the handle's
	sealed = true
	return e, nil
}

// Create makes a pending object of size bytes and returns a builder to fill it in
// place. Its ref is valid at once, as a future: Gets of it block until Seal. The
// caller MUST call Seal or Abort; a builder the garbage collector finds unreachable
// first is aborted (and any slice from its Bytes must not be used after that).
func (s *Store) Create(ctx context.Context, size int) (*Builder, error) {
	return s.CreateContaining(ctx, size, nil)
}

// CreateContaining is Create for an object that holds refs: it keeps each of
// contains alive until the object is freed.
func (s *Store) CreateContaining(ctx context.Context, size int, contains []trove.Ref) (*Builder, error) {
	return s.newBuilder(ctx, trove.ObjectID{}, size, contains)
}

// CreateCopy makes a pending secondary copy of id, an object owned by another
// node, for the cluster layer to pull into. A secondary copy lives in the arena
// and is evicted, least recently used first and before any primary object is
// spilled, when memory runs short; a Get of an evicted copy fails with
// trove.ErrObjectEvicted (fetch it again from its owner), or, with a
// Config.Remote, fetches it again. It fails with ErrCopyExists if the store
// already has a copy of id. A remote entry for id (remote.go) becomes this copy.
//
// Copies of small objects (≤ InlineThreshold, which owners answer inline) live in
// the arena too, on purpose: the arena's slab classes hold them as compactly as
// the heap would; Capacity then bounds every received copy; they give way through
// the same LRU as large ones, so a node full of small copies still makes room for
// a pull; and ipc clients map them like any arena object.
func (s *Store) CreateCopy(ctx context.Context, id trove.ObjectID, size int) (*Builder, error) {
	if id.IsZero() {
		return nil, fmt.Errorf("create a copy: zero object ID: %w", trove.ErrUnknownObject)
	}
	return s.newBuilder(ctx, id, size, nil)
}

func (s *Store) newBuilder(ctx context.Context, copyOf trove.ObjectID, size int, contains []trove.Ref) (*Builder, error) {
	return s.builderOf(s.createEntry(ctx, copyOf, size, contains, false))
}

// builderOf wraps a new pending entry in a Builder.
func (s *Store) builderOf(e *entry, err error) (*Builder, error) {
	if err != nil {
		return nil, err
	}
	// One count for the handle, one (from create) for the open builder.
	e.rc.Add(refOne)
	b := &Builder{s: s, e: e, ref: trove.NewRef(e.id, s, e), buf: s.writable(e)}
	b.cleanup = runtime.AddCleanup(b, func(e *entry) { s.abandon(e) }, e)
	return b, nil
}

// create allocates and publishes a pending object holding one ref for its creator.
func (s *Store) create(ctx context.Context, size int, contains []trove.Ref) (*entry, error) {
	return s.createEntry(ctx, trove.ObjectID{}, size, contains, false)
}

// createEntry is create for a new object (copyOf zero) or for a secondary copy of
// copyOf, an object owned elsewhere, which always lives in the arena. With
// primary set, the object owned elsewhere is stored here as its primary copy
// (CreateResult, future.go): spilled under pressure, never evicted.
func (s *Store) createEntry(ctx context.Context, copyOf trove.ObjectID, size int, contains []trove.Ref, primary bool) (e *entry, err error) {
	s.writers.Add(1) // before checking closed: see maybeUnmap
	defer func() {
		if err != nil {
			s.writers.Add(-1)
			_ = s.maybeUnmap()
		}
	}()
	if s.closed.Load() {
		return nil, trove.ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("create object: %w", context.Cause(ctx))
	}
	if size < 0 {
		return nil, fmt.Errorf("create object of %d bytes: size must not be negative", size)
	}
	children, err := s.holdChildren(contains)
	if err != nil {
		return nil, err
	}
	if copyOf.IsZero() {
		e = &entry{id: trove.NewObjectID(s.cfg.Node, s.seq.Add(1)), off: offInline}
	} else {
		if old := s.lookup(copyOf); old != nil {
			if primary {
				return s.revivePrimary(ctx, old, size, children)
			}
			s.dropChildren(children)
			return s.reviveCopy(ctx, old, size)
		}
		e = &entry{id: copyOf, off: offInline}
	}
	if children != nil {
		e.more = &entryMore{children: children}
	}
	if int64(size) <= s.cfg.InlineThreshold && copyOf.IsZero() {
		e.data = make([]byte, size)
	} else {
		off, err := s.allocate(ctx, int64(size))
		if err != nil {
			s.dropChildren(children)
			return nil, fmt.Errorf("create object of %s: %w", trove.HumanBytes(int64(size)), err)
		}
		e.off = off
		e.data = s.arena.ReadOnly(off, int64(size))
		if e.more == nil {
			e.more = &entryMore{}
		}
		e.more.size, e.more.arena = int64(size), true
		e.more.secondary = !copyOf.IsZero() && !primary
	}
	e.rc.Store(refOne | uint64(statePending)<<stateShift)

	sh := s.shardFor(e)
	sh.mu.Lock()
	if _, dup := sh.mu.m[e.id]; dup { // a racing CreateCopy of the same ID won
		sh.mu.Unlock()
		s.freeArena(e)
		s.dropChildren(children)
		return nil, fmt.Errorf("create a copy of %s: %w", copyOf, ErrCopyExists)
	}
	sh.mu.m[e.id] = e
	sh.mu.Unlock()
	sh.objects.Add(1)
	sh.pending.Add(1)
	sh.bytes.Add(int64(size))
	if e.inline() {
		sh.inlineObjects.Add(1)
		sh.inlineBytes.Add(int64(size))
	}
	s.puts.Add(1)
	return e, nil
}

// reviveCopy makes an evicted secondary copy pending again, with fresh memory, for
// CreateCopy to fill: the refs still held to it then see a future that Seal
// completes, as when the copy was first pulled. A remote entry (a foreign
// object never fetched, remote.go) becomes pending the same way, and learns its
// size. Any other existing copy is ErrCopyExists.
func (s *Store) reviveCopy(ctx context.Context, e *entry, size int) (*entry, error) {
	w := e.rc.Load()
	from := wordState(w)
	if from != stateEvicted && from != stateRemote {
		return nil, fmt.Errorf("create a copy of %s: %w", e.id, ErrCopyExists)
	}
	if from == stateEvicted && int64(size) != e.more.size {
		return nil, fmt.Errorf("create a copy of %s: %d bytes, but the evicted copy had %d", e.id, size, e.more.size)
	}
	sh := s.shardFor(e)
	var waiting *atomic.Int64 // the fetch's, if a fetch is filling e: see awaitFetch
	sh.mu.Lock()
	if fm := e.more.foreign; fm != nil && fm.fetch != nil {
		waiting = &fm.fetch.room
	}
	sh.mu.Unlock()
	off, err := s.allocateNoting(ctx, int64(size), waiting)
	if err != nil {
		return nil, fmt.Errorf("create a copy of %s: %w", e.id, err)
	}
	for {
		// The shard's lock makes the write of e.off and the CAS that publishes
		// it one step among revivers: two fetches of the same copy racing here
		// cannot both write e.off before one CAS succeeds (the winner's memory
		// would be lost and the loser's, freed, published). Nobody else reads
		// e.off or e.data of an evicted or remote entry, and Get pins only
		// sealed ones. (A remote entry's size is set under the lock, for
		// listings.)
		sh.mu.Lock()
		w := e.rc.Load()
		if wordState(w) != from || wordRefs(w) == 0 { // revived or freed meanwhile
			sh.mu.Unlock()
			_ = s.alloc.Free(off)
			s.wakeRoom()
			return nil, fmt.Errorf("create a copy of %s: %w", e.id, ErrCopyExists)
		}
		if w&holdBit != 0 {
			// Just evicted: the evictor is still freeing the old memory (it
			// reads e.off) and lets go in a moment.
			sh.mu.Unlock()
			runtime.Gosched()
			continue
		}
		e.off, e.data = off, s.arena.ReadOnly(off, int64(size))
		if e.rc.CompareAndSwap(w, withState(w, statePending)+refOne) {
			if from == stateRemote {
				e.more.size = int64(size)
			}
			sh.mu.Unlock()
			break
		}
		sh.mu.Unlock() // a ref was taken or dropped meanwhile: look again
	}
	if from == stateRemote {
		sh.remote.Add(-1)
		sh.bytes.Add(int64(size))
	} else {
		e.more.evicted = false
		s.pressure.evictedLive.Add(-int64(size))
	}
	sh.pending.Add(1)
	s.puts.Add(1)
	return e, nil
}

// holdChildren takes a ref on each contained object.
func (s *Store) holdChildren(contains []trove.Ref) ([]*entry, error) {
	if len(contains) == 0 {
		return nil, nil
	}
	children := make([]*entry, 0, len(contains))
	for _, r := range contains {
		c, err := s.entryOf(r)
		if err == nil && !c.addRef() {
			err = fmt.Errorf("%v: %w", r, trove.ErrObjectFreed)
		}
		if err != nil {
			s.dropChildren(children)
			return nil, fmt.Errorf("contained ref: %w", err)
		}
		children = append(children, c)
	}
	runtime.KeepAlive(contains)
	return children, nil
}

func (s *Store) dropChildren(children []*entry) {
	for _, c := range children {
		s.decRef(c)
	}
}

// writable returns the bytes a creator fills.
func (s *Store) writable(e *entry) []byte {
	if e.inline() {
		return e.data
	}
	return s.arena.Writable(e.off, int64(len(e.data)))
}

// seal makes a pending object readable: an arena object joins the eviction order
// (and may set the background spiller going), then its waiters wake. With release
// set the creator's count is given back before they wake (Builder.Seal), so that
// a waiter that drops every ref sees the object freed.
func (s *Store) seal(e *entry, release bool) { s.finish(e, stateSealed, release) }

// abort fails a pending object: its memory goes back at once, Gets fail with
// ErrObjectAborted. The entry stays (holding no memory) until its refs are dropped.
// release is as for seal.
func (s *Store) abort(e *entry, release bool) {
	if !e.inline() {
		s.freeArena(e)
	}
	if s.cfg.Remote != nil && e.more != nil && !e.more.secondary && e.more.foreign != nil {
		// A result's primary written into a remote entry (CreateResult of a
		// future of this store, or of one borrowed here) that its writer gave
		// up on (a task worker died mid-write): the entry is a remote entry
		// again, so the call's retry can write the result, and Gets wait
		// for it as before.
		sh := s.shardFor(e)
		sh.mu.Lock()
		children := e.more.children
		e.more.children, e.more.secondary = nil, true
		sh.mu.Unlock()
		s.dropChildren(children)
	}
	if s.cfg.Remote != nil && e.more != nil && e.more.secondary {
		// A failed fetch: the object still exists at its owner, and a later
		// Get may fetch it again (remote.go).
		s.forgetCopy(e)
		s.finish(e, stateRemote, release)
		return
	}
	s.finish(e, stateAborted, release)
}

func (s *Store) finish(e *entry, to state, release bool) {
	var w uint64
	for {
		old := e.rc.Load()
		if wordState(old) != statePending {
			panic(fmt.Sprintf("engine: %s of %s in state %s", to, e.id, wordState(old)))
		}
		w = withState(old, to)
		if release {
			w -= refOne // in the same step: whoever sees the new state sees the count gone
		}
		if e.rc.CompareAndSwap(old, w) {
			break
		}
	}
	sh := s.shardFor(e)
	sh.pending.Add(-1)
	if to == stateSealed && !e.inline() {
		s.track(e) // before the creator's count goes: a free then untracks it
	}
	sh.mu.Lock()
	var ws []*waiter
	if e.more != nil {
		ws, e.more.waiters = e.more.waiters, nil
	}
	sh.mu.Unlock()
	if release && idle(w) {
		s.tryFree(e) // no handle and no waiter (waiters hold refs of their own)
	}
	for _, w := range ws {
		w.ready()
	}
	s.writers.Add(-1)
	if s.closed.Load() {
		_ = s.maybeUnmap()
	}
}

// abandon aborts a builder the garbage collector found unreachable.
func (s *Store) abandon(e *entry) {
	if wordState(e.rc.Load()) == statePending {
		s.abort(e, true)
		return
	}
	s.decRef(e)
}

// Builder writes one object in place. It is not safe for concurrent use; a builder
// is used once: Seal or Abort, exactly once.
type Builder struct {
	s       *Store
	e       *entry
	ref     trove.Ref
	buf     []byte
	cleanup runtime.Cleanup
}

// Ref returns the object's ref. It is valid from Create on, before the object has
// a value: a Get of it blocks until Seal. It is the same handle on every call; the
// caller drops it like any ref.
func (b *Builder) Ref() trove.Ref { return b.ref }

// Size returns the object's size in bytes.
func (b *Builder) Size() int { return len(b.buf) }

// Bytes returns the object's writable bytes, or nil once sealed or aborted. The
// slice must not be used after Seal or Abort: the object is immutable from Seal on,
// and after Abort the memory may already belong to another object.
func (b *Builder) Bytes() []byte { return b.buf }

// Seal makes the object immutable and readable and wakes every Get and Wait blocked
// on it. It fails with ErrSealed if the builder was already sealed or aborted.
func (b *Builder) Seal() error {
	if b.e == nil {
		return fmt.Errorf("seal %v: %w", b.ref, trove.ErrSealed)
	}
	e := b.e
	b.done()
	b.s.seal(e, true)
	return nil
}

// Abort gives up on the object: its memory is released and every Get of it,
// blocked or to come, fails with ErrObjectAborted. Abort after Seal or Abort does
// nothing.
func (b *Builder) Abort() {
	if b.e == nil {
		return
	}
	e := b.e
	b.done()
	b.s.abort(e, true)
}

func (b *Builder) done() {
	b.cleanup.Stop()
	b.e, b.buf = nil, nil
}

package engine

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/trovedb/trove"
	"github.com/trovedb/trove/alloc"
	"github.com/trovedb/trove/arena"
)

// Store is a node's object store. All methods are safe for concurrent use.
type Store struct {
	cfg    Config
	arena  *arena.Arena
	alloc  *alloc.Allocator
	shards [numShards]shard
	seq    atomic.Uint64 // the last sequence number minted

	// room wakes creators waiting for memory. ch is made by the first waiter and
	// closed (and cleared) by the next free.
	room struct {
		sync.Mutex
		ch      chan struct{}
		waiting atomic.Bool // some creator is waiting: frees must close ch
	}

	// pressure is the memory-pressure machinery: the eviction order, the
	// spiller, and their statistics (pressure.go).
	pressure pressure

	// rem is the seam to other nodes' objects (remote.go).
	rem remoteState

	closing   chan struct{} // closed by Close: wakes every waiter
	closed    atomic.Bool
	stopped   atomic.Bool // set by Close once no spill reads the arena any more
	unmapOnce sync.Once
	// writers counts creators that may still write into the arena: from before
	// create checks closed until the object is sealed or aborted. With the views,
	// it decides when Close may unmap (see maybeUnmap).
	writers atomic.Int64

	puts, gets, frees, fullWaits atomic.Uint64
}

var (
	_ trove.Store     = (*Store)(nil)
	_ trove.RefOwner  = (*Store)(nil)
	_ trove.ViewOwner = (*Store)(nil)
)

// Open creates a store with its own shared-memory arena.
func Open(cfg Config) (*Store, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	al, err := alloc.New(cfg.Capacity)
	if err != nil {
		return nil, fmt.Errorf("engine: capacity %d: %w", cfg.Capacity, err)
	}
	cfg.Capacity = al.Capacity()
	mode := arena.PrefaultLazy
	if cfg.PrefaultAll {
		mode = arena.PrefaultEager
	}
	ar, err := arena.New(cfg.Capacity, arena.Options{Name: cfg.Name, Prefault: mode})
	if err != nil {
		return nil, fmt.Errorf("engine: %w", err)
	}
	s := &Store{cfg: cfg, arena: ar, alloc: al, closing: make(chan struct{})}
	for i := range s.shards {
		s.shards[i].mu.m = make(map[trove.ObjectID]*entry)
	}
	s.startRemote()
	if err := s.startPressure(); err != nil {
		s.rem.stop()
		ar.Close()
		return nil, err
	}
	return s, nil
}

// Config returns the store's configuration with defaults filled in.
func (s *Store) Config() Config { return s.cfg }

// Node returns the node ID in every ObjectID this store mints.
func (s *Store) Node() trove.NodeID { return s.cfg.Node }

// Close closes the store: calls fail with ErrClosed afterwards, and blocked Gets,
// Waits and creators wake with it. Objects are dropped. If views are still
// unreleased, the shared memory stays mapped until the last one is released, so
// their bytes stay readable; release every view to give the memory back.
func (s *Store) Close() error {
	if !s.closed.CompareAndSwap(false, true) {
		return nil
	}
	close(s.closing)
	s.rem.stop() // fetches and registrations under way end
	err := s.stopPressure()
	s.stopped.Store(true)
	if uerr := s.maybeUnmap(); err == nil {
		err = uerr
	}
	return err
}

// maybeUnmap unmaps the arena once the store is closed and nobody can touch it:
// no view is unreleased and no creator is writing. Each of those increments its
// counter before it checks closed, and Close sets closed before it reads the
// counters, so (atomics being sequentially consistent) one of the two always sees
// the other.
func (s *Store) maybeUnmap() error {
	if !s.stopped.Load() || s.writers.Load() != 0 || s.totalViews() != 0 {
		return nil
	}
	var err error
	s.unmapOnce.Do(func() { err = s.arena.Close() })
	return err
}

func (s *Store) totalViews() int64 {
	var n int64
	for i := range s.shards {
		n += s.shards[i].views.Load()
	}
	return n
}

// ReleaseRef implements trove.RefOwner: a Ref handle was dropped.
func (s *Store) ReleaseRef(_ trove.ObjectID, hint any) {
	s.decRef(hint.(*entry))
}

// ReleaseView implements trove.ViewOwner: a view was released.
func (s *Store) ReleaseView(_ trove.ObjectID, hint any) {
	e := hint.(*entry)
	size := e.size()          // read while pinned: e may be freed once the pin is gone
	w := e.rc.Add(^uint64(0)) // pins - 1
	if wordPins(w) == pinMask {
		panic(fmt.Sprintf("engine: pin count of %s underflowed: a view was released twice", e.id))
	}
	sh := s.shardFor(e)
	sh.views.Add(-1)
	if wordPins(w) == 0 {
		sh.pinnedObjects.Add(-1)
		sh.pinnedBytes.Add(-size)
		if idle(w) {
			s.tryFree(e)
		}
	}
	if s.closed.Load() {
		_ = s.maybeUnmap()
	}
}

// decRef gives back one reference and frees the object if that was the last hold.
func (s *Store) decRef(e *entry) {
	w := e.rc.Add(^(refOne - 1))
	if wordRefs(w) == uint64(1)<<32-1 {
		panic(fmt.Sprintf("engine: ref count of %s underflowed: a handle was released twice", e.id))
	}
	if idle(w) {
		s.tryFree(e)
	}
}

// tryFree frees e if it holds no refs and no pins and nobody freed it yet. Objects
// it contains lose a ref each, which may free them in turn (iteratively, so deep
// nesting cannot overflow the stack).
func (s *Store) tryFree(e *entry) {
	stack := []*entry{e}
	for len(stack) > 0 {
		e := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if !s.markFreed(e) {
			continue
		}
		s.release(e)
		if e.more == nil {
			continue
		}
		for _, c := range e.more.children {
			w := c.rc.Add(^(refOne - 1))
			if idle(w) {
				stack = append(stack, c)
			}
		}
		e.more.children = nil
	}
}

// markFreed moves e to stateFreed if its counts are zero; true if this call did.
func (s *Store) markFreed(e *entry) bool {
	for {
		w := e.rc.Load()
		if !idle(w) || wordState(w) == stateFreed {
			return false
		}
		if e.rc.CompareAndSwap(w, withState(w, stateFreed)) {
			if wordState(w) == stateRemote {
				s.shardFor(e).remote.Add(-1)
			}
			return true
		}
	}
}

// release removes a freed entry from the table and gives its memory back.
func (s *Store) release(e *entry) {
	sh := s.shardFor(e)
	sh.mu.Lock()
	// A foreign entry may have been replaced by a new one (foreignEntry),
	// a result's primary too (CreateResult).
	if e.more == nil || !e.more.secondary && !s.foreign(e.id) || sh.mu.m[e.id] == e {
		delete(sh.mu.m, e.id)
	}
	sh.mu.Unlock()
	// Memory first, counters after: a reader that sees the object count drop sees
	// its memory gone too.
	n := e.size()
	if !e.inline() {
		s.dropArenaObject(e)
	}
	if e.inline() {
		e.data = nil // dropped handles may keep e reachable for a while; not its bytes
		sh.inlineObjects.Add(-1)
		sh.inlineBytes.Add(-n)
	}
	sh.bytes.Add(-n)
	sh.objects.Add(-1)
	s.frees.Add(1)
	if s.cfg.Remote != nil && e.more != nil {
		s.released(e)
	}
}

// freeArena gives e's memory back (to the allocator, or unmaps its fallback
// mapping) and wakes waiting creators. The caller is the only one holding e (its
// counts are zero, it is an aborting builder, or it holds e for spilling and moved
// it out of the sealed state).
func (s *Store) freeArena(e *entry) {
	switch {
	case e.off == offFallback:
		s.unmapFallback(e)
	case e.off < 0:
	case s.closed.Load(): // the arena is going away whole
	default:
		if invariantsEnabled {
			s.poisonFreed(e)
		}
		if err := s.alloc.Free(e.off); err != nil {
			panic(fmt.Sprintf("engine: free %s at offset %d: %v", e.id, e.off, err))
		}
		s.wakeRoom()
	}
	if e.off != offInline {
		e.off = offNone
	}
}

// poisonFreed overwrites a freed object's memory, so that a view used after
// its release reads garbage that tests notice. It writes into the arena, so it
// counts as a writer (see maybeUnmap): a ref the garbage collector releases
// while the store closes must not poison memory that Close is unmapping.
func (s *Store) poisonFreed(e *entry) {
	s.writers.Add(1)
	defer func() {
		s.writers.Add(-1)
		_ = s.maybeUnmap()
	}()
	if !s.closed.Load() {
		poison(s.arena.Writable(e.off, s.alloc.Usable(e.off)))
	}
}

func poison(b []byte) {
	for i := range b {
		b[i] = 0xdb
	}
}

// Borrow implements trove.Store: a new handle to an object the store holds, or,
// with a Config.Remote, to an object another node owns: the first such handle
// makes a remote entry and calls Remote.Borrowed before Borrow returns.
func (s *Store) Borrow(id trove.ObjectID) (trove.Ref, error) {
	if s.closed.Load() {
		return trove.Ref{}, trove.ErrClosed
	}
	if s.foreign(id) {
		return s.borrowForeign(id)
	}
	e := s.lookup(id)
	if e == nil {
		return trove.Ref{}, fmt.Errorf("borrow %s: %w", id, trove.ErrUnknownObject)
	}
	if !e.addRef() {
		return trove.Ref{}, fmt.Errorf("borrow %s: %w", id, trove.ErrObjectFreed)
	}
	return trove.NewRef(id, s, e), nil
}

// borrowForeign is Borrow of an ID another node owns, with a Remote (remote.go).
func (s *Store) borrowForeign(id trove.ObjectID) (trove.Ref, error) {
	e := s.foreignEntry(id)
	if err := s.ensureBorrowed(e); err != nil {
		s.decRef(e)
		return trove.Ref{}, fmt.Errorf("borrow %s: %w", id, err)
	}
	return trove.NewRef(id, s, e), nil
}

// Stats is a snapshot of the store's figures. Counters are read without stopping
// the store, so figures taken while it is busy may be mutually off by an operation.
type Stats struct {
	Objects        int64 // live objects, pending ones included
	PendingObjects int64 // created and not yet sealed or aborted
	ObjectBytes    int64 // bytes of live objects, as asked for
	InlineObjects  int64 // objects kept in the Go heap (≤ InlineThreshold)
	InlineBytes    int64
	PinnedObjects  int64 // objects with at least one unreleased view
	PinnedBytes    int64
	Views          int64 // unreleased views
	RemoteObjects  int64 // foreign objects held by refs with no copy here (never fetched, or the last fetch failed; Config.Remote); not in ObjectBytes

	// The arena and its allocator.
	Capacity      int64   // arena bytes
	Used          int64   // bytes reserved by objects in the arena, with rounding
	Free          int64   // Capacity - Used
	LargestFree   int64   // the largest object that fits right now
	Fragmentation float64 // 1 - largest free run / free bytes in page runs
	SlabBytes     int64   // arena bytes given to slab size classes
	SlabFree      int64   // free slots inside them
	Populated     int64   // arena bytes pre-faulted so far

	// Since Open.
	Puts      uint64 // objects created (Put, PutFunc, Create)
	Gets      uint64 // views handed out
	Frees     uint64 // objects freed
	FullWaits uint64 // times a creator had to wait for room
	Fetches   uint64 // copies of foreign objects asked of Config.Remote (Remote.Fetch calls)

	// Memory pressure.
	InMemoryBytes       int64         // bytes of live objects in memory (less those spilled or evicted)
	SpilledObjects      int64         // live objects only on disk
	SpilledBytes        int64         // their bytes
	SpillFiles          int64         // spill files on disk
	SpillFilesWritten   int64         // spill files written since Open: one per batch
	SpillDiskBytes      int64         // bytes in them (objects and headers, live or not yet deleted)
	Spills              int64         // objects written out, since Open
	SpillBytesTotal     int64         // bytes written out, since Open
	SpillTime           time.Duration // time spent writing them
	SpillThroughput     float64       // SpillBytesTotal / SpillTime, bytes per second
	Restores            int64         // objects read back, since Open
	RestoreBytesTotal   int64         // bytes read back
	RestoreTime         time.Duration // time spent reading them
	RestoreThroughput   float64       // bytes per second
	Evictions           int64         // secondary copies evicted, since Open
	EvictedBytes        int64
	FallbackAllocations int64 // restores that mapped a spill file because memory was full, since Open
	FallbackBytes       int64 // bytes currently mapped that way
}

// Stats returns a snapshot of the store's figures.
func (s *Store) Stats() Stats {
	var st Stats
	for i := range s.shards {
		sh := &s.shards[i]
		st.Objects += sh.objects.Load()
		st.PendingObjects += sh.pending.Load()
		st.ObjectBytes += sh.bytes.Load()
		st.InlineObjects += sh.inlineObjects.Load()
		st.InlineBytes += sh.inlineBytes.Load()
		st.PinnedObjects += sh.pinnedObjects.Load()
		st.PinnedBytes += sh.pinnedBytes.Load()
		st.Views += sh.views.Load()
		st.RemoteObjects += sh.remote.Load()
	}
	a := s.alloc.Stats()
	st.Capacity, st.Used, st.Free, st.LargestFree = a.Capacity, a.Used, a.Free, a.LargestFree
	st.Fragmentation, st.SlabBytes, st.SlabFree = a.Fragmentation, a.SlabBytes, a.SlabFree
	st.Populated = s.arena.Populated()
	st.Puts, st.Gets, st.Frees, st.FullWaits = s.puts.Load(), s.gets.Load(), s.frees.Load(), s.fullWaits.Load()
	st.Fetches = s.rem.fetches.Load()
	s.pressureStats(&st)
	return st
}

// Check verifies the object table against itself and the allocator and returns the
// first inconsistency. It locks each shard in turn, so call it on a quiet store
// (tests call it after every test). It is slow: it walks every object.
func (s *Store) Check() error {
	var arenaBytes int64
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		var objects, bytes, pinned, remote int64
		for id, e := range sh.mu.m {
			w := e.rc.Load()
			switch {
			case e.id != id:
				sh.mu.Unlock()
				return fmt.Errorf("engine check: entry %s filed under %s", e.id, id)
			case wordState(w) == stateFreed:
				sh.mu.Unlock()
				return fmt.Errorf("engine check: freed object %s still in the table", id)
			case idle(w):
				sh.mu.Unlock()
				return fmt.Errorf("engine check: object %s has no refs and no pins but was not freed", id)
			case int(shardOf(id)) != i:
				sh.mu.Unlock()
				return fmt.Errorf("engine check: object %s in shard %d, belongs in %d", id, i, shardOf(id))
			}
			objects++
			if wordState(w) == stateRemote {
				remote++
				if len(e.data) != 0 || e.more == nil || e.more.size != 0 {
					sh.mu.Unlock()
					return fmt.Errorf("engine check: remote object %s has a size or bytes", id)
				}
			}
			bytes += int64(len(e.data))
			if wordPins(w) > 0 {
				pinned++
			}
			if e.off >= 0 {
				u := s.alloc.Usable(e.off)
				if u < int64(len(e.data)) {
					sh.mu.Unlock()
					return fmt.Errorf("engine check: object %s of %d bytes at offset %d: allocator reserves only %d", id, len(e.data), e.off, u)
				}
				arenaBytes += u
			}
		}
		sh.mu.Unlock()
		if got := sh.objects.Load(); got != objects {
			return fmt.Errorf("engine check: shard %d counts %d objects, holds %d", i, got, objects)
		}
		if got := sh.bytes.Load(); got != bytes {
			return fmt.Errorf("engine check: shard %d counts %d bytes, holds %d", i, got, bytes)
		}
		if got := sh.pinnedObjects.Load(); got != pinned {
			return fmt.Errorf("engine check: shard %d counts %d pinned objects, holds %d", i, got, pinned)
		}
		if got := sh.remote.Load(); got != remote {
			return fmt.Errorf("engine check: shard %d counts %d remote objects, holds %d", i, got, remote)
		}
	}
	if s.closed.Load() {
		return nil
	}
	if err := s.alloc.Check(); err != nil {
		return fmt.Errorf("engine check: %w", err)
	}
	if used := s.alloc.Stats().Used; used != arenaBytes {
		return fmt.Errorf("engine check: allocator has %d bytes in use, objects hold %d", used, arenaBytes)
	}
	return nil
}

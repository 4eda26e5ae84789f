package engine

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/trovedb/trove"
	"github.com/trovedb/trove/eviction"
	"github.com/trovedb/trove/spill"
)

// Memory pressure: which objects in the arena give way when it fills, and how.
//
//   - Secondary copies (CreateCopy) are evicted, least recently used first: their
//     memory is freed and this node simply no longer has them.
//   - Primary objects are spilled, never dropped: written to disk by the spiller
//     in fused batches, then their memory is freed. A Get restores them.
//   - Objects pinned by views, pending objects and objects already being written
//     out are never chosen.
//
// Spilling runs in the background once the arena is more than SpillThreshold full
// (in batches of at least MinSpillSize unless memory is short), and synchronously,
// in the creator's goroutine, when an allocation would otherwise fail.
//
// The order is an LRU (package eviction) of resident, sealed arena objects,
// maintained without touching it on Get: every pin sets the object's accessed bit,
// and the victim walk gives an accessed object a second chance (moving it to the
// most recently used end) instead of choosing it, as the CLOCK algorithm does.

// pressure is the Store's memory-pressure state.
type pressure struct {
	spiller *spill.Spiller // nil if spilling is disabled

	// lru orders the resident, sealed arena objects that nothing holds for I/O.
	lru struct {
		sync.Mutex // a leaf: nothing else is locked while it is held
		primary    *eviction.LRU[*entry]
		secondary  *eviction.LRU[*entry]
	}

	reclaimSem chan struct{} // one synchronous reclaim at a time (capacity 1)
	passMu     sync.Mutex    // held by the background spiller during a pass
	kick       chan struct{} // wakes the background spiller
	done       chan struct{} // closed when the background spiller has stopped

	lastSpillErr atomic.Pointer[error] // the last spill failure, for ErrOutOfDisk

	evictions, evictedBytes     atomic.Int64
	evictedLive                 atomic.Int64 // bytes of evicted copies still referenced
	spilledObjects, spilledSize atomic.Int64 // live objects with a copy on disk
	fallbacks, fallbackBytes    atomic.Int64
	restoring                   atomic.Int64
	inflight                    atomic.Int64 // bytes held for a spill being written
}

func (s *Store) startPressure() error {
	p := &s.pressure
	p.lru.primary = eviction.New[*entry]()
	p.lru.secondary = eviction.New[*entry]()
	p.kick = make(chan struct{}, 1)
	p.reclaimSem = make(chan struct{}, 1)
	p.done = make(chan struct{})
	if s.cfg.DisableSpilling {
		close(p.done)
		return nil
	}
	sp, err := spill.New(spill.Config{
		Dirs:         s.cfg.SpillDirs,
		Workers:      s.cfg.SpillWorkers,
		MinSpillSize: s.cfg.MinSpillSize,
		FS:           s.cfg.SpillFS,
		DirsSetting:  spillDirsSetting,
	})
	if err != nil {
		return fmt.Errorf("engine: start spilling: %w", err)
	}
	p.spiller = sp
	s.cfg.SpillDirs = sp.Config().Dirs
	go s.backgroundSpiller()
	return nil
}

// spillDirsSetting is how the spill errors name the setting that chooses spill
// directories: the daemon's flag and this package's Config field.
const spillDirsSetting = "troved -spill-dir or engine.Config.SpillDirs"

// SpillLeftovers returns what Open removed from the spill directories: the spill
// files (and default spill directories) of stores that ended without Close, in
// this process or another, identified by their headers and by owner locks that
// no live store holds (see package spill). Zero if spilling is disabled, or the
// spill file system is not the OS's.
func (s *Store) SpillLeftovers() spill.Leftovers {
	if s.pressure.spiller == nil {
		return spill.Leftovers{}
	}
	return s.pressure.spiller.Leftovers()
}

func (s *Store) stopPressure() error {
	<-s.pressure.done
	if s.pressure.spiller == nil {
		return nil
	}
	return s.pressure.spiller.Close()
}

// track puts a newly resident arena object into the eviction order and wakes the
// background spiller if the arena is past its threshold.
func (s *Store) track(e *entry) {
	p := &s.pressure
	p.lru.Lock()
	// Not if it was freed, spilled or held meanwhile: a free's untrack comes after
	// its state change, so it either is seen here or removes what is added here.
	if w := e.rc.Load(); wordState(w) == stateSealed && w&holdBit == 0 {
		if e.more.secondary {
			p.lru.secondary.Add(e, e.more.size)
		} else {
			p.lru.primary.Add(e, e.more.size)
		}
	}
	p.lru.Unlock()
	if p.spiller != nil && s.overThreshold() {
		select {
		case p.kick <- struct{}{}:
		default:
		}
	}
}

// untrack takes e out of the eviction order, if it is there.
func (s *Store) untrack(e *entry) {
	p := &s.pressure
	p.lru.Lock()
	if e.more.secondary {
		p.lru.secondary.Remove(e)
	} else {
		p.lru.primary.Remove(e)
	}
	p.lru.Unlock()
}

func (s *Store) overThreshold() bool {
	return float64(s.alloc.Used()) > s.cfg.SpillThreshold*float64(s.cfg.Capacity)
}

// backgroundSpiller spills while the arena is past SpillThreshold, in batches of
// at least MinSpillSize unless memory is short (over 95% full).
func (s *Store) backgroundSpiller() {
	defer close(s.pressure.done)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-s.closing
		cancel()
	}()
	var backoff time.Duration // the pause after the last failed pass; 0 after a good one
	for {
		select {
		case <-s.closing:
			return
		case <-s.pressure.kick:
		}
		s.pressure.passMu.Lock()
		failed := false
		for s.overThreshold() && !s.closed.Load() {
			used := s.alloc.Used()
			target := int64(s.cfg.SpillThreshold*float64(s.cfg.Capacity)) * 9 / 10
			want := used - target
			short := float64(used) > 0.95*float64(s.cfg.Capacity)
			if !short {
				want = max(want, s.cfg.MinSpillSize)
			}
			s.pressure.reclaimSem <- struct{}{} // one reclaimer at a time, this pass included
			freed, err := s.reclaimBytes(ctx, want, !short)
			if short && err == nil && freed == 0 {
				freed, err = s.reclaimBytes(ctx, want, false) // memory is short: copies go too
			}
			<-s.pressure.reclaimSem
			if err != nil || freed == 0 {
				failed = err != nil
				break // nothing more can go now; the next kick retries
			}
		}
		s.pressure.passMu.Unlock()
		if !failed {
			backoff = 0
			continue
		}
		// The disk refused the batch (full, or failing). Retrying at once would
		// spin: the failed batch's objects go back to the eviction order, and
		// that kicks this loop again. Pause, longer after each failure in a row;
		// a creator that needs room meanwhile still spills for itself.
		backoff = min(max(2*backoff, spillRetryMin), spillRetryMax)
		select {
		case <-s.closing:
			return
		case <-time.After(backoff):
		}
	}
}

// The background spiller's pause after a failed pass: doubling from
// spillRetryMin up to spillRetryMax while the failures go on.
const (
	spillRetryMin = 50 * time.Millisecond
	spillRetryMax = 5 * time.Second
)

// WaitIdle blocks until no spill is being written: the background spiller's pass
// and any creator's reclaim have finished. An object whose last ref is dropped
// while it is being spilled is freed when the write ends, so call WaitIdle before
// checking that a store is empty.
func (s *Store) WaitIdle() {
	p := &s.pressure
	p.passMu.Lock()
	p.reclaimSem <- struct{}{}
	<-p.reclaimSem
	p.passMu.Unlock()
}

// reclaim makes room for need bytes, synchronously, for a creator whose
// allocation failed: it evicts secondary copies, then spills primaries. It
// reports whether it freed anything.
func (s *Store) reclaim(ctx context.Context, need int64) bool {
	p := &s.pressure
	select {
	case p.reclaimSem <- struct{}{}:
	case <-ctx.Done():
		return false // the caller's wait loop reports the deadline
	case <-s.closing:
		return false
	}
	defer func() { <-p.reclaimSem }()
	if off, ok := s.alloc.Alloc(need); ok { // another reclaim made room meanwhile
		_ = s.alloc.Free(off)
		return true
	}
	if p.inflight.Load() >= need {
		// A spill under way will free enough: wait for it (its frees wake the
		// caller) rather than spill more than memory needs.
		return false
	}
	freed, _ := s.reclaimBytes(ctx, need, false)
	return freed > 0
}

// reclaimBytes frees at least want bytes of arena if it can: secondary copies
// first (unless background is set: they are evicted only when room is needed
// now, staying useful as a cache until then), then primary objects spilled in
// one batch of at least MinSpillSize if there is that much. If background is set
// it writes nothing unless it can fill the batch. It returns the bytes freed.
func (s *Store) reclaimBytes(ctx context.Context, want int64, background bool) (int64, error) {
	var freed int64
	if !background {
		freed = s.evictSecondaries(want)
	}
	if freed >= want || s.pressure.spiller == nil {
		return freed, nil
	}
	batch := s.pickPrimaries(max(want-freed, s.cfg.MinSpillSize), background)
	_, n, err := s.spillBatch(ctx, batch)
	return freed + n, err
}

// spillBatch writes held objects out as one fused file and drops them from
// memory, releasing the holds. It returns the objects and bytes freed.
func (s *Store) spillBatch(ctx context.Context, batch []*entry) (int, int64, error) {
	if len(batch) == 0 {
		return 0, 0, nil
	}
	dropped := 0
	var freed, held int64
	for _, e := range batch {
		held += e.more.size
	}
	s.pressure.inflight.Add(held)
	defer s.pressure.inflight.Add(-held)
	// Objects already on disk (restored earlier) only need their memory dropped.
	var write []*entry
	var objs []spill.Object
	for _, e := range batch {
		if !e.more.spilled {
			write = append(write, e)
			objs = append(objs, spill.Object{ID: spill.ID(e.id), Data: e.data})
		}
	}
	var err error
	if len(objs) > 0 {
		var locs []spill.Location
		locs, err = s.pressure.spiller.SpillSync(ctx, objs)
		if err == nil {
			for i, e := range write {
				e.more.loc, e.more.spilled = locs[i], true
			}
			s.pressure.lastSpillErr.Store(nil)
		} else if ctx.Err() == nil {
			// A write that failed because this caller's context ended says
			// nothing about the disk: keep the last real failure, so that a
			// store out of disk keeps saying so (ErrOutOfDisk, not ErrStoreFull).
			s.pressure.lastSpillErr.Store(&err)
		}
	}
	for _, e := range batch {
		size := e.more.size
		switch {
		case !e.more.spilled: // the write failed
			s.unhold(e)
		case s.dropResident(e): // (it releases the hold either way)
			freed += size
			dropped++
		}
	}
	return dropped, freed, err
}

// Spill writes the objects refs name to disk now, as one fused file, and frees
// their memory, as memory pressure would: a later Get restores them. Objects that
// are pinned by views, pending, not in the arena (small ones live in the Go heap),
// already spilled or being spilled are left as they are. It returns how many
// objects it spilled.
func (s *Store) Spill(ctx context.Context, refs []trove.Ref) (int, error) {
	if s.pressure.spiller == nil {
		return 0, fmt.Errorf("engine: spill: spilling is disabled (Config.DisableSpilling)")
	}
	defer runtime.KeepAlive(refs)
	var batch, skipped []*entry
	p := &s.pressure
	p.lru.Lock()
	for _, r := range refs {
		e, err := s.entryOf(r)
		if err != nil {
			p.lru.Unlock()
			s.dropHolds(skipped)
			s.spillBatch(ctx, batch) // give back the holds taken so far, spilling them
			return 0, fmt.Errorf("engine: spill: %w", err)
		}
		// Take the hold first: e.off (which inline reads) is written by whoever
		// holds an arena object for I/O, the spiller or the evictor, so it may
		// be read only once the hold is ours. (An inline object's never changes.)
		w := e.rc.Load()
		if wordState(w) != stateSealed || wordPins(w) != 0 || w&holdBit != 0 || !e.rc.CompareAndSwap(w, w|holdBit) {
			continue
		}
		if e.inline() || e.more.secondary { // neither is spilled
			skipped = append(skipped, e)
			continue
		}
		p.lru.primary.Remove(e)
		batch = append(batch, e)
	}
	p.lru.Unlock()
	s.dropHolds(skipped)
	n, _, err := s.spillBatch(ctx, batch)
	return n, err
}

// dropHolds gives back holds that Spill took on objects it then did not spill
// (inline objects and secondary copies, which stay where they are and as
// tracked as they were), freeing any whose last ref went meanwhile. It takes
// the LRU lock (through tryFree), so the caller must not hold it.
func (s *Store) dropHolds(es []*entry) {
	for _, e := range es {
		if idle(e.rc.And(^holdBit) &^ holdBit) {
			s.tryFree(e)
		}
	}
}

// evictSecondaries frees unpinned secondary copies, least recently used first,
// until want bytes are free or none is left.
func (s *Store) evictSecondaries(want int64) int64 {
	p := &s.pressure
	p.lru.Lock()
	victims := pickLocked(p.lru.secondary, want)
	p.lru.Unlock()
	var freed int64
	for _, e := range victims {
		if n := s.evictHeld(e); n > 0 {
			freed += n
		}
	}
	return freed
}

// evictHeld evicts e, a secondary copy the caller holds (hold bit) and took out
// of the eviction order, unless a view pinned it meanwhile, and releases the
// hold. It returns the bytes freed, or -1 if e was not evicted.
func (s *Store) evictHeld(e *entry) int64 {
	p := &s.pressure
	for {
		w := e.rc.Load()
		if wordPins(w) != 0 || wordState(w) != stateSealed {
			s.unhold(e) // a view pinned it after all
			return -1
		}
		// The hold stays until the memory is freed: a ref dropped meanwhile
		// must not free the object a second time.
		if e.rc.CompareAndSwap(w, withState(w, stateEvicted)) {
			size := e.more.size
			s.freeArena(e)
			e.more.evicted = true
			p.evictions.Add(1)
			p.evictedBytes.Add(size)
			p.evictedLive.Add(size)
			if idle(e.rc.And(^holdBit) &^ holdBit) {
				s.tryFree(e)
			}
			return size
		}
	}
}

// pickPrimaries holds (hold bit) unpinned primary objects, least recently used
// first, until their sizes reach want, and takes them out of the eviction order.
// If whole is set and fewer than want bytes can be had, it holds none.
func (s *Store) pickPrimaries(want int64, whole bool) []*entry {
	p := &s.pressure
	p.lru.Lock()
	defer p.lru.Unlock()
	if whole && p.lru.primary.Bytes() < want {
		return nil
	}
	return pickLocked(p.lru.primary, want)
}

// pickLocked walks lru from its least recently used end and holds objects that
// nothing pins until their sizes reach want: an object accessed since the walk
// last passed gets a second chance (its accessed bit cleared, moved to the most
// recently used end), a pinned one moves to that end too. Held objects leave the
// LRU. The caller holds the LRU lock.
func pickLocked(lru *eviction.LRU[*entry], want int64) []*entry {
	var picked []*entry
	var got int64
	for budget := 2 * lru.Len(); got < want && budget > 0; budget-- {
		e, size, ok := lru.Victim()
		if !ok {
			break
		}
		w := e.rc.Load()
		switch {
		case wordState(w) != stateSealed || w&holdBit != 0:
			lru.Remove(e) // not resident, or already held: not the LRU's
			continue
		case wordPins(w) != 0:
			lru.Touch(e)
			continue
		case w&accessedBit != 0:
			e.rc.CompareAndSwap(w, w&^accessedBit)
			lru.Touch(e)
			continue
		}
		if !e.rc.CompareAndSwap(w, w|holdBit) {
			continue // changed under us: look again on the next turn
		}
		lru.Remove(e)
		picked = append(picked, e)
		got += size
	}
	return picked
}

// dropResident moves a held object that is now on disk out of memory: sealed to
// spilled, memory freed, hold released. The hold is kept until the memory is
// freed, so that a Get that sees the object spilled waits for that before it
// restores (see restore). If a view pinned the object meanwhile it stays resident
// (and on disk: dropping it later costs no write) and this reports false.
func (s *Store) dropResident(e *entry) bool {
	for {
		w := e.rc.Load()
		if wordPins(w) != 0 {
			s.unhold(e)
			return false
		}
		if e.rc.CompareAndSwap(w, withState(w&^accessedBit, stateSpilled)) {
			break
		}
	}
	s.freeArena(e)
	s.pressure.spilledObjects.Add(1)
	s.pressure.spilledSize.Add(e.more.size)
	w := e.rc.And(^holdBit) &^ holdBit
	s.wakeWaiters(e)
	if idle(w) {
		s.tryFree(e)
	}
	return true
}

// wakeWaiters wakes the goroutines waiting on e: for its seal, or for a restore
// or a spill of it to finish.
func (s *Store) wakeWaiters(e *entry) {
	sh := s.shardFor(e)
	sh.mu.Lock()
	ws := e.more.waiters
	e.more.waiters = nil
	sh.mu.Unlock()
	for _, w := range ws {
		w.ready()
	}
}

// unhold releases the spiller's hold on a still-resident object and returns it to
// the eviction order (or frees it, if everything else let go meanwhile).
func (s *Store) unhold(e *entry) {
	w := e.rc.And(^holdBit) &^ holdBit
	if idle(w) {
		s.tryFree(e)
		return
	}
	if wordState(w) == stateSealed {
		s.track(e)
	}
}

// restore brings a spilled object back into memory for a Get. One goroutine
// restores; others wait for it. It returns nil once the object is no longer
// spilled (the caller pins it, or finds it spilled again and calls restore again).
func (s *Store) restore(ctx context.Context, e *entry) error {
	sh := s.shardFor(e)
	sh.mu.Lock()
	w := e.rc.Load()
	if wordState(w) != stateSpilled {
		sh.mu.Unlock()
		return nil
	}
	// Another Get is restoring it, or the spiller is still freeing its memory:
	// wait for them (both wake e's waiters when done), then look again.
	if e.more.restoring || w&holdBit != 0 {
		w := newWaiter(1)
		e.more.waiters = append(e.more.waiters, w)
		sh.mu.Unlock()
		return s.await(ctx, e, w)
	}
	if !e.addRef() { // the Get's handle was dropped under it
		sh.mu.Unlock()
		return trove.ErrObjectFreed
	}
	e.more.restoring = true
	sh.mu.Unlock()
	s.pressure.restoring.Add(1)
	err := s.readBack(ctx, e)
	s.pressure.restoring.Add(-1)
	sh.mu.Lock()
	e.more.restoring = false
	sh.mu.Unlock()
	s.wakeWaiters(e)
	s.decRef(e)
	return err
}

// readBack reads a spilled object into fresh memory and makes it resident again.
// The caller is the object's only restorer; the object stays on disk too.
func (s *Store) readBack(ctx context.Context, e *entry) error {
	s.writers.Add(1) // it writes into the arena: see maybeUnmap
	defer func() {
		s.writers.Add(-1)
		_ = s.maybeUnmap()
	}()
	if s.closed.Load() {
		return trove.ErrClosed
	}
	size := e.more.size
	off, err := s.allocateForRestore(ctx, size)
	var data []byte
	switch {
	case err == nil:
		data = s.arena.ReadOnly(off, size)
		if err = s.pressure.spiller.Restore(spill.ID(e.id), e.more.loc, s.arena.Writable(off, size)); err != nil {
			_ = s.alloc.Free(off)
			s.wakeRoom()
		}
	case s.cfg.Fallback == FallbackOn && errors.Is(err, errNoRoom):
		off = offFallback
		data, err = s.mapFallback(e)
	}
	if err != nil {
		return s.restoreError(e, err)
	}
	s.restored(e, off, data)
	return nil
}

// restoreError says what a failed restore of e met.
func (s *Store) restoreError(e *entry, err error) error {
	if errors.Is(err, spill.ErrCorrupt) {
		err = fmt.Errorf("restore %s from %s: %w: %w", e.id, s.pressure.spiller.Path(e.more.loc), trove.ErrSpillCorrupt, err)
	}
	return fmt.Errorf("restore %s: %w", e.id, err)
}

// restored makes e, whose bytes are now at data (offset off in the arena, or
// offFallback), resident again. The caller is its restorer.
func (s *Store) restored(e *entry, off int64, data []byte) {
	e.off, e.data = off, data
	for {
		w := e.rc.Load()
		if e.rc.CompareAndSwap(w, withState(w, stateSealed)) {
			break
		}
	}
	s.pressure.spilledObjects.Add(-1)
	s.pressure.spilledSize.Add(-e.more.size)
	s.track(e)
}

// restoreAll restores the spilled objects among es together, with one
// spill.RestoreMany, which reads them on the caller's goroutine and the idle
// spill workers at once (a GetAll of many spilled objects, which one at a time
// would be read and checksummed on one core). It claims each object as restore
// does, and takes only those that no other Get is restoring, that the spiller
// has finished freeing, and for which room can be found at once (evicting and
// spilling others if need be, never waiting for room): the rest are left to the
// caller's restore, one at a time, which waits where this does not. It returns
// one error per entry of es, nil where the object was restored or not taken.
func (s *Store) restoreAll(ctx context.Context, es []*entry) []error {
	errs := make([]error, len(es))
	sp := s.pressure.spiller
	if sp == nil {
		return errs
	}
	var claimed []int // indexes into es
	for i, e := range es {
		sh := s.shardFor(e)
		sh.mu.Lock()
		w := e.rc.Load()
		// A duplicate in es finds restoring already set, by this loop.
		if wordState(w) == stateSpilled && !e.more.restoring && w&holdBit == 0 && e.addRef() {
			e.more.restoring = true
			claimed = append(claimed, i)
		}
		sh.mu.Unlock()
	}
	if len(claimed) == 0 {
		return errs
	}
	s.pressure.restoring.Add(int64(len(claimed)))
	s.writers.Add(1) // it writes into the arena: see maybeUnmap
	offs := make([]int64, len(claimed))
	reqs := make([]spill.RestoreRequest, 0, len(claimed))
	for k, i := range claimed {
		e := es[i]
		off, ok := s.allocateNow(ctx, e.more.size)
		if !ok || s.closed.Load() {
			if ok {
				_ = s.alloc.Free(off)
				s.wakeRoom()
			}
			break
		}
		offs[k] = off
		reqs = append(reqs, spill.RestoreRequest{ID: spill.ID(e.id), Loc: e.more.loc, Dst: s.arena.Writable(off, e.more.size)})
	}
	if len(reqs) > 0 {
		for k, err := range sp.RestoreMany(reqs) {
			e := es[claimed[k]]
			if err != nil {
				_ = s.alloc.Free(offs[k])
				s.wakeRoom()
				errs[claimed[k]] = s.restoreError(e, err)
				continue
			}
			s.restored(e, offs[k], s.arena.ReadOnly(offs[k], e.more.size))
		}
	}
	s.writers.Add(-1)
	_ = s.maybeUnmap()
	s.pressure.restoring.Add(-int64(len(claimed)))
	for _, i := range claimed {
		e := es[i]
		sh := s.shardFor(e)
		sh.mu.Lock()
		e.more.restoring = false
		sh.mu.Unlock()
		s.wakeWaiters(e)
		s.decRef(e)
	}
	return errs
}

// allocateNow allocates size bytes of the arena for a restore if it can without
// waiting: at once, or after evicting and spilling others.
func (s *Store) allocateNow(ctx context.Context, size int64) (int64, bool) {
	if size > s.alloc.Capacity() {
		return 0, false
	}
	size = max(size, 1) // as allocate
	for {
		if off, ok := s.alloc.Alloc(size); ok {
			return off, s.prefault(off, size) == nil
		}
		if !s.reclaim(ctx, size) {
			return 0, false
		}
	}
}

// errNoRoom: the arena is full and nothing more can be evicted or spilled now.
var errNoRoom = errors.New("no room in the arena")

// allocateForRestore finds room for a restore: at once if it can (evicting and
// spilling others), else, with fallback allocation on, errNoRoom so that the
// caller maps the spill file instead; with it off, it waits like a creator.
func (s *Store) allocateForRestore(ctx context.Context, size int64) (int64, error) {
	if s.cfg.Fallback != FallbackOn {
		return s.allocate(ctx, size)
	}
	for {
		if off, ok := s.alloc.Alloc(size); ok {
			return off, s.prefault(off, size)
		}
		if s.reclaim(ctx, size) {
			continue
		}
		if s.pressure.inflight.Load() == 0 {
			return 0, errNoRoom // nothing can give way: fall back
		}
		// A spill under way will make room: wait for it.
		select {
		case <-s.roomChan():
		case <-time.After(reclaimRetry):
		case <-s.closing:
			return 0, trove.ErrClosed
		case <-ctx.Done():
			return 0, s.fullError(size, context.Cause(ctx))
		}
	}
}

// mapFallback maps the object's bytes straight from its spill file, read-only,
// as Ray's fallback allocation does when shared memory is full, after checking
// them against their checksum.
func (s *Store) mapFallback(e *entry) ([]byte, error) {
	sp := s.pressure.spiller
	path := sp.Path(e.more.loc)
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("fallback allocation: open %s: %w", path, err)
	}
	defer f.Close()
	// A mapping read past the end of its file faults (SIGBUS): check the length
	// first, so a truncated file is an error, not a crash.
	if fi, err := f.Stat(); err != nil || fi.Size() < e.more.loc.Offset+e.more.size {
		return nil, fmt.Errorf("fallback allocation: %s is shorter than object %s needs (%v): %w", path, e.id, err, trove.ErrSpillCorrupt)
	}
	page := int64(unix.Getpagesize())
	start := e.more.loc.Offset / page * page
	n := e.more.loc.Offset + e.more.size - start
	if e.more.size == 0 {
		return []byte{}, nil
	}
	m, err := unix.Mmap(int(f.Fd()), start, int(n), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("fallback allocation: map %s: %w", path, err)
	}
	data := m[e.more.loc.Offset-start:]
	if err := sp.Verify(spill.ID(e.id), e.more.loc, data); err != nil {
		unix.Munmap(m)
		return nil, err
	}
	e.more.mapping = m
	e.more.fallback.Store(true)
	s.pressure.fallbacks.Add(1)
	s.pressure.fallbackBytes.Add(e.more.size)
	return data, nil
}

func (s *Store) unmapFallback(e *entry) {
	if m := e.more.mapping; m != nil {
		e.more.mapping = nil
		e.more.fallback.Store(false)
		_ = unix.Munmap(m)
		s.pressure.fallbackBytes.Add(-e.more.size)
	}
}

// dropArenaObject releases everything a freed arena object holds: memory, its
// place in the eviction order, and its copy on disk.
func (s *Store) dropArenaObject(e *entry) {
	if e.resident() {
		s.untrack(e)
		s.freeArena(e)
	} else if e.more.spilled {
		// Only on disk: the spilled counters still count it.
		s.pressure.spilledObjects.Add(-1)
		s.pressure.spilledSize.Add(-e.more.size)
	} else if e.more.evicted {
		s.pressure.evictedLive.Add(-e.more.size)
	}
	if e.more.spilled {
		e.more.spilled = false
		// An error here means the file is already gone (Close removed it):
		// nothing references the object any more either way.
		_ = s.pressure.spiller.Delete(e.more.loc)
	}
}

// pressureStats fills the memory-pressure figures of st.
func (s *Store) pressureStats(st *Stats) {
	p := &s.pressure
	st.Evictions, st.EvictedBytes = p.evictions.Load(), p.evictedBytes.Load()
	st.SpilledObjects, st.SpilledBytes = p.spilledObjects.Load(), p.spilledSize.Load()
	st.FallbackAllocations, st.FallbackBytes = p.fallbacks.Load(), p.fallbackBytes.Load()
	st.InMemoryBytes = st.ObjectBytes - st.SpilledBytes - p.evictedLive.Load()
	if p.spiller != nil {
		ss := p.spiller.Stats()
		st.Spills, st.SpillBytesTotal, st.SpillTime = ss.SpilledObjects, ss.SpilledBytes, ss.SpillTime
		st.SpillFilesWritten = ss.Spills
		st.Restores, st.RestoreBytesTotal, st.RestoreTime = ss.Restores, ss.RestoredBytes, ss.RestoreTime
		st.SpillFiles, st.SpillDiskBytes = ss.FilesLive, ss.BytesOnDisk
		st.SpillThroughput = throughput(st.SpillBytesTotal, st.SpillTime)
		st.RestoreThroughput = throughput(st.RestoreBytesTotal, st.RestoreTime)
	}
}

// throughput returns bytes per second, or 0.
func throughput(bytes int64, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(bytes) / d.Seconds()
}

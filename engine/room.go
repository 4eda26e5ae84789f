package engine

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/trovedb/trove"
	"github.com/trovedb/trove/spill"
)

// allocate reserves size bytes of arena. When the arena is full it asks the
// memory-pressure hook for room, then waits for frees until ctx ends.
func (s *Store) allocate(ctx context.Context, size int64) (int64, error) {
	return s.allocateNoting(ctx, size, nil)
}

// allocateNoting is allocate that, if waiting is not nil, stores in it the
// bytes it waits for room for while it waits (0 again once it returns): a
// fetch's, so that a Get whose deadline passes meanwhile says the store was
// full rather than that the object is pending (awaitFetch).
func (s *Store) allocateNoting(ctx context.Context, size int64, waiting *atomic.Int64) (int64, error) {
	if size > s.alloc.Capacity() {
		return 0, fmt.Errorf("%s > capacity %s: %w", trove.HumanBytes(size), trove.HumanBytes(s.alloc.Capacity()), trove.ErrObjectTooLarge)
	}
	size = max(size, 1) // the allocator refuses 0 bytes; e.data keeps the asked length
	counted := false
	for {
		if off, ok := s.alloc.Alloc(size); ok {
			return off, s.prefault(off, size)
		}
		if s.reclaim(ctx, size) {
			continue
		}
		if !counted {
			s.fullWaits.Add(1)
			counted = true
			if waiting != nil {
				waiting.Store(size)
				defer waiting.Store(0)
			}
		}
		// Register before the final retry, so a free between the failed Alloc
		// and the wait cannot be missed.
		ch := s.roomChan()
		if off, ok := s.alloc.Alloc(size); ok {
			return off, s.prefault(off, size)
		}
		select {
		case <-ch:
		case <-s.closing:
			return 0, trove.ErrClosed
		case <-ctx.Done():
			return 0, s.fullError(size, context.Cause(ctx))
		case <-time.After(reclaimRetry):
			// Views released or the background spiller finished: try again to
			// spill what may have become spillable. Frees wake us sooner.
		}
	}
}

func (s *Store) prefault(off, size int64) error {
	if err := s.arena.Prefault(off + size); err != nil {
		_ = s.alloc.Free(off)
		return err
	}
	return nil
}

// roomChan returns a channel closed by the next free.
func (s *Store) roomChan() <-chan struct{} {
	s.room.Lock()
	defer s.room.Unlock()
	if s.room.ch == nil {
		s.room.ch = make(chan struct{})
	}
	s.room.waiting.Store(true)
	return s.room.ch
}

// wakeRoom wakes creators waiting for memory, if there are any.
func (s *Store) wakeRoom() {
	if !s.room.waiting.Load() {
		return
	}
	s.room.Lock()
	if s.room.ch != nil {
		close(s.room.ch)
		s.room.ch = nil
	}
	s.room.waiting.Store(false)
	s.room.Unlock()
}

// reclaimRetry is how often a creator waiting for room retries reclaiming, in
// case objects became spillable without freeing anything (a view released).
const reclaimRetry = 50 * time.Millisecond

func (s *Store) fullError(size int64, cause error) error {
	st := s.Stats()
	if perr := s.pressure.lastSpillErr.Load(); perr != nil && errors.Is(*perr, spill.ErrOutOfDisk) {
		return &trove.OutOfDiskError{
			Full: trove.StoreFullError{Requested: size, Capacity: st.Capacity, Used: st.Used,
				Pinned: st.PinnedBytes, PinnedObjects: st.PinnedObjects, LargestFree: st.LargestFree, Cause: cause},
			SpillDirs: s.cfg.SpillDirs,
			Spilled:   st.SpilledBytes,
			Err:       *perr,
		}
	}
	return &trove.StoreFullError{
		Requested:     size,
		Capacity:      st.Capacity,
		Used:          st.Used,
		Pinned:        st.PinnedBytes,
		PinnedObjects: st.PinnedObjects,
		LargestFree:   st.LargestFree,
		Cause:         cause,
	}
}

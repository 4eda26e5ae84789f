package engine

import (
	"fmt"
	"iter"
	"runtime"

	"github.com/trovedb/trove"
)

// This file is what a server of other processes (net/ipc) needs beyond the
// trove.Store method set: where a view's bytes are, so that another process can
// map them instead of receiving a copy; a Get that never blocks; and a listing of
// every object for `trove memory`.

// ArenaFD returns the file descriptor of the shared-memory arena (a sealed memfd
// of ArenaSize bytes). Another process that receives it (SCM_RIGHTS) and maps it
// reads every arena object at the offset Locate reports. The store owns the
// descriptor: do not close it.
func (s *Store) ArenaFD() int { return s.arena.FD() }

// ArenaSize returns the arena's size in bytes.
func (s *Store) ArenaSize() int64 { return s.arena.Size() }

// Place says where a view's bytes are.
type Place uint8

const (
	PlaceHeap  Place = iota // a small object in the store's Go heap: copy it to share it
	PlaceArena              // in the shared-memory arena, at Location.Offset
	PlaceFile               // restored by fallback: mapped from Location.Path at Location.Offset
)

func (p Place) String() string {
	return [...]string{"heap", "arena", "file"}[p]
}

// Location is where a view's bytes live.
type Location struct {
	Place  Place
	Offset int64  // in the arena (PlaceArena) or in the spill file (PlaceFile)
	Path   string // the spill file, for PlaceFile
}

// Locate returns where the bytes of o, an unreleased view from this store, live.
// They stay there until o is released: a pinned object is never moved.
func (s *Store) Locate(o *trove.Object) (Location, error) {
	h, ok := o.Hint(s)
	if !ok {
		return Location{}, fmt.Errorf("locate %s: not an unreleased view of this store: %w", o.ID(), trove.ErrInvalidRef)
	}
	e := h.(*entry)
	switch {
	case e.inline():
		return Location{Place: PlaceHeap}, nil
	case e.off >= 0:
		return Location{Place: PlaceArena, Offset: e.off}, nil
	case e.off == offFallback:
		return Location{Place: PlaceFile, Offset: e.more.loc.Offset, Path: s.pressure.spiller.Path(e.more.loc)}, nil
	default:
		return Location{}, fmt.Errorf("locate %s: a pinned object is not resident (engine bug)", e.id)
	}
}

// ArenaOffset returns the arena offset of the builder's bytes, or -1 if the object
// is small and kept in the Go heap (then another process must send its bytes). It
// is -1 after Seal or Abort.
func (b *Builder) ArenaOffset() int64 {
	if b.e == nil || b.e.inline() {
		return -1
	}
	return b.e.off
}

// TryGet is Get that never blocks: it returns a view if ref's object is sealed and
// in memory, and (nil, nil) if Get would have to wait for its creator or read it
// back from disk. Errors are Get's.
func (s *Store) TryGet(ref trove.Ref) (*trove.Object, error) {
	defer runtime.KeepAlive(ref)
	e, err := s.entryOf(ref)
	if err != nil {
		return nil, fmt.Errorf("get: %w", err)
	}
	return s.tryGet(e)
}

func (s *Store) tryGet(e *entry) (*trove.Object, error) {
	if s.closed.Load() {
		return nil, fmt.Errorf("get %s: %w", e.id, trove.ErrClosed)
	}
	st, err := s.pin(e)
	switch {
	case err != nil:
		return nil, err
	case st == stateSealed:
		return trove.NewObject(e.id, e.data, s, e), nil
	default:
		return nil, nil
	}
}

// Ready reports whether Get of ref would not wait for its creator or for a fetch
// (the object is sealed, spilled or failed), as Wait counts readiness.
func (s *Store) Ready(ref trove.Ref) (bool, error) {
	defer runtime.KeepAlive(ref)
	e, err := s.entryOf(ref)
	if err != nil {
		return false, err
	}
	st := wordState(e.rc.Load())
	return st.ready() && !s.absent(st), nil
}

// ObjectInfo describes one object, for listings such as `trove memory`.
type ObjectInfo struct {
	ID        trove.ObjectID
	Size      int64
	State     string // pending, sealed, spilled, evicted, aborted, remote (a foreign object with no copy here yet: Size 0, unknown)
	Where     string // heap (small, inline), memory (arena), spilled, mapped from disk, or "-" (no bytes)
	Refs      int    // references: handles, containing objects, open builders
	Pins      int    // unreleased views
	Captured  int    // objects (stored values) that contain this one, each holding one of Refs
	Secondary bool   // a copy of an object owned by another node
}

// Objects returns every live object, shard by shard. Each shard is read under its
// lock, so the listing is consistent per object, not across the store; it is
// meant for inspection, not for hot paths (it walks the whole table).
func (s *Store) Objects() iter.Seq[ObjectInfo] {
	return func(yield func(ObjectInfo) bool) {
		// Count containers first: an object's children are listed on it, not on them.
		captured := make(map[*entry]int)
		for i := range s.shards {
			sh := &s.shards[i]
			sh.mu.Lock()
			for _, e := range sh.mu.m {
				if e.more != nil {
					for _, c := range e.more.children {
						captured[c]++
					}
				}
			}
			sh.mu.Unlock()
		}
		var infos []ObjectInfo
		for i := range s.shards {
			sh := &s.shards[i]
			infos = infos[:0]
			sh.mu.Lock()
			for _, e := range sh.mu.m {
				infos = append(infos, s.describe(e, captured[e]))
			}
			sh.mu.Unlock()
			for _, info := range infos {
				if !yield(info) {
					return
				}
			}
		}
	}
}

// describe reports e, whose shard's lock the caller holds.
func (s *Store) describe(e *entry, captured int) ObjectInfo {
	w := e.rc.Load()
	st := wordState(w)
	inArena := e.more != nil && e.more.arena
	info := ObjectInfo{
		ID: e.id, State: st.String(),
		Refs: int(wordRefs(w)), Pins: int(wordPins(w)), Captured: captured,
	}
	if inArena {
		info.Size, info.Secondary = e.more.size, e.more.secondary
	} else {
		info.Size = int64(len(e.data))
	}
	// e.off is not read here: the spiller and restorers change it without the
	// shard's lock. The state and the fallback flag say enough.
	switch {
	case !inArena && st != stateAborted:
		info.Where = "heap"
	case st == stateSealed && e.more.fallback.Load():
		info.Where = "mapped from disk"
	case st == stateSealed || st == statePending:
		info.Where = "memory"
	case st == stateSpilled:
		info.Where = "spilled"
	default: // aborted, evicted, remote
		info.Where = "-"
	}
	return info
}

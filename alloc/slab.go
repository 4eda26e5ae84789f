package alloc

import (
	"fmt"
	"math/bits"
	"sync"
	"sync/atomic"
)

// span is a run of pages carved into equal slots of one size class.
type span struct {
	base   int64  // byte offset of slot 0 (first * PageSize)
	first  uint32 // first page
	pages  uint32
	class  uint8
	nslots int32
	nfree  int32
	hint   int32    // no free bit below word hint, so the lowest free slot is found first
	free   []uint64 // bit set: slot free; bits past nslots are always clear
	waste  []uint16 // per allocated slot: slot size minus the requested size

	prev, next *span // in the class's partial list, when listed
	listed     bool
}

func newSpan(first, pages uint32, class int) *span {
	size := classes[class].size
	nslots := int32(int64(pages) * PageSize / size)
	s := &span{
		base:   int64(first) * PageSize,
		first:  first,
		pages:  pages,
		class:  uint8(class),
		nslots: nslots,
		nfree:  nslots,
		free:   make([]uint64, (nslots+63)/64),
		waste:  make([]uint16, nslots),
	}
	for i := range s.free {
		s.free[i] = ^uint64(0)
	}
	if tail := nslots % 64; tail != 0 {
		s.free[len(s.free)-1] = 1<<tail - 1
	}
	return s
}

// take marks the lowest free slot allocated and returns its index. The span
// must have a free slot.
func (s *span) take() int32 {
	for i := s.hint; int(i) < len(s.free); i++ {
		if w := s.free[i]; w != 0 {
			b := int32(bits.TrailingZeros64(w))
			s.free[i] = w &^ (1 << b)
			s.hint = i
			s.nfree--
			return i*64 + b
		}
	}
	panic(fmt.Sprintf("alloc: span at %d (class %d B) has nfree=%d but no free bit", s.base, classes[s.class].size, s.nfree))
}

// spanList is a doubly linked list of spans, for O(1) insert and removal.
type spanList struct {
	head *span
	n    int
}

func (l *spanList) push(s *span) {
	s.prev, s.next, s.listed = nil, l.head, true
	if l.head != nil {
		l.head.prev = s
	}
	l.head = s
	l.n++
}

func (l *spanList) remove(s *span) {
	if s.prev != nil {
		s.prev.next = s.next
	} else {
		l.head = s.next
	}
	if s.next != nil {
		s.next.prev = s.prev
	}
	s.prev, s.next, s.listed = nil, nil, false
	l.n--
}

// sizeClass is one slab size class. Each has its own mutex, so allocations of
// different sizes never contend; the page heap's mutex is taken under it only
// to get or return a span.
type sizeClass struct {
	mu struct {
		sync.Mutex
		// partial holds the spans with both free and allocated slots; a
		// full span is on no list, found again through the page entries
		// when one of its slots is freed.
		partial spanList
		// empty is at most one span with every slot free, kept so that a
		// class freeing and allocating its last object does not go to
		// the page heap each time. Given back when memory is short
		// (reclaimEmptySpans).
		empty *span
	}

	// Written with mu held, read without by Stats and by reclaimEmptySpans.
	// Live slots are allocs-frees, so the hot path updates only two counters.
	allocs, frees atomic.Uint64
	requested     atomic.Int64  // bytes requested by live slots
	slots         atomic.Int64  // slots in all spans of the class
	spanPages     atomic.Int64  // pages in all spans of the class
	emptyRun      atomic.Uint64 // mu.empty as first<<32 | pages, or 0

	_ [64]byte // keep neighbouring classes' hot fields off each other's cache lines
}

func packRun(first, pages uint32) uint64 { return uint64(first)<<32 | uint64(pages) }

func unpackRun(v uint64) (first, pages uint32) { return uint32(v >> 32), uint32(v) }

// allocSlab serves size (<= MaxSlabSize) from its size class.
func (a *Allocator) allocSlab(size int64) (int64, bool) {
	ci := classIndex(size)
	c := &a.classes[ci]
	c.mu.Lock()
	s := c.mu.partial.head
	if s == nil {
		if s = a.refillLocked(c, ci); s == nil {
			c.mu.Unlock()
			return 0, false
		}
	}
	slot := s.take()
	if s.nfree == 0 {
		c.mu.partial.remove(s)
	}
	csize := classes[ci].size
	s.waste[slot] = uint16(csize - size)
	c.requested.Add(size)
	c.allocs.Add(1)
	off := s.base + int64(slot)*csize
	if invariantsEnabled {
		if slot >= s.nslots || s.nfree < 0 || off%Alignment != 0 || off+csize > s.base+int64(s.pages)*PageSize {
			panic(fmt.Sprintf("alloc: class %d B handed out slot %d at %d from span at %d (%d pages, %d slots, %d free)",
				csize, slot, off, s.base, s.pages, s.nslots, s.nfree))
		}
	}
	c.mu.Unlock()
	return off, true
}

// refillLocked finds the class a span with a free slot and puts it on the
// partial list: the cached empty span, else a new span from the page heap of
// the preferred length, else of the shortest length that holds one slot, else
// the same after reclaiming every class's cached empty span. Returns nil if
// memory is exhausted. Caller holds c.mu; it is released and re-acquired
// around reclaiming, so the caller must not rely on state read before.
func (a *Allocator) refillLocked(c *sizeClass, ci int) *span {
	for attempt := 0; ; attempt++ {
		if s := c.mu.partial.head; s != nil { // another goroutine refilled while we reclaimed
			return s
		}
		if s := c.mu.empty; s != nil {
			c.mu.empty = nil
			c.emptyRun.Store(0)
			a.emptySpans.Add(-1)
			c.mu.partial.push(s)
			return s
		}
		info := &classes[ci]
		s := a.newSpanLocked(c, ci, info.pages)
		if s == nil && info.minPages < info.pages {
			s = a.newSpanLocked(c, ci, info.minPages)
		}
		if s != nil {
			c.mu.partial.push(s)
			return s
		}
		if attempt > 0 || a.emptySpans.Load() == 0 {
			return nil
		}
		c.mu.Unlock()
		a.reclaimEmptySpans()
		c.mu.Lock()
	}
}

// newSpanLocked takes pages from the page heap and makes them a span of class
// ci. Caller holds c.mu (so no Free of this class can look at the new pages
// before the span is published).
func (a *Allocator) newSpanLocked(c *sizeClass, ci int, pages int64) *span {
	h := &a.heap
	h.mu.Lock()
	first, ok := h.allocRunLocked(uint32(pages))
	if !ok {
		h.mu.Unlock()
		return nil
	}
	e := spanEntry(first, ci)
	for p := first; p < first+uint32(pages); p++ {
		h.setEntry(p, e)
	}
	h.mu.Unlock()

	s := newSpan(first, uint32(pages), ci) // allocate outside the heap lock
	h.spans[first].Store(s)
	c.slots.Add(int64(s.nslots))
	c.spanPages.Add(pages)
	return s
}

// releaseSpanLocked gives an entirely free span, on no list, back to the page
// heap. Caller holds c.mu, not the heap's.
func (a *Allocator) releaseSpanLocked(c *sizeClass, s *span) {
	if invariantsEnabled && (s.nfree != s.nslots || s.listed) {
		panic(fmt.Sprintf("alloc: releasing span at %d with %d of %d slots free, listed=%v", s.base, s.nfree, s.nslots, s.listed))
	}
	h := &a.heap
	h.spans[s.first].Store(nil)
	c.slots.Add(-int64(s.nslots))
	c.spanPages.Add(-int64(s.pages))
	h.mu.Lock()
	h.freeRunLocked(s.first, s.pages, true)
	h.mu.Unlock()
}

// reclaimEmptySpans gives every class's cached empty span back to the page
// heap, so that their pages can coalesce into runs for large allocations or
// other classes. Called when the page heap cannot satisfy a request; takes
// each class's mu in turn, so the caller must hold none.
func (a *Allocator) reclaimEmptySpans() (n int) {
	for i := range a.classes {
		if a.emptySpans.Load() == 0 {
			break
		}
		c := &a.classes[i]
		if c.emptyRun.Load() == 0 {
			continue
		}
		c.mu.Lock()
		if s := c.mu.empty; s != nil {
			c.mu.empty = nil
			c.emptyRun.Store(0)
			a.emptySpans.Add(-1)
			a.releaseSpanLocked(c, s)
			n++
		}
		c.mu.Unlock()
	}
	return n
}

// slotLocked looks up off in span s of class c and frees the slot if free is
// set. It returns the slot size, or 0 and what is there instead. Caller holds
// c.mu.
func (a *Allocator) slotLocked(c *sizeClass, s *span, off int64, free bool) (int64, miss) {
	size := classes[s.class].size
	rel := off - s.base
	slot := rel / size
	if slot >= int64(s.nslots) {
		return 0, miss{what: missSpanTail, start: s.base, size: size}
	}
	if rel%size != 0 {
		return 0, miss{what: missInsideSlot, start: s.base + slot*size, size: size}
	}
	w, bit := slot/64, uint64(1)<<(slot%64)
	if s.free[w]&bit != 0 {
		return 0, miss{what: missFreeSlot, start: off, size: size}
	}
	if !free {
		return size, miss{}
	}
	s.free[w] |= bit
	if int32(w) < s.hint {
		s.hint = int32(w)
	}
	s.nfree++
	c.requested.Add(-(size - int64(s.waste[slot])))
	c.frees.Add(1)
	if invariantsEnabled && s.nfree > s.nslots {
		panic(fmt.Sprintf("alloc: span at %d has %d free of %d slots", s.base, s.nfree, s.nslots))
	}
	switch {
	case s.nfree == s.nslots: // now empty: cache it, or give it back
		if s.listed {
			c.mu.partial.remove(s)
		}
		switch old := c.mu.empty; {
		case old == nil:
			c.mu.empty = s
			c.emptyRun.Store(packRun(s.first, s.pages))
			a.emptySpans.Add(1)
		case s.base < old.base: // keep the lower one: low memory is warm
			c.mu.empty = s
			c.emptyRun.Store(packRun(s.first, s.pages))
			a.releaseSpanLocked(c, old)
		default:
			a.releaseSpanLocked(c, s)
		}
	case s.nfree == 1: // was full
		c.mu.partial.push(s)
	}
	return size, miss{}
}

package alloc

import (
	"fmt"
	"sync/atomic"
)

const (
	// Alignment is the alignment of every offset Alloc returns: a cache line,
	// so that objects never share one and typed views over them are aligned.
	Alignment = 64
	// PageSize is the granularity of the page heap: large allocations and
	// slab spans are runs of whole pages.
	PageSize = 64 << 10
)

// Allocator hands out offsets in [0, Capacity()). It is safe for concurrent
// use. The zero value is not usable; call New.
type Allocator struct {
	capacity int64 // immutable
	heap     pageHeap
	classes  [numClasses]sizeClass

	// emptySpans counts the classes holding a cached empty span. Written
	// with that class's mu held, read without to skip reclaiming when there
	// is nothing to reclaim.
	emptySpans atomic.Int32
}

// New returns an allocator over [0, capacity). capacity is rounded down to a
// multiple of PageSize; it must be at least PageSize and at most 2^32-1 pages.
// The allocator's own metadata, on the Go heap, is 16 bytes per page plus,
// for slab spans, about 2 bytes per slot.
func New(capacity int64) (*Allocator, error) {
	if capacity < PageSize {
		return nil, fmt.Errorf("alloc: capacity %d B is below one page (%d B); give the arena at least %d B", capacity, PageSize, PageSize)
	}
	npages := capacity / PageSize
	if npages > maxPages {
		return nil, fmt.Errorf("alloc: capacity %d B is %d pages, above the limit of %d pages (%d B)", capacity, npages, int64(maxPages), int64(maxPages)*PageSize)
	}
	a := &Allocator{capacity: npages * PageSize}
	a.heap.init(uint32(npages))
	return a, nil
}

// Capacity returns the number of bytes managed: New's capacity rounded down to
// PageSize.
func (a *Allocator) Capacity() int64 { return a.capacity }

// Alloc reserves at least size bytes and returns the offset of the first,
// a multiple of Alignment. Usable(off) tells how many bytes were reserved.
// ok is false if size <= 0, size > Capacity(), or no free space can satisfy
// the request right now; the allocator never waits, so the caller decides
// whether to evict and retry.
//
// Sizes up to MaxSlabSize come from per-size-class slabs and take only that
// class's lock (plus the page heap's when the class needs a new span); larger
// sizes take the page heap's lock.
func (a *Allocator) Alloc(size int64) (off int64, ok bool) {
	if size <= 0 || size > a.capacity {
		return 0, false
	}
	if size <= MaxSlabSize {
		return a.allocSlab(size)
	}
	if off, ok = a.heap.allocLarge(size); !ok && a.reclaimEmptySpans() > 0 {
		off, ok = a.heap.allocLarge(size)
	}
	return off, ok
}

// Free gives back the allocation that starts at off. If off is not the start
// of a live allocation (a double free, an offset inside an allocation, a
// garbage value), Free changes nothing and returns an error wrapping
// ErrOutOfRange or ErrNotAllocated.
func (a *Allocator) Free(off int64) error {
	if off < 0 || off >= a.capacity {
		return fmt.Errorf("alloc: free %d: %w [0, %d)", off, ErrOutOfRange, a.capacity)
	}
	if _, m := a.visit(off, true); m.what != missNone {
		return fmt.Errorf("alloc: free %d: %w: %s", off, ErrNotAllocated, m)
	}
	return nil
}

// Usable returns the number of bytes reserved at off: the size class's slot
// size for sizes up to MaxSlabSize, the size rounded up to PageSize above.
// It returns 0 if off is not the start of a live allocation.
func (a *Allocator) Usable(off int64) int64 {
	if off < 0 || off >= a.capacity {
		return 0
	}
	n, _ := a.visit(off, false)
	return n
}

// visit finds the live allocation starting at off, 0 <= off < capacity,
// frees it if free is set, and returns its reserved size. If there is none, it
// returns 0 and what it found instead.
//
// The page's entry says which lock guards it: a span page its class's mu,
// any other page the page heap's. The entry is read once without a lock to
// choose, and again under the lock, since a span may have been created or
// released in between; on a mismatch, start over.
func (a *Allocator) visit(off int64, free bool) (int64, miss) {
	if off%Alignment != 0 {
		return 0, miss{what: missMisaligned}
	}
	h := &a.heap
	p := uint32(off / PageSize)
	for {
		e := h.entry(p)
		if e.kind() == kindSpan {
			c := &a.classes[e.class()]
			c.mu.Lock()
			if h.entry(p) != e {
				c.mu.Unlock()
				continue
			}
			n, m := a.slotLocked(c, h.spans[e.first()].Load(), off, free)
			c.mu.Unlock()
			return n, m
		}
		h.mu.Lock()
		if e = h.entry(p); e.kind() == kindSpan {
			h.mu.Unlock()
			continue
		}
		n, m := h.largeLocked(p, off, e, free)
		h.mu.Unlock()
		return n, m
	}
}

// miss says why an offset is not the start of a live allocation.
type miss struct {
	what  missKind
	start int64 // the enclosing slot, allocation or span, when known
	size  int64 // its size
}

type missKind uint8

const (
	missNone missKind = iota
	missMisaligned
	missFreePages
	missInsideRun
	missInsideLarge
	missSpanTail
	missInsideSlot
	missFreeSlot
)

func (m miss) String() string {
	switch m.what {
	case missMisaligned:
		return fmt.Sprintf("not a multiple of %d, so never returned by Alloc", Alignment)
	case missFreePages:
		return "its page is free (double free?)"
	case missInsideRun:
		return "inside a run of pages, not at its start (double free, or an offset into an allocation?)"
	case missInsideLarge:
		return fmt.Sprintf("inside the %d-byte allocation at %d, not at its start", m.size, m.start)
	case missSpanTail:
		return fmt.Sprintf("in the unused tail of the slab span of %d-byte slots at %d", m.size, m.start)
	case missInsideSlot:
		return fmt.Sprintf("inside the %d-byte slot at %d, not at its start", m.size, m.start)
	case missFreeSlot:
		return fmt.Sprintf("the %d-byte slot there is free (double free?)", m.size)
	}
	return "live"
}

package alloc

import (
	"cmp"
	"slices"
)

// Stats describes the allocator's memory. Reserved sizes are the rounded sizes
// that Usable reports.
type Stats struct {
	Capacity  int64 // bytes managed
	Used      int64 // bytes reserved by live allocations (rounded sizes)
	Requested int64 // bytes asked for by live allocations
	Free      int64 // Capacity - Used; includes free slots in slabs, which only their class can use
	// LargestFree is the largest single allocation that would succeed
	// right now: the longest run of free pages (counting the empty spans
	// slab classes keep cached, which Alloc reclaims when it needs them),
	// or the largest size class with a free slot.
	LargestFree int64
	// Fragmentation is external fragmentation of the page heap:
	// 1 - LargestFreeRun/FreeInPageRuns, 0 when no page is free. Free
	// slots inside slab spans are not counted (see SlabFree).
	Fragmentation float64
	SlabBytes     int64  // bytes in pages currently given to slab size classes
	SlabFree      int64  // free slot bytes inside those slabs
	Allocs, Frees uint64 // counts since New
}

// Used returns Stats().Used without taking any lock: the bytes reserved by live
// allocations. The engine reads it after every large Put, to decide whether to
// spill in the background.
func (a *Allocator) Used() int64 {
	var used int64
	for i := range a.classes {
		c := &a.classes[i]
		frees := c.frees.Load() // before allocs, so live never looks negative
		used += int64(c.allocs.Load()-frees) * classes[i].size
	}
	return used + a.heap.largeUsed.Load()
}

// Stats returns the allocator's statistics. It reads per-class counters
// without stopping other goroutines, so while they allocate the fields may
// disagree by a few allocations; when none runs, the numbers are exact. It
// takes the page heap's lock briefly.
func (a *Allocator) Stats() Stats {
	st := Stats{Capacity: a.capacity}
	var largestSlot int64
	for i := range a.classes {
		c := &a.classes[i]
		size := classes[i].size
		frees := c.frees.Load() // before allocs, so live never looks negative
		allocs := c.allocs.Load()
		live := int64(allocs - frees)
		st.Allocs += allocs
		st.Frees += frees
		st.Used += live * size
		st.Requested += c.requested.Load()
		st.SlabBytes += c.spanPages.Load() * PageSize
		if free := c.slots.Load() - live; free > 0 {
			st.SlabFree += free * size
			largestSlot = size // classes ascend
		}
	}
	h := &a.heap
	frees := h.largeFrees.Load()
	st.Allocs += h.largeAllocs.Load()
	st.Frees += frees
	st.Used += h.largeUsed.Load()
	st.Requested += h.largeRequests.Load()
	st.Free = st.Capacity - st.Used

	h.mu.Lock()
	largest, freePages := a.largestRunLocked()
	h.mu.Unlock()
	st.LargestFree = max(int64(largest)*PageSize, largestSlot)
	if freePages > 0 {
		st.Fragmentation = 1 - float64(largest)/float64(freePages)
	}
	return st
}

// largestRunLocked returns the longest run of pages that is free or would be
// once every cached empty span is reclaimed, and the number of such pages.
// Caller holds a.heap.mu.
func (a *Allocator) largestRunLocked() (largest uint32, freePages int64) {
	h := &a.heap
	if r, ok := h.mu.free.Max(); ok {
		largest = r.pages
	}
	freePages = h.mu.freePages
	if a.emptySpans.Load() == 0 {
		return largest, freePages
	}
	// Each empty span, widened by the free runs on either side; the
	// widened intervals of two spans overlap or touch when only free pages
	// lie between them.
	var buf [numClasses][2]uint32 // [lo, hi) in pages
	ivs := buf[:0]
	for i := range a.classes {
		v := a.classes[i].emptyRun.Load()
		if v == 0 {
			continue
		}
		lo, n := unpackRun(v)
		hi := lo + n
		freePages += int64(n)
		if lo > 0 {
			if e := h.entry(lo - 1); e.kind() == kindFree {
				lo = e.other()
			}
		}
		if hi < h.npages {
			if e := h.entry(hi); e.kind() == kindFree {
				hi = e.other() + 1
			}
		}
		ivs = append(ivs, [2]uint32{lo, hi})
	}
	slices.SortFunc(ivs, func(x, y [2]uint32) int { return cmp.Compare(x[0], y[0]) })
	for i := 0; i < len(ivs); {
		lo, hi := ivs[i][0], ivs[i][1]
		for i++; i < len(ivs) && ivs[i][0] <= hi; i++ {
			hi = max(hi, ivs[i][1])
		}
		largest = max(largest, hi-lo)
	}
	return largest, freePages
}

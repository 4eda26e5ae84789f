package alloc

import (
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/google/btree"
)

// pageEntry describes one page of the arena. Runs of pages — free, a large
// allocation, or a slab span — tile the arena without gaps.
//
//	bits 62-63  kind
//	kindFree, kindLarge (only on a run's first and last page):
//	  bits 0-31   the page at the other end of the run (itself for a one-page run)
//	  bits 32-47  on a large run's first page: bytes rounded up but not requested
//	kindSpan (on every page of a span, so any slot's page finds its span):
//	  bits 0-31   the span's first page
//	  bits 32-39  the span's size class
//	kindInterior (zero): a page strictly inside a free or large run.
//
// Only the two ends of a free or large run are written when runs split or
// merge, which keeps allocation and coalescing O(log n) whatever the length.
type pageEntry uint64

const (
	kindInterior = 0
	kindFree     = 1
	kindLarge    = 2
	kindSpan     = 3
)

func runEntry(kind uint64, other uint32, waste int64) pageEntry {
	return pageEntry(kind<<62 | uint64(waste)<<32 | uint64(other))
}

func spanEntry(first uint32, class int) pageEntry {
	return pageEntry(kindSpan<<62 | uint64(class)<<32 | uint64(first))
}

func (e pageEntry) kind() uint64  { return uint64(e) >> 62 }
func (e pageEntry) other() uint32 { return uint32(e) }
func (e pageEntry) first() uint32 { return uint32(e) }
func (e pageEntry) waste() int64  { return int64(uint64(e) >> 32 & 0xffff) }
func (e pageEntry) class() int    { return int(uint64(e) >> 32 & 0xff) }
func (e pageEntry) kindName() string {
	return [...]string{"interior", "free", "large", "span"}[e.kind()]
}

// maxPages bounds the arena so that a page index fits in an entry's 32 bits.
const maxPages = 1<<32 - 1

// run is a free run of pages in the best-fit index. Ordered by (pages, start):
// the first run not below {n, 0} is the smallest that fits n pages and, among
// runs of that length, the lowest in the arena.
type run struct {
	pages uint32
	start uint32
}

func runLess(a, b run) bool {
	if a.pages != b.pages {
		return a.pages < b.pages
	}
	return a.start < b.start
}

// pageHeap hands out runs of whole pages: to large allocations directly and to
// size classes as spans.
//
// Lock order: a size class's mu, then pageHeap.mu; never the reverse, and never
// two class mutexes at once (except Check, which takes them all in index order
// before pageHeap.mu).
type pageHeap struct {
	npages uint32 // immutable

	// entries has one pageEntry per page. Written with mu held; entries of a
	// span's pages are, in addition, only changed with the span's class mu
	// held. Free and Usable read an entry without a lock only to learn which
	// mutex to take, and read it again under that mutex.
	entries []atomic.Uint64

	// spans maps a span's first page to the span (nil on every other page).
	// Written and read with the span's class mu held; atomic because the
	// same slot may later belong to a span of another class.
	spans []atomic.Pointer[span]

	mu struct {
		sync.Mutex
		free      *btree.BTreeG[run] // every free run, for best fit
		freePages int64              // pages in free runs
	}

	// Written with mu held, read without by Stats.
	largeAllocs, largeFrees  atomic.Uint64
	largeUsed, largeRequests atomic.Int64 // bytes: rounded, requested
}

func (h *pageHeap) init(npages uint32) {
	h.npages = npages
	h.entries = make([]atomic.Uint64, npages)
	h.spans = make([]atomic.Pointer[span], npages)
	// Degree 16 keeps nodes within a few cache lines; the tree's free list
	// recycles nodes, so steady-state splits and merges allocate nothing.
	h.mu.free = btree.NewG(16, runLess)
	h.mu.Lock()
	h.setRunLocked(kindFree, 0, npages, 0)
	h.mu.free.ReplaceOrInsert(run{pages: npages, start: 0})
	h.mu.freePages = int64(npages)
	h.mu.Unlock()
}

func (h *pageHeap) entry(p uint32) pageEntry { return pageEntry(h.entries[p].Load()) }

func (h *pageHeap) setEntry(p uint32, e pageEntry) { h.entries[p].Store(uint64(e)) }

// setRunLocked writes the end entries of the run [start, start+n).
func (h *pageHeap) setRunLocked(kind uint64, start, n uint32, waste int64) {
	last := start + n - 1
	h.setEntry(start, runEntry(kind, last, waste))
	if last != start {
		h.setEntry(last, runEntry(kind, start, 0))
	}
}

// allocRunLocked takes n pages from the smallest free run that holds them,
// the lowest such run among equals, and from that run's low end: low memory is
// reused first, because the arena is pre-faulted from the bottom up. The
// caller writes the entries of the pages it got. Caller holds h.mu.
func (h *pageHeap) allocRunLocked(n uint32) (start uint32, ok bool) {
	var found run
	h.mu.free.AscendGreaterOrEqual(run{pages: n}, func(r run) bool {
		found, ok = r, true
		return false
	})
	if !ok {
		return 0, false
	}
	h.mu.free.Delete(found)
	if invariantsEnabled {
		if e := h.entry(found.start); e != runEntry(kindFree, found.start+found.pages-1, 0) {
			panic(fmt.Sprintf("alloc: free run %+v indexed but its first page says %s->%d", found, e.kindName(), e.other()))
		}
	}
	if rest := found.pages - n; rest > 0 {
		h.setRunLocked(kindFree, found.start+n, rest, 0)
		h.mu.free.ReplaceOrInsert(run{pages: rest, start: found.start + n})
	}
	// The run's first page keeps a stale entry until the caller overwrites
	// it; its last page is either the remainder's last page or the caller's.
	h.mu.freePages -= int64(n)
	return found.start, true
}

// freeRunLocked returns [start, start+n) to the free runs, merged with free
// neighbours. If wholeRun, every entry in the range is cleared first (a span
// marks all its pages); otherwise only its two ends are (a large run). Caller
// holds h.mu.
func (h *pageHeap) freeRunLocked(start, n uint32, wholeRun bool) {
	last := start + n - 1
	if wholeRun {
		for p := start; p <= last; p++ {
			h.setEntry(p, 0)
		}
	} else {
		h.setEntry(start, 0)
		h.setEntry(last, 0)
	}
	lo, hi := start, last // inclusive
	if lo > 0 {
		if e := h.entry(lo - 1); e.kind() == kindFree {
			l := e.other() // lo-1 ends the run on our left; other is its first page
			if invariantsEnabled && l > lo-1 {
				panic(fmt.Sprintf("alloc: page %d ends a free run but points forward to %d", lo-1, l))
			}
			h.mu.free.Delete(run{pages: lo - l, start: l})
			h.setEntry(lo-1, 0)
			lo = l
		}
	}
	if hi+1 < h.npages {
		if e := h.entry(hi + 1); e.kind() == kindFree {
			r := e.other() // hi+1 starts the run on our right; other is its last page
			if invariantsEnabled && r < hi+1 {
				panic(fmt.Sprintf("alloc: page %d starts a free run but points back to %d", hi+1, r))
			}
			h.mu.free.Delete(run{pages: r - hi, start: hi + 1})
			h.setEntry(hi+1, 0)
			hi = r
		}
	}
	h.setRunLocked(kindFree, lo, hi-lo+1, 0)
	h.mu.free.ReplaceOrInsert(run{pages: hi - lo + 1, start: lo})
	h.mu.freePages += int64(n)
}

// allocLarge reserves whole pages for size bytes (> MaxSlabSize).
func (h *pageHeap) allocLarge(size int64) (int64, bool) {
	n := uint32((size + PageSize - 1) / PageSize)
	rounded := int64(n) * PageSize
	h.mu.Lock()
	start, ok := h.allocRunLocked(n)
	if !ok {
		h.mu.Unlock()
		return 0, false
	}
	h.setRunLocked(kindLarge, start, n, rounded-size)
	h.largeUsed.Add(rounded)
	h.largeRequests.Add(size)
	h.largeAllocs.Add(1)
	h.mu.Unlock()
	return int64(start) * PageSize, true
}

// largeLocked looks up off, whose page p has entry e (not a span), as a large
// allocation, and frees it if free is set. It returns the allocation's rounded
// size, or 0 and what is there instead. Caller holds h.mu.
func (h *pageHeap) largeLocked(p uint32, off int64, e pageEntry, free bool) (int64, miss) {
	switch e.kind() {
	case kindFree:
		return 0, miss{what: missFreePages}
	case kindInterior:
		return 0, miss{what: missInsideRun}
	}
	// kindLarge
	if e.other() < p {
		first := int64(e.other())
		return 0, miss{what: missInsideLarge, start: first * PageSize, size: (int64(p) - first + 1) * PageSize}
	}
	n := e.other() - p + 1
	rounded := int64(n) * PageSize
	if off%PageSize != 0 {
		return 0, miss{what: missInsideLarge, start: int64(p) * PageSize, size: rounded}
	}
	if free {
		h.largeUsed.Add(-rounded)
		h.largeRequests.Add(-(rounded - e.waste()))
		h.largeFrees.Add(1)
		h.freeRunLocked(p, n, false)
	}
	return rounded, miss{}
}

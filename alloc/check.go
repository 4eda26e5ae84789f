package alloc

import (
	"errors"
	"fmt"
	"math/bits"
)

// Check verifies every internal invariant and returns an error describing the
// first violation, or nil:
//   - runs of pages (free, large, span) tile the arena; a free or large run's
//     two end entries point at each other and its interior entries are zero;
//     every page of a span names the span;
//   - free runs are coalesced (no two adjacent) and are exactly those in the
//     best-fit index; the free page count matches;
//   - every span's bitmap agrees with its free count, and a class's partial
//     list holds exactly its spans with both free and used slots, its cached
//     empty span is the only empty one;
//   - the counters Stats reads agree with what the walk finds, and
//     Used+Free == Capacity.
//
// It stops every allocation while it walks all pages and slots: for tests.
func (a *Allocator) Check() error {
	for i := range a.classes {
		a.classes[i].mu.Lock()
	}
	a.heap.mu.Lock()
	err := a.checkLocked()
	a.heap.mu.Unlock()
	for i := range a.classes {
		a.classes[i].mu.Unlock()
	}
	if err != nil {
		return fmt.Errorf("alloc: check: %w", err)
	}
	return nil
}

// classTally is what Check finds for one size class.
type classTally struct {
	spans, partial, empty int
	slots, live, pages    int64
	requested             int64
}

// checkLocked is Check with every lock held.
func (a *Allocator) checkLocked() error {
	h := &a.heap
	var (
		tally                       [numClasses]classTally
		seen                        = map[*span]bool{}
		freePages, freeRuns         int64
		largePages, largeRequests   int64
		largeLive                   int64
		prevFree                    bool
		spanPagesTotal, usedInSlabs int64
	)
	for p := uint32(0); p < h.npages; {
		e := h.entry(p)
		switch e.kind() {
		case kindInterior:
			return fmt.Errorf("page %d: a run should start here, found an interior entry", p)
		case kindFree, kindLarge:
			q := e.other()
			if q < p || q >= h.npages {
				return fmt.Errorf("page %d: starts a %s run that ends at page %d (of %d)", p, e.kindName(), q, h.npages)
			}
			if q > p {
				if eq := h.entry(q); eq != runEntry(e.kind(), p, 0) {
					return fmt.Errorf("page %d: %s run [%d, %d] ends in entry %s->%d, waste %d", p, e.kindName(), p, q, eq.kindName(), eq.other(), eq.waste())
				}
			}
			for i := p + 1; i < q; i++ {
				if h.entry(i) != 0 {
					return fmt.Errorf("page %d: inside %s run [%d, %d] but entry is %s", i, e.kindName(), p, q, h.entry(i).kindName())
				}
			}
			n := int64(q - p + 1)
			if e.kind() == kindFree {
				if prevFree {
					return fmt.Errorf("page %d: free run follows another free run: not coalesced", p)
				}
				if e.waste() != 0 {
					return fmt.Errorf("page %d: free run records waste %d", p, e.waste())
				}
				if !h.mu.free.Has(run{pages: uint32(n), start: p}) {
					return fmt.Errorf("free run [%d, %d] missing from the best-fit index", p, q)
				}
				freePages += n
				freeRuns++
			} else {
				if req := n*PageSize - e.waste(); req <= MaxSlabSize {
					return fmt.Errorf("page %d: large run of %d pages holds %d requested bytes, which a slab class serves", p, n, req)
				}
				largePages += n
				largeRequests += n*PageSize - e.waste()
				largeLive++
			}
			prevFree = e.kind() == kindFree
			p = q + 1
			continue
		}
		// kindSpan
		s := h.spans[p].Load()
		switch {
		case e.first() != p:
			return fmt.Errorf("page %d: a run should start here, found a page of the span at page %d", p, e.first())
		case e.class() >= numClasses:
			return fmt.Errorf("page %d: span entry names class %d of %d", p, e.class(), numClasses)
		case s == nil:
			return fmt.Errorf("page %d: span entry but no span registered", p)
		case s.first != p || int(s.class) != e.class() || s.pages == 0 || int64(p)+int64(s.pages) > int64(h.npages):
			return fmt.Errorf("page %d: entry says class %d, span says first %d, class %d, %d pages", p, e.class(), s.first, s.class, s.pages)
		}
		for i := p + 1; i < p+s.pages; i++ {
			if h.entry(i) != e {
				return fmt.Errorf("page %d: inside the span at page %d but entry is %s", i, p, h.entry(i).kindName())
			}
			if h.spans[i].Load() != nil {
				return fmt.Errorf("page %d: inside the span at page %d but a span is registered there", i, p)
			}
		}
		if err := s.check(); err != nil {
			return fmt.Errorf("span at page %d (class %d B): %w", p, classes[s.class].size, err)
		}
		seen[s] = true
		t := &tally[s.class]
		t.spans++
		t.slots += int64(s.nslots)
		t.live += int64(s.nslots - s.nfree)
		t.pages += int64(s.pages)
		size := classes[s.class].size
		s.forUsed(func(i int32) { t.requested += size - int64(s.waste[i]) })
		switch {
		case s.nfree == s.nslots:
			t.empty++
		case s.nfree > 0:
			t.partial++
		}
		spanPagesTotal += int64(s.pages)
		usedInSlabs += int64(s.nslots-s.nfree) * size
		prevFree = false
		p += s.pages
	}
	for p := range h.spans {
		if s := h.spans[p].Load(); s != nil && !seen[s] {
			return fmt.Errorf("page %d: span registered but the page entries do not lead to it", p)
		}
	}
	if n := int64(h.mu.free.Len()); n != freeRuns {
		return fmt.Errorf("best-fit index holds %d runs, the pages hold %d", n, freeRuns)
	}
	if freePages != h.mu.freePages {
		return fmt.Errorf("%d free pages counted, %d found", h.mu.freePages, freePages)
	}
	if total := freePages + largePages + spanPagesTotal; total != int64(h.npages) {
		return fmt.Errorf("free %d + large %d + span %d pages = %d, want %d", freePages, largePages, spanPagesTotal, total, h.npages)
	}
	if live := int64(h.largeAllocs.Load() - h.largeFrees.Load()); live != largeLive {
		return fmt.Errorf("large allocs-frees = %d, %d live large runs found", live, largeLive)
	}
	if used := h.largeUsed.Load(); used != largePages*PageSize {
		return fmt.Errorf("large used counter %d, runs hold %d", used, largePages*PageSize)
	}
	if req := h.largeRequests.Load(); req != largeRequests {
		return fmt.Errorf("large requested counter %d, runs record %d", req, largeRequests)
	}

	var empties int32
	for ci := range a.classes {
		if err := a.checkClassLocked(ci, &tally[ci], seen); err != nil {
			return fmt.Errorf("class %d B: %w", classes[ci].size, err)
		}
		if a.classes[ci].mu.empty != nil {
			empties++
		}
	}
	if n := a.emptySpans.Load(); n != empties {
		return fmt.Errorf("emptySpans counter %d, %d classes hold an empty span", n, empties)
	}
	used := largePages*PageSize + usedInSlabs
	if free := a.capacity - used; used < 0 || free < 0 || used+free != a.capacity {
		return fmt.Errorf("used %d + free %d != capacity %d", used, free, a.capacity)
	}
	return nil
}

// checkClassLocked checks class ci's lists and counters against t, what the
// page walk found. Caller holds every lock.
func (a *Allocator) checkClassLocked(ci int, t *classTally, seen map[*span]bool) error {
	c := &a.classes[ci]
	n := 0
	var prev *span
	for s := c.mu.partial.head; s != nil; prev, s = s, s.next {
		if n++; n > t.spans {
			return errors.New("partial list longer than the class's span count (cycle?)")
		}
		switch {
		case !seen[s]:
			return fmt.Errorf("partial list holds a span at %d not in the page table", s.base)
		case int(s.class) != ci:
			return fmt.Errorf("partial list holds the span at %d of class %d B", s.base, classes[s.class].size)
		case s.nfree == 0 || s.nfree == s.nslots:
			return fmt.Errorf("partial list holds the span at %d with %d of %d slots free", s.base, s.nfree, s.nslots)
		case !s.listed || s.prev != prev:
			return fmt.Errorf("span at %d: listed=%v, back link broken", s.base, s.listed)
		}
	}
	if n != t.partial || n != c.mu.partial.n {
		return fmt.Errorf("%d spans partly free, %d on the partial list, list counts %d", t.partial, n, c.mu.partial.n)
	}
	if s := c.mu.empty; s != nil {
		switch {
		case !seen[s] || int(s.class) != ci:
			return fmt.Errorf("cached empty span at %d is not a span of this class", s.base)
		case s.nfree != s.nslots || s.listed:
			return fmt.Errorf("cached empty span at %d has %d of %d slots free, listed=%v", s.base, s.nfree, s.nslots, s.listed)
		case c.emptyRun.Load() != packRun(s.first, s.pages):
			return fmt.Errorf("emptyRun %#x does not describe the cached span at page %d", c.emptyRun.Load(), s.first)
		case t.empty != 1:
			return fmt.Errorf("%d empty spans, want only the cached one", t.empty)
		}
	} else if t.empty != 0 || c.emptyRun.Load() != 0 {
		return fmt.Errorf("%d empty spans and emptyRun %#x, but none cached", t.empty, c.emptyRun.Load())
	}
	if live := int64(c.allocs.Load() - c.frees.Load()); live != t.live {
		return fmt.Errorf("allocs-frees = %d, %d slots in use", live, t.live)
	}
	if got := c.requested.Load(); got != t.requested {
		return fmt.Errorf("requested counter %d, slots record %d", got, t.requested)
	}
	if got := c.slots.Load(); got != t.slots {
		return fmt.Errorf("slots counter %d, spans hold %d", got, t.slots)
	}
	if got := c.spanPages.Load(); got != t.pages {
		return fmt.Errorf("spanPages counter %d, spans hold %d", got, t.pages)
	}
	return nil
}

// check verifies one span's bitmap, free count, hint and sizing.
func (s *span) check() error {
	size := classes[s.class].size
	if want := int32(int64(s.pages) * PageSize / size); s.nslots != want {
		return fmt.Errorf("%d slots in %d pages, want %d", s.nslots, s.pages, want)
	}
	if s.base != int64(s.first)*PageSize {
		return fmt.Errorf("base %d for first page %d", s.base, s.first)
	}
	if len(s.free) != int(s.nslots+63)/64 || len(s.waste) != int(s.nslots) {
		return fmt.Errorf("bitmap of %d words and %d waste entries for %d slots", len(s.free), len(s.waste), s.nslots)
	}
	free := 0
	for i, w := range s.free {
		free += bits.OnesCount64(w)
		if w != 0 && int32(i) < s.hint {
			return fmt.Errorf("word %d has free slots but the search starts at word %d", i, s.hint)
		}
	}
	if tail := s.nslots % 64; tail != 0 && s.free[len(s.free)-1]>>tail != 0 {
		return fmt.Errorf("bits past slot %d are set", s.nslots)
	}
	if int32(free) != s.nfree || s.nfree < 0 || s.nfree > s.nslots {
		return fmt.Errorf("bitmap has %d free slots, counter says %d of %d", free, s.nfree, s.nslots)
	}
	var err error
	s.forUsed(func(i int32) {
		if int64(s.waste[i]) >= size && err == nil {
			err = fmt.Errorf("slot %d records waste %d of %d bytes", i, s.waste[i], size)
		}
	})
	return err
}

// forUsed calls f with the index of every allocated slot, in order. It costs
// a word per 64 slots plus a call per allocated one.
func (s *span) forUsed(f func(slot int32)) {
	for wi, w := range s.free {
		used := ^w
		if n := s.nslots - int32(wi)*64; n < 64 {
			used &= 1<<n - 1
		}
		for used != 0 {
			b := int32(bits.TrailingZeros64(used))
			used &= used - 1
			f(int32(wi)*64 + b)
		}
	}
}

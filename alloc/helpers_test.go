package alloc

import (
	"cmp"
	"fmt"
	"slices"
	"sync/atomic"
	"testing"
)

const (
	KiB = 1 << 10
	MiB = 1 << 20
)

// newTest returns an allocator whose consistency is checked when the test
// ends: Check must pass and every allocation must have been freed.
func newTest(t testing.TB, capacity int64) *Allocator {
	t.Helper()
	a, err := New(capacity)
	if err != nil {
		t.Fatalf("New(%d): %v", capacity, err)
	}
	t.Cleanup(func() {
		if err := a.Check(); err != nil {
			t.Errorf("at end of test: %v", err)
		}
		if st := a.Stats(); st.Used != 0 || st.Requested != 0 || st.Allocs != st.Frees {
			t.Errorf("at end of test: %d B used, %d B requested, %d allocs, %d frees: the test leaked allocations",
				st.Used, st.Requested, st.Allocs, st.Frees)
		}
	})
	return a
}

// live tracks a test's allocations.
type live struct {
	a    *Allocator
	offs map[int64]int64 // offset -> requested size
}

func newLive(a *Allocator) *live { return &live{a: a, offs: map[int64]int64{}} }

// alloc allocates size bytes and checks the result; it fails the test if
// the allocation does not succeed.
func (l *live) alloc(t testing.TB, size int64) int64 {
	t.Helper()
	off, ok := l.tryAlloc(t, size)
	if !ok {
		t.Fatalf("Alloc(%d) failed; stats %+v", size, l.a.Stats())
	}
	return off
}

func (l *live) tryAlloc(t testing.TB, size int64) (int64, bool) {
	t.Helper()
	off, ok := l.a.Alloc(size)
	if !ok {
		return 0, false
	}
	if off%Alignment != 0 || off < 0 || off >= l.a.Capacity() {
		t.Fatalf("Alloc(%d) = %d: misaligned or outside [0, %d)", size, off, l.a.Capacity())
	}
	if _, dup := l.offs[off]; dup {
		t.Fatalf("Alloc(%d) = %d, which is already live", size, off)
	}
	if u := l.a.Usable(off); u != wantUsable(size) {
		t.Fatalf("Usable(Alloc(%d)) = %d, want %d", size, u, wantUsable(size))
	}
	l.offs[off] = size
	return off, true
}

func (l *live) free(t testing.TB, off int64) {
	t.Helper()
	if _, ok := l.offs[off]; !ok {
		t.Fatalf("test bug: free of %d, not live", off)
	}
	if err := l.a.Free(off); err != nil {
		t.Fatalf("Free(%d): %v", off, err)
	}
	delete(l.offs, off)
}

func (l *live) freeAll(t testing.TB) {
	t.Helper()
	for _, off := range slices.Sorted(mapKeys(l.offs)) {
		l.free(t, off)
	}
}

func mapKeys(m map[int64]int64) func(func(int64) bool) {
	return func(yield func(int64) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// checkDisjoint fails if any two live allocations overlap or one leaves the
// arena.
func (l *live) checkDisjoint(t testing.TB) {
	t.Helper()
	if err := disjoint(l.a, l.offs); err != nil {
		t.Fatal(err)
	}
}

func disjoint(a *Allocator, offs map[int64]int64) error {
	type iv struct{ lo, hi int64 }
	ivs := make([]iv, 0, len(offs))
	for off := range offs {
		ivs = append(ivs, iv{off, off + a.Usable(off)})
	}
	slices.SortFunc(ivs, func(x, y iv) int { return cmp.Compare(x.lo, y.lo) })
	for i, v := range ivs {
		if v.hi <= v.lo || v.hi > a.Capacity() {
			return fmt.Errorf("allocation [%d, %d) is empty or leaves the arena of %d B", v.lo, v.hi, a.Capacity())
		}
		if i > 0 && ivs[i-1].hi > v.lo {
			return fmt.Errorf("allocations [%d, %d) and [%d, %d) overlap", ivs[i-1].lo, ivs[i-1].hi, v.lo, v.hi)
		}
	}
	return nil
}

// wantUsable is the reserved size for a request, computed independently of
// classIndex: the smallest class that holds it, or whole pages.
func wantUsable(size int64) int64 {
	if size > MaxSlabSize {
		return (size + PageSize - 1) / PageSize * PageSize
	}
	for _, c := range classes {
		if c.size >= size {
			return c.size
		}
	}
	panic("unreachable")
}

func mustCheck(t testing.TB, a *Allocator) {
	t.Helper()
	if err := a.Check(); err != nil {
		t.Fatal(err)
	}
}

type atomicCounter struct{ n atomic.Int64 }

func (c *atomicCounter) inc() int { return int(c.n.Add(1) - 1) }

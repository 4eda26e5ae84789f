package alloc

import (
	"errors"
	"math/rand/v2"
	"testing"
)

func TestNew(t *testing.T) {
	for _, tc := range []struct {
		capacity int64
		want     int64 // 0: error
	}{
		{-1, 0},
		{0, 0},
		{PageSize - 1, 0},
		{PageSize, PageSize},
		{PageSize + 1, PageSize},
		{3*PageSize - 64, 2 * PageSize},
		{1 << 30, 1 << 30},
		{(maxPages + 1) * PageSize, 0},
	} {
		a, err := New(tc.capacity)
		switch {
		case tc.want == 0 && err == nil:
			t.Errorf("New(%d) succeeded, want an error", tc.capacity)
		case tc.want != 0 && err != nil:
			t.Errorf("New(%d): %v", tc.capacity, err)
		case tc.want != 0:
			if got := a.Capacity(); got != tc.want {
				t.Errorf("New(%d).Capacity() = %d, want %d", tc.capacity, got, tc.want)
			}
			st := a.Stats()
			if st.Capacity != tc.want || st.Free != tc.want || st.LargestFree != tc.want || st.Fragmentation != 0 {
				t.Errorf("New(%d).Stats() = %+v", tc.capacity, st)
			}
			if err := a.Check(); err != nil {
				t.Errorf("New(%d): %v", tc.capacity, err)
			}
		}
	}
}

func TestClassRounding(t *testing.T) {
	for _, tc := range []struct{ size, usable int64 }{
		{1, 64},
		{63, 64},
		{64, 64},
		{65, 128},
		{500, 512},
		{512, 512},
		{513, 576},
		{1000, 1024},
		{1025, 1152},
		{4097, 4608},
		{64 * KiB, 64 * KiB},
		{64*KiB + 1, 72 * KiB},
		{100 * KiB, 104 * KiB},
		{960*KiB + 1, MiB},
		{MiB, MiB},
		{MiB + 1, MiB + PageSize},
		{16 * MiB, 16 * MiB},
		{16*MiB - 1, 16 * MiB},
	} {
		a := newTest(t, 64*MiB)
		l := newLive(a)
		off := l.alloc(t, tc.size)
		if got := a.Usable(off); got != tc.usable {
			t.Errorf("Usable(Alloc(%d)) = %d, want %d", tc.size, got, tc.usable)
		}
		l.freeAll(t)
	}
}

// TestClassIndex compares the O(1) class computation with a linear search
// around every class boundary, and checks the rounding-waste bound.
func TestClassIndex(t *testing.T) {
	for i, c := range classes {
		if c.size%Alignment != 0 || (i > 0 && c.size <= classes[i-1].size) {
			t.Fatalf("class %d: size %d not a growing multiple of %d", i, c.size, Alignment)
		}
		for _, size := range []int64{c.size - 1, c.size, c.size + 1} {
			if size <= 0 || size > MaxSlabSize {
				continue
			}
			if got, want := classes[classIndex(size)].size, wantUsable(size); got != want {
				t.Errorf("size %d: class %d B, want %d B", size, got, want)
			}
			if got := classes[classIndex(size)].size; size > smallClassMax && float64(got-size)/float64(size) >= 0.125 {
				t.Errorf("size %d: class %d B wastes %.1f%%", size, got, 100*float64(got-size)/float64(size))
			}
		}
	}
	for size := int64(PageSize); size <= MaxSlabSize; size += PageSize {
		if got := classes[classIndex(size)].size; got != size {
			t.Errorf("page multiple %d is not a class (rounds to %d); Stats.LargestFree assumes it is", size, got)
		}
	}
}

// TestSpanSizing checks the span table: each span holds enough slots and
// wastes little in its tail.
func TestSpanSizing(t *testing.T) {
	for _, c := range classes {
		bytes := c.pages * PageSize
		slots := bytes / c.size
		if slots < minSlotsPerSpan {
			t.Errorf("class %d B: span of %d pages holds %d slots, want >= %d", c.size, c.pages, slots, minSlotsPerSpan)
		}
		if tail := float64(bytes-slots*c.size) / float64(bytes); tail > 0.125 {
			t.Errorf("class %d B: span of %d pages wastes %.1f%% in its tail", c.size, c.pages, 100*tail)
		}
		if c.minPages*PageSize < c.size || (c.minPages-1)*PageSize >= c.size {
			t.Errorf("class %d B: minPages %d is not the shortest span holding a slot", c.size, c.minPages)
		}
	}
}

// TestNonOverlap allocates a mix of sizes until the arena is full and checks
// that every offset is aligned and no two allocations overlap.
func TestNonOverlap(t *testing.T) {
	sizes := []int64{1, 64, 100, 700, 4 * KiB, 33 * KiB, 64 * KiB, 200 * KiB, MiB, MiB + 1, 3*MiB + 5}
	a := newTest(t, 64*MiB)
	l := newLive(a)
	rng := rand.New(rand.NewPCG(1, 2))
	for fails := 0; fails < 20; {
		if _, ok := l.tryAlloc(t, sizes[rng.IntN(len(sizes))]); !ok {
			fails++
		}
	}
	l.checkDisjoint(t)
	mustCheck(t, a)
	// Free half and refill, so slots and runs are reused.
	for off := range l.offs {
		if rng.IntN(2) == 0 {
			l.free(t, off)
		}
	}
	for fails := 0; fails < 20; {
		if _, ok := l.tryAlloc(t, sizes[rng.IntN(len(sizes))]); !ok {
			fails++
		}
	}
	l.checkDisjoint(t)
	mustCheck(t, a)
	l.freeAll(t)
}

func TestUsable(t *testing.T) {
	a := newTest(t, 16*MiB)
	l := newLive(a)
	small := l.alloc(t, 100)   // class 128
	large := l.alloc(t, 2*MiB) // 32 pages
	for _, tc := range []struct {
		name string
		off  int64
		want int64
	}{
		{"slab", small, 128},
		{"large", large, 2 * MiB},
		{"negative", -64, 0},
		{"beyond capacity", a.Capacity(), 0},
		{"misaligned", small + 1, 0},
		{"next slot, free", small + 128, 0},
		{"inside slot", small + 64, 0},
		{"inside large, page boundary", large + PageSize, 0},
		{"inside large, last page", large + 2*MiB - PageSize, 0},
		{"free page", a.Capacity() - PageSize, 0},
	} {
		if got := a.Usable(tc.off); got != tc.want {
			t.Errorf("%s: Usable(%d) = %d, want %d", tc.name, tc.off, got, tc.want)
		}
	}
	l.freeAll(t)
	if got := a.Usable(large); got != 0 {
		t.Errorf("Usable of a freed large allocation = %d", got)
	}
	if got := a.Usable(small); got != 0 {
		t.Errorf("Usable of a freed slot = %d", got)
	}
}

// TestFreeInvalid frees offsets that are not live allocations and checks
// that each returns an error and changes nothing.
func TestFreeInvalid(t *testing.T) {
	a := newTest(t, 16*MiB)
	l := newLive(a)
	// A span's unused tail: class 1152 B does not divide its span.
	tailSpan := l.alloc(t, 1100) // first slot of a new span
	info := classes[classIndex(1100)]
	tail := tailSpan + info.pages*PageSize/info.size*info.size
	if tail == tailSpan+info.pages*PageSize {
		t.Fatal("test assumes a span with an unused tail for 1152 B")
	}
	small := l.alloc(t, 1000) // class 1024
	large := l.alloc(t, 2*MiB)
	freedSmall := l.alloc(t, 1000)
	freedLarge := l.alloc(t, 3*MiB)
	l.free(t, freedSmall)
	l.free(t, freedLarge)

	for _, tc := range []struct {
		name string
		off  int64
		want error
	}{
		{"negative", -1, ErrOutOfRange},
		{"capacity", a.Capacity(), ErrOutOfRange},
		{"huge", 1 << 62, ErrOutOfRange},
		{"misaligned", small + 8, ErrNotAllocated},
		{"inside slot", small + 512, ErrNotAllocated},
		{"never allocated slot", small + 2048, ErrNotAllocated},
		{"double free slab", freedSmall, ErrNotAllocated},
		{"span tail", tail, ErrNotAllocated},
		{"inside large", large + PageSize, ErrNotAllocated},
		{"inside large first page", large + 64, ErrNotAllocated},
		{"large last page", large + 2*MiB - PageSize, ErrNotAllocated},
		{"double free large", freedLarge, ErrNotAllocated},
		{"free pages", a.Capacity() - PageSize, ErrNotAllocated},
	} {
		before := a.Stats()
		err := a.Free(tc.off)
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: Free(%d) = %v, want %v", tc.name, tc.off, err, tc.want)
			continue
		}
		t.Logf("%s: %v", tc.name, err)
		if after := a.Stats(); after != before {
			t.Errorf("%s: Free(%d) failed but changed stats:\n%+v\n%+v", tc.name, tc.off, before, after)
		}
		mustCheck(t, a)
	}
	l.freeAll(t)
}

func TestExhaustion(t *testing.T) {
	for _, tc := range []struct {
		name     string
		capacity int64
		size     int64
		n        int // allocations that fit
	}{
		{"slab 64KiB", 1 * MiB, 64 * KiB, 16},
		{"slab 1KiB", 2 * PageSize, KiB, 128},
		{"slab 1MiB", 3 * MiB, MiB, 3},
		{"slab 960KiB", 2 * MiB, 960 * KiB, 2},
		{"large 2MiB", 8 * MiB, 2 * MiB, 4},
		{"large 3MiB+1", 10 * MiB, 3*MiB + 1, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := newTest(t, tc.capacity)
			l := newLive(a)
			var offs []int64
			for range tc.n {
				offs = append(offs, l.alloc(t, tc.size))
			}
			if off, ok := a.Alloc(tc.size); ok {
				t.Fatalf("Alloc(%d) = %d on a full arena; stats %+v", tc.size, off, a.Stats())
			}
			if st := a.Stats(); st.LargestFree >= tc.size {
				t.Errorf("Alloc failed but LargestFree = %d >= %d", st.LargestFree, tc.size)
			}
			l.free(t, offs[len(offs)/2])
			if st := a.Stats(); st.LargestFree < tc.size {
				t.Errorf("after a free, LargestFree = %d < %d", st.LargestFree, tc.size)
			}
			l.alloc(t, tc.size)
			l.checkDisjoint(t)
			l.freeAll(t)
		})
	}
	t.Run("invalid sizes", func(t *testing.T) {
		a := newTest(t, MiB)
		for _, size := range []int64{0, -1, -1 << 62, MiB + 1, 1 << 62} {
			if off, ok := a.Alloc(size); ok {
				t.Errorf("Alloc(%d) = %d, want failure", size, off)
			}
		}
	})
}

// TestReclaimEmptySpans fills the arena with slab objects, frees them (each
// class keeps one empty span cached), and expects a whole-arena allocation to
// succeed by reclaiming the cached spans.
func TestReclaimEmptySpans(t *testing.T) {
	a := newTest(t, 32*MiB)
	l := newLive(a)
	sizes := []int64{64, 1000, 10 * KiB, 100 * KiB, 700 * KiB, MiB}
	for i := 0; ; i++ {
		if _, ok := l.tryAlloc(t, sizes[i%len(sizes)]); !ok {
			break
		}
	}
	l.checkDisjoint(t)
	l.freeAll(t)
	st := a.Stats()
	if st.SlabBytes == 0 {
		t.Fatal("no empty span cached; the test does not exercise reclaiming")
	}
	if st.LargestFree != a.Capacity() || st.Fragmentation != 0 {
		t.Errorf("all freed: LargestFree = %d, Fragmentation = %g; want %d, 0", st.LargestFree, st.Fragmentation, a.Capacity())
	}
	off := l.alloc(t, a.Capacity())
	if off != 0 {
		t.Errorf("whole-arena allocation at %d", off)
	}
	if st := a.Stats(); st.SlabBytes != 0 {
		t.Errorf("after reclaiming, %d bytes still in slabs", st.SlabBytes)
	}
	l.freeAll(t)
	// And the other way: a slab class reclaims from another class.
	for _, size := range sizes {
		l.free(t, l.alloc(t, size))
	}
	big := l.alloc(t, a.Capacity()-PageSize)
	small := l.alloc(t, 64*KiB) // needs the last page; class 1 MiB cached it
	l.free(t, big)
	l.free(t, small)
}

func TestCoalescing(t *testing.T) {
	for _, order := range []string{"ascending", "descending", "random"} {
		t.Run(order, func(t *testing.T) {
			a := newTest(t, 64*MiB)
			l := newLive(a)
			sizes := []int64{2 * MiB, MiB + 1, 100, 64 * KiB, 5 * MiB, 300 * KiB}
			var offs []int64
			for i := 0; ; i++ {
				off, ok := l.tryAlloc(t, sizes[i%len(sizes)])
				if !ok {
					break
				}
				offs = append(offs, off)
			}
			switch order {
			case "descending":
				for i, j := 0, len(offs)-1; i < j; i, j = i+1, j-1 {
					offs[i], offs[j] = offs[j], offs[i]
				}
			case "random":
				rand.New(rand.NewPCG(3, 4)).Shuffle(len(offs), func(i, j int) { offs[i], offs[j] = offs[j], offs[i] })
			}
			for i, off := range offs {
				l.free(t, off)
				if i%7 == 0 {
					mustCheck(t, a)
				}
			}
			st := a.Stats()
			if st.LargestFree != a.Capacity() || st.Fragmentation != 0 || st.Used != 0 || st.Free != a.Capacity() {
				t.Errorf("all freed: %+v", st)
			}
		})
	}
}

// TestBestFit checks that a large allocation takes the smallest free run that
// fits and, among equal runs, the lowest.
func TestBestFit(t *testing.T) {
	const P = PageSize
	a := newTest(t, 1024*P)
	l := newLive(a)
	// Holes of 64, 48, 32 and 32 pages separated by live 20-page runs, then
	// a free tail of 768 pages.
	var holes []int64
	for i, pages := range []int64{64, 20, 48, 20, 32, 20, 32, 20} {
		off := l.alloc(t, pages*P)
		if i%2 == 0 {
			holes = append(holes, off)
		}
	}
	for _, off := range holes {
		l.free(t, off)
	}
	for _, tc := range []struct {
		name        string
		pages, want int64 // want: first page
	}{
		{"equal runs: the lower", 32, 152},
		{"then the other", 32, 204},
		{"smallest that fits", 40, 84},               // leaves 8 pages at 124
		{"smallest that fits, low end", 33, 0},       // leaves 31 pages at 33
		{"exact fit", 31, 33},                        //
		{"only the tail is left that fits", 20, 256}, // 8 pages at 124 is too small
		{"sub-page size rounds up", 17, 276},
	} {
		size := tc.pages * P
		if tc.name == "sub-page size rounds up" {
			size = 16*P + 1
		}
		if got := l.alloc(t, size); got != tc.want*P {
			t.Errorf("%s: Alloc(%d pages) at page %g, want %d", tc.name, tc.pages, float64(got)/P, tc.want)
		}
	}
	l.freeAll(t)
}

func TestStats(t *testing.T) {
	a := newTest(t, 8*MiB)
	l := newLive(a)
	check := func(step string, want Stats) {
		t.Helper()
		want.Capacity = a.Capacity()
		want.Free = want.Capacity - want.Used
		if got := a.Stats(); got != want {
			t.Errorf("%s:\n got %+v\nwant %+v", step, got, want)
		}
	}
	check("new", Stats{LargestFree: 8 * MiB})

	s := l.alloc(t, 100) // class 128 B: a one-page span of 512 slots
	check("one slab", Stats{Used: 128, Requested: 100, LargestFree: 8*MiB - PageSize,
		SlabBytes: PageSize, SlabFree: PageSize - 128, Allocs: 1})

	big := l.alloc(t, 2*MiB+1) // 33 pages
	check("plus large", Stats{Used: 128 + 2*MiB + PageSize, Requested: 100 + 2*MiB + 1,
		LargestFree: 8*MiB - 34*PageSize, SlabBytes: PageSize, SlabFree: PageSize - 128, Allocs: 2})

	mid := l.alloc(t, 2*MiB) // 32 pages at 34: free run [66, 128)
	l.free(t, big)           // free runs: [1, 34) of 33 pages and [66, 128) of 62
	check("hole", Stats{Used: 128 + 2*MiB, Requested: 100 + 2*MiB,
		LargestFree: 62 * PageSize, Fragmentation: frag(62, 95), SlabBytes: PageSize, SlabFree: PageSize - 128,
		Allocs: 3, Frees: 1})

	l.free(t, s) // the span stays cached: counted as free pages, merged with [1, 34)
	check("cached span", Stats{Used: 2 * MiB, Requested: 2 * MiB, LargestFree: 62 * PageSize, Fragmentation: frag(62, 96),
		SlabBytes: PageSize, SlabFree: PageSize, Allocs: 3, Frees: 2})

	l.free(t, mid)
	check("all free", Stats{LargestFree: 8 * MiB, SlabBytes: PageSize, SlabFree: PageSize, Allocs: 3, Frees: 3})
}

// frag is the Fragmentation for a largest free run and total free pages.
func frag(largest, free int) float64 { return 1 - float64(largest)/float64(free) }

// TestNoGoAllocs asserts that the steady-state hot paths allocate nothing on
// the Go heap.
func TestNoGoAllocs(t *testing.T) {
	for _, size := range []int64{128, 64 * KiB, MiB, 16 * MiB} {
		a := newTest(t, 256*MiB)
		// Keep a few allocations live so spans and runs split and merge.
		var keep []int64
		for range 3 {
			off, _ := a.Alloc(size)
			keep = append(keep, off)
		}
		n := testing.AllocsPerRun(1000, func() {
			off, ok := a.Alloc(size)
			if !ok {
				t.Fatal("Alloc failed")
			}
			if a.Usable(off) == 0 {
				t.Fatal("Usable = 0")
			}
			if err := a.Free(off); err != nil {
				t.Fatal(err)
			}
		})
		if n != 0 {
			t.Errorf("size %d: %v Go heap allocations per Alloc+Usable+Free, want 0", size, n)
		}
		for _, off := range keep {
			if err := a.Free(off); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// TestLowestSlotFirst checks that a span hands out its lowest free slot, so
// that freed low memory is reused before higher memory.
func TestLowestSlotFirst(t *testing.T) {
	a := newTest(t, 4*MiB)
	l := newLive(a)
	var offs []int64
	for range 300 { // spans several bitmap words
		offs = append(offs, l.alloc(t, 64))
	}
	for i, off := range offs {
		if off != offs[0]+int64(i)*64 {
			t.Fatalf("allocation %d at %d, want %d", i, off, offs[0]+int64(i)*64)
		}
	}
	for _, i := range []int{250, 3, 130} {
		l.free(t, offs[i])
	}
	mustCheck(t, a)
	for _, i := range []int{3, 130, 250, 300} {
		if got, want := l.alloc(t, 64), offs[0]+int64(i)*64; got != want {
			t.Errorf("Alloc(64) = %d, want the lowest free slot %d", got, want)
		}
	}
	l.freeAll(t)
}

func TestUsedMatchesStats(t *testing.T) {
	a, err := New(64 << 20)
	if err != nil {
		t.Fatal(err)
	}
	var offs []int64
	for _, size := range []int64{64, 1000, 200 << 10, 3 << 20} {
		off, ok := a.Alloc(size)
		if !ok {
			t.Fatalf("Alloc(%d) failed", size)
		}
		offs = append(offs, off)
		if got, want := a.Used(), a.Stats().Used; got != want {
			t.Fatalf("Used() = %d, Stats().Used = %d", got, want)
		}
	}
	for _, off := range offs {
		if err := a.Free(off); err != nil {
			t.Fatal(err)
		}
	}
	if a.Used() != 0 {
		t.Fatalf("Used() = %d after freeing everything", a.Used())
	}
}

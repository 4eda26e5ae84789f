package alloc

import (
	"fmt"
	"math/bits"
)

// Size classes. Sizes up to 512 B are rounded up to a multiple of 64; above
// that, every power-of-two interval (2^k, 2^(k+1)] is split into eight classes
// 2^(k-3) apart, so rounding wastes less than 12.5% of the request. The classes
// are, in order: 64, 128, ..., 512, 576, 640, ..., 1024, 1152, ..., 2048, ...,
// 960 KiB, 1 MiB. Every multiple of PageSize up to MaxSlabSize is a class, which
// Stats relies on: a free run of n pages can always serve a request of
// n*PageSize bytes.
const (
	// MaxSlabSize is the largest size served from slab size classes; larger
	// requests get a run of whole pages.
	MaxSlabSize = 1 << 20

	smallClassMax   = 512 // sizes up to here step by Alignment
	numSmallClasses = smallClassMax / Alignment
	classesPerPow2  = 8
	numClasses      = numSmallClasses + classesPerPow2*(20-9) // 2^9 .. 2^20

	// minSlotsPerSpan is how many objects a span should hold at least, so
	// that a refill (which takes the page heap's lock) is amortized over
	// several allocations.
	minSlotsPerSpan = 8
)

// classInfo is the immutable description of one size class.
type classInfo struct {
	size     int64 // slot size, a multiple of Alignment
	pages    int64 // preferred span length in pages
	minPages int64 // shortest span that holds one slot; used when memory is tight
}

// classes is computed once at init; never written afterwards.
var classes [numClasses]classInfo

func init() {
	for i := range classes {
		size := classSizeOf(i)
		minPages := (size + PageSize - 1) / PageSize
		classes[i] = classInfo{size: size, pages: spanPages(size), minPages: minPages}
		if i > 0 {
			// A slot's waste (size minus request) is kept in a uint16.
			if step := size - classes[i-1].size; step > 1<<16 {
				panic(fmt.Sprintf("alloc: class %d B is %d B above the previous one; waste does not fit in uint16", size, step))
			}
		}
	}
	if classes[numClasses-1].size != MaxSlabSize {
		panic(fmt.Sprintf("alloc: last class is %d B, want MaxSlabSize", classes[numClasses-1].size))
	}
}

// classSizeOf returns the slot size of class i.
func classSizeOf(i int) int64 {
	if i < numSmallClasses {
		return int64(i+1) * Alignment
	}
	j := i - numSmallClasses
	k := uint(9 + j/classesPerPow2)
	return 1<<k + int64(j%classesPerPow2+1)<<(k-3)
}

// classIndex returns the class serving size, 0 < size <= MaxSlabSize. O(1),
// no table lookup.
func classIndex(size int64) int {
	if size <= smallClassMax {
		return int((size+Alignment-1)/Alignment) - 1
	}
	s := uint64(size - 1)
	k := uint(bits.Len64(s) - 1) // 2^k <= s < 2^(k+1), k >= 9
	return numSmallClasses + int(k-9)*classesPerPow2 + int((s-1<<k)>>(k-3))
}

// spanPages chooses how many pages a span of slot size size takes: at least one
// page and room for minSlotsPerSpan slots, then, within twice that, the length
// that leaves the smallest unusable tail (ties go to the shorter span).
func spanPages(size int64) int64 {
	lo := max(1, (minSlotsPerSpan*size+PageSize-1)/PageSize)
	best, bestTail := lo, float64(1)
	for p := lo; p <= 2*lo; p++ {
		bytes := p * PageSize
		tail := float64(bytes%size) / float64(bytes)
		if tail < bestTail {
			best, bestTail = p, tail
		}
		if tail == 0 {
			break
		}
	}
	return best
}

package alloc

import (
	"fmt"
	"runtime"
	"testing"
)

var benchSizes = []struct {
	name string
	size int64
}{
	{"128B", 128},
	{"64KiB", 64 * KiB},
	{"1MiB", MiB},
	{"16MiB", 16 * MiB},
}

// benchLive is how many allocations each benchmark keeps live: every
// iteration allocates one and frees the oldest, so spans fill and drain and
// page runs split and merge as in a store with a working set.
const benchLive = 64

// BenchmarkAllocFree measures one Alloc plus one Free in steady state.
func BenchmarkAllocFree(b *testing.B) {
	for _, bs := range benchSizes {
		b.Run("size="+bs.name, func(b *testing.B) {
			a, err := New(4 << 30)
			if err != nil {
				b.Fatal(err)
			}
			var ring [benchLive]int64
			for i := range ring {
				ring[i], _ = a.Alloc(bs.size)
			}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if err := a.Free(ring[i]); err != nil {
					b.Fatal(err)
				}
				off, ok := a.Alloc(bs.size)
				if !ok {
					b.Fatal("Alloc failed")
				}
				ring[i] = off
				i = (i + 1) % benchLive
			}
		})
	}
}

// BenchmarkAllocFreeParallel is BenchmarkAllocFree from GOMAXPROCS
// goroutines: "same" has them all use one size (one class lock, or the page
// heap's), "mixed" gives each goroutine its own slab size class.
func BenchmarkAllocFreeParallel(b *testing.B) {
	for _, bs := range benchSizes {
		b.Run("same/size="+bs.name, func(b *testing.B) {
			benchParallel(b, func(int) int64 { return bs.size })
		})
	}
	b.Run("mixed/size=64B-64KiB", func(b *testing.B) {
		benchParallel(b, func(g int) int64 { return int64(64 << (g % 11)) })
	})
}

func benchParallel(b *testing.B, sizeOf func(goroutine int) int64) {
	// Room for every goroutine's ring of the largest size, twice over.
	a, err := New(int64(runtime.GOMAXPROCS(0)) * benchLive * 32 * MiB)
	if err != nil {
		b.Fatal(err)
	}
	var next atomicCounter
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		size := sizeOf(next.inc())
		var ring [benchLive]int64
		for i := range ring {
			var ok bool
			if ring[i], ok = a.Alloc(size); !ok {
				panic(fmt.Sprintf("Alloc(%d) failed while filling", size))
			}
		}
		i := 0
		for pb.Next() {
			if err := a.Free(ring[i]); err != nil {
				panic(err)
			}
			off, ok := a.Alloc(size)
			if !ok {
				panic("Alloc failed")
			}
			ring[i] = off
			i = (i + 1) % benchLive
		}
		for _, off := range ring {
			_ = a.Free(off)
		}
	})
}

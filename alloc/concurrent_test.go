package alloc

import (
	"math/rand/v2"
	"sync"
	"testing"
)

// TestConcurrent runs goroutines that allocate and free mixed sizes, so that
// classes refill, give spans back and reclaim while large allocations split
// and merge runs. Run it with -race. Each goroutine checks that its own
// allocations stay live; at the end the whole allocator must be consistent
// and empty.
func TestConcurrent(t *testing.T) {
	const goroutines = 4
	ops := 4000
	if testing.Short() {
		ops = 500
	}
	sizes := []int64{64, 100, 1000, 4 * KiB, 60 * KiB, 64 * KiB, 300 * KiB, MiB, MiB + 1, 3 * MiB}
	a := newTest(t, 48*MiB) // small enough that some allocations fail
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(g), 7))
			mine := map[int64]int64{}
			for i := range ops {
				if len(mine) > 0 && rng.IntN(2) == 0 {
					for off := range mine { // an arbitrary one
						if err := a.Free(off); err != nil {
							t.Errorf("Free(%d): %v", off, err)
							return
						}
						delete(mine, off)
						break
					}
					continue
				}
				size := sizes[rng.IntN(len(sizes))]
				off, ok := a.Alloc(size)
				if !ok {
					continue
				}
				if off%Alignment != 0 {
					t.Errorf("Alloc(%d) = %d, misaligned", size, off)
					return
				}
				if _, dup := mine[off]; dup {
					t.Errorf("Alloc(%d) = %d, already mine", size, off)
					return
				}
				if u := a.Usable(off); u != wantUsable(size) {
					t.Errorf("Usable(Alloc(%d)) = %d", size, u)
					return
				}
				mine[off] = size
				if i%500 == 0 {
					if err := a.Check(); err != nil {
						t.Error(err)
						return
					}
				}
			}
			for off := range mine {
				if err := a.Free(off); err != nil {
					t.Errorf("Free(%d): %v", off, err)
				}
			}
		})
	}
	// Stats must stay sane while others allocate.
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 200 {
			st := a.Stats()
			if st.Used < 0 || st.Used > st.Capacity || st.LargestFree > st.Capacity || st.Fragmentation < 0 || st.Fragmentation > 1 {
				t.Errorf("Stats during the run: %+v", st)
				return
			}
		}
	}()
	wg.Wait()
	<-done
	if st := a.Stats(); st.Allocs == 0 || st.Allocs != st.Frees {
		t.Errorf("after the run: %+v", st)
	}
}

// TestConcurrentSharedFree has goroutines free each other's allocations, and
// race double frees of the same offset: exactly one Free must win.
func TestConcurrentSharedFree(t *testing.T) {
	a := newTest(t, 64*MiB)
	for _, size := range []int64{128, 100 * KiB, 2 * MiB} {
		offs := make([]int64, 0, 16)
		for range cap(offs) {
			off, ok := a.Alloc(size)
			if !ok {
				t.Fatalf("Alloc(%d) failed", size)
			}
			offs = append(offs, off)
		}
		var mu sync.Mutex
		wins := map[int64]int{}
		var wg sync.WaitGroup
		for range 3 {
			wg.Go(func() {
				for _, off := range offs {
					if a.Free(off) == nil {
						mu.Lock()
						wins[off]++
						mu.Unlock()
					}
				}
			})
		}
		wg.Wait()
		for _, off := range offs {
			if wins[off] != 1 {
				t.Errorf("size %d: offset %d freed %d times", size, off, wins[off])
			}
		}
	}
}

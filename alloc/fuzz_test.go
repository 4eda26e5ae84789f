package alloc

import (
	"errors"
	"slices"
	"testing"
)

// FuzzAllocFree decodes a sequence of operations from the input and runs them
// against the allocator and a model (live offset -> requested size). After
// every step, live allocations must be aligned, disjoint and inside the arena,
// Usable and Stats must agree with the model, and Check must pass.
//
// Input: byte 0 picks the capacity; then 2-byte operations op, arg, with
// x = arg | op>>5<<8 (11 bits):
//
//	op&3 == 0, 1: Alloc of decodeSize(op>>2&7, x)
//	op&3 == 2:    Free the x-th live allocation (mod the number live)
//	op&3 == 3:    Free a garbage offset near the x-th live allocation; it
//	              must fail (unless it happens to be live) and change nothing
//
// Operations past the 96th are ignored: Check after each step makes an
// execution cost quadratic time, and the fuzzer minimizes every interesting
// input in O(len²) executions.
func FuzzAllocFree(f *testing.F) {
	f.Add([]byte{0, 0, 1, 2, 0})
	f.Add([]byte{1, 0x40 | 1<<2, 0xff, 0x80 | 4<<2, 0x10, 2, 0, 3, 7})
	f.Add(seed(2, []int{100, 5 << 20, 64 << 10, -1, 1 << 20, -1, 3000, -2, 600 << 10}))
	f.Add(seed(1, []int{1 << 20, 1 << 20, 1 << 20, 1 << 20, -1, -1, 2 << 20, -1, -1}))
	f.Add(seed(3, []int{64, 64, 64, -1, 128, -2, 1 << 20, 8 << 20, -1, -1, -1, -1}))
	f.Fuzz(runAllocFree)
}

func runAllocFree(t *testing.T, data []byte) {
	if len(data) == 0 {
		return
	}
	capacity := []int64{PageSize, MiB, 5*MiB + 3*PageSize, 12 * MiB}[data[0]%4]
	a, err := New(capacity)
	if err != nil {
		t.Fatal(err)
	}
	model := map[int64]int64{}
	sorted := func() []int64 { return slices.Sorted(mapKeys(model)) }
	const maxOps = 96
	for ops := data[1:min(len(data), 1+2*maxOps)]; len(ops) >= 2; ops = ops[2:] {
		op, x := ops[0], int64(ops[1])|int64(ops[0]>>5)<<8
		switch op & 3 {
		case 0, 1:
			size := decodeSize(op>>2&7, x)
			off, ok := a.Alloc(size)
			if !ok {
				if size > 0 && size <= capacity && len(model) == 0 {
					t.Fatalf("Alloc(%d) failed on an empty arena of %d B", size, capacity)
				}
				continue
			}
			if size <= 0 || size > capacity {
				t.Fatalf("Alloc(%d) = %d, want failure", size, off)
			}
			if _, dup := model[off]; dup {
				t.Fatalf("Alloc(%d) = %d, already live", size, off)
			}
			if off%Alignment != 0 {
				t.Fatalf("Alloc(%d) = %d, misaligned", size, off)
			}
			if u := a.Usable(off); u != wantUsable(size) {
				t.Fatalf("Usable(Alloc(%d)) = %d, want %d", size, u, wantUsable(size))
			}
			model[off] = size
		case 2:
			if len(model) == 0 {
				continue
			}
			offs := sorted()
			off := offs[int(x)%len(offs)]
			if err := a.Free(off); err != nil {
				t.Fatalf("Free(%d) of a live allocation: %v", off, err)
			}
			delete(model, off)
			if u := a.Usable(off); u != 0 {
				t.Fatalf("Usable(%d) = %d after Free", off, u)
			}
		case 3:
			delta := []int64{-Alignment, 8, Alignment, 512, PageSize, -PageSize, MiB, 3}[op>>2&7]
			off := x * delta
			if offs := sorted(); len(offs) > 0 {
				off = offs[int(x)%len(offs)] + delta
			}
			if _, isLive := model[off]; isLive {
				continue
			}
			before := a.Stats()
			if err := a.Free(off); !errors.Is(err, ErrNotAllocated) && !errors.Is(err, ErrOutOfRange) {
				t.Fatalf("Free(%d) of a non-live offset = %v", off, err)
			}
			if after := a.Stats(); after != before {
				t.Fatalf("failed Free(%d) changed stats:\n%+v\n%+v", off, before, after)
			}
		}
		if err := disjoint(a, model); err != nil {
			t.Fatal(err)
		}
		if err := a.Check(); err != nil {
			t.Fatal(err)
		}
		var used, requested int64
		for off, size := range model {
			used += a.Usable(off)
			requested += size
		}
		if st := a.Stats(); st.Used != used || st.Requested != requested || st.Free != capacity-used {
			t.Fatalf("stats %+v; model has %d used, %d requested", st, used, requested)
		}
	}
	for _, off := range sorted() {
		if err := a.Free(off); err != nil {
			t.Fatalf("Free(%d): %v", off, err)
		}
	}
	if err := a.Check(); err != nil {
		t.Fatal(err)
	}
	if st := a.Stats(); st.Used != 0 || st.LargestFree != capacity || st.Fragmentation != 0 {
		t.Fatalf("all freed: %+v", st)
	}
}

// decodeSize maps a regime (0-7) and an 11-bit x to a request size: small
// classes, larger classes, around the slab/large boundary, large, whole pages,
// and invalid sizes.
func decodeSize(regime byte, x int64) int64 {
	switch regime {
	case 0:
		return x%512 + 1 // 64 B steps
	case 1:
		return x*32 + 1 // up to 64 KiB
	case 2:
		return x * 512 // up to 1 MiB; 0 is invalid
	case 3:
		return MaxSlabSize - 64 + x%256 // both sides of MaxSlabSize
	case 4:
		return x * 8 * KiB // up to 16 MiB
	case 5:
		return (x%32 + 1) * PageSize // whole pages
	case 6:
		return -x // invalid
	default:
		return x<<24 + 1 // mostly beyond capacity
	}
}

// seed encodes a capacity choice and a list of operations: a size > 0 is an
// Alloc of about that size, -1 frees the oldest live allocation, -2 frees
// garbage.
func seed(capChoice byte, ops []int) []byte {
	b := []byte{capChoice}
	enc := func(action, regime byte, x int) {
		b = append(b, action|regime<<2|byte(x>>8)<<5, byte(x))
	}
	for _, op := range ops {
		switch {
		case op == -1:
			enc(2, 0, 0)
		case op == -2:
			enc(3, 1, 1)
		case op <= 512:
			enc(0, 0, op-1)
		case op <= 64<<10:
			enc(0, 1, op/32)
		case op <= 1<<20:
			enc(0, 2, op/512)
		default:
			enc(0, 4, op/(8*KiB))
		}
	}
	return b
}

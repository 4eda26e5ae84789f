package zerocopy

import (
	"fmt"
	"testing"
)

// BenchmarkAsSlice: a typed view is O(1) and allocation-free whatever the size.
func BenchmarkAsSlice(b *testing.B) {
	buf := aligned(1 << 20)
	b.ReportAllocs()
	for b.Loop() {
		s, err := AsSlice[float32](buf)
		if err != nil || len(s) != 1<<18 {
			b.Fatal(err)
		}
	}
}

// BenchmarkParseFrame: parsing checks the header and table, and only touches the
// padding between buffers, not their bytes.
func BenchmarkParseFrame(b *testing.B) {
	for _, n := range []int{1, 16, 256} {
		b.Run(fmt.Sprintf("buffers=%d", n), func(b *testing.B) {
			bufs := make([]Buffer, n)
			for i := range bufs {
				bufs[i] = Buffer{Key: uint64(i + 1), Data: make([]byte, 4096+i)}
			}
			frame := writeFrame(b, make([]byte, 200), bufs)
			b.ReportAllocs()
			for b.Loop() {
				f, err := ParseFrame(frame)
				if err != nil || f.NumBuffers() != n {
					b.Fatal(err)
				}
			}
		})
	}
}

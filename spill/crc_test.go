package spill

import (
	"hash/crc32"
	"math/rand/v2"
	"slices"
	"testing"
)

// TestCRC32Combine checks crc32Combine against crc32.Checksum of the whole, over
// random splits of random data into parts, some of them empty.
func TestCRC32Combine(t *testing.T) {
	rng := rand.New(rand.NewPCG(31, 32))
	data := make([]byte, 3<<20)
	for i := range data {
		data[i] = byte(rng.Uint32())
	}
	for round := range 300 {
		n := rng.IntN(len(data) + 1)
		if round < 5 {
			n = round // tiny wholes too
		}
		whole := data[:n]
		var cuts []int
		for range rng.IntN(8) {
			cuts = append(cuts, rng.IntN(n+1))
		}
		if rng.IntN(4) == 0 {
			cuts = append(cuts, 0, n, n) // empty parts at either end
		}
		cuts = append(cuts, 0, n)
		slices.Sort(cuts)
		crc := uint32(0)
		for i := 1; i < len(cuts); i++ {
			part := whole[cuts[i-1]:cuts[i]]
			crc = crc32Combine(crc, crc32.Checksum(part, castagnoli), int64(len(part)))
		}
		if want := crc32.Checksum(whole, castagnoli); crc != want {
			t.Fatalf("%d bytes cut at %v: combined %08x, want %08x", n, cuts, crc, want)
		}
	}
}

// TestCRC32CombineLarge checks a part longer than a GiB against the checksum of
// the whole computed the slow way (the part is zeros, fed from one buffer), then
// lengths up to 2^63 by the operators' algebra: appending n zeros and then m is
// appending n+m.
func TestCRC32CombineLarge(t *testing.T) {
	rng := rand.New(rand.NewPCG(33, 34))
	head := []byte("the data before a long run of zeros")
	const n = 1<<30 + 3<<20 + 7
	zeros := make([]byte, 1<<20)
	slow, part := crc32.Checksum(head, castagnoli), uint32(0)
	for left := n; left > 0; left -= len(zeros) {
		z := zeros[:min(left, len(zeros))]
		slow = crc32.Update(slow, castagnoli, z)
		part = crc32.Update(part, castagnoli, z)
	}
	if got := crc32Combine(crc32.Checksum(head, castagnoli), part, n); got != slow {
		t.Fatalf("combine over %d bytes: %08x, want %08x", n, got, slow)
	}
	for range 1000 {
		a, b, c := rng.Uint32(), rng.Uint32(), rng.Uint32()
		n, m := rng.Int64N(1<<62), rng.Int64N(1<<62)
		left := crc32Combine(crc32Combine(a, b, n), c, m)
		right := crc32Combine(a, crc32Combine(b, c, m), n+m)
		if left != right {
			t.Fatalf("combine is not associative for lengths %d and %d: %08x != %08x", n, m, left, right)
		}
	}
	// A zero register stays zero however many zeros are appended.
	if got := crc32Combine(0, 0, 1<<62+12345); got != 0 {
		t.Errorf("zeros appended to a zero register: %08x", got)
	}
}

func BenchmarkCRC32Combine(b *testing.B) {
	zeroOps()
	var crc uint32
	for b.Loop() {
		crc = crc32Combine(crc, 0x12345678, 1<<20)
	}
	_ = crc
}

// BenchmarkChecksum is the checksum a restore adds to its copy: CRC-32C of a
// restoreChunk already in the CPU cache (op=crc32c), against copying it
// (op=copy). A restore on one goroutine is a page-cache copy plus this
// checksum, so their speeds bound it below a raw read.
func BenchmarkChecksum(b *testing.B) {
	src := make([]byte, restoreChunk)
	dst := make([]byte, restoreChunk)
	for i := range src {
		src[i], dst[i] = byte(i), 1
	}
	b.Run("op=crc32c", func(b *testing.B) {
		b.SetBytes(restoreChunk)
		for b.Loop() {
			checksum(src)
		}
	})
	b.Run("op=copy", func(b *testing.B) {
		b.SetBytes(restoreChunk)
		for b.Loop() {
			copy(dst, src)
		}
	})
}

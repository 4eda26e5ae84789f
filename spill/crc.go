package spill

import (
	"hash/crc32"
	"sync"
)

// CRC-32C of a concatenation from the CRCs of its parts, so that the ranges of
// one object can be checksummed on several goroutines and the results joined
// into the checksum its header holds.
//
// This is zlib's crc32_combine. A CRC is linear over GF(2): appending n zero
// bytes to a message multiplies its CRC register by a fixed 32×32 bit matrix,
// the n-byte "zeros operator", and CRC(A‖B) = zeros(len B)·CRC(A) ⊕ CRC(B) (the
// initial and final inversions cancel, as zlib's comment explains). zlib builds
// the operator for one zero bit from the polynomial, squares it to get 2, 4, 8
// bits, and goes on squaring along the bits of len(B). Here the squarings are
// done once, for every power of two up to 2⁶³ bytes, so a combine is at most
// one 32-step matrix-vector product per set bit of len(B) (under a microsecond)
// instead of some 25 squarings (tens of microseconds), which would cost as much
// as reading a range. zlib 1.2.12 made the same change (x2nmodp).

// gf2Matrix is a 32×32 matrix over GF(2): column i is m[i], bit j of it row j.
type gf2Matrix [32]uint32

// times returns m·vec.
func (m *gf2Matrix) times(vec uint32) uint32 {
	var sum uint32
	for i := 0; vec != 0; i, vec = i+1, vec>>1 {
		if vec&1 != 0 {
			sum ^= m[i]
		}
	}
	return sum
}

// square sets sq to m·m.
func (m *gf2Matrix) square(sq *gf2Matrix) {
	for i := range m {
		sq[i] = m.times(m[i])
	}
}

// zeroOps returns the operators appending 2^k zero bytes to a CRC-32C, for k in
// [0, 63]. They are built on first use (about 64 squarings, ~100 µs).
var zeroOps = sync.OnceValue(func() *[63]gf2Matrix {
	// The operator for one zero bit: shift the (reflected) register right by
	// one, and if the bit shifted out was set, xor in the polynomial.
	var odd, even gf2Matrix
	odd[0] = crc32.Castagnoli // the polynomial, bit-reversed
	for i := 1; i < 32; i++ {
		odd[i] = 1 << (i - 1)
	}
	odd.square(&even) // 2 zero bits
	even.square(&odd) // 4
	ops := new([63]gf2Matrix)
	odd.square(&ops[0]) // 8: one zero byte
	for k := 1; k < len(ops); k++ {
		ops[k-1].square(&ops[k])
	}
	return ops
})

// crc32Combine returns the CRC-32C of A‖B given crcA = CRC-32C(A), crcB =
// CRC-32C(B) and lenB = len(B) ≥ 0, as crc32.Checksum(A‖B, castagnoli) would.
func crc32Combine(crcA, crcB uint32, lenB int64) uint32 {
	ops := zeroOps()
	for k := 0; lenB > 0; k, lenB = k+1, lenB>>1 {
		if lenB&1 != 0 {
			crcA = ops[k].times(crcA)
		}
	}
	return crcA ^ crcB
}

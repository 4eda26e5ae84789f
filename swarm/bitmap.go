package swarm

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
)

// MaxChunks bounds the chunks of one object, and so the length a decoded
// Bitmap may announce: 1<<24 chunks of 64 KiB is 1 TiB, and its bitmap is
// 2 MiB on the wire.
const MaxChunks = 1 << 24

// ErrBitmap is wrapped by every error of Bitmap.Decode.
var ErrBitmap = errors.New("swarm: malformed chunk bitmap")

// A Bitmap is a set of chunks of one object, [0, Len()). The zero Bitmap is
// the empty set of no chunks. A Bitmap's methods do not copy it: a Bitmap
// passed by value shares its bits with the original, so Set on one is seen
// by both. Clone makes an independent copy.
type Bitmap struct {
	n int
	w []uint64
}

// NewBitmap is an empty set of n chunks (n < 0 is taken as 0).
func NewBitmap(n int) Bitmap {
	n = max(n, 0)
	return Bitmap{n: n, w: make([]uint64, (n+63)/64)}
}

// FullBitmap is the set of all n chunks: what a holder of a sealed copy has.
func FullBitmap(n int) Bitmap {
	b := NewBitmap(n)
	for i := range b.w {
		b.w[i] = ^uint64(0)
	}
	b.clearTail()
	return b
}

// Len is the number of chunks the set is over.
func (b Bitmap) Len() int { return b.n }

// Has reports whether c is in the set; a chunk outside [0, Len()) never is.
func (b Bitmap) Has(c Chunk) bool {
	if c < 0 || int(c) >= b.n {
		return false
	}
	return b.w[c>>6]&(1<<(uint(c)&63)) != 0
}

// Set adds c to the set; a chunk outside [0, Len()) is ignored.
func (b Bitmap) Set(c Chunk) {
	if c < 0 || int(c) >= b.n {
		return
	}
	b.w[c>>6] |= 1 << (uint(c) & 63)
}

// Count is the number of chunks in the set.
func (b Bitmap) Count() int {
	k := 0
	for _, w := range b.w {
		k += bits.OnesCount64(w)
	}
	return k
}

// Full reports whether every chunk is in the set.
func (b Bitmap) Full() bool { return b.Count() == b.n }

// Clone is an independent copy of b.
func (b Bitmap) Clone() Bitmap {
	return Bitmap{n: b.n, w: append([]uint64(nil), b.w...)}
}

// Equal reports whether a and b are the same set over the same length.
func (b Bitmap) Equal(o Bitmap) bool {
	if b.n != o.n {
		return false
	}
	for i, w := range b.w {
		if o.w[i] != w {
			return false
		}
	}
	return true
}

func (b Bitmap) clearTail() {
	if r := b.n & 63; r != 0 {
		b.w[len(b.w)-1] &= 1<<uint(r) - 1
	}
}

// Append appends b's encoding to dst: Len as a uvarint, then the set's bits,
// chunk 0 in the low bit of the first byte, (Len+7)/8 bytes in all. Bits past
// Len are zero. An encoding is exactly one set's, so Decode(Append(b)) == b.
func (b Bitmap) Append(dst []byte) []byte {
	dst = binary.AppendUvarint(dst, uint64(b.n))
	nb := (b.n + 7) / 8
	for i := 0; i < nb; i++ {
		dst = append(dst, byte(b.w[i/8]>>(8*(uint(i)%8))))
	}
	return dst
}

// EncodedLen is len(b.Append(nil)).
func (b Bitmap) EncodedLen() int {
	var tmp [binary.MaxVarintLen64]byte
	return binary.PutUvarint(tmp[:], uint64(b.n)) + (b.n+7)/8
}

// Decode sets b to the bitmap encoded at the start of p (Append's format) and
// returns what follows it. A malformed encoding (truncated, a length above
// MaxChunks, a length not in its shortest form, bits set past the length)
// gives an error wrapping ErrBitmap and leaves b as it was.
func (b *Bitmap) Decode(p []byte) (rest []byte, err error) {
	n, k := binary.Uvarint(p)
	if k <= 0 {
		return p, fmt.Errorf("%w: truncated or overlong length", ErrBitmap)
	}
	if k != len(binary.AppendUvarint(nil, n)) {
		return p, fmt.Errorf("%w: length not in its shortest form", ErrBitmap)
	}
	if n > MaxChunks {
		return p, fmt.Errorf("%w: %d chunks exceeds the limit of %d", ErrBitmap, n, MaxChunks)
	}
	nb := (int(n) + 7) / 8
	if len(p)-k < nb {
		return p, fmt.Errorf("%w: %d chunks need %d bytes, %d left", ErrBitmap, n, nb, len(p)-k)
	}
	data := p[k : k+nb]
	if r := n & 7; r != 0 && data[nb-1]>>r != 0 {
		return p, fmt.Errorf("%w: bits set past chunk %d", ErrBitmap, n)
	}
	nbm := NewBitmap(int(n))
	for i, c := range data {
		nbm.w[i/8] |= uint64(c) << (8 * (uint(i) % 8))
	}
	*b = nbm
	return p[k+nb:], nil
}

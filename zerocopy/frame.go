package zerocopy

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// A frame is the byte layout of a typed value: a CBOR body that describes the value,
// and out-of-band buffers that hold its large arrays, each 64-byte aligned so it can
// be viewed in place. All integers are little-endian.
//
//	offset         size  field
//	0              4     magic "TRV1"
//	4              1     version (1)
//	5              1     flags (none are defined: must be 0)
//	6              2     reserved (0)
//	8              8     body length
//	16             4     buffer count n
//	20             4     reserved (0)
//	24             24·n  buffer table: n × (key u64, offset u64, length u64), keys strictly increasing
//	24+24n         ...   body
//	...                  buffers, in table order, each at the first multiple of 64 at or
//	                     after the end of what precedes it; the padding bytes are 0
//
// The frame ends where its last buffer (or, without buffers, its body) ends. Offsets
// are relative to the frame's start. Unknown flags and versions are rejected, so a
// later writer can add features that old readers refuse instead of misreading.
const (
	// FrameMagic opens every frame.
	FrameMagic = "TRV1"
	// FrameVersion is the version of the layout this package reads and writes.
	FrameVersion = 1
	// FrameHeaderSize is the size of the fixed header before the buffer table.
	FrameHeaderSize = 24
	// FrameEntrySize is the size of one buffer-table entry.
	FrameEntrySize = 24
	// BufferAlign is the alignment of every buffer's offset within its frame.
	BufferAlign = 64
)

// ErrBadFrame is wrapped by every error ParseFrame returns: the bytes are not a
// frame WriteFrame wrote (not a trove value, a newer version, or corrupted).
var ErrBadFrame = errors.New("zerocopy: malformed value frame")

// Buffer is one out-of-band buffer of a frame: bytes named by a key that the body
// refers to.
type Buffer struct {
	Key  uint64
	Data []byte
}

// Frame is a parsed frame. Its body and buffers alias the bytes given to ParseFrame:
// they are valid only as long as those bytes are (for an object's bytes, until the
// trove.Object is released), and read-only if those bytes are.
type Frame struct {
	b     []byte // the whole frame
	table []byte // n entries of FrameEntrySize bytes
	body  []byte
}

func alignUp(n int) int { return (n + BufferAlign - 1) &^ (BufferAlign - 1) }

// FrameSize returns the size of the frame WriteFrame writes for a body of bodyLen
// bytes and buffers of the given lengths, in that order. Lengths must not be negative.
func FrameSize(bodyLen int, bufLens []int) int {
	end := FrameHeaderSize + FrameEntrySize*len(bufLens) + bodyLen
	for _, n := range bufLens {
		end = alignUp(end) + n
	}
	return end
}

// WriteFrame writes the frame for body and bufs into dst, which must be exactly
// FrameSize(len(body), lengths of bufs) bytes long; it writes every byte of dst,
// padding included, so dst may hold old data. bufs must be in strictly increasing
// order of Key (sort them first; keys are how the body names buffers, so each must be
// unique). Each buffer's bytes are copied once, straight to their place in dst.
func WriteFrame(dst []byte, body []byte, bufs []Buffer) error {
	if uint64(len(bufs)) > math.MaxUint32 {
		return fmt.Errorf("zerocopy: write frame: %d buffers, at most %d fit", len(bufs), uint32(math.MaxUint32))
	}
	end := FrameHeaderSize + FrameEntrySize*len(bufs) + len(body)
	for i, buf := range bufs {
		if i > 0 && buf.Key <= bufs[i-1].Key {
			return fmt.Errorf("zerocopy: write frame: buffer keys must be strictly increasing, but buffer %d has key %#x after %#x; sort them and drop duplicates",
				i, buf.Key, bufs[i-1].Key)
		}
		end = alignUp(end) + len(buf.Data)
	}
	if len(dst) != end {
		return fmt.Errorf("zerocopy: write frame: destination is %d bytes, the frame needs exactly %d (use FrameSize)", len(dst), end)
	}

	copy(dst, FrameMagic)
	dst[4] = FrameVersion
	dst[5] = 0 // flags
	binary.LittleEndian.PutUint16(dst[6:], 0)
	binary.LittleEndian.PutUint64(dst[8:], uint64(len(body)))
	binary.LittleEndian.PutUint32(dst[16:], uint32(len(bufs)))
	binary.LittleEndian.PutUint32(dst[20:], 0)
	pos := FrameHeaderSize + FrameEntrySize*len(bufs)
	pos += copy(dst[pos:], body)
	for i, buf := range bufs {
		off := alignUp(pos)
		clear(dst[pos:off])
		e := dst[FrameHeaderSize+FrameEntrySize*i:]
		binary.LittleEndian.PutUint64(e[0:], buf.Key)
		binary.LittleEndian.PutUint64(e[8:], uint64(off))
		binary.LittleEndian.PutUint64(e[16:], uint64(len(buf.Data)))
		pos = off + copy(dst[off:], buf.Data)
	}
	return nil
}

func frameErr(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrBadFrame}, args...)...)
}

// ParseFrame checks that b is a frame WriteFrame wrote and returns it, without
// copying or allocating: its body and buffers alias b. It rejects, with an error
// wrapping ErrBadFrame, anything else: a wrong magic or version, unknown flags,
// lengths or offsets past the end, buffers that overlap, are misaligned, are out of
// key order or leave non-zero padding, and trailing bytes. Its work is linear in
// len(b) whatever the header claims.
func ParseFrame(b []byte) (Frame, error) {
	if len(b) < FrameHeaderSize {
		return Frame{}, frameErr("%d bytes, shorter than the %d-byte header", len(b), FrameHeaderSize)
	}
	if string(b[:4]) != FrameMagic {
		return Frame{}, frameErr("magic %q, want %q (not a value written by trove.PutValue)", b[:4], FrameMagic)
	}
	if b[4] != FrameVersion {
		return Frame{}, frameErr("version %d, this build reads version %d", b[4], FrameVersion)
	}
	if b[5] != 0 {
		return Frame{}, frameErr("unknown flags %#x", b[5])
	}
	if binary.LittleEndian.Uint16(b[6:]) != 0 || binary.LittleEndian.Uint32(b[20:]) != 0 {
		return Frame{}, frameErr("reserved header bytes are not zero")
	}
	size := uint64(len(b))
	n := uint64(binary.LittleEndian.Uint32(b[16:]))
	if n > (size-FrameHeaderSize)/FrameEntrySize {
		return Frame{}, frameErr("%d buffers need a %d-byte table, but the frame is %d bytes",
			n, n*FrameEntrySize, size)
	}
	bodyOff := FrameHeaderSize + n*FrameEntrySize
	bodyLen := binary.LittleEndian.Uint64(b[8:])
	if bodyLen > size-bodyOff {
		return Frame{}, frameErr("body of %d bytes at offset %d runs past the end of the %d-byte frame", bodyLen, bodyOff, size)
	}
	table := b[FrameHeaderSize:bodyOff]
	pos := bodyOff + bodyLen
	for i := uint64(0); i < n; i++ {
		e := table[i*FrameEntrySize:]
		key := binary.LittleEndian.Uint64(e[0:])
		off := binary.LittleEndian.Uint64(e[8:])
		length := binary.LittleEndian.Uint64(e[16:])
		if i > 0 && key <= binary.LittleEndian.Uint64(table[(i-1)*FrameEntrySize:]) {
			return Frame{}, frameErr("buffer %d: key %#x is not greater than the previous key", i, key)
		}
		if off%BufferAlign != 0 {
			return Frame{}, frameErr("buffer %d: offset %d is not a multiple of %d", i, off, BufferAlign)
		}
		if off < pos {
			return Frame{}, frameErr("buffer %d: offset %d overlaps what precedes it (which ends at %d)", i, off, pos)
		}
		// pos ≤ size, so alignUp cannot overflow; a canonical frame has no gap.
		if want := uint64(alignUp(int(pos))); off != want {
			return Frame{}, frameErr("buffer %d: offset %d, want %d (the first aligned offset after what precedes it)", i, off, want)
		}
		if off > size || length > size-off {
			return Frame{}, frameErr("buffer %d: %d bytes at offset %d run past the end of the %d-byte frame", i, length, off, size)
		}
		for _, c := range b[pos:off] {
			if c != 0 {
				return Frame{}, frameErr("buffer %d: padding before offset %d is not zero", i, off)
			}
		}
		pos = off + length
	}
	if pos != size {
		return Frame{}, frameErr("%d trailing bytes after the end at %d", size-pos, pos)
	}
	return Frame{b: b, table: table, body: b[bodyOff : bodyOff+bodyLen : bodyOff+bodyLen]}, nil
}

// Body returns the frame's CBOR body, aliasing the frame's bytes.
func (f Frame) Body() []byte { return f.body }

// NumBuffers returns the number of out-of-band buffers.
func (f Frame) NumBuffers() int { return len(f.table) / FrameEntrySize }

// Buffer returns the i'th buffer (in increasing key order), aliasing the frame's
// bytes. It panics if i is out of range, like an index expression.
func (f Frame) Buffer(i int) Buffer {
	e := f.table[i*FrameEntrySize : (i+1)*FrameEntrySize]
	off := binary.LittleEndian.Uint64(e[8:])
	end := off + binary.LittleEndian.Uint64(e[16:])
	return Buffer{Key: binary.LittleEndian.Uint64(e), Data: f.b[off:end:end]}
}

// Lookup returns the buffer named key, aliasing the frame's bytes, and whether there
// is one. It takes O(log n) for n buffers.
func (f Frame) Lookup(key uint64) ([]byte, bool) {
	lo, hi := 0, f.NumBuffers()
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		if binary.LittleEndian.Uint64(f.table[mid*FrameEntrySize:]) < key {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	if lo < f.NumBuffers() {
		if b := f.Buffer(lo); b.Key == key {
			return b.Data, true
		}
	}
	return nil, false
}

package spill

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"hash/crc32"
	"math"

	"github.com/zeebo/xxh3"
)

// ID names an object in a spill file. The engine fills it from trove.ObjectID;
// this package only compares it, and prints it in errors.
type ID [16]byte

// String returns the ID as 32 lower-case hex digits, as trove.ObjectID prints.
func (id ID) String() string { return hex.EncodeToString(id[:]) }

// HeaderSize is the size of the header before each object's data in a spill file.
// A batch takes the sum of its objects' sizes plus HeaderSize per object on disk.
const HeaderSize = 48

// FormatVersion is the version of the object header this package writes and reads.
// Version 1 (40-byte headers, CRC-32C checksums) was written by earlier builds; it
// is recognised, so that its files are refused with a clear error and swept as
// trove's when their owner is gone, but never read.
const FormatVersion = 2

// headerMagic opens every object header: "TRSP", trove spill.
var headerMagic = [4]byte{'T', 'R', 'S', 'P'}

// The data of an object of at least alignMin bytes begins on a multiple of
// dataAlign in its file: the header right before it, and zeros between the end
// of the previous object and the header (at most dataAlign-1 bytes, under 7% of
// such an object). Copies between the page cache and memory run at ~0.7 of
// their speed when the file offset is not aligned as the memory is: measured
// with 256 KiB preads on the project's VM, 7.6 GB/s at an offset of 48 bytes
// against 10.8 GB/s at 0 (and 9.4 at 64). Smaller objects are packed, header
// after data, as their share of the copying is small. A file's first header is
// so at offset 0, or at dataAlign-HeaderSize if its first object is aligned.
const (
	dataAlign = 4096
	alignMin  = 64 << 10
)

// alignPad returns the zeros to put at file offset off before an aligned
// object's header.
func alignPad(off int64) int64 {
	return (dataAlign - (off+HeaderSize)%dataAlign) % dataAlign
}

// checksumBlock is the unit of the data checksum. An object's checksum is
//
//	XXH3-64(data)                                   if len(data) ≤ checksumBlock
//	XXH3-64(le64(XXH3-64(block 0)) ‖ le64(…(block 1)) ‖ …) otherwise
//
// where the blocks are the data cut into checksumBlock bytes (the last may be
// shorter): a hash of the blocks' hashes. Any goroutine can hash any block, so a
// large object is checksummed in ranges on several cores and the parts joined in
// order (readParallel), and each block is hashed in one call while it is in the
// CPU's L2 cache, right after it was read or before it is written. XXH3-64 (with
// Go assembly for AVX2 and SSE2) runs several times faster than the CRC-32C of
// format version 1 on the amd64 machines measured (BenchmarkChecksum): a one-
// goroutine restore is then a copy plus a fraction, not a copy plus twice it.
// Like a CRC it detects corruption, not tampering: spill files are the store's
// own scratch space.
const checksumBlock = 256 << 10

// summer computes an object's data checksum from its blocks, in order. The zero
// summer is ready for a first object; reset it before each next one.
type summer struct {
	first uint64      // the first block's hash
	n     int         // blocks so far
	h     xxh3.Hasher // the hashes of the blocks, once there are two
}

func (s *summer) reset() { s.n = 0 }

// block adds the next checksumBlock bytes of the data (fewer for the last).
func (s *summer) block(b []byte) { s.add(xxh3.Hash(b)) }

// add adds the hash of the next block.
func (s *summer) add(d uint64) {
	switch s.n {
	case 0:
		s.first = d
	case 1:
		s.h.Reset()
		s.write(s.first)
		fallthrough
	default:
		s.write(d)
	}
	s.n++
}

func (s *summer) write(d uint64) {
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], d)
	_, _ = s.h.Write(b[:]) // never fails
}

// sum returns the checksum of the blocks added since the last reset.
func (s *summer) sum() uint64 {
	switch s.n {
	case 0:
		return xxh3.Hash(nil)
	case 1:
		return s.first
	}
	return s.h.Sum64()
}

// blocks feeds data, which begins on a block boundary of its object, to s one
// block at a time.
func (s *summer) blocks(data []byte) {
	for len(data) > checksumBlock {
		s.block(data[:checksumBlock])
		data = data[checksumBlock:]
	}
	if len(data) > 0 {
		s.block(data)
	}
}

// dataChecksum returns the checksum of a whole object's data.
func dataChecksum(data []byte) uint64 {
	var s summer
	s.blocks(data)
	return s.sum()
}

// The header layout, all integers little endian (see doc.go):
//
//	off len field
//	  0   4 magic "TRSP"
//	  4   2 format version (2)
//	  6   2 header size in bytes (48)
//	  8  16 object ID
//	 24   8 data length in bytes (at most math.MaxInt64)
//	 32   8 checksum of the data (see checksumBlock)
//	 40   8 XXH3-64 of header bytes [0, 40)
const (
	offVersion = 4
	offHdrSize = 6
	offID      = 8
	offLength  = 24
	offDataSum = 32
	offHdrSum  = 40
)

// Version 1's header: 40 bytes, the same fields up to the length, then the
// CRC-32C of the data at 32 and the CRC-32C of bytes [0, 36) at 36.
const (
	v1HeaderSize = 40
	v1OffHdrCRC  = 36
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// header is one decoded object header.
type header struct {
	id      ID
	length  int64
	dataSum uint64
}

// encode writes h into b[:HeaderSize].
func (h *header) encode(b []byte) {
	b = b[:HeaderSize]
	copy(b, headerMagic[:])
	binary.LittleEndian.PutUint16(b[offVersion:], FormatVersion)
	binary.LittleEndian.PutUint16(b[offHdrSize:], HeaderSize)
	copy(b[offID:], h.id[:])
	binary.LittleEndian.PutUint64(b[offLength:], uint64(h.length))
	binary.LittleEndian.PutUint64(b[offDataSum:], h.dataSum)
	binary.LittleEndian.PutUint64(b[offHdrSum:], xxh3.Hash(b[:offHdrSum]))
}

// isV1Header reports whether b begins with a valid version 1 header (an older
// trove's): magic, version 1 and its CRC-32C.
func isV1Header(b []byte) bool {
	return len(b) >= v1HeaderSize && [4]byte(b[:4]) == headerMagic &&
		binary.LittleEndian.Uint16(b[offVersion:]) == 1 &&
		binary.LittleEndian.Uint16(b[offHdrSize:]) == v1HeaderSize &&
		crc32.Checksum(b[:v1OffHdrCRC], castagnoli) == binary.LittleEndian.Uint32(b[v1OffHdrCRC:])
}

// isTroveHeader reports whether b begins with an object header of any version
// trove has written: the proof that a leftover file is trove's.
func isTroveHeader(b []byte) bool {
	if _, err := decodeHeader(b); err == nil {
		return true
	}
	return isV1Header(b)
}

// decodeHeader parses and verifies the header at the start of b. The bytes come
// from disk and may be anything: every field is checked before it is trusted, and
// the error says which check failed.
func decodeHeader(b []byte) (header, error) {
	if isV1Header(b) {
		return header{}, fmt.Errorf("format version 1 (CRC-32C, written by an older trove), this build reads only %d", FormatVersion)
	}
	if len(b) < HeaderSize {
		return header{}, fmt.Errorf("header is %d bytes, want %d", len(b), HeaderSize)
	}
	b = b[:HeaderSize]
	if [4]byte(b[:4]) != headerMagic {
		return header{}, fmt.Errorf("bad magic %q, want %q", b[:4], headerMagic[:])
	}
	// The header checksum comes before the fields it covers are interpreted, so a
	// flipped bit in the version or size is reported as what it is.
	if got, want := xxh3.Hash(b[:offHdrSum]), binary.LittleEndian.Uint64(b[offHdrSum:]); got != want {
		return header{}, fmt.Errorf("header checksum mismatch: stored %016x, computed %016x", want, got)
	}
	if v := binary.LittleEndian.Uint16(b[offVersion:]); v != FormatVersion {
		return header{}, fmt.Errorf("format version %d, this build reads only %d", v, FormatVersion)
	}
	if n := binary.LittleEndian.Uint16(b[offHdrSize:]); n != HeaderSize {
		return header{}, fmt.Errorf("header size %d, want %d", n, HeaderSize)
	}
	n := binary.LittleEndian.Uint64(b[offLength:])
	if n > math.MaxInt64 {
		return header{}, fmt.Errorf("data length %d out of range", n)
	}
	return header{
		id:      ID(b[offID : offID+16]),
		length:  int64(n),
		dataSum: binary.LittleEndian.Uint64(b[offDataSum:]),
	}, nil
}

package spill

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"hash/crc32"
	"math"
)

// ID names an object in a spill file. The engine fills it from trove.ObjectID;
// this package only compares it, and prints it in errors.
type ID [16]byte

// String returns the ID as 32 lower-case hex digits, as trove.ObjectID prints.
func (id ID) String() string { return hex.EncodeToString(id[:]) }

// HeaderSize is the size of the header before each object's data in a spill file.
// A batch takes the sum of its objects' sizes plus HeaderSize per object on disk.
const HeaderSize = 40

// FormatVersion is the version of the object header this package writes and reads.
const FormatVersion = 1

// headerMagic opens every object header: "TRSP", trove spill.
var headerMagic = [4]byte{'T', 'R', 'S', 'P'}

// castagnoli is the CRC-32C table; hash/crc32 computes it with SSE 4.2 / ARMv8 CRC
// instructions, at several GB/s, so checksumming costs a fraction of the I/O.
var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func checksum(b []byte) uint32 { return crc32.Checksum(b, castagnoli) }

// The header layout, all integers little endian (see doc.go):
//
//	off len field
//	  0   4 magic "TRSP"
//	  4   2 format version (1)
//	  6   2 header size in bytes (40)
//	  8  16 object ID
//	 24   8 data length in bytes (at most math.MaxInt64)
//	 32   4 CRC-32C of the data
//	 36   4 CRC-32C of header bytes [0, 36)
const (
	offVersion = 4
	offHdrSize = 6
	offID      = 8
	offLength  = 24
	offDataCRC = 32
	offHdrCRC  = 36
)

// header is one decoded object header.
type header struct {
	id      ID
	length  int64
	dataCRC uint32
}

// encode writes h into b[:HeaderSize].
func (h *header) encode(b []byte) {
	b = b[:HeaderSize]
	copy(b, headerMagic[:])
	binary.LittleEndian.PutUint16(b[offVersion:], FormatVersion)
	binary.LittleEndian.PutUint16(b[offHdrSize:], HeaderSize)
	copy(b[offID:], h.id[:])
	binary.LittleEndian.PutUint64(b[offLength:], uint64(h.length))
	binary.LittleEndian.PutUint32(b[offDataCRC:], h.dataCRC)
	binary.LittleEndian.PutUint32(b[offHdrCRC:], checksum(b[:offHdrCRC]))
}

// decodeHeader parses and verifies the header at the start of b. The bytes come
// from disk and may be anything: every field is checked before it is trusted, and
// the error says which check failed.
func decodeHeader(b []byte) (header, error) {
	if len(b) < HeaderSize {
		return header{}, fmt.Errorf("header is %d bytes, want %d", len(b), HeaderSize)
	}
	b = b[:HeaderSize]
	if [4]byte(b[:4]) != headerMagic {
		return header{}, fmt.Errorf("bad magic %q, want %q", b[:4], headerMagic[:])
	}
	// The header checksum comes before the fields it covers are interpreted, so a
	// flipped bit in the version or size is reported as what it is.
	if got, want := checksum(b[:offHdrCRC]), binary.LittleEndian.Uint32(b[offHdrCRC:]); got != want {
		return header{}, fmt.Errorf("header checksum mismatch: stored %08x, computed %08x", want, got)
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
		dataCRC: binary.LittleEndian.Uint32(b[offDataCRC:]),
	}, nil
}

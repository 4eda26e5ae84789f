package main

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
)

// A payload is an object loadgen wrote, made so that any Get of it can be checked
// without remembering its bytes:
//
//	offset size
//	0      4    magic "TRLG"
//	4      4    CRC-32C (Castagnoli) of the body
//	8      8    total size in bytes, header included
//	16     8    seed the body was generated from
//	24     4    format version (1)
//	28     4    CRC-32C of bytes 0..28
//	32     ...  body: pseudo-random bytes generated from the seed
//
// The reader knows the size and seed it put (kept next to the ref), so a view of
// the wrong object, a truncated one, or one with any flipped byte fails verify.
// Generating a body runs at about memory-copy speed (each word is independent of
// the last), and it is done outside the timed part of a Put.
const (
	headerSize     = 32
	payloadMagic   = 0x474c5254 // "TRLG" little-endian
	payloadVersion = 1
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// fillPayload writes the payload of len(dst) bytes for seed into dst, which must be
// at least headerSize long.
func fillPayload(dst []byte, seed uint64) {
	body := dst[headerSize:]
	fillBody(body, seed)
	h := dst[:headerSize]
	binary.LittleEndian.PutUint32(h[0:], payloadMagic)
	binary.LittleEndian.PutUint32(h[4:], crc32.Checksum(body, castagnoli))
	binary.LittleEndian.PutUint64(h[8:], uint64(len(dst)))
	binary.LittleEndian.PutUint64(h[16:], seed)
	binary.LittleEndian.PutUint32(h[24:], payloadVersion)
	binary.LittleEndian.PutUint32(h[28:], crc32.Checksum(h[:28], castagnoli))
}

// fillBody fills b with a counter-based SplitMix64 stream from seed: every word is
// independent of the previous one, so the loop runs at memory speed.
func fillBody(b []byte, seed uint64) {
	const gamma = 0x9e3779b97f4a7c15
	base := seed * gamma
	i := 0
	for ; i+8 <= len(b); i += 8 {
		binary.LittleEndian.PutUint64(b[i:], mix64(base+uint64(i/8+1)*gamma))
	}
	if i < len(b) {
		var tail [8]byte
		binary.LittleEndian.PutUint64(tail[:], mix64(base+uint64(i/8+1)*gamma))
		copy(b[i:], tail[:])
	}
}

func mix64(z uint64) uint64 {
	z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
	z = (z ^ z>>27) * 0x94d049bb133111eb
	return z ^ z>>31
}

// verify checks that b is the payload of wantSize bytes loadgen wrote for
// wantSeed. The error says what is wrong (and, for a damaged body, the offset of
// the first bad byte); callers add the object ID.
func verifyPayload(b []byte, wantSize int64, wantSeed uint64) error {
	if int64(len(b)) != wantSize {
		return fmt.Errorf("size %d, want %d", len(b), wantSize)
	}
	if len(b) < headerSize {
		return fmt.Errorf("%d bytes, shorter than the %d-byte header", len(b), headerSize)
	}
	h := b[:headerSize]
	if m := binary.LittleEndian.Uint32(h[0:]); m != payloadMagic {
		return fmt.Errorf("bad magic %#08x, want %#08x (not a loadgen payload, or its first bytes are damaged)", m, payloadMagic)
	}
	if got, want := binary.LittleEndian.Uint32(h[28:]), crc32.Checksum(h[:28], castagnoli); got != want {
		return fmt.Errorf("header checksum %#08x, computed %#08x: header damaged", got, want)
	}
	if v := binary.LittleEndian.Uint32(h[24:]); v != payloadVersion {
		return fmt.Errorf("payload version %d, want %d", v, payloadVersion)
	}
	if n := binary.LittleEndian.Uint64(h[8:]); n != uint64(wantSize) {
		return fmt.Errorf("header says size %d, want %d", n, wantSize)
	}
	if s := binary.LittleEndian.Uint64(h[16:]); s != wantSeed {
		return fmt.Errorf("header says seed %#x, want %#x (another object's bytes)", s, wantSeed)
	}
	body := b[headerSize:]
	if got, want := crc32.Checksum(body, castagnoli), binary.LittleEndian.Uint32(h[4:]); got != want {
		return fmt.Errorf("body checksum %#08x, header says %#08x: body damaged%s", got, want, firstDiff(body, wantSeed))
	}
	return nil
}

// firstDiff regenerates the body for seed and reports where b first differs.
func firstDiff(b []byte, seed uint64) string {
	want := make([]byte, len(b))
	fillBody(want, seed)
	for i := range b {
		if b[i] != want[i] {
			return fmt.Sprintf(" (first bad byte at offset %d: %#02x, want %#02x)", headerSize+i, b[i], want[i])
		}
	}
	return ""
}

package spill

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"hash/crc32"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/zeebo/xxh3"
)

// TestHeaderGolden pins the on-disk format: a change here is a format change and
// needs a new FormatVersion.
func TestHeaderGolden(t *testing.T) {
	h := header{id: ID{0: 0x01, 15: 0xff}, length: 0x0102030405, dataSum: 0x0807060504030201}
	var b [HeaderSize]byte
	h.encode(b[:])
	const want = "54525350" + "0200" + "3000" + // magic, version 2, size 48
		"010000000000000000000000000000ff" + // ID
		"0504030201000000" + // length
		"0102030405060708" // data checksum
	if got := hex.EncodeToString(b[:offHdrSum]); got != want {
		t.Errorf("header\n got %s\nwant %s", got, want)
	}
	if got, want := binary.LittleEndian.Uint64(b[offHdrSum:]), xxh3.Hash(b[:offHdrSum]); got != want {
		t.Errorf("header checksum %016x, want %016x", got, want)
	}
	if got, err := decodeHeader(b[:]); err != nil || got != h {
		t.Errorf("decode = %+v, %v; want %+v", got, err, h)
	}
	// The hash is XXH3-64 with seed 0: its published value for no input.
	if got := xxh3.Hash(nil); got != 0x2d06800538d394c2 {
		t.Errorf("XXH3-64 of nothing %016x, want 2d06800538d394c2", got)
	}
}

// TestDataChecksum checks the data checksum against its definition (checksumBlock's
// comment), and that summer gives it however the blocks arrive.
func TestDataChecksum(t *testing.T) {
	const B = checksumBlock
	rng := rand.New(rand.NewPCG(41, 42))
	data := make([]byte, 5*B+17)
	for i := range data {
		data[i] = byte(rng.Uint32())
	}
	for _, n := range []int{0, 1, 1000, B - 1, B, B + 1, 2 * B, 3*B + 5, len(data)} {
		d := data[:n]
		var want uint64
		if n <= B {
			want = xxh3.Hash(d)
		} else {
			var cat []byte
			for off := 0; off < n; off += B {
				cat = binary.LittleEndian.AppendUint64(cat, xxh3.Hash(d[off:min(off+B, n)]))
			}
			want = xxh3.Hash(cat)
		}
		if got := dataChecksum(d); got != want {
			t.Errorf("%d bytes: checksum %016x, want %016x", n, got, want)
		}
		// In pieces of whole blocks, as the writer's windows give them, after
		// another object's.
		var s summer
		s.blocks(data[:2*B+3])
		s.reset()
		for off := 0; off < n; off += 2 * B {
			s.blocks(d[off:min(off+2*B, n)])
		}
		if got := s.sum(); got != want {
			t.Errorf("%d bytes in 2-block pieces: checksum %016x, want %016x", n, got, want)
		}
	}
	// A flipped bit anywhere changes it.
	whole := dataChecksum(data)
	for _, i := range []int{0, B - 1, B, 3*B + 100, len(data) - 1} {
		data[i] ^= 0x10
		if dataChecksum(data) == whole {
			t.Errorf("flipping a bit of byte %d leaves the checksum", i)
		}
		data[i] ^= 0x10
	}
}

// v1Header returns a version 1 header (an older trove's, 40 bytes, CRC-32C).
func v1Header(id ID, length int64, dataCRC uint32) []byte {
	b := make([]byte, v1HeaderSize)
	copy(b, headerMagic[:])
	binary.LittleEndian.PutUint16(b[offVersion:], 1)
	binary.LittleEndian.PutUint16(b[offHdrSize:], v1HeaderSize)
	copy(b[offID:], id[:])
	binary.LittleEndian.PutUint64(b[offLength:], uint64(length))
	binary.LittleEndian.PutUint32(b[32:], dataCRC)
	binary.LittleEndian.PutUint32(b[v1OffHdrCRC:], crc32.Checksum(b[:v1OffHdrCRC], castagnoli))
	return b
}

func TestDecodeHeaderRejects(t *testing.T) {
	good := func() []byte {
		var b [HeaderSize]byte
		(&header{id: ID{1, 2, 3}, length: 12345, dataSum: 42}).encode(b[:])
		return b[:]
	}
	resum := func(b []byte) []byte {
		binary.LittleEndian.PutUint64(b[offHdrSum:], xxh3.Hash(b[:offHdrSum]))
		return b
	}
	tests := []struct {
		name string
		b    []byte
		want string
	}{
		{"short", good()[:HeaderSize-1], "header is 47 bytes"},
		{"magic", func() []byte { b := good(); b[1] = 'X'; return b }(), "bad magic"},
		{"header checksum", func() []byte { b := good(); b[offLength] ^= 1; return b }(), "header checksum mismatch"},
		{"checksum field", func() []byte { b := good(); b[offHdrSum+7] ^= 1; return b }(), "header checksum mismatch"},
		{"version", func() []byte { b := good(); b[offVersion] = 3; return resum(b) }(), "format version 3"},
		{"size", func() []byte { b := good(); b[offHdrSize] = 40; return resum(b) }(), "header size 40"},
		{"length", func() []byte {
			b := good()
			binary.LittleEndian.PutUint64(b[offLength:], math.MaxInt64+1)
			return resum(b)
		}(), "out of range"},
		{"version 1", v1Header(ID{1}, 100, 7), "format version 1 (CRC-32C, written by an older trove), this build reads only 2"},
		{"version 1 with data after it", append(v1Header(ID{1}, 100, 7), make([]byte, 100)...), "format version 1"},
		{"version 1, bad CRC", func() []byte { b := v1Header(ID{1}, 100, 7); b[offLength] ^= 1; return b }(), "header is 40 bytes"},
	}
	for _, tt := range tests {
		if _, err := decodeHeader(tt.b); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: err = %v, want %q", tt.name, err, tt.want)
		}
	}
}

// TestIsTroveHeader: the leftover sweep recognises the headers of both format
// versions as trove's, and nothing else.
func TestIsTroveHeader(t *testing.T) {
	var v2 [HeaderSize]byte
	(&header{id: ID{9}, length: 5, dataSum: 1}).encode(v2[:])
	v1 := v1Header(ID{9}, 5, 1)
	tests := []struct {
		name string
		b    []byte
		want bool
	}{
		{"version 2", v2[:], true},
		{"version 1", v1, true},
		{"version 1 and its data", append(v1, 1, 2, 3, 4, 5), true},
		{"version 2 cut short", v2[:HeaderSize-1], false},
		{"version 1 cut short", v1[:v1HeaderSize-1], false},
		{"version 1, bad CRC", func() []byte { b := v1Header(ID{9}, 5, 1); b[offID] ^= 1; return b }(), false},
		{"version 2, bad checksum", func() []byte { b := v2; b[offID] ^= 1; return b[:] }(), false},
		{"zeros", make([]byte, HeaderSize), false},
		{"text", []byte(strings.Repeat("TRSP not a header ", 4)), false},
	}
	for _, tt := range tests {
		if got := isTroveHeader(tt.b); got != tt.want {
			t.Errorf("%s: isTroveHeader = %v, want %v", tt.name, got, tt.want)
		}
	}
}

// FuzzObjectHeader: the decoder takes whatever is on disk. It must never panic,
// must accept only what the encoder writes (so a decoded header re-encodes to the
// same bytes), and must read back everything the encoder writes.
func FuzzObjectHeader(f *testing.F) {
	for _, h := range []header{
		{},
		{id: ID{0: 1, 15: 2}, length: 1 << 20, dataSum: 0xdeadbeef},
		{id: ID{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, length: math.MaxInt64, dataSum: math.MaxUint64},
	} {
		var b [HeaderSize]byte
		h.encode(b[:])
		f.Add(b[:])
		f.Add(b[:HeaderSize-1])
		f.Add(append(b[:], 0xaa, 0xbb))
	}
	f.Add(v1Header(ID{1}, 1<<20, 0xdeadbeef))
	f.Add([]byte("TRSP"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if h, err := decodeHeader(b); err == nil {
			var out [HeaderSize]byte
			h.encode(out[:])
			if !bytes.Equal(out[:], b[:HeaderSize]) {
				t.Fatalf("decoded %+v from %x, which encodes as %x", h, b[:HeaderSize], out)
			}
			if isV1Header(b) {
				t.Fatalf("%x decodes both as version 2 and as version 1", b)
			}
		}
		// The fuzz bytes as fields: every header the encoder writes decodes to itself.
		if len(b) >= 32 {
			h := header{id: ID(b[:16]), length: int64(binary.LittleEndian.Uint64(b[16:]) &^ (1 << 63)), dataSum: binary.LittleEndian.Uint64(b[24:])}
			var enc [HeaderSize]byte
			h.encode(enc[:])
			if got, err := decodeHeader(enc[:]); err != nil || got != h {
				t.Fatalf("encoded %+v, decoded %+v, %v", h, got, err)
			}
		}
	})
}

// BenchmarkChecksum is the checksum a restore adds to its copy: the data checksum
// of a restoreChunk already in the CPU cache (op=xxh3, what format version 2
// stores; op=crc32c, version 1's, for comparison), against copying it (op=copy).
// A restore on one goroutine is a page-cache copy plus this checksum, so their
// speeds bound it below a raw read.
func BenchmarkChecksum(b *testing.B) {
	src := make([]byte, restoreChunk)
	dst := make([]byte, restoreChunk)
	for i := range src {
		src[i], dst[i] = byte(i), 1
	}
	b.Run("op=xxh3", func(b *testing.B) {
		b.SetBytes(restoreChunk)
		for b.Loop() {
			dataChecksum(src)
		}
	})
	b.Run("op=crc32c", func(b *testing.B) {
		b.SetBytes(restoreChunk)
		for b.Loop() {
			crc32.Checksum(src, castagnoli)
		}
	})
	b.Run("op=copy", func(b *testing.B) {
		b.SetBytes(restoreChunk)
		for b.Loop() {
			copy(dst, src)
		}
	})
}

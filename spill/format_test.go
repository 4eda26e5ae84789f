package spill

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"math"
	"strings"
	"testing"
)

// TestHeaderGolden pins the on-disk format: a change here is a format change and
// needs a new FormatVersion.
func TestHeaderGolden(t *testing.T) {
	h := header{id: ID{0: 0x01, 15: 0xff}, length: 0x0102030405, dataCRC: 0xdeadbeef}
	var b [HeaderSize]byte
	h.encode(b[:])
	const want = "54525350" + "0100" + "2800" + // magic, version 1, size 40
		"010000000000000000000000000000ff" + // ID
		"0504030201000000" + // length
		"efbeadde" // data CRC
	if got := hex.EncodeToString(b[:offHdrCRC]); got != want {
		t.Errorf("header\n got %s\nwant %s", got, want)
	}
	if got, want := binary.LittleEndian.Uint32(b[offHdrCRC:]), checksum(b[:offHdrCRC]); got != want {
		t.Errorf("header CRC %08x, want %08x", got, want)
	}
	if got, err := decodeHeader(b[:]); err != nil || got != h {
		t.Errorf("decode = %+v, %v; want %+v", got, err, h)
	}
	// The CRC is Castagnoli's: the standard check value of "123456789".
	if got := checksum([]byte("123456789")); got != 0xe3069283 {
		t.Errorf("CRC-32C check value %08x, want e3069283", got)
	}
}

func TestDecodeHeaderRejects(t *testing.T) {
	good := func() []byte {
		var b [HeaderSize]byte
		(&header{id: ID{1, 2, 3}, length: 12345, dataCRC: 42}).encode(b[:])
		return b[:]
	}
	resum := func(b []byte) []byte {
		binary.LittleEndian.PutUint32(b[offHdrCRC:], checksum(b[:offHdrCRC]))
		return b
	}
	tests := []struct {
		name string
		b    []byte
		want string
	}{
		{"short", good()[:HeaderSize-1], "header is 39 bytes"},
		{"magic", func() []byte { b := good(); b[1] = 'X'; return b }(), "bad magic"},
		{"header crc", func() []byte { b := good(); b[offLength] ^= 1; return b }(), "header checksum mismatch"},
		{"crc field", func() []byte { b := good(); b[offHdrCRC] ^= 1; return b }(), "header checksum mismatch"},
		{"version", func() []byte { b := good(); b[offVersion] = 2; return resum(b) }(), "format version 2"},
		{"size", func() []byte { b := good(); b[offHdrSize] = 48; return resum(b) }(), "header size 48"},
		{"length", func() []byte {
			b := good()
			binary.LittleEndian.PutUint64(b[offLength:], math.MaxInt64+1)
			return resum(b)
		}(), "out of range"},
	}
	for _, tt := range tests {
		if _, err := decodeHeader(tt.b); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: err = %v, want %q", tt.name, err, tt.want)
		}
	}
}

// FuzzObjectHeader: the decoder takes whatever is on disk. It must never panic,
// must accept only what the encoder writes (so a decoded header re-encodes to the
// same bytes), and must read back everything the encoder writes.
func FuzzObjectHeader(f *testing.F) {
	for _, h := range []header{
		{},
		{id: ID{0: 1, 15: 2}, length: 1 << 20, dataCRC: 0xdeadbeef},
		{id: ID{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, length: math.MaxInt64, dataCRC: math.MaxUint32},
	} {
		var b [HeaderSize]byte
		h.encode(b[:])
		f.Add(b[:])
		f.Add(b[:HeaderSize-1])
		f.Add(append(b[:], 0xaa, 0xbb))
	}
	f.Add([]byte("TRSP"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if h, err := decodeHeader(b); err == nil {
			var out [HeaderSize]byte
			h.encode(out[:])
			if !bytes.Equal(out[:], b[:HeaderSize]) {
				t.Fatalf("decoded %+v from %x, which encodes as %x", h, b[:HeaderSize], out)
			}
		}
		// The fuzz bytes as fields: every header the encoder writes decodes to itself.
		if len(b) >= 28 {
			h := header{id: ID(b[:16]), length: int64(binary.LittleEndian.Uint64(b[16:]) &^ (1 << 63)), dataCRC: binary.LittleEndian.Uint32(b[24:])}
			var enc [HeaderSize]byte
			h.encode(enc[:])
			if got, err := decodeHeader(enc[:]); err != nil || got != h {
				t.Fatalf("encoded %+v, decoded %+v, %v", h, got, err)
			}
		}
	})
}

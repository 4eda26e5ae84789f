package zerocopy

import (
	"bytes"
	"encoding/binary"
	"errors"
	"slices"
	"strings"
	"testing"
	"unsafe"
)

func writeFrame(t testing.TB, body []byte, bufs []Buffer) []byte {
	t.Helper()
	lens := make([]int, len(bufs))
	for i, b := range bufs {
		lens[i] = len(b.Data)
	}
	dst := aligned(FrameSize(len(body), lens))
	for i := range dst {
		dst[i] = 0xee // WriteFrame must write every byte, padding included
	}
	if err := WriteFrame(dst, body, bufs); err != nil {
		t.Fatal(err)
	}
	return dst
}

func seq(n int, start byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = start + byte(i)
	}
	return b
}

var frameCases = []struct {
	name string
	body []byte
	bufs []Buffer
}{
	{"empty", nil, nil},
	{"body only", []byte("\xa1\x61a\x01"), nil},
	{"one buffer", []byte("body"), []Buffer{{Key: 7, Data: seq(100, 1)}}},
	{"three buffers", seq(77, 0), []Buffer{{Key: 1, Data: seq(64, 1)}, {Key: 2, Data: seq(1, 9)}, {Key: 1 << 63, Data: seq(130, 3)}}},
	{"empty buffers", nil, []Buffer{{Key: 0, Data: nil}, {Key: 5, Data: seq(3, 1)}, {Key: 6}}},
}

func TestFrameRoundTrip(t *testing.T) {
	for _, tc := range frameCases {
		t.Run(tc.name, func(t *testing.T) {
			b := writeFrame(t, tc.body, tc.bufs)
			f, err := ParseFrame(b)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(f.Body(), tc.body) || f.NumBuffers() != len(tc.bufs) {
				t.Fatalf("body %q, %d buffers; want %q, %d", f.Body(), f.NumBuffers(), tc.body, len(tc.bufs))
			}
			if len(tc.body) > 0 && unsafe.Pointer(&f.Body()[0]) != unsafe.Pointer(&b[FrameHeaderSize+FrameEntrySize*len(tc.bufs)]) {
				t.Fatal("body is not an alias of the frame's bytes")
			}
			for i, want := range tc.bufs {
				got := f.Buffer(i)
				if got.Key != want.Key || !bytes.Equal(got.Data, want.Data) {
					t.Fatalf("buffer %d: %#x %v, want %#x %v", i, got.Key, got.Data, want.Key, want.Data)
				}
				if len(got.Data) > 0 {
					off := uintptr(unsafe.Pointer(&got.Data[0])) - uintptr(unsafe.Pointer(&b[0]))
					if off%BufferAlign != 0 || off >= uintptr(len(b)) {
						t.Fatalf("buffer %d at frame offset %d: not %d-aligned inside the frame", i, off, BufferAlign)
					}
				}
				if data, ok := f.Lookup(want.Key); !ok || !bytes.Equal(data, want.Data) {
					t.Fatalf("Lookup(%#x) = %v, %v", want.Key, data, ok)
				}
			}
			if _, ok := f.Lookup(3); ok {
				t.Fatal("Lookup found a key that is not there")
			}
		})
	}
}

func TestWriteFrameErrors(t *testing.T) {
	if err := WriteFrame(make([]byte, 10), nil, nil); err == nil || !strings.Contains(err.Error(), "needs exactly 24") {
		t.Fatalf("short dst: %v", err)
	}
	bufs := []Buffer{{Key: 2, Data: []byte{1}}, {Key: 2, Data: []byte{2}}}
	if err := WriteFrame(make([]byte, FrameSize(0, []int{1, 1})), nil, bufs); err == nil || !strings.Contains(err.Error(), "strictly increasing") {
		t.Fatalf("duplicate keys: %v", err)
	}
}

func TestParseFrameErrors(t *testing.T) {
	good := writeFrame(t, []byte("body"), []Buffer{{Key: 1, Data: seq(10, 1)}, {Key: 9, Data: seq(70, 1)}})
	mutate := func(f func(b []byte) []byte) []byte { return f(bytes.Clone(good)) }
	put64 := func(off int, v uint64) []byte {
		return mutate(func(b []byte) []byte { binary.LittleEndian.PutUint64(b[off:], v); return b })
	}
	const tab = FrameHeaderSize
	tests := []struct {
		name    string
		in      []byte
		wantErr string
	}{
		{"nil", nil, "shorter than the 24-byte header"},
		{"short", good[:23], "shorter than"},
		{"magic", mutate(func(b []byte) []byte { b[0] = 'X'; return b }), "magic"},
		{"version", mutate(func(b []byte) []byte { b[4] = 2; return b }), "version 2"},
		{"flags", mutate(func(b []byte) []byte { b[5] = 1; return b }), "unknown flags"},
		{"reserved", mutate(func(b []byte) []byte { b[21] = 1; return b }), "reserved"},
		{"count too large", mutate(func(b []byte) []byte { binary.LittleEndian.PutUint32(b[16:], 0xffffffff); return b }), "buffers need a"},
		{"body past end", put64(8, 1<<40), "runs past the end"},
		{"body huge", put64(8, ^uint64(0)), "runs past the end"},
		{"body longer", put64(8, 60), "overlaps"},
		{"body shorter", put64(8, 3), "padding"},
		{"keys out of order", put64(tab+FrameEntrySize, 1), "not greater than the previous key"},
		{"misaligned", put64(tab+8, 65), "not a multiple of 64"},
		{"overlap", put64(tab+FrameEntrySize+8, 64), "overlaps"},
		{"gap", put64(tab+8, 192), "want 128"},
		{"length past end", put64(tab+FrameEntrySize+16, 1000), "run past the end"},
		{"length huge", put64(tab+FrameEntrySize+16, ^uint64(0)), "run past the end"},
		{"offset huge", put64(tab+FrameEntrySize+8, ^uint64(63)), "want"},
		{"padding", mutate(func(b []byte) []byte { b[FrameHeaderSize+2*FrameEntrySize+5] = 1; return b }), "padding"},
		{"trailing", append(bytes.Clone(good), 0), "1 trailing bytes"},
		{"truncated", good[:len(good)-1], "run past the end"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseFrame(tt.in)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !errors.Is(err, ErrBadFrame) {
				t.Fatalf("err %v, want ErrBadFrame containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestParseFrameAllocs(t *testing.T) {
	b := writeFrame(t, []byte("body"), []Buffer{{Key: 1, Data: seq(10, 1)}, {Key: 9, Data: seq(70, 1)}})
	if n := testing.AllocsPerRun(100, func() {
		f, err := ParseFrame(b)
		if err != nil || f.NumBuffers() != 2 {
			t.Fatal(err)
		}
		if _, ok := f.Lookup(9); !ok {
			t.Fatal("lookup")
		}
	}); n != 0 {
		t.Fatalf("ParseFrame allocates %v times per call, want 0", n)
	}
}

// FuzzParseFrame: ParseFrame never panics, and whatever it accepts is exactly what
// WriteFrame writes for the body and buffers it returns.
func FuzzParseFrame(f *testing.F) {
	for _, tc := range frameCases {
		f.Add(writeFrame(f, tc.body, tc.bufs))
	}
	f.Add([]byte(FrameMagic))
	f.Fuzz(func(t *testing.T, in []byte) {
		fr, err := ParseFrame(in)
		if err != nil {
			if !errors.Is(err, ErrBadFrame) {
				t.Fatalf("error does not wrap ErrBadFrame: %v", err)
			}
			return
		}
		bufs := make([]Buffer, fr.NumBuffers())
		lens := make([]int, len(bufs))
		for i := range bufs {
			bufs[i] = fr.Buffer(i)
			lens[i] = len(bufs[i].Data)
			if data, ok := fr.Lookup(bufs[i].Key); !ok || !bytes.Equal(data, bufs[i].Data) {
				t.Fatalf("Lookup(%#x) disagrees with Buffer(%d)", bufs[i].Key, i)
			}
		}
		if n := FrameSize(len(fr.Body()), lens); n != len(in) {
			t.Fatalf("FrameSize = %d for an accepted frame of %d bytes", n, len(in))
		}
		out := make([]byte, len(in))
		if err := WriteFrame(out, slices.Clone(fr.Body()), bufs); err != nil {
			t.Fatalf("WriteFrame of a parsed frame: %v", err)
		}
		if !bytes.Equal(out, in) {
			t.Fatalf("round trip changed the bytes:\n in %x\nout %x", in, out)
		}
	})
}

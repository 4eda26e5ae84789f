package zerocopy

import (
	"strings"
	"testing"
	"unsafe"
)

// aligned returns n zero bytes starting at a 64-byte aligned address, as objects in
// the arena do.
func aligned(n int) []byte {
	b := make([]byte, n+BufferAlign)
	off := (BufferAlign - int(uintptr(unsafe.Pointer(&b[0]))%BufferAlign)) % BufferAlign
	return b[off : off+n : off+n]
}

func TestAsSliceZeroCopy(t *testing.T) {
	b := aligned(64)
	for i := range b {
		b[i] = byte(i)
	}
	s, err := AsSlice[uint32](b)
	if err != nil {
		t.Fatal(err)
	}
	if len(s) != 16 || cap(s) != 16 {
		t.Fatalf("len %d cap %d, want 16 16", len(s), cap(s))
	}
	if unsafe.Pointer(&s[0]) != unsafe.Pointer(&b[0]) {
		t.Fatalf("AsSlice copied: &s[0]=%p, &b[0]=%p", &s[0], &b[0])
	}
	if s[1] != 0x07060504 { // little-endian
		t.Fatalf("s[1] = %#x, want 0x07060504", s[1])
	}
	back := Bytes(s)
	if unsafe.Pointer(&back[0]) != unsafe.Pointer(&b[0]) || len(back) != len(b) {
		t.Fatalf("Bytes copied or changed length: %p/%d vs %p/%d", &back[0], len(back), &b[0], len(b))
	}
	b[4] = 0xff // the view sees writes to the bytes: it is the same memory
	if s[1] != 0x070605ff {
		t.Fatalf("view does not alias the bytes: s[1] = %#x", s[1])
	}
}

func TestAsSliceErrors(t *testing.T) {
	b := aligned(128)
	tests := []struct {
		name    string
		view    func() (int, error)
		wantLen int
		wantErr string // "" for success
	}{
		{"uint8 any length", func() (int, error) { s, err := AsSlice[uint8](b[1:8]); return len(s), err }, 7, ""},
		{"int16 aligned", func() (int, error) { s, err := AsSlice[int16](b[2:10]); return len(s), err }, 4, ""},
		{"int16 odd length", func() (int, error) { s, err := AsSlice[int16](b[:7]); return len(s), err }, 0, "not a whole number of 2-byte elements"},
		{"int16 misaligned", func() (int, error) { s, err := AsSlice[int16](b[1:9]); return len(s), err }, 0, "not aligned to 2 bytes"},
		{"float32 misaligned", func() (int, error) { s, err := AsSlice[float32](b[2:10]); return len(s), err }, 0, "not aligned to 4 bytes"},
		{"float32 length", func() (int, error) { s, err := AsSlice[float32](b[:10]); return len(s), err }, 0, "2 bytes left over"},
		{"float64 aligned 8", func() (int, error) { s, err := AsSlice[float64](b[8:40]); return len(s), err }, 4, ""},
		{"float64 misaligned", func() (int, error) { s, err := AsSlice[float64](b[4:36]); return len(s), err }, 0, "not aligned to 8 bytes"},
		{"uint64 empty", func() (int, error) { s, err := AsSlice[uint64](b[3:3]); return len(s), err }, 0, ""},
		{"int64 nil", func() (int, error) { s, err := AsSlice[int64](nil); return len(s), err }, 0, ""},
		{"defined type", func() (int, error) { type C float32; s, err := AsSlice[C](b[:12]); return len(s), err }, 3, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, err := tt.view()
			if tt.wantErr == "" {
				if err != nil || n != tt.wantLen {
					t.Fatalf("got len %d, err %v; want len %d", n, err, tt.wantLen)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("got err %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestAsSliceAllocs(t *testing.T) {
	b := aligned(1 << 12)
	if n := testing.AllocsPerRun(100, func() {
		s, err := AsSlice[float32](b)
		if err != nil || len(s) != 1<<10 {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Fatalf("AsSlice allocates %v times per call, want 0", n)
	}
}

func TestDTypes(t *testing.T) {
	type celsius float32
	tests := []struct {
		got  DType
		want DType
		name string
		size int
	}{
		{DTypeOf[int8](), Int8, "int8", 1},
		{DTypeOf[uint8](), Uint8, "uint8", 1},
		{DTypeOf[byte](), Uint8, "uint8", 1},
		{DTypeOf[int16](), Int16, "int16", 2},
		{DTypeOf[uint16](), Uint16, "uint16", 2},
		{DTypeOf[int32](), Int32, "int32", 4},
		{DTypeOf[uint32](), Uint32, "uint32", 4},
		{DTypeOf[int64](), Int64, "int64", 8},
		{DTypeOf[uint64](), Uint64, "uint64", 8},
		{DTypeOf[float32](), Float32, "float32", 4},
		{DTypeOf[float64](), Float64, "float64", 8},
		{DTypeOf[celsius](), Float32, "float32", 4},
	}
	for _, tt := range tests {
		if tt.got != tt.want || tt.got.String() != tt.name || tt.got.Size() != tt.size || !tt.got.Valid() {
			t.Errorf("got %v (size %d, valid %v), want %v (%s, size %d)", tt.got, tt.got.Size(), tt.got.Valid(), tt.want, tt.name, tt.size)
		}
	}
	for _, bad := range []DType{0, Float64 + 1, 255} {
		if bad.Valid() || bad.Size() != 0 || !strings.HasPrefix(bad.String(), "DType(") {
			t.Errorf("invalid dtype %d: valid %v, size %d, string %q", uint8(bad), bad.Valid(), bad.Size(), bad)
		}
	}
}

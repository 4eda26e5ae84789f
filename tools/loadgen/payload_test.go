package main

import (
	"strings"
	"testing"
)

func TestPayloadRoundTrip(t *testing.T) {
	for _, size := range []int{headerSize, headerSize + 1, headerSize + 7, headerSize + 8, 100, 4096, 4096 + 3, 1 << 20} {
		for _, seed := range []uint64{0, 1, 0xdeadbeef, ^uint64(0)} {
			b := make([]byte, size)
			fillPayload(b, seed)
			if err := verifyPayload(b, int64(size), seed); err != nil {
				t.Fatalf("size %d seed %#x: %v", size, seed, err)
			}
		}
	}
	// Different seeds give different bodies.
	a, b := make([]byte, 256), make([]byte, 256)
	fillPayload(a, 1)
	fillPayload(b, 2)
	if string(a[headerSize:]) == string(b[headerSize:]) {
		t.Error("seeds 1 and 2 gave the same body")
	}
}

// Every single flipped bit, in the header or the body, must fail verification.
func TestPayloadDetectsFlippedByte(t *testing.T) {
	const size, seed = 300, 42
	good := make([]byte, size)
	fillPayload(good, seed)
	for i := range size {
		for _, mask := range []byte{0x01, 0x80, 0xff} {
			b := append([]byte(nil), good...)
			b[i] ^= mask
			err := verifyPayload(b, size, seed)
			if err == nil {
				t.Fatalf("flipping byte %d with %#x went undetected", i, mask)
			}
			if i >= headerSize && !strings.Contains(err.Error(), "offset") {
				t.Errorf("byte %d: error %q does not say where", i, err)
			}
		}
	}
}

func TestPayloadDetectsWrongObject(t *testing.T) {
	b := make([]byte, 1000)
	fillPayload(b, 7)
	for _, tc := range []struct {
		name string
		b    []byte
		size int64
		seed uint64
		want string
	}{
		{"other seed", b, 1000, 8, "seed"},
		{"truncated", b[:999], 1000, 7, "size"},
		{"longer", append(b, 0), 1000, 7, "size"},
		{"shorter than the header", b[:10], 10, 7, "header"},
		{"zeros", make([]byte, 1000), 1000, 7, "magic"},
		{"empty", nil, 0, 7, "header"},
	} {
		err := verifyPayload(tc.b, tc.size, tc.seed)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one mentioning %q", tc.name, err, tc.want)
		}
	}
}

func BenchmarkFillPayload(b *testing.B) {
	buf := make([]byte, 16<<20)
	b.SetBytes(int64(len(buf)))
	for i := 0; b.Loop(); i++ {
		fillPayload(buf, uint64(i))
	}
}

func BenchmarkVerifyPayload(b *testing.B) {
	buf := make([]byte, 16<<20)
	fillPayload(buf, 1)
	b.SetBytes(int64(len(buf)))
	for b.Loop() {
		if err := verifyPayload(buf, int64(len(buf)), 1); err != nil {
			b.Fatal(err)
		}
	}
}

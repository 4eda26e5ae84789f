package arena

import (
	"bytes"
	"runtime/debug"
	"testing"
)

func TestWritesVisibleThroughReadOnlyMapping(t *testing.T) {
	a, err := New(1<<20, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if err := a.Prefault(4096); err != nil {
		t.Fatal(err)
	}
	w := a.Writable(100, 5)
	copy(w, "hello")
	if got := a.ReadOnly(100, 5); !bytes.Equal(got, []byte("hello")) {
		t.Fatalf("read-only mapping shows %q, want %q", got, "hello")
	}
	if cap(w) != 5 {
		t.Fatalf("writable slice has cap %d, want 5 (must not reach neighbours)", cap(w))
	}
}

func TestWriteThroughReadOnlyViewFaults(t *testing.T) {
	a, err := New(1<<20, Options{Prefault: PrefaultEager})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	copy(a.Writable(0, 4), "abcd")
	ro := a.ReadOnly(0, 1<<20)

	old := debug.SetPanicOnFault(true)
	defer debug.SetPanicOnFault(old)
	faulted := func() (f bool) {
		defer func() { f = recover() != nil }()
		ro[0] = 'X'
		return false
	}()
	if !faulted {
		t.Fatal("writing through the read-only mapping did not fault")
	}
	if got := string(a.ReadOnly(0, 4)); got != "abcd" {
		t.Fatalf("object changed to %q after a faulting write", got)
	}
}

func TestPrefault(t *testing.T) {
	tests := []struct {
		name      string
		opts      Options
		size, end int64
		want      int64
	}{
		{"lazy rounds to chunk", Options{Chunk: 1 << 20}, 8 << 20, 1, 1 << 20},
		{"lazy stops at size", Options{Chunk: 4 << 20}, 6 << 20, 5 << 20, 6 << 20},
		{"eager populates all", Options{Prefault: PrefaultEager}, 2 << 20, 0, 2 << 20},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := New(tt.size, tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			defer a.Close()
			if err := a.Prefault(tt.end); err != nil {
				t.Fatal(err)
			}
			if got := a.Populated(); got != tt.want {
				t.Fatalf("Populated() = %d, want %d", got, tt.want)
			}
		})
	}
}

func TestPrefaultKeepsContents(t *testing.T) {
	a, err := New(4<<20, Options{Chunk: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	// A write beyond the populated frontier (allowed: it just faults) must survive
	// a later populate of the range.
	copy(a.Writable(3<<20, 3), "abc")
	if err := a.Prefault(4 << 20); err != nil {
		t.Fatal(err)
	}
	if got := string(a.ReadOnly(3<<20, 3)); got != "abc" {
		t.Fatalf("populate changed contents to %q", got)
	}
}

func TestNewRejectsBadSize(t *testing.T) {
	if _, err := New(0, Options{}); err == nil {
		t.Fatal("New(0) succeeded")
	}
}

func TestOutOfRangePanics(t *testing.T) {
	a, err := New(1<<16, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	defer func() {
		if recover() == nil {
			t.Fatal("ReadOnly past the end did not panic")
		}
	}()
	a.ReadOnly(1<<16-1, 2)
}

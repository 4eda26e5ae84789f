package eviction

import (
	"slices"
	"testing"
	"unsafe"
)

// TestNodeSize keeps nodes compact: the engine may track millions.
func TestNodeSize(t *testing.T) {
	type objectID [20]byte
	for _, tc := range []struct {
		name      string
		got, want uintptr
	}{
		{"pointer key", unsafe.Sizeof(node[*int]{}), 40},
		{"uint64 key", unsafe.Sizeof(node[uint64]{}), 40},
		{"uint32 key", unsafe.Sizeof(node[uint32]{}), 32},
		{"20-byte key", unsafe.Sizeof(node[objectID]{}), 48},
	} {
		if tc.got != tc.want {
			t.Errorf("node with %s is %d bytes, want %d", tc.name, tc.got, tc.want)
		}
	}
}

// TestZeroValue: an LRU declared without New works, before and after use.
func TestZeroValue(t *testing.T) {
	var l LRU[string]
	mustCheck(t, &l)
	if l.Touch("a") || l.Pin("a") || l.Unpin("a") || l.Remove("a") || l.Contains("a") || l.Pinned("a") {
		t.Fatal("an operation on the zero LRU found a key")
	}
	if _, _, ok := l.Victim(); ok {
		t.Fatal("the zero LRU has a victim")
	}
	if v := l.Victims(10, 0); v != nil {
		t.Fatalf("Victims on the zero LRU = %v", v)
	}
	l.Each(func(string, int64, int) bool { t.Fatal("Each visited an entry of the zero LRU"); return false })
	if l.Len() != 0 || l.Bytes() != 0 || l.PinnedLen() != 0 || l.PinnedBytes() != 0 || l.EvictableBytes() != 0 {
		t.Fatal("the zero LRU has non-zero stats")
	}
	if !l.Add("a", 5) || !l.Pin("a") {
		t.Fatal("Add or Pin failed on the zero LRU")
	}
	mustCheck(t, &l)
	if _, _, ok := l.Victim(); ok {
		t.Fatal("the only entry is pinned but is a victim")
	}
}

func TestAddNegativeSizePanics(t *testing.T) {
	l := New[int]()
	defer func() {
		if recover() == nil {
			t.Fatal("Add with a negative size did not panic")
		}
		mustCheck(t, l)
		if l.Contains(1) {
			t.Fatal("the rejected entry was added")
		}
	}()
	l.Add(1, -1)
}

// TestEachStops: Each stops as soon as f returns false, in either half.
func TestEachStops(t *testing.T) {
	l := New[int]()
	for k := range 6 {
		l.Add(k, int64(k))
	}
	l.Pin(4)
	l.Pin(5)
	for _, stopAt := range []int{1, 3, 5} {
		n := 0
		l.Each(func(int, int64, int) bool { n++; return n < stopAt })
		if n != stopAt {
			t.Errorf("Each returning false at call %d made %d calls", stopAt, n)
		}
	}
}

// TestAppendVictims: appends after what dst holds and reuses its array.
func TestAppendVictims(t *testing.T) {
	l := New[int]()
	for k := range 4 {
		l.Add(k, 10)
	}
	buf := make([]int, 1, 8)
	buf[0] = -1
	got := l.AppendVictims(buf, 25, 0)
	if want := []int{-1, 0, 1, 2}; !slices.Equal(got, want) {
		t.Fatalf("AppendVictims = %v, want %v", got, want)
	}
	if &got[0] != &buf[0] {
		t.Fatal("AppendVictims did not reuse dst's array")
	}
}

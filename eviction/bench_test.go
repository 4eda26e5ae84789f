package eviction

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// record stands for the engine's per-object record, whose pointer is the
// likely key.
type record struct {
	id   [20]byte
	size int64
}

var benchSizes = []int{1 << 10, 1 << 20}

// benchLRU returns an LRU holding n records of 1 MiB each, and the keys in a
// random order for the benchmark to visit.
func benchLRU(n int) (*LRU[*record], []*record) {
	l := New[*record]()
	keys := make([]*record, n)
	for i := range keys {
		keys[i] = &record{size: 1 << 20}
		l.Add(keys[i], keys[i].size)
	}
	r := rand.New(rand.NewPCG(1, 2))
	r.Shuffle(n, func(i, j int) { keys[i], keys[j] = keys[j], keys[i] })
	return l, keys
}

// BenchmarkTouch: one Touch of a random present key (a map lookup and a
// relink); with n=1Mi the nodes do not fit in cache.
func BenchmarkTouch(b *testing.B) {
	for _, n := range benchSizes {
		b.Run(fmt.Sprintf("n=%d", n), func(b *testing.B) {
			l, keys := benchLRU(n)
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				l.Touch(keys[i])
				i++
				if i == n {
					i = 0
				}
			}
		})
	}
}

// BenchmarkPinUnpin: a Pin and its Unpin of a random present key.
func BenchmarkPinUnpin(b *testing.B) {
	for _, n := range benchSizes {
		b.Run(fmt.Sprintf("n=%d", n), func(b *testing.B) {
			l, keys := benchLRU(n)
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				l.Pin(keys[i])
				l.Unpin(keys[i])
				i++
				if i == n {
					i = 0
				}
			}
		})
	}
}

// BenchmarkAddRemove: steady state with n live entries, each iteration
// removing the oldest and adding a new one (one node allocated per Add).
func BenchmarkAddRemove(b *testing.B) {
	for _, n := range benchSizes {
		b.Run(fmt.Sprintf("n=%d", n), func(b *testing.B) {
			l, _ := benchLRU(n)
			spare := make([]*record, n)
			for i := range spare {
				spare[i] = &record{size: 1 << 20}
			}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				old, _, _ := l.Victim()
				l.Remove(old)
				l.Add(spare[i], spare[i].size)
				spare[i] = old
				i++
				if i == n {
					i = 0
				}
			}
		})
	}
}

// BenchmarkVictim: Victim is O(1) however many of the oldest entries are
// pinned, since pinned entries are not in the list.
func BenchmarkVictim(b *testing.B) {
	const n = 1 << 16
	for _, pinnedPct := range []int{0, 99} {
		b.Run(fmt.Sprintf("pinned=%d%%", pinnedPct), func(b *testing.B) {
			l := New[*record]()
			for i := range n {
				k := &record{size: 1 << 20}
				l.Add(k, k.size)
				if i < n*pinnedPct/100 {
					l.Pin(k)
				}
			}
			b.ReportAllocs()
			var sink int64
			for b.Loop() {
				_, size, _ := l.Victim()
				sink += size
			}
			if sink == 0 {
				b.Fatal("no victim")
			}
		})
	}
}

// BenchmarkVictims: choosing enough victims to free 64 MiB from 1 MiB
// entries (64 keys) into a reused buffer.
func BenchmarkVictims(b *testing.B) {
	l, _ := benchLRU(1 << 16)
	buf := make([]*record, 0, 64)
	b.ReportAllocs()
	for b.Loop() {
		buf = l.AppendVictims(buf[:0], 64<<20, 0)
	}
	if len(buf) != 64 {
		b.Fatalf("got %d victims, want 64", len(buf))
	}
}

// TestZeroAllocs: the calls the engine makes on every Get and under memory
// pressure allocate nothing.
func TestZeroAllocs(t *testing.T) {
	l, keys := benchLRU(1024)
	buf := make([]*record, 0, 16)
	i := 0
	next := func() *record { i = (i + 1) % len(keys); return keys[i] }
	for _, tc := range []struct {
		name string
		f    func()
	}{
		{"Touch", func() { l.Touch(next()) }},
		{"Pin+Unpin", func() { k := next(); l.Pin(k); l.Unpin(k) }},
		{"nested Pin+Unpin", func() { k := next(); l.Pin(k); l.Pin(k); l.Unpin(k); l.Unpin(k) }},
		{"Victim", func() { l.Victim() }},
		{"AppendVictims", func() { buf = l.AppendVictims(buf[:0], 16<<20, 0) }},
		{"Contains+Pinned", func() { k := next(); l.Contains(k); l.Pinned(k) }},
	} {
		if n := testing.AllocsPerRun(1000, tc.f); n != 0 {
			t.Errorf("%s: %v allocations per run, want 0", tc.name, n)
		}
	}
	mustCheck(t, l)
}

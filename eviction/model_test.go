package eviction

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

// model is the obviously correct LRU the real one is compared against: a
// slice in recency order, scanned for everything. Pinned entries keep a place
// in the slice but are skipped; unpinning to zero moves an entry to the end.
type model struct {
	entries []modelEntry // least recently used first
}

type modelEntry struct {
	key  int
	size int64
	pins int
}

func (m *model) find(k int) int {
	return slices.IndexFunc(m.entries, func(e modelEntry) bool { return e.key == k })
}

func (m *model) moveToEnd(i int) {
	e := m.entries[i]
	m.entries = append(slices.Delete(m.entries, i, i+1), e)
}

func (m *model) add(k int, size int64) bool {
	if m.find(k) >= 0 {
		return false
	}
	m.entries = append(m.entries, modelEntry{key: k, size: size})
	return true
}

func (m *model) touch(k int) bool {
	i := m.find(k)
	if i >= 0 && m.entries[i].pins == 0 {
		m.moveToEnd(i)
	}
	return i >= 0
}

func (m *model) pin(k int) bool {
	i := m.find(k)
	if i >= 0 {
		m.entries[i].pins++
	}
	return i >= 0
}

func (m *model) unpin(k int) bool {
	i := m.find(k)
	if i < 0 || m.entries[i].pins == 0 {
		return false
	}
	m.entries[i].pins--
	if m.entries[i].pins == 0 {
		m.moveToEnd(i)
	}
	return true
}

func (m *model) remove(k int) bool {
	i := m.find(k)
	if i >= 0 {
		m.entries = slices.Delete(m.entries, i, i+1)
	}
	return i >= 0
}

func (m *model) victims(need int64, max int) []int {
	var out []int
	var got int64
	for _, e := range m.entries {
		if got >= need || (max > 0 && len(out) >= max) {
			break
		}
		if e.pins == 0 {
			out = append(out, e.key)
			got += e.size
		}
	}
	return out
}

// op is one random operation; the fields an operation does not use are
// ignored.
type op struct {
	kind int // see apply
	key  int
	size int64 // for add; need for victims
	max  int
}

const numOps = 8

func (o op) String() string {
	return fmt.Sprintf("%s(key=%d size=%d max=%d)",
		[numOps]string{"add", "touch", "pin", "unpin", "remove", "victim", "victims", "query"}[o.kind], o.key, o.size, o.max)
}

// apply runs o on both l and m and returns an error if they disagree in a
// result, in the stats, in the order Each reports, or if l breaks an
// invariant.
func apply(l *LRU[int], m *model, o op) error {
	switch o.kind {
	case 0:
		if got, want := l.Add(o.key, o.size), m.add(o.key, o.size); got != want {
			return fmt.Errorf("Add = %v, model %v", got, want)
		}
	case 1:
		if got, want := l.Touch(o.key), m.touch(o.key); got != want {
			return fmt.Errorf("Touch = %v, model %v", got, want)
		}
	case 2:
		if got, want := l.Pin(o.key), m.pin(o.key); got != want {
			return fmt.Errorf("Pin = %v, model %v", got, want)
		}
	case 3:
		if got, want := l.Unpin(o.key), m.unpin(o.key); got != want {
			return fmt.Errorf("Unpin = %v, model %v", got, want)
		}
	case 4:
		if got, want := l.Remove(o.key), m.remove(o.key); got != want {
			return fmt.Errorf("Remove = %v, model %v", got, want)
		}
	case 5:
		k, size, ok := l.Victim()
		want := m.victims(1<<62, 1)
		if ok != (len(want) == 1) || ok && k != want[0] {
			return fmt.Errorf("Victim = %d, %v; model %v", k, ok, want)
		}
		if ok && size != m.entries[m.find(k)].size {
			return fmt.Errorf("Victim size = %d, model %d", size, m.entries[m.find(k)].size)
		}
	case 6:
		if got, want := l.Victims(o.size, o.max), m.victims(o.size, o.max); !slices.Equal(got, want) {
			return fmt.Errorf("Victims(%d, %d) = %v, model %v", o.size, o.max, got, want)
		}
	case 7:
		i := m.find(o.key)
		if got, want := l.Contains(o.key), i >= 0; got != want {
			return fmt.Errorf("Contains = %v, model %v", got, want)
		}
		if got, want := l.Pinned(o.key), i >= 0 && m.entries[i].pins > 0; got != want {
			return fmt.Errorf("Pinned = %v, model %v", got, want)
		}
	}
	if err := check(l); err != nil {
		return fmt.Errorf("invariant broken: %w", err)
	}
	return compare(l, m)
}

// compare checks l's stats and Each order against m.
func compare(l *LRU[int], m *model) error {
	var unpinned, pinned, wantUnpinned, wantPinned []modelEntry
	l.Each(func(k int, size int64, pins int) bool {
		if pins == 0 {
			unpinned = append(unpinned, modelEntry{k, size, 0})
		} else {
			pinned = append(pinned, modelEntry{k, size, pins})
		}
		return true
	})
	var bytes, pinnedBytes int64
	for _, e := range m.entries {
		bytes += e.size
		if e.pins == 0 {
			wantUnpinned = append(wantUnpinned, e)
		} else {
			wantPinned = append(wantPinned, e)
			pinnedBytes += e.size
		}
	}
	byKey := func(a, b modelEntry) int { return a.key - b.key }
	slices.SortFunc(pinned, byKey)
	slices.SortFunc(wantPinned, byKey)
	switch {
	case !slices.Equal(unpinned, wantUnpinned):
		return fmt.Errorf("unpinned order %v, model %v", unpinned, wantUnpinned)
	case !slices.Equal(pinned, wantPinned):
		return fmt.Errorf("pinned %v, model %v", pinned, wantPinned)
	case l.Len() != len(m.entries) || l.Bytes() != bytes || l.PinnedLen() != len(wantPinned) ||
		l.PinnedBytes() != pinnedBytes || l.EvictableBytes() != bytes-pinnedBytes:
		return fmt.Errorf("stats len=%d bytes=%d pinned=%d/%d evictable=%d, model len=%d bytes=%d pinned=%d/%d",
			l.Len(), l.Bytes(), l.PinnedLen(), l.PinnedBytes(), l.EvictableBytes(),
			len(m.entries), bytes, len(wantPinned), pinnedBytes)
	}
	return nil
}

// TestAgainstModel runs thousands of random operations, with fixed seeds, on
// an LRU and on the model. Few keys make collisions (re-adds, pins of pinned
// entries, operations on absent keys) common; more keys make long lists.
func TestAgainstModel(t *testing.T) {
	for _, tc := range []struct {
		seed uint64
		keys int
		ops  int
	}{
		{1, 4, 5000}, {2, 8, 5000}, {3, 16, 5000}, {4, 64, 10000}, {5, 256, 10000},
	} {
		t.Run(fmt.Sprintf("seed=%d/keys=%d", tc.seed, tc.keys), func(t *testing.T) {
			r := rand.New(rand.NewPCG(tc.seed, tc.seed))
			l, m := New[int](), &model{}
			var history []op
			for range tc.ops {
				o := op{kind: r.IntN(numOps), key: r.IntN(tc.keys), size: r.Int64N(100), max: r.IntN(4)}
				switch o.kind {
				case 0, 2: // add and pin more than they take away, so lists grow
					if r.IntN(2) == 0 {
						o.kind = 0
					}
				case 6:
					o.size = r.Int64N(int64(tc.keys)*60) - 20
				}
				history = append(history, o)
				if err := apply(l, m, o); err != nil {
					t.Fatalf("after %d ops, %v: %v\nlast ops: %v", len(history), o, err, history[max(0, len(history)-10):])
				}
			}
		})
	}
}

// FuzzLRU decodes operations three bytes at a time (kind, key, argument) and
// runs them against the model, checking invariants after each.
func FuzzLRU(f *testing.F) {
	f.Add([]byte{0, 1, 10, 0, 2, 20, 2, 1, 0, 5, 0, 0, 6, 0, 25})
	f.Add([]byte{0, 1, 10, 2, 1, 0, 2, 1, 0, 3, 1, 0, 5, 0, 0, 3, 1, 0, 4, 1, 0, 0, 1, 7})
	f.Add([]byte{0, 0, 0, 0, 1, 0, 6, 0, 1, 4, 0, 0, 7, 0, 0, 6, 0, 255})
	f.Fuzz(func(t *testing.T, data []byte) {
		l, m := New[int](), &model{}
		for i := 0; i+3 <= len(data); i += 3 {
			o := op{kind: int(data[i]) % numOps, key: int(data[i+1] % 16), size: int64(data[i+2])}
			if o.kind == 6 {
				o.size = o.size*4 - 64
				o.max = int(data[i+1] >> 4 % 4)
			}
			if err := apply(l, m, o); err != nil {
				t.Fatalf("op %d, %v: %v", i/3, o, err)
			}
		}
	})
}

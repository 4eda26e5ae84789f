package eviction

import (
	"fmt"
	"testing"
)

// check walks l and returns the first broken invariant of those the package
// comment lists, or nil. It is O(Len) and for tests only.
func check[K comparable](l *LRU[K]) error {
	if l.root.next == nil || l.root.prev == nil {
		if l.root.next != l.root.prev || len(l.index) != 0 || l.bytes != 0 || l.pinnedBytes != 0 || l.pinnedLen != 0 {
			return fmt.Errorf("uninitialised list but index has %d entries, bytes=%d pinned=%d/%d",
				len(l.index), l.bytes, l.pinnedLen, l.pinnedBytes)
		}
		return nil
	}
	// Forward over the list: links agree both ways, each node is the index's
	// node for its key, unpinned, seen once.
	seen := make(map[*node[K]]bool, len(l.index))
	var listBytes int64
	prev := &l.root
	for n := l.root.next; n != &l.root; n = n.next {
		if n == nil {
			return fmt.Errorf("list broken after %d entries: nil next", len(seen))
		}
		if n.prev != prev {
			return fmt.Errorf("entry %v: prev does not point at the entry before it", n.key)
		}
		if seen[n] {
			return fmt.Errorf("entry %v is in the list twice", n.key)
		}
		if len(seen) > len(l.index) {
			return fmt.Errorf("list is longer than the index (%d entries)", len(l.index))
		}
		seen[n] = true
		if l.index[n.key] != n {
			return fmt.Errorf("entry %v is in the list but not the index's node for its key", n.key)
		}
		if n.pins != 0 {
			return fmt.Errorf("entry %v is in the list with %d pins", n.key, n.pins)
		}
		listBytes += n.size
		prev = n
	}
	if l.root.prev != prev {
		return fmt.Errorf("root.prev is not the last entry of the list")
	}
	// Over the index: pinned nodes are unlinked, unpinned ones were all in
	// the list; the counters agree with the sums.
	var bytes, pinnedBytes int64
	var pinnedLen int
	for k, n := range l.index {
		if n.key != k {
			return fmt.Errorf("index key %v holds the node for %v", k, n.key)
		}
		if n.size < 0 {
			return fmt.Errorf("entry %v has negative size %d", k, n.size)
		}
		bytes += n.size
		if n.pins > 0 {
			pinnedLen++
			pinnedBytes += n.size
			if n.prev != nil || n.next != nil {
				return fmt.Errorf("pinned entry %v is still linked", k)
			}
		} else if !seen[n] {
			return fmt.Errorf("unpinned entry %v is not in the list", k)
		}
	}
	if len(seen) != len(l.index)-pinnedLen {
		return fmt.Errorf("list holds %d entries, want %d unpinned", len(seen), len(l.index)-pinnedLen)
	}
	switch {
	case bytes != l.Bytes():
		return fmt.Errorf("Bytes() = %d, sizes sum to %d", l.Bytes(), bytes)
	case pinnedBytes != l.PinnedBytes():
		return fmt.Errorf("PinnedBytes() = %d, pinned sizes sum to %d", l.PinnedBytes(), pinnedBytes)
	case pinnedLen != l.PinnedLen():
		return fmt.Errorf("PinnedLen() = %d, %d entries are pinned", l.PinnedLen(), pinnedLen)
	case listBytes != l.EvictableBytes():
		return fmt.Errorf("EvictableBytes() = %d, the list holds %d bytes", l.EvictableBytes(), listBytes)
	case l.PinnedBytes()+l.EvictableBytes() != l.Bytes():
		return fmt.Errorf("PinnedBytes()+EvictableBytes() = %d+%d != Bytes() = %d",
			l.PinnedBytes(), l.EvictableBytes(), l.Bytes())
	}
	return nil
}

// mustCheck fails t if l breaks an invariant.
func mustCheck[K comparable](t testing.TB, l *LRU[K]) {
	t.Helper()
	if err := check(l); err != nil {
		t.Fatalf("invariant broken: %v", err)
	}
}

package eviction

// LRU orders entries from least to most recently used and says which unpinned
// ones should give way first. See the package comment for its invariants.
//
// An LRU is not safe for concurrent use: the caller (the engine) serializes
// every call under its own lock. The zero LRU is empty and ready to use; an LRU
// must not be copied after first use, because its list points into itself.
type LRU[K comparable] struct {
	// root is the sentinel of the circular list of unpinned entries:
	// root.next is the least recently used, root.prev the most. Both are nil
	// until the first Add (so that the zero LRU works).
	root  node[K]
	index map[K]*node[K]

	bytes       int64 // sum of all sizes
	pinnedBytes int64 // sum of the sizes of pinned entries
	pinnedLen   int   // entries with pins > 0
}

// node is one entry. It is linked into the list while pins == 0 and unlinked
// (prev == next == nil) while pinned. The key goes last so that a small key
// fills the padding after pins: a node is 40 bytes with a pointer or 8-byte
// key, 48 with a 20-byte ObjectID (node_test.go asserts both).
type node[K comparable] struct {
	prev, next *node[K]
	size       int64
	pins       uint32
	key        K
}

// New returns an empty LRU.
func New[K comparable]() *LRU[K] {
	l := &LRU[K]{}
	l.init()
	return l
}

func (l *LRU[K]) init() {
	if l.index == nil {
		l.index = make(map[K]*node[K])
		l.root.next = &l.root
		l.root.prev = &l.root
	}
}

// pushBack links n as the most recently used entry.
func (l *LRU[K]) pushBack(n *node[K]) {
	last := l.root.prev
	n.prev = last
	n.next = &l.root
	last.next = n
	l.root.prev = n
}

// unlink takes n out of the list and clears its links.
func (l *LRU[K]) unlink(n *node[K]) {
	n.prev.next = n.next
	n.next.prev = n.prev
	n.prev = nil
	n.next = nil
}

// Add inserts k with the given size as the most recently used entry, unpinned.
// It returns false, changing nothing, if k is already present. size must not
// be negative: Add panics otherwise, since the byte counts would become wrong.
func (l *LRU[K]) Add(k K, size int64) bool {
	if size < 0 {
		panic("eviction: Add with a negative size")
	}
	l.init()
	if _, ok := l.index[k]; ok {
		return false
	}
	n := &node[K]{key: k, size: size}
	l.index[k] = n
	l.pushBack(n)
	l.bytes += size
	return true
}

// Touch marks k as used now, making it the most recently used entry. A pinned
// entry stays where it is (outside the list): it becomes the most recently
// used when its last pin goes. Touch returns false if k is absent.
func (l *LRU[K]) Touch(k K) bool {
	n, ok := l.index[k]
	if !ok {
		return false
	}
	if n.pins == 0 && l.root.prev != n {
		l.unlink(n)
		l.pushBack(n)
	}
	return true
}

// Pin adds one pin to k; while it has any, k is never a victim. It returns
// false if k is absent. Pin panics if the count would overflow 2^32-1, which
// can only be a leak of pins in the caller.
func (l *LRU[K]) Pin(k K) bool {
	n, ok := l.index[k]
	if !ok {
		return false
	}
	switch n.pins {
	case 0:
		l.unlink(n)
		l.pinnedLen++
		l.pinnedBytes += n.size
	case ^uint32(0):
		panic("eviction: pin count overflow")
	}
	n.pins++
	return true
}

// Unpin removes one pin from k. When the last goes, k becomes evictable again
// as the most recently used entry. It returns false, changing nothing, if k is
// absent or not pinned.
func (l *LRU[K]) Unpin(k K) bool {
	n, ok := l.index[k]
	if !ok || n.pins == 0 {
		return false
	}
	n.pins--
	if n.pins == 0 {
		l.pinnedLen--
		l.pinnedBytes -= n.size
		l.pushBack(n)
	}
	return true
}

// Remove drops k whatever its pin count; the caller decides when an object is
// gone (typically once it is evicted, spilled or freed). It returns false if k
// is absent.
func (l *LRU[K]) Remove(k K) bool {
	n, ok := l.index[k]
	if !ok {
		return false
	}
	delete(l.index, k)
	if n.pins == 0 {
		l.unlink(n)
	} else {
		l.pinnedLen--
		l.pinnedBytes -= n.size
	}
	l.bytes -= n.size
	return true
}

// Victim returns the least recently used unpinned entry without removing it;
// ok is false if every entry is pinned or there are none.
func (l *LRU[K]) Victim() (k K, size int64, ok bool) {
	if l.len() == l.pinnedLen {
		return k, 0, false
	}
	n := l.root.next
	return n.key, n.size, true
}

// Victims returns the unpinned keys, least recently used first, up to and
// including the first whose sizes add up to at least need; if all unpinned
// entries together hold less than need, it returns them all. It returns at most
// max keys (0 means no limit), and nil when need <= 0. Nothing is removed: the
// caller evicts or spills each key and then calls Remove. The slice is new and
// the caller's to keep; AppendVictims reuses one instead.
func (l *LRU[K]) Victims(need int64, max int) []K {
	return l.AppendVictims(nil, need, max)
}

// AppendVictims is Victims appending to dst, so that a caller that keeps a
// buffer chooses victims without allocating.
func (l *LRU[K]) AppendVictims(dst []K, need int64, max int) []K {
	if l.root.next == nil {
		return dst // zero LRU, never added to
	}
	var got int64
	for n, count := l.root.next, 0; n != &l.root && got < need && (max <= 0 || count < max); n, count = n.next, count+1 {
		dst = append(dst, n.key)
		got += n.size
	}
	return dst
}

// Contains reports whether k is present, pinned or not.
func (l *LRU[K]) Contains(k K) bool {
	_, ok := l.index[k]
	return ok
}

// Pinned reports whether k is present with at least one pin.
func (l *LRU[K]) Pinned(k K) bool {
	n, ok := l.index[k]
	return ok && n.pins > 0
}

func (l *LRU[K]) len() int { return len(l.index) }

// Len is the number of entries, pinned or not.
func (l *LRU[K]) Len() int { return l.len() }

// Bytes is the sum of the sizes of all entries.
func (l *LRU[K]) Bytes() int64 { return l.bytes }

// PinnedLen is the number of pinned entries.
func (l *LRU[K]) PinnedLen() int { return l.pinnedLen }

// PinnedBytes is the sum of the sizes of pinned entries.
func (l *LRU[K]) PinnedBytes() int64 { return l.pinnedBytes }

// EvictableBytes is the sum of the sizes of unpinned entries: the most that
// evicting could free. It equals Bytes() - PinnedBytes().
func (l *LRU[K]) EvictableBytes() int64 { return l.bytes - l.pinnedBytes }

// Each calls f for every entry until f returns false: the unpinned ones from
// least to most recently used, then the pinned ones in no particular order. It
// is for statistics and debugging (the pinned half walks the whole index). f
// must not call any method of l that changes it.
func (l *LRU[K]) Each(f func(k K, size int64, pins int) bool) {
	if l.root.next == nil {
		return
	}
	for n := l.root.next; n != &l.root; n = n.next {
		if !f(n.key, n.size, 0) {
			return
		}
	}
	if l.pinnedLen == 0 {
		return
	}
	for k, n := range l.index {
		if n.pins > 0 && !f(k, n.size, int(n.pins)) {
			return
		}
	}
}

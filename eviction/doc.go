// Package eviction decides the order in which objects in shared memory give way
// under memory pressure, and nothing else. It keeps an LRU list of the large
// objects the engine placed in the arena, each with its size and a pin count,
// and answers "which objects, oldest first, would free this many bytes?".
//
// It does not evict, spill, free or allocate anything, and it knows nothing of
// primary or secondary copies, thresholds or files: the engine owns that policy
// and does the I/O, then tells the LRU what happened (Remove). Keeping the
// package a pure data structure, with no imports of ours and no I/O, is what
// lets its tests drive it with scripts (testdata/*.txt, in pebble's datadriven
// style) and compare it against a naive model over random operations.
//
// # Keys
//
// Entries are keyed by any comparable type the engine chooses, such as a
// pointer to its own object record or an ObjectID. A key is present at most
// once; the LRU never interprets it.
//
// # Pins
//
// A pinned entry is never a victim, however old. Pins nest: Pin increments a
// count and Unpin decrements it. Pinned entries are unlinked from the list, so
// skipping them costs nothing; when the count returns to zero the entry rejoins
// as the most recently used, since something was using it until then.
//
// # Invariants
//
//   - Every unpinned entry is in the list exactly once; pinned entries are not
//     in it. The list runs from least to most recently used.
//   - Every entry, pinned or not, is in the key index exactly once.
//   - Bytes() is the sum of the sizes of all entries, PinnedBytes() that of the
//     pinned ones, and PinnedBytes()+EvictableBytes() == Bytes().
//   - PinnedLen() counts the entries with a pin count above zero.
//
// Every operation is O(1) except Victims, which is O(len(result)), and Each.
// The package's tests check the invariants after every operation.
//
// # Concurrency
//
// An LRU is not safe for concurrent use: the engine holds its own lock around
// every call, including Each and the slices Victims returns being acted upon.
package eviction

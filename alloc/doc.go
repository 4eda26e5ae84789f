// Package alloc decides which bytes of the shared-memory arena are in use. It
// hands out offsets in [0, Capacity()) and takes them back; it never reads or
// writes the arena itself, and nothing it keeps lives there.
//
// Why offsets and not pointers: the arena is a memfd mapped outside the Go heap
// (see package arena, and pebble's docs/memory.md for why large caches move off
// the heap: the collector neither scans nor moves them, and their size does not
// inflate GOGC's target). Arena memory is also mapped by other processes at
// other addresses, so the only name for a byte that every process shares is its
// offset, and a Go pointer stored there would be invisible to the collector.
// All of the allocator's metadata therefore lives on the Go heap: 16 bytes per
// 64 KiB page, plus a bitmap and 2 bytes per slot of each slab span.
//
// # Layout
//
// The arena is divided into pages of PageSize (64 KiB). Runs of pages tile it:
//   - free runs, indexed by (length, start) in a B-tree for best fit;
//   - large allocations (sizes above MaxSlabSize = 1 MiB), one run each,
//     rounded up to whole pages;
//   - slab spans: a run carved into equal slots of one size class. Classes go
//     from 64 B in steps of 64 B to 512 B, then eight per power of two up to
//     1 MiB, so rounding wastes under 12.5% of a request above 512 B.
//
// Every page has an entry saying which kind of run it belongs to; the two ends
// of a free or large run point at each other, so freeing a run merges it with
// its free neighbours in O(log n) without scanning.
//
// Placement prefers low offsets: best fit takes the smallest free run that
// fits and, among equals, the lowest; the allocation takes the low end of it;
// within a span the lowest free slot is used. The arena is pre-faulted from the
// bottom up, so a store that reuses low memory does not fault again.
//
// # Locking
//
// Each size class has its own mutex, so allocations of different sizes never
// contend. The page heap has one mutex, the only one shared by all sizes: it is
// taken by large allocations and frees, and by a class only when it needs a
// new span or gives an empty one back. Lock order: class mutex, then page heap
// mutex; never two class mutexes together, except Check, which takes all of
// them in index order before the page heap's. Counters that Stats reads
// without locks are atomics written under the mutex that guards them.
//
// A class keeps at most one entirely free span cached, so that freeing and
// reallocating its last object does not touch the page heap; when the page
// heap cannot satisfy a request, every cached span is given back and the
// request is retried. Stats counts cached spans as free pages.
//
// # Invariants
//
//   - Every offset returned is a multiple of Alignment, and live allocations
//     never overlap.
//   - Free runs never touch each other (they are coalesced on every free) and
//     the best-fit index holds exactly the free runs.
//   - A span's bitmap agrees with its free count; the partial list of a class
//     holds exactly its spans with both free and used slots.
//   - Used + Free == Capacity.
//
// Check verifies all of them (slowly). Built with -tags invariants or -race,
// Alloc and Free also run cheap assertions and panic on corruption, which can
// only be a bug in this package: a bad offset passed to Free is reported as an
// error and changes nothing.
package alloc

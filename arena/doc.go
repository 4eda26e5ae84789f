// Package arena owns the node's shared memory: one memfd-backed segment, mapped
// twice into this process — read-write for the store's own writes (copying a Put in,
// a builder filling an object) and read-only for the views handed to readers.
//
// Why a memfd and not the Go heap: the bytes must be shareable with other processes
// on the node (the fd can be passed over a unix socket with SCM_RIGHTS and mapped
// there), they must not be scanned or moved by the garbage collector, and the
// read-only mapping lets the hardware enforce that a sealed object never changes:
// writing through a view faults (with debug.SetPanicOnFault, it panics instead of
// corrupting the object).
//
// Why pre-fault: on the machines trove targets, the first touch of a fresh page is
// ~50× slower than a write to a warm one. The arena is populated (MADV_POPULATE_WRITE)
// from the bottom up, in chunks, before any byte of a chunk is handed out, and memory
// is reused rather than returned to the kernel. The allocator prefers low offsets, so
// a store that stays below its peak never faults again. PrefaultEager populates the
// whole arena at New.
//
// Invariants:
//   - Bytes [0, Populated()) are backed by resident pages; Populated only grows.
//   - The segment's size never changes once created (sealed with F_SEAL_SHRINK and
//     F_SEAL_GROW), so a mapping in another process can never be truncated under it.
//   - Slices returned by Writable and ReadOnly are valid until Close; every one of
//     them must be dropped before Close, which unmaps the memory.
//
// The arena knows nothing about objects: package alloc decides which offsets are used.
package arena

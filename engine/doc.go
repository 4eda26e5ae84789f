// Package engine is a node's object store, embeddable in any Go program: the object
// table and each object's lifecycle (create, seal, get, wait, release, free), small
// objects kept inline in the Go heap, large ones in the shared-memory arena,
// reference counts and pins, memory pressure (secondary copies evicted, primaries
// spilled to disk and restored on Get, see pressure.go), the wait for room when
// nothing can give way, and the statistics. It satisfies trove.Store.
//
//	st, err := engine.Open(engine.Config{}) // 30% of RAM, objects > 100 KiB in shared memory
//	ref, err := st.Put(ctx, data)           // one copy, sealed
//	obj, err := st.Get(ctx, ref)            // zero-copy, read-only; pins until Release
//	defer obj.Release()
//
// # Lifecycle
//
// An object is pending from Create until Seal (or Abort), then sealed (immutable)
// until freed. It is freed when its reference count and its pin count are both zero.
// The reference count is the number of live Ref handles and Holds (hold.go: counts
// without a GC-watched handle, for holders that give them back explicitly), plus
// one per stored object that contains it, plus one while its Builder is open, plus
// one while a Get restores it from disk. A sealed arena object is resident or spilled (on disk
// only); a secondary copy may instead be evicted (gone from this node). With
// Config.Remote, a foreign object this node holds refs to but has no copy of is
// remote; a Get of it (or of an evicted copy) fetches a copy through the Remote
// (remote.go). The pin count is the number
// of unreleased views. Freeing an object releases its memory and gives back the
// counts it held on the objects it contains.
//
// # Concurrency
//
// The table is split into shards, each with its own mutex guarding its map and the
// waiters of its pending objects. Counts and the lifecycle state of an object live
// in one atomic word, so a Get of a sealed object, a Release and a Drop take no lock
// at all: the holder of a live Ref finds the object through the ref's hint, not the
// map. The allocator has its own locks (see package alloc). Lock order: shard mutex,
// then the room mutex; the eviction order's mutex and the allocator's locks are
// leaves. One reclaim runs at a time (a semaphore that a waiting creator gives up
// when its context ends); the spiller's hold bit in the count word keeps an
// object and its memory alive while its bytes are written out.
//
// # Invariants
//
//   - refs == 0 && pins == 0 happens once per object, and exactly the goroutine that
//     moves the state to freed releases its memory.
//   - A pinned object's bytes never change and are never released.
//   - Stats().Used is the allocator's figure; with every ref dropped and every view
//     released it is zero (Check verifies the table against the allocator).
//
// Build with -tags invariants (or -race) to poison freed memory and assert more.
package engine

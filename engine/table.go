package engine

import (
	"fmt"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/trovedb/trove"
	"github.com/trovedb/trove/spill"
)

// An object's lifecycle state, kept in the top bits of its count word.
type state uint8

const (
	statePending state = iota // created, not yet sealed: Get blocks
	stateSealed               // immutable, readable, in memory
	stateSpilled              // sealed, on disk only: Get restores it
	stateEvicted              // a secondary copy dropped under pressure: gone here
	stateAborted              // its creator gave up: Get fails, memory already released
	stateFreed                // refs and pins reached zero: gone from the table
	stateRemote               // a foreign object with no copy here: Get fetches it (Config.Remote)
)

func (s state) String() string {
	return [...]string{"pending", "sealed", "spilled", "evicted", "aborted", "freed", "remote", "?7"}[s]
}

// ready reports whether Get of an object in state s returns without waiting for
// its creator or a fetch: with the value (restoring it from disk if spilled) or an
// error. (With a Remote, an evicted copy is fetched too: see Store.absent.)
func (s state) ready() bool { return s != statePending && s != stateRemote }

// The count word packs, from the low bits up: pins (27 bits), the hold bit, the
// accessed bit, state (3 bits), refs (32 bits). One word lets Get check "sealed,
// in memory and referenced" and pin in a single compare-and-swap, lets the spiller
// move an object out of memory only if no view pins it, and lets exactly one
// goroutine see every count reach zero. The hold bit is the spiller's: it keeps an
// object (and its memory) alive while its bytes are being written out, without
// counting as a view.
const (
	pinOne      = uint64(1)
	pinMask     = uint64(1)<<27 - 1
	holdBit     = uint64(1) << 27 // the spiller is writing the object out
	accessedBit = uint64(1) << 28 // set by every pin, cleared by the eviction clock
	stateShift  = 29
	stateMask   = uint64(7) << stateShift
	refShift    = 32
	refOne      = uint64(1) << refShift
)

func wordPins(w uint64) uint64 { return w & pinMask }

// idle reports whether nothing holds the object: no ref, no view, no spill.
func idle(w uint64) bool       { return w&(pinMask|holdBit) == 0 && wordRefs(w) == 0 }
func wordRefs(w uint64) uint64 { return w >> refShift }
func wordState(w uint64) state { return state((w & stateMask) >> stateShift) }
func withState(w uint64, s state) uint64 {
	return w&^stateMask | uint64(s)<<stateShift
}

// entry is the store's record of one object. Its address is the hint stored in
// every Ref handle and view, so lookups by a live handle skip the map.
type entry struct {
	rc atomic.Uint64 // refs | state | pins: see the word layout above

	id   trove.ObjectID
	data []byte // inline: heap bytes; arena: the read-only mapping while resident
	off  int64  // arena offset while resident in the arena, or one of the off* values
	more *entryMore
}

// Values of entry.off that are not arena offsets.
const (
	offInline   = -1 // kept in the Go heap: never evicted or spilled
	offNone     = -2 // an arena object not in memory (spilled, evicted, aborted, freed)
	offFallback = -3 // restored into a read-only mapping of its spill file
)

// entryMore holds what few objects need, keeping entry at 64 bytes.
type entryMore struct {
	// children are the objects this one contains (it holds one ref on each).
	// Set before publication, read once when the object is freed.
	children []*entry

	// waiters of a pending object, or of one being restored; guarded by the
	// shard's mu.
	waiters []*waiter

	// The fields below concern arena objects (every arena object has an
	// entryMore). They are written by the goroutine that holds the object for
	// I/O (the hold bit, or restoring) and published by the count word's atomics.
	size      int64          // the object's size in bytes
	arena     bool           // an arena object (set before publication; unlike off, never changes)
	secondary bool           // a copy of an object owned elsewhere: evicted, never spilled
	evicted   bool           // a secondary copy whose memory was evicted
	spilled   bool           // loc names a complete copy on disk
	fallback  atomic.Bool    // mapping is set: for listings, which cannot read off
	loc       spill.Location // where, if spilled
	mapping   []byte         // the spill file mapping, if restored by fallback

	// foreign is what a foreign object needs with a Config.Remote (remote.go);
	// guarded by the shard's mu. Nil for every other object.
	foreign *foreignMore

	restoring bool // a Get is reading it back; guarded by the shard's mu
}

// An arena object's entryMore stays in the 128-byte size class.
var _ = [1]struct{}{}[128-unsafe.Sizeof(entryMore{})]

// Keep the per-object metadata small: 64 bytes (plus the map slot).
var _ = [1]struct{}{}[unsafe.Sizeof(entry{})-64]

func (e *entry) inline() bool { return e.off == offInline }

// size returns the object's size in bytes, resident or not.
func (e *entry) size() int64 {
	if !e.inline() { // e.off never changes for an inline object; e.more may be set under a lock
		return e.more.size
	}
	return int64(len(e.data))
}

// resident reports whether an arena object's bytes are in memory.
func (e *entry) resident() bool { return e.off >= 0 || e.off == offFallback }

// addRef takes one more reference, unless the object already has none (it is being
// freed) or is freed.
func (e *entry) addRef() bool {
	for {
		w := e.rc.Load()
		if wordRefs(w) == 0 || wordState(w) == stateFreed {
			return false
		}
		if e.rc.CompareAndSwap(w, w+refOne) {
			return true
		}
	}
}

// waiter is woken when n of the objects it is registered with become ready.
type waiter struct {
	n  atomic.Int64
	ch chan struct{}
}

func newWaiter(n int) *waiter {
	w := &waiter{ch: make(chan struct{})}
	w.n.Store(int64(n))
	return w
}

func (w *waiter) ready() {
	if w.n.Add(-1) == 0 {
		close(w.ch)
	}
}

const numShards = 64

// shard is one slice of the object table. Counters are atomics updated outside the
// lock on the hot path; the struct is padded so shards don't share cache lines.
type shard struct {
	mu struct {
		sync.Mutex
		m map[trove.ObjectID]*entry
	}

	objects       atomic.Int64 // live (pending or sealed or aborted, not freed) objects
	pending       atomic.Int64
	bytes         atomic.Int64 // sum of live objects' sizes as asked for
	inlineObjects atomic.Int64
	inlineBytes   atomic.Int64
	pinnedObjects atomic.Int64
	pinnedBytes   atomic.Int64
	views         atomic.Int64 // unreleased views
	remote        atomic.Int64 // objects in stateRemote

	_ [64]byte
}

func shardOf(id trove.ObjectID) uint8 {
	// Our own IDs differ in the low bits of the sequence number; foreign IDs mix in the node.
	return (id[15] ^ id[7] ^ id[11]) % numShards
}

func (s *Store) shardFor(e *entry) *shard { return &s.shards[shardOf(e.id)] }

// lookup returns the entry for id, or nil.
func (s *Store) lookup(id trove.ObjectID) *entry {
	sh := &s.shards[shardOf(id)]
	sh.mu.Lock()
	e := sh.mu.m[id]
	sh.mu.Unlock()
	return e
}

// entryOf returns the live entry a ref names, or ErrInvalidRef.
func (s *Store) entryOf(ref trove.Ref) (*entry, error) {
	h, ok := ref.Hint(s)
	if !ok {
		if ref.IsZero() {
			return nil, fmt.Errorf("zero ref: %w", trove.ErrInvalidRef)
		}
		return nil, fmt.Errorf("%v: %w", ref, trove.ErrInvalidRef)
	}
	return h.(*entry), nil
}

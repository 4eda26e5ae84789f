package engine

import (
	"fmt"
	"sync"

	"github.com/trovedb/trove"
)

// BorrowAll is Borrow for many objects: new, independent handles to ids, in input
// order, all or nothing. A repeated ID gets a handle (and a count) of its own. It
// fails like Borrow, naming the first ID that failed, and then holds none of the
// objects: the counts it had taken are given back. ids is not kept after the call
// (it may alias an object's bytes).
//
// The handles are one batch (trove.NewRefBatch): one allocation and one GC cleanup
// for all of them, instead of one each. Drop releases a handle at once, but the
// garbage collector releases an undropped one only when every handle of the batch
// is unreachable: drop the refs you are done with.
func (s *Store) BorrowAll(ids []trove.ObjectID) ([]trove.Ref, error) {
	if s.closed.Load() {
		if len(ids) == 0 {
			return nil, trove.ErrClosed
		}
		return nil, fmt.Errorf("borrow %s: %w", ids[0], trove.ErrClosed)
	}
	if len(ids) == 0 {
		return nil, nil
	}
	sc := getScratch(len(ids))
	defer putScratch(sc)
	hints := sc.hints // the entries: each handle finds its object without the map
	var failed int
	var err error
	var created []*entry // entries of foreign IDs, each holding one ref of BorrowAll's own
	if len(ids) < minGroupedBorrow {
		failed, err = s.takeRefs(ids, hints, &created)
	} else {
		failed, err = s.takeRefsByShard(ids, hints, sc.order, &created)
	}
	held := failed // refs are held on the objects of hints[:held]
	if err == nil && s.cfg.Remote != nil {
		held = len(ids)
		failed, err = s.registerBorrowed(ids, hints)
	}
	s.dropChildren(created) // the hints hold refs of their own
	if err != nil {
		for _, h := range hints[:held] {
			s.decRef(h.(*entry))
		}
		return nil, fmt.Errorf("borrow %s (ID %d of %d): %w", ids[failed], failed+1, len(ids), err)
	}
	return trove.NewRefBatch(ids, s, hints), nil
}

// registerBorrowed makes sure the Remote knows of this node's handles to the
// foreign objects among hints (remote.go). It returns the index and error of
// the first that failed.
func (s *Store) registerBorrowed(ids []trove.ObjectID, hints []any) (int, error) {
	for i, h := range hints {
		if !s.foreign(ids[i]) {
			continue
		}
		if err := s.ensureBorrowed(h.(*entry)); err != nil {
			return i, err
		}
	}
	return 0, nil
}

// takeRefs takes a ref on the object of each of ids, in order, and sets its entry in
// hints. If one fails it stops and returns its index and error: it then holds refs
// on the objects of hints[:failed] only. With a Remote, a foreign ID's entry is
// found or made with foreignEntry, and the extra ref that takes is listed in
// created (so that takeRef of it cannot fail).
func (s *Store) takeRefs(ids []trove.ObjectID, hints []any, created *[]*entry) (failed int, err error) {
	for i, id := range ids {
		var e *entry
		if s.foreign(id) {
			e = s.foreignEntry(id)
			*created = append(*created, e)
		} else {
			e = s.lookup(id)
		}
		if err := takeRef(e); err != nil {
			return i, err
		}
		hints[i] = e
	}
	return 0, nil
}

// From this many IDs on, BorrowAll looks them up shard by shard: one lock per shard
// instead of one per ID, and the shard's map stays in cache meanwhile.
const minGroupedBorrow = 4 * numShards

// takeRefsByShard is takeRefs with the lookups grouped by shard. order is scratch,
// as long as ids. hints[failed:] may hold entries it found but took no ref on.
func (s *Store) takeRefsByShard(ids []trove.ObjectID, hints []any, order []int32, created *[]*entry) (failed int, err error) {
	// Counting sort of the indices by shard: shard k's are order[start[k]:start[k+1]].
	var start [numShards + 1]int32
	for _, id := range ids {
		start[shardOf(id)+1]++
	}
	for k := 1; k <= numShards; k++ {
		start[k] += start[k-1]
	}
	next := start
	for i, id := range ids {
		k := shardOf(id)
		order[next[k]] = int32(i)
		next[k]++
	}
	for k := range numShards {
		group := order[start[k]:start[k+1]]
		if len(group) == 0 {
			continue
		}
		sh := &s.shards[k]
		sh.mu.Lock()
		for _, i := range group {
			if s.foreign(ids[i]) {
				e := s.foreignEntryLocked(sh, ids[i])
				hints[i] = e
				*created = append(*created, e)
			} else if e := sh.mu.m[ids[i]]; e != nil {
				hints[i] = e
			}
		}
		sh.mu.Unlock()
	}
	// Load every count word before changing any: the loads miss the cache but are
	// independent, so they overlap, where each compare-and-swap would wait for its
	// own miss. (An entry may be freed after its lookup; addRef sees that.)
	var sum uint64
	for _, h := range hints {
		if h != nil {
			sum += h.(*entry).rc.Load()
		}
	}
	_ = sum
	for i, h := range hints {
		e, _ := h.(*entry)
		if err := takeRef(e); err != nil {
			return i, err
		}
	}
	return 0, nil
}

// takeRef takes a ref on e, the entry found for an ID (nil if none).
func takeRef(e *entry) error {
	switch {
	case e == nil:
		return trove.ErrUnknownObject
	case !e.addRef():
		return trove.ErrObjectFreed
	}
	return nil
}

// scratch is BorrowAll's working memory, recycled: NewRefBatch copies the hints,
// so they are scratch too, and large slices are worth not allocating (and, for the
// hints, scanning) again on every call.
type scratch struct {
	hints []any
	order []int32
}

var scratchPool sync.Pool // *scratch

func getScratch(n int) *scratch {
	sc, ok := scratchPool.Get().(*scratch)
	if !ok || cap(sc.hints) < n {
		return &scratch{hints: make([]any, n), order: make([]int32, n)}
	}
	sc.hints, sc.order = sc.hints[:n], sc.order[:n]
	return sc
}

// putScratch clears the hints, so that the pool keeps no entry reachable (every
// element up to the capacity is nil in the pool), and recycles sc.
func putScratch(sc *scratch) {
	clear(sc.hints)
	scratchPool.Put(sc)
}

// BorrowContained returns new handles, in one batch, to the objects a view's object
// contains, if ids are exactly those objects in the order they were given to
// PutFunc or CreateContaining; otherwise it takes nothing and reports false. The
// view pins its object, which holds a ref on each, so no lookup is needed and none
// can fail: decoding a value that holds refs uses it.
func (s *Store) BorrowContained(obj *trove.Object, ids []trove.ObjectID) ([]trove.Ref, bool) {
	h, ok := obj.Hint(s)
	if !ok {
		return nil, false
	}
	e := h.(*entry)
	if e.more == nil || len(e.more.children) != len(ids) || len(ids) == 0 {
		return nil, false
	}
	children := e.more.children
	for i, c := range children {
		if c.id != ids[i] {
			return nil, false
		}
	}
	hints := make([]any, len(children))
	for i, c := range children {
		c.rc.Add(refOne) // the container's own ref keeps c alive: this cannot race a free
		hints[i] = c
	}
	return trove.NewRefBatch(ids, s, hints), true
}

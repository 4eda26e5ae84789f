package engine

import (
	"bytes"
	"slices"

	"github.com/trovedb/trove"
)

// MaxInspectRefs bounds the IDs Inspect lists in ObjectDetail.Contains and
// ObjectDetail.ContainedBy (the counts are exact).
const MaxInspectRefs = 256

// ObjectDetail is one object as Inspect describes it, for displays (the
// dashboard's object page), not for hot paths.
type ObjectDetail struct {
	ObjectInfo
	Contains         []trove.ObjectID // the objects it contains (it holds a ref on each), at most MaxInspectRefs
	ContainsCount    int              // how many it contains
	ContainedBy      []trove.ObjectID // the stored objects that contain it, at most MaxInspectRefs, sorted
	ContainedByCount int              // how many contain it (ObjectInfo.Captured)
}

// Inspect describes the object id if this store holds an entry for it (a
// primary, a copy, a pending object or a foreign ref with no copy yet). It
// walks the whole table to find the objects that contain id (an object's
// children are listed on it, not on them), shard by shard under each
// shard's lock, so it costs what Objects costs: call it for one object a
// user asked about, not in a loop.
func (s *Store) Inspect(id trove.ObjectID) (ObjectDetail, bool) {
	target := s.lookup(id)
	if target == nil {
		return ObjectDetail{}, false
	}
	var d ObjectDetail
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		for _, e := range sh.mu.m {
			if e.more == nil {
				continue
			}
			for _, c := range e.more.children {
				if c == target {
					d.ContainedByCount++
					if len(d.ContainedBy) < MaxInspectRefs {
						d.ContainedBy = append(d.ContainedBy, e.id)
					}
				}
			}
		}
		sh.mu.Unlock()
	}
	slices.SortFunc(d.ContainedBy, func(a, b trove.ObjectID) int { return bytes.Compare(a[:], b[:]) })
	sh := &s.shards[shardOf(id)]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if e := sh.mu.m[id]; e != target {
		return ObjectDetail{}, false // freed (and perhaps made again) during the walk
	}
	d.ObjectInfo = s.describe(target, d.ContainedByCount)
	// children is set before publication and never changed while the entry
	// is in the table.
	if target.more != nil {
		d.ContainsCount = len(target.more.children)
		for _, c := range target.more.children[:min(len(target.more.children), MaxInspectRefs)] {
			d.Contains = append(d.Contains, c.id)
		}
	}
	return d, true
}

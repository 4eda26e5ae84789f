package cluster

import (
	"github.com/dgraph-io/ristretto/v2"

	"github.com/trovedb/trove"
)

// smallCache keeps the bytes of small objects fetched from their owners
// (those answered inline), so that fetching one again (its copy was evicted,
// or this node dropped it and borrows it anew) needs no request to the owner.
// It is bounded and lossy (ristretto: cost = bytes, admission by frequency),
// which is safe because a sealed object never changes and an ID is never
// reused: an entry is either the object's bytes or never asked for again. It
// is read only after the owner is known alive and this node holds a ref (so
// the owner keeps the object): a cached object whose owner died is not
// served, as with no copy at all.
type smallCache struct {
	c *ristretto.Cache[string, []byte] // nil: disabled
}

func newSmallCache(maxBytes int64) (*smallCache, error) {
	if maxBytes <= 0 {
		return &smallCache{}, nil
	}
	// ristretto's advice: ten counters per item the cache holds when full;
	// items here are at least a few hundred bytes, most far more.
	c, err := ristretto.NewCache(&ristretto.Config[string, []byte]{
		NumCounters: max(maxBytes/1024*10, 1000),
		MaxCost:     maxBytes,
		BufferItems: 64,
	})
	if err != nil {
		return nil, err
	}
	return &smallCache{c: c}, nil
}

func (s *smallCache) get(id trove.ObjectID) ([]byte, bool) {
	if s.c == nil {
		return nil, false
	}
	return s.c.Get(string(id[:]))
}

// put offers a copy of b (which the caller may reuse) to the cache; ristretto
// may decline it.
func (s *smallCache) put(id trove.ObjectID, b []byte) {
	if s.c == nil {
		return
	}
	s.c.Set(string(id[:]), append([]byte(nil), b...), int64(len(b)))
}

// wait applies the puts still buffered (for tests).
func (s *smallCache) wait() {
	if s.c != nil {
		s.c.Wait()
	}
}

func (s *smallCache) close() {
	if s.c != nil {
		s.c.Close()
	}
}

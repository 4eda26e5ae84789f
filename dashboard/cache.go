package dashboard

import (
	"sync"
	"time"
)

// listCache bounds what listings cost a node with many objects. A listing
// walks the whole table (about 1 µs an object: 1 s for a million), and every
// open memory page asks for one every 2 s, from every node's dashboard. So a
// node answers a query with the page it computed for the same query while
// that page is younger than listDuty times the walk it took, and walks one
// query at a time: listings then take at most about 1/listDuty of one core,
// however many pages are open and however many objects there are. A store of
// 10,000 objects (a 5 ms walk) is listed afresh every 50 ms, so every poll;
// a store of 1M objects every ~10 s.
type listCache struct {
	walk sync.Mutex // held while a listing walks the table: one walk at a time

	mu sync.Mutex
	m  map[query]cachedPage // guarded by mu; at most maxCachedLists entries
}

const (
	listDuty       = 10
	maxCachedLists = 16
)

type cachedPage struct {
	p    page
	at   time.Time     // when the walk ended
	took time.Duration // how long it took
}

func (c *listCache) lookup(q query, now time.Time) (page, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[q]
	if !ok || now.Sub(e.at) >= listDuty*e.took {
		return page{}, false
	}
	return e.p, true
}

// get returns the page of q, walking (with walk) only if no fresh one is
// cached. A page returned is shared: callers only read it.
func (c *listCache) get(q query, walk func(query) page) page {
	if p, ok := c.lookup(q, time.Now()); ok {
		return p
	}
	c.walk.Lock()
	defer c.walk.Unlock()
	if p, ok := c.lookup(q, time.Now()); ok {
		return p // another request walked it while this one waited
	}
	start := time.Now()
	p := walk(q)
	end := time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[query]cachedPage{}
	}
	if len(c.m) >= maxCachedLists {
		var oldest query
		first := true
		for k, e := range c.m {
			if first || e.at.Before(c.m[oldest].at) {
				oldest, first = k, false
			}
		}
		delete(c.m, oldest)
	}
	c.m[q] = cachedPage{p: p, at: end, took: end.Sub(start)}
	return p
}

package dashboard

import (
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

// A listing is walked again only once its page is older than listDuty times
// the walk took; the cache keeps at most maxCachedLists queries.
func TestListCache(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var c listCache
		walks := 0
		walk := func(q query) page {
			walks++
			time.Sleep(10 * time.Millisecond) // the walk's (fake) time
			return page{Totals: Totals{Rows: walks}}
		}
		q := query{Sort: "size", Window: 50}
		if p := c.get(q, walk); p.Totals.Rows != 1 {
			t.Fatalf("first get: %+v", p)
		}
		time.Sleep(listDuty*10*time.Millisecond - time.Millisecond)
		if p := c.get(q, walk); p.Totals.Rows != 1 || walks != 1 {
			t.Fatalf("within listDuty walks: walked %d times, page %+v", walks, p)
		}
		time.Sleep(time.Millisecond)
		if p := c.get(q, walk); p.Totals.Rows != 2 {
			t.Fatalf("after listDuty walks: walked %d times, page %+v", walks, p)
		}
		other := query{Sort: "id", Window: 50}
		if p := c.get(other, walk); p.Totals.Rows != 3 {
			t.Fatalf("another query shares no page: %+v", p)
		}

		for w := range 3 * maxCachedLists {
			c.get(query{Sort: "size", Window: w + 1}, walk)
		}
		if n := len(c.m); n > maxCachedLists {
			t.Fatalf("%d cached queries, over %d", n, maxCachedLists)
		}
	})
}

// Walks run one at a time, however many requests come at once (real time:
// synctest does not advance its clock for goroutines blocked on a mutex).
func TestListCacheOneWalkAtATime(t *testing.T) {
	var c listCache
	var now, most atomic.Int32
	walk := func(q query) page {
		n := now.Add(1)
		for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
		}
		time.Sleep(time.Millisecond)
		now.Add(-1)
		return page{}
	}
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() { c.get(query{Sort: "size", Window: i + 1}, walk) })
	}
	wg.Wait()
	if m := most.Load(); m != 1 {
		t.Fatalf("%d walks at once", m)
	}
}

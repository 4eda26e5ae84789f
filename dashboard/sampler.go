package dashboard

import (
	"sync"
	"time"

	"github.com/trovedb/trove/cluster"
	"github.com/trovedb/trove/engine"
)

// Sample is one node's figures at one time: counters since the node started
// and gauges of that moment. The sampler keeps the last Config.History of
// them; /api/activity turns counters into rates.
type Sample struct {
	T int64 `json:"t"` // Unix milliseconds

	// Counters since the node started.
	Puts      int64 `json:"puts"`
	Gets      int64 `json:"gets"`
	Frees     int64 `json:"frees"`
	Pulls     int64 `json:"pulls"` // fetches of other nodes' objects (cluster remote gets)
	Spills    int64 `json:"spills"`
	Restores  int64 `json:"restores"`
	Evictions int64 `json:"evictions"`
	BytesIn   int64 `json:"bytes_in"`  // object bytes received from other nodes
	BytesOut  int64 `json:"bytes_out"` // object bytes served to other nodes

	// Gauges.
	Objects      int64 `json:"objects"`
	ObjectBytes  int64 `json:"object_bytes"`
	Used         int64 `json:"used"`
	Capacity     int64 `json:"capacity"`
	PinnedBytes  int64 `json:"pinned_bytes"`
	SpilledBytes int64 `json:"spilled_bytes"`
}

// sample reads the node's figures now.
func sample(st *engine.Store, n *cluster.Node, now time.Time) Sample {
	s := st.Stats()
	out := Sample{T: now.UnixMilli(),
		Puts: int64(s.Puts), Gets: int64(s.Gets), Frees: int64(s.Frees),
		Spills: s.Spills, Restores: s.Restores, Evictions: s.Evictions,
		Objects: s.Objects, ObjectBytes: s.ObjectBytes, Used: s.Used, Capacity: s.Capacity,
		PinnedBytes: s.PinnedBytes, SpilledBytes: s.SpilledBytes,
	}
	if n != nil {
		cs := n.Stats()
		out.Pulls, out.BytesIn, out.BytesOut = cs.RemoteGets, cs.BytesIn, cs.BytesOut
	}
	return out
}

// ring is the sampler's bounded history.
type ring struct {
	mu   sync.Mutex
	buf  []Sample // guarded by mu; capacity fixed at creation
	next int      // guarded by mu: where the next sample goes
	full bool     // guarded by mu: buf has wrapped
}

func newRing(n int) *ring { return &ring{buf: make([]Sample, n)} }

func (r *ring) add(s Sample) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.buf[r.next] = s
	r.next++
	if r.next == len(r.buf) {
		r.next, r.full = 0, true
	}
}

// since returns, oldest first, the samples taken after Unix millisecond t,
// and the one before them (so that a reader can turn the first counters into
// a rate), at most len(buf).
func (r *ring) since(t int64) []Sample {
	r.mu.Lock()
	defer r.mu.Unlock()
	var all []Sample
	if r.full {
		all = append(append(all, r.buf[r.next:]...), r.buf[:r.next]...)
	} else {
		all = append(all, r.buf[:r.next]...)
	}
	i := len(all)
	for i > 0 && all[i-1].T > t {
		i--
	}
	return all[max(i-1, 0):]
}

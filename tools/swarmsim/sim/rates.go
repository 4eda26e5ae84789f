package sim

import (
	"container/heap"
	"math"
	"time"
)

// rerate marks the rates stale: the flows on the wire changed. Rates are
// recomputed for all flows at once, at most every RateEvery: a flow that
// starts waits for the next recomputation (its rate is 0 until then), and
// capacity a finished flow frees is handed out then.
func (w *world) rerate(_, _ *node) {
	if w.ratePending {
		return
	}
	w.ratePending = true
	w.q.schedule(max(w.now, w.lastRate+w.cfg.RateEvery), w.recompute)
}

// recompute gives every flow its max-min fair rate over the node links
// (progressive filling): the link whose equal share of what is left is
// smallest fixes its flows at that share; repeat. This is what TCP-like
// fair sharing converges to, without its dynamics.
func (w *world) recompute() {
	w.ratePending = false
	w.lastRate = w.now
	w.res.Recomputes++
	for _, f := range w.wire {
		w.settle(f)
		f.fixed = false
	}
	nl := 2 * len(w.nodes)
	if len(w.links) != nl {
		w.links = make([]link, nl)
	}
	w.lh = w.lh[:0]
	for i, n := range w.nodes {
		w.links[2*i] = link{left: w.cfg.Uplink, open: len(n.up)}
		w.links[2*i+1] = link{left: w.cfg.Downlink, open: len(n.down)}
		for j := 2 * i; j <= 2*i+1; j++ {
			if l := &w.links[j]; l.open > 0 {
				w.lh = append(w.lh, linkKey{l.left / float64(l.open), j})
			}
		}
	}
	heap.Init(&w.lh)
	for w.lh.Len() > 0 {
		k := heap.Pop(&w.lh).(linkKey)
		l := &w.links[k.link]
		if l.open == 0 {
			continue
		}
		share := max(l.left, 0) / float64(l.open)
		if share != k.share {
			heap.Push(&w.lh, linkKey{share, k.link})
			continue
		}
		n := w.nodes[k.link/2]
		fs, up := n.down, false
		if k.link%2 == 0 {
			fs, up = n.up, true
		}
		for _, f := range fs {
			if f.fixed {
				continue
			}
			f.fixed, f.rate = true, share
			other := 2 * f.from.id
			if up {
				other = 2*f.to.id + 1
			}
			o := &w.links[other]
			o.left -= share
			o.open--
			if o.open > 0 {
				heap.Push(&w.lh, linkKey{max(o.left, 0) / float64(o.open), other})
			}
		}
		l.open = 0
	}
	for _, f := range w.wire {
		if f.rate <= 0 {
			f.at = math.MaxInt64
			continue
		}
		f.at = w.now + time.Duration(math.Ceil(f.remaining/f.rate*float64(time.Second)))
	}
	heap.Init(&w.wire)
}

// link is one direction of a node's link during recompute.
type link struct {
	left float64 // capacity not yet given to fixed flows
	open int     // flows on it not yet fixed
}

type linkKey struct {
	share float64
	link  int
}

type linkHeap []linkKey

func (h linkHeap) Len() int { return len(h) }
func (h linkHeap) Less(i, j int) bool {
	if h[i].share != h[j].share {
		return h[i].share < h[j].share
	}
	return h[i].link < h[j].link
}
func (h linkHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *linkHeap) Push(x any)   { *h = append(*h, x.(linkKey)) }
func (h *linkHeap) Pop() any {
	old := *h
	k := old[len(old)-1]
	*h = old[:len(old)-1]
	return k
}

package sim

import (
	"container/heap"
	"time"
)

// event is one thing that happens at a virtual time. Events at the same time
// run in the order they were scheduled (seq), so a run is a pure function of
// its Config.
type event struct {
	at  time.Duration
	seq uint64
	run func()
}

// queue is the event heap: earliest time first, then scheduling order.
type queue struct {
	ev  []*event
	seq uint64
}

func (q *queue) Len() int { return len(q.ev) }
func (q *queue) Less(i, j int) bool {
	a, b := q.ev[i], q.ev[j]
	if a.at != b.at {
		return a.at < b.at
	}
	return a.seq < b.seq
}
func (q *queue) Swap(i, j int) { q.ev[i], q.ev[j] = q.ev[j], q.ev[i] }
func (q *queue) Push(x any)    { q.ev = append(q.ev, x.(*event)) }
func (q *queue) Pop() any {
	e := q.ev[len(q.ev)-1]
	q.ev[len(q.ev)-1] = nil
	q.ev = q.ev[:len(q.ev)-1]
	return e
}

func (q *queue) schedule(at time.Duration, run func()) {
	q.seq++
	heap.Push(q, &event{at: at, seq: q.seq, run: run})
}

func (q *queue) next() *event { return heap.Pop(q).(*event) }

// flows is an indexed heap of the transfers on the wire by the time their
// last byte leaves the holder at their current rate, so a rate change moves
// a flow (heap.Fix) instead of scheduling another event.
type flows []*flow

func (h flows) Len() int { return len(h) }
func (h flows) Less(i, j int) bool {
	if h[i].at != h[j].at {
		return h[i].at < h[j].at
	}
	return h[i].seq < h[j].seq
}
func (h flows) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].idx, h[j].idx = i, j
}
func (h *flows) Push(x any) {
	f := x.(*flow)
	f.idx = len(*h)
	*h = append(*h, f)
}
func (h *flows) Pop() any {
	old := *h
	f := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	f.idx = -1
	return f
}

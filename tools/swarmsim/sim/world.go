package sim

import (
	"container/heap"
	"math"
	"slices"
	"strconv"
	"time"

	"github.com/trovedb/trove/swarm"
)

// node is one simulated trove node: the origin (id 0) or a puller.
type node struct {
	id    int
	peer  swarm.PeerID
	sched *swarm.Scheduler // a puller's, from its start; nil for the origin
	have  swarm.Bitmap     // chunks it really holds: what it can serve

	start, finish time.Duration
	started, done bool
	dead          bool
	deadAt        time.Duration

	up, down []*flow  // transfers on its uplink and downlink
	waiting  []*req   // requests queued for a serving slot (ServeSlots)
	asked    []*req   // its own requests not yet ended
	served   int64    // chunks it sent in full
	seen     []uint64 // by node: the directory version last given to its scheduler

	asks        int           // its locate requests, for SpreadHolders
	wakePending bool          // a pump is scheduled for the scheduler's Wake
	wakeAt      time.Duration // when
	refreshing  bool          // an opLocate/opPulling is on its way
	lastStuck   time.Duration // when a Stuck refresh was last sent
}

// req is one chunk asked by a puller of a holder, from Next to its end.
type req struct {
	n, h  *node
	a     swarm.Assignment
	f     *flow // on the wire, or nil
	left  bool  // its last byte left the holder: it arrives RTT/2 later
	ended bool
}

// flow is one chunk on the wire from a holder to a puller.
type flow struct {
	from, to  *node
	r         *req
	remaining float64 // bytes
	rate      float64 // bytes per second, set by recompute
	last      time.Duration
	sent      float64
	at        time.Duration // when its last byte leaves at rate (flows heap key)
	seq       uint64        // tie-break in the heap: creation order
	idx       int           // index in the flows heap, −1 when off it
	fixed     bool          // recompute's: its rate is set
}

// entry is the owner's record of one node's copy.
type entry struct {
	have swarm.Bitmap
	ver  uint64 // bumped on every change; 0: not a holder
	full bool
}

type world struct {
	cfg     Config
	q       queue
	wire    flows
	flowSeq uint64
	now     time.Duration
	nodes   []*node
	res     *Result
	err     error
	chunks  int
	full    swarm.Bitmap

	// The owner's directory: dir by node; fulls and partials in the order
	// the copies were first reported, as the owner lists them.
	dir      []entry
	fulls    []int
	partials []int

	ratePending bool          // a recompute is scheduled
	lastRate    time.Duration // when rates were last recomputed
	links       []link        // recompute's scratch: 2 per node, up then down
	lh          linkHeap      // recompute's scratch

	ownerFree  time.Duration // when the owner's processor is next idle
	remaining  int           // pullers yet to finish
	lastArrive time.Duration // when a chunk last arrived anywhere
	maxUp      int           // most flows one uplink carried at once
}

func (w *world) wall() time.Time { return time.Unix(0, 0).Add(w.now) }

func (w *world) startPull(n *node) {
	if n.dead {
		return
	}
	n.started, n.start = true, w.now
	cfg := w.cfg.Sched
	cfg.Seed ^= swarm.SeedOf(string(n.peer)) ^ uint64(w.cfg.Seed)
	n.sched = swarm.New(w.cfg.Size, cfg)
	w.locate(n, false)
	if !w.cfg.SingleSource {
		w.q.schedule(w.now+w.cfg.Refresh, func() { w.tick(n) })
	}
}

// tick is a pull's PullRefresh ticker.
func (w *world) tick(n *node) {
	if n.dead || n.done {
		return
	}
	if !n.refreshing {
		w.locate(n, true)
	}
	w.q.schedule(w.now+w.cfg.Refresh, func() { w.tick(n) })
}

// ownerMsg delivers a message to the owner after half a round trip; the owner
// handles one message at a time, each taking 1/OwnerRate, first come first
// served; handle runs when the owner is done with it.
func (w *world) ownerMsg(handle func()) {
	w.q.schedule(w.now+w.cfg.RTT/2, func() {
		service := time.Duration(float64(time.Second) / w.cfg.OwnerRate)
		begin := max(w.now, w.ownerFree)
		w.ownerFree = begin + service
		w.res.OwnerBusy += service
		w.res.OwnerMaxWait = max(w.res.OwnerMaxWait, begin-w.now)
		w.q.schedule(w.ownerFree, handle)
	})
}

// locate is n's opLocate (pulling false: the pull's first) or opPulling
// (report n's chunks, then learn the locations). The reply lists what the
// owner knows when it handles the message; n's scheduler gets it half a
// round trip later.
func (w *world) locate(n *node, pulling bool) {
	n.refreshing = true
	var have swarm.Bitmap
	if pulling {
		have = n.sched.Have()
	}
	w.ownerMsg(func() {
		if pulling {
			w.res.Reports++
			w.record(n, have, false)
		} else {
			w.res.Locates++
		}
		ids := w.locations(n)
		w.res.OwnerReplyBytes += int64(locateReplyHeader)
		type loc struct {
			id   int
			have swarm.Bitmap
			ver  uint64
		}
		var changed []loc
		for _, id := range ids {
			e := w.dir[id]
			w.res.OwnerReplyBytes += locateHolderHeader
			if !e.full {
				w.res.OwnerReplyBytes += int64(e.have.EncodedLen())
			}
			if n.seen[id] != e.ver {
				// full copies are given as swarm.FullBitmap, which is never
				// written; a partial's bitmap is a snapshot
				changed = append(changed, loc{id, e.have, e.ver})
			}
		}
		w.q.schedule(w.now+w.cfg.RTT/2, func() {
			n.refreshing = false
			if n.dead || n.done {
				return
			}
			for _, l := range changed {
				if h := w.nodes[l.id]; h.dead && w.now >= h.deadAt+w.cfg.Detect {
					continue // it died and n knows
				}
				n.seen[l.id] = l.ver
				n.sched.SetHolder(w.nodes[l.id].peer, l.have)
			}
			w.pump(n)
		})
	})
}

// locations is the owner's reply to n, as serveLocate builds it: sealed
// copies (at most MaxHolders−1), the primary, then partial copies with a
// chunk or more, at most MaxHolders in all; a PullSources=1 pull takes only
// the first. Nodes known dead are left out; n itself is listed and skipped.
func (w *world) locations(n *node) []int {
	max := w.cfg.MaxHolders
	if max < 0 {
		max = len(w.nodes)
	}
	ids := make([]int, 0, 8)
	for _, id := range w.fulls {
		if len(ids) < max-1 {
			ids = append(ids, id)
		}
	}
	ids = append(ids, 0)
	start := 0
	if w.cfg.SpreadHolders && len(w.partials) > 0 {
		n.asks++
		start = int(swarm.SeedOf(string(n.peer)+"/"+strconv.Itoa(n.asks)) % uint64(len(w.partials)))
	}
	for i := range w.partials {
		if len(ids) >= max {
			break
		}
		ids = append(ids, w.partials[(start+i)%len(w.partials)])
	}
	ids = slices.DeleteFunc(ids, func(id int) bool { return id == n.id })
	if w.cfg.SingleSource {
		ids = ids[:1]
	}
	return ids
}

// record is the owner taking a report of n's copy.
func (w *world) record(n *node, have swarm.Bitmap, full bool) {
	if n.dead && w.now >= n.deadAt+w.cfg.Detect {
		return // the owner dropped it already
	}
	e := &w.dir[n.id]
	switch {
	case full:
		if !e.full {
			w.partials = slices.DeleteFunc(w.partials, func(id int) bool { return id == n.id })
			w.fulls = append(w.fulls, n.id)
		}
		e.have, e.full = w.full, true
	case e.full:
		return
	case have.Count() == 0:
		return // the owner lists partial copies with a chunk or more
	default:
		if e.ver == 0 {
			w.partials = append(w.partials, n.id)
		}
		e.have = have
	}
	e.ver++
}

// pump asks n's scheduler for every assignment it gives now and sends each
// request to its holder; a Stuck pull refreshes at once.
func (w *world) pump(n *node) {
	if n.dead || n.done || n.sched == nil {
		return
	}
	for {
		a, ok := n.sched.Next(w.wall())
		if !ok {
			break
		}
		h := w.byPeer(a.Peer)
		if h == nil {
			w.fatal("node %d assigned chunk %d to unknown peer %q", n.id, a.Chunk, a.Peer)
			return
		}
		r := &req{n: n, h: h, a: a}
		n.asked = append(n.asked, r)
		w.q.schedule(w.now+w.cfg.RTT/2, func() { w.request(r) })
		if w.cfg.ChunkTimeout > 0 {
			w.q.schedule(w.now+w.cfg.ChunkTimeout, func() { w.timeout(r) })
		}
	}
	if t, ok := n.sched.Wake(w.wall()); ok {
		at := max(t.Sub(time.Unix(0, 0)), w.now+time.Microsecond)
		if !n.wakePending || at < n.wakeAt {
			n.wakePending, n.wakeAt = true, at
			w.q.schedule(at, func() {
				if n.wakeAt == at {
					n.wakePending = false
					w.pump(n)
				}
			})
		}
	}
	if len(n.asked) == 0 && n.sched.Stuck() && !n.refreshing && !w.cfg.SingleSource {
		if n.lastStuck == 0 || w.now-n.lastStuck >= w.cfg.StuckRetry {
			n.lastStuck = w.now
			w.locate(n, true)
		} else {
			w.q.schedule(n.lastStuck+w.cfg.StuckRetry, func() { w.pump(n) })
		}
	}
}

func (w *world) byPeer(p swarm.PeerID) *node {
	id, err := strconv.Atoi(string(p[1:]))
	if err != nil || id < 0 || id >= len(w.nodes) {
		return nil
	}
	return w.nodes[id]
}

// request is r arriving at its holder.
func (w *world) request(r *req) {
	h := r.h
	if r.ended || r.n.dead {
		return
	}
	if h.dead {
		return // no answer: it ends at its timeout or when the death is known
	}
	if !h.have.Has(r.a.Chunk) {
		w.fatal("node %d asked node %d for chunk %d, which it does not hold", r.n.id, h.id, r.a.Chunk)
		return
	}
	if w.cfg.ServeSlots > 0 && len(h.up) >= w.cfg.ServeSlots {
		if w.cfg.ServeQueue > 0 && len(h.waiting) >= w.cfg.ServeQueue {
			w.res.Busy++
			w.q.schedule(w.now+w.cfg.RTT/2, func() {
				if w.end(r) && !r.n.dead && !r.n.done {
					w.res.Refailed++
					r.n.sched.Failed(r.a, w.wall())
					w.pump(r.n)
				}
			})
			return
		}
		h.waiting = append(h.waiting, r)
		return
	}
	w.send(r)
}

// serveNext starts h's oldest queued requests while it has slots.
func (w *world) serveNext(h *node) {
	for len(h.waiting) > 0 && len(h.up) < w.cfg.ServeSlots {
		r := h.waiting[0]
		h.waiting = h.waiting[1:]
		if !r.ended && !r.n.dead {
			w.send(r)
		}
	}
}

// send puts r's chunk on the wire.
func (w *world) send(r *req) {
	h, n := r.h, r.n
	w.flowSeq++
	f := &flow{from: h, to: n, r: r, remaining: float64(r.a.Len), last: w.now, seq: w.flowSeq, at: math.MaxInt64}
	r.f = f
	heap.Push(&w.wire, f)
	h.up = append(h.up, f)
	n.down = append(n.down, f)
	w.maxUp = max(w.maxUp, len(h.up))
	w.rerate(h, n)
}

// settle brings a flow's bytes up to now at its current rate.
func (w *world) settle(f *flow) {
	d := min((w.now-f.last).Seconds()*f.rate, f.remaining)
	f.remaining -= d
	f.sent += d
	f.last = w.now
}

// unwire takes f off the wire before its end (its request ended otherwise);
// its bytes so far are counted as aborted.
func (w *world) unwire(f *flow) {
	w.settle(f)
	heap.Remove(&w.wire, f.idx)
	h, n := f.from, f.to
	h.up, n.down = drop(h.up, f), drop(n.down, f)
	w.res.AbortedBytes += int64(f.sent)
	if h.id == 0 {
		w.res.OriginEgress += int64(f.sent)
	}
	f.r.f = nil
	w.rerate(h, n)
	if w.cfg.ServeSlots > 0 {
		w.serveNext(h)
	}
}

func drop(fs []*flow, f *flow) []*flow {
	if i := slices.Index(fs, f); i >= 0 {
		return slices.Delete(fs, i, i+1)
	}
	return fs
}

// flowEnd is a chunk's last byte leaving its holder.
func (w *world) flowEnd(f *flow) {
	w.settle(f)
	heap.Remove(&w.wire, f.idx)
	h, n := f.from, f.to
	h.up, n.down = drop(h.up, f), drop(n.down, f)
	h.served++
	w.res.SentBytes += f.r.a.Len
	if h.id == 0 {
		w.res.OriginEgress += f.r.a.Len
	}
	w.rerate(h, n)
	if w.cfg.ServeSlots > 0 {
		w.serveNext(h)
	}
	r := f.r
	r.f, r.left = nil, true
	w.q.schedule(w.now+w.cfg.RTT/2, func() { w.arrive(r) })
}

// end retires r from its puller's requests; false if it had ended.
func (w *world) end(r *req) bool {
	if r.ended {
		return false
	}
	r.ended = true
	r.n.asked = slices.DeleteFunc(r.n.asked, func(x *req) bool { return x == r })
	return true
}

// arrive is a chunk's last byte reaching its puller.
func (w *world) arrive(r *req) {
	n, a := r.n, r.a
	if n.dead || !w.end(r) {
		return
	}
	w.lastArrive = w.now
	w.res.RecvBytes += a.Len
	if n.have.Has(a.Chunk) {
		w.res.DuplicateBytes += a.Len
	} else {
		w.res.UsefulBytes += a.Len
		n.have.Set(a.Chunk)
	}
	n.sched.Done(a)
	if n.sched.Complete() {
		if n.have.Count() != w.chunks {
			w.fatal("node %d: scheduler complete with %d of %d chunks", n.id, n.have.Count(), w.chunks)
			return
		}
		n.done, n.finish = true, w.now
		w.remaining--
		w.res.Reports++ // the sealed copy's report (batched in the cluster: one message)
		w.ownerMsg(func() { w.record(n, w.full, true) })
		return
	}
	w.pump(n)
}

// timeout is r's ChunkTimeout: if its chunk has not arrived, the pull gives
// it up (cancelling the transfer) and reports it Failed.
func (w *world) timeout(r *req) {
	if r.ended || r.left || r.n.dead || r.n.done {
		return
	}
	if r.f != nil {
		w.unwire(r.f)
	}
	r.h.waiting = slices.DeleteFunc(r.h.waiting, func(x *req) bool { return x == r })
	w.end(r)
	w.res.Refailed++
	w.res.TimedOut++
	r.n.sched.Failed(r.a, w.wall())
	w.pump(r.n)
}

// fail kills node d: it stops serving and pulling at once; its peers and the
// owner learn of it Detect later (its streams end with an error, or time
// out, and memberlist declares it dead), and only then ask its chunks of
// others.
func (w *world) fail(d *node) {
	if d.dead {
		return
	}
	d.dead, d.deadAt = true, w.now
	w.res.Failed = append(w.res.Failed, d.id)
	if !d.done {
		w.remaining-- // it will never finish
	}
	for _, f := range slices.Clone(d.up) {
		w.unwire(f)
	}
	for _, f := range slices.Clone(d.down) {
		w.unwire(f)
	}
	for _, r := range d.asked {
		r.ended = true
	}
	d.asked, d.waiting = nil, nil
	w.q.schedule(w.now+w.cfg.Detect, func() {
		if e := w.dir[d.id]; e.ver != 0 {
			w.fulls = slices.DeleteFunc(w.fulls, func(id int) bool { return id == d.id })
			w.partials = slices.DeleteFunc(w.partials, func(id int) bool { return id == d.id })
			w.dir[d.id] = entry{}
		}
		for _, n := range w.nodes[1:] {
			if n.sched == nil || n.dead || n.done {
				continue
			}
			for _, r := range slices.Clone(n.asked) {
				if r.h == d && w.end(r) {
					w.res.Refailed++
					n.sched.Failed(r.a, w.wall())
				}
			}
			n.sched.RemoveHolder(d.peer)
			w.pump(n)
		}
	})
}

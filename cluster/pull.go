package cluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/trovedb/trove"
	"github.com/trovedb/trove/net/quic"
	"github.com/trovedb/trove/swarm"
)

// Swarm pulls: a large object is pulled in chunks from every node that holds
// some of it at once, chosen by a swarm.Scheduler, and a node still pulling
// serves the chunks it has to the others.
//
// The puller's side (swarmPull) is one event loop per pull: it asks the
// scheduler for work and starts a goroutine per chunk (net/quic Pull of that
// chunk, straight into the builder's arena bytes); it reports each chunk's
// end back to the scheduler; every Config.PullRefresh it tells the owner
// which chunks it holds and which it is fetching, and learns the object's
// locations again with the same of every other puller (opPulling:
// one request does both, so the owner pushes nothing and keeps no timers;
// a refresh also picks up peers that started after this one). The others'
// chunks in flight go to the scheduler (SetPending), which asks the holders
// first for chunks nobody is fetching, and leaves a chunk another puller is
// fetching from a full holder (the origin) to be had from that puller once
// it arrives: so the origin's uplink, which every puller can ask, sends each
// chunk about once. The loop holds the only reference to the scheduler: no
// lock guards it.
//
// The serving side: a pull in progress is registered in the node's
// pullTable; ServeChunk answers a chunk of it from the builder's bytes if
// every chunk the range covers has arrived. The bytes are copied out under
// the pull's read lock and written to the stream after it is dropped, so a
// slow reader never delays the pull's end: the pull's close takes the write
// lock, and from then on (Seal or Abort frees or freezes the bytes) nobody
// reads them. The copy costs one memcpy per chunk served from a partial copy;
// chunks of sealed copies are written from the store's memory as before.
//
// One writer per chunk: a chunk is asked of one holder at a time (the
// scheduler's SlowAfter re-asks are not used, since two pulls of one chunk
// would write the same builder bytes at once, one of them possibly while
// the chunk is served). A holder that sends no byte of a chunk for
// Config.PullChunkTimeout loses it to another (a chunk that arrives slowly
// but steadily, from a holder serving many pullers, is never cut: a timeout
// on the whole chunk made every chunk of a 16-node broadcast time out).

// maxHolderFailures is the chunks in a row a holder fails with an error (not
// a timeout) after which it is dropped for the rest of a pull.
const maxHolderFailures = 3

// maxStuckRefreshes is how many refreshes a pull that no holder can finish
// waits for a partial holder to get the missing chunks before it fails.
const maxStuckRefreshes = 5

// pullTable holds this node's pulls in progress, for ServeChunk.
type pullTable struct {
	mu sync.Mutex
	m  map[trove.ObjectID]*pulling // guarded by mu
}

// pullWatchers are this node's pulls under way, told when a holder dies or
// leaves (Node.onEvent): a holder killed mid-chunk sends nothing more, and
// without the membership's word its chunks would wait for the connection's
// idle timeout (net/quic's IdleTimeout, 10 s) or PullChunkTimeout, though the
// membership declares it dead sooner.
type pullWatchers struct {
	mu sync.Mutex
	m  map[*puller]struct{} // guarded by mu
}

func (w *pullWatchers) add(pl *puller) {
	w.mu.Lock()
	if w.m == nil {
		w.m = map[*puller]struct{}{}
	}
	w.m[pl] = struct{}{}
	w.mu.Unlock()
}

func (w *pullWatchers) remove(pl *puller) {
	w.mu.Lock()
	delete(w.m, pl)
	w.mu.Unlock()
}

// holderGone tells every pull under way that the node at addr died or left.
func (w *pullWatchers) holderGone(addr string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for pl := range w.m {
		pl.gone.mu.Lock()
		pl.gone.addrs = append(pl.gone.addrs, addr)
		pl.gone.mu.Unlock()
		select {
		case pl.gone.wake <- struct{}{}:
		default:
		}
	}
}

// pulling is one pull in progress as servers see it.
type pulling struct {
	size, chunk int64

	mu   sync.RWMutex // read: copying served bytes out of buf; write: marking chunks, closing
	buf  []byte       // the builder's bytes; nil once the pull ended (guarded by mu)
	have swarm.Bitmap // chunks of buf that hold their bytes (guarded by mu)
}

func (t *pullTable) add(id trove.ObjectID, p *pulling) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.m == nil {
		t.m = map[trove.ObjectID]*pulling{}
	}
	if t.m[id] != nil {
		return false
	}
	t.m[id] = p
	return true
}

func (t *pullTable) remove(id trove.ObjectID, p *pulling) {
	t.mu.Lock()
	if t.m[id] == p {
		delete(t.m, id)
	}
	t.mu.Unlock()
	p.mu.Lock()
	p.buf = nil // no server reads the bytes from here on
	p.mu.Unlock()
}

func (t *pullTable) get(id trove.ObjectID) *pulling {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.m[id]
}

// len is the number of pulls in progress.
func (t *pullTable) len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.m)
}

// chunkBufs holds the buffers chunks of partial copies are served from.
var chunkBufs sync.Pool

// errPartial: this node is still pulling the object and lacks some of the
// bytes asked for. It matches trove.ErrObjectEvicted (this node has no copy
// of them): the asker drops this node as a holder for its pull.
func errPartial(name string, id trove.ObjectID, off, size int64) error {
	return fmt.Errorf("node %s is still pulling %s and does not hold all of bytes [%d, +%d) yet; ask another holder (it advertised only the chunks it has): %w",
		name, id, off, size, trove.ErrObjectEvicted)
}

// servePartial serves [off, off+size) of id from a pull in progress, if
// there is one: served reports whether it answered (with err).
func (n *Node) servePartial(id trove.ObjectID, off, size int64, w io.Writer) (served bool, err error) {
	p := n.pulls.get(id)
	if p == nil {
		return false, nil
	}
	p.mu.RLock()
	if p.buf == nil { // ended: sealed (PinByID serves it) or aborted
		p.mu.RUnlock()
		return false, nil
	}
	if off < 0 || size <= 0 || off > p.size || size > p.size-off {
		p.mu.RUnlock()
		return true, fmt.Errorf("chunk [%d, +%d) of %s is outside its %d bytes: %w", off, size, id, p.size, trove.ErrUnknownObject)
	}
	for c := off / p.chunk; c <= (off+size-1)/p.chunk; c++ {
		if !p.have.Has(swarm.Chunk(c)) {
			p.mu.RUnlock()
			return true, errPartial(n.cfg.Name, id, off, size)
		}
	}
	bp, _ := chunkBufs.Get().(*[]byte)
	if bp == nil || int64(cap(*bp)) < size {
		b := make([]byte, size)
		bp = &b
	}
	buf := (*bp)[:size]
	copy(buf, p.buf[off:off+size])
	p.mu.RUnlock()
	k, err := w.Write(buf)
	chunkBufs.Put(bp)
	n.ctr.bytesOut.Add(int64(k))
	n.ctr.partialChunksServed.Add(1)
	return true, err
}

// pullChunkSize is the chunk a pull asks of one holder at a time: the
// transport's unit, Config.ChunkSize.
func (n *Node) pullChunkSize() int64 {
	if n.cfg.ChunkSize > 0 {
		return int64(n.cfg.ChunkSize)
	}
	return DefaultPullChunkSize
}

// source is one holder as a pull sees it.
type source struct {
	addr     string
	active   bool // given to the scheduler (PullSources may cap how many are)
	retiring bool // no longer listed or dropped: removed once its chunks in flight end
	banned   bool // failed: never asked again in this pull
	fails    int  // failed chunks in a row
	lastErr  error
}

// chunkResult is a chunk pull's end.
type chunkResult struct {
	a   swarm.Assignment
	err error
}

// refreshResult is an opPulling's answer.
type refreshResult struct {
	locs []location
	err  error
}

// puller is one swarm pull's state, owned by its event loop (swarmPull).
type puller struct {
	n      *Node
	owner  Member
	id     trove.ObjectID
	size   int64
	chunk  int64
	dst    []byte
	sched  *swarm.Scheduler
	p      *pulling // registered for ServeChunk; nil for a single-source pull
	srcs   map[string]*source
	order  []*source // in the order first listed
	limit  int       // sources active at once (0: all)
	locs   []location
	others map[string]bool // pullers whose chunks in flight the scheduler knows (SetPending)
	failed int             // chunk pulls failed with an error or timeout in all
	last   error

	gone struct { // holders the membership declared dead or departed, from pullWatchers
		mu    sync.Mutex
		addrs []string // guarded by mu
		wake  chan struct{}
	}

	running   map[swarm.Chunk]*chunkWork // chunk pulls under way: one per chunk at most
	preempted map[swarm.Chunk]int        // times each chunk's pull was given up as slow
	avg       time.Duration              // moving average of a chunk's pull time (0 until one arrived)
}

// chunkWork is one chunk pull under way.
type chunkWork struct {
	a         swarm.Assignment
	start     time.Time
	stop      context.CancelCauseFunc
	preempted bool
}

// errSlow ends a chunk pull given up as slow (preemptSlow).
var errSlow = errors.New("the holder was slow to send the chunk; asking another holder")

// minSlow is the least time a chunk pull runs before it may be given up as
// slow: a chunk's time on a busy link varies, and an abandoned pull wastes
// what it received.
const minSlow = 50 * time.Millisecond

// maxPreempt is how often one chunk's pull may be given up as slow: then it
// runs to its end or PullChunkTimeout, so that chunks cannot bounce between
// holders that are all slower than the average.
const maxPreempt = 1

// preemptSlow gives up the chunk pulls running much longer than this pull's
// chunks take (4× the average, at least minSlow, at most PullChunkTimeout)
// whose chunk another holder could serve now: a holder that slowed loses its
// chunks to the others. The chunk's goroutine ends (its context cancelled)
// and reports the failure before the chunk is asked again, so no two pulls
// of one chunk write its bytes at once.
func (pl *puller) preemptSlow(now time.Time) {
	if pl.avg == 0 {
		return
	}
	slow := max(4*pl.avg, minSlow)
	for c, w := range pl.running {
		if !w.preempted && pl.preempted[c] < maxPreempt && now.Sub(w.start) > slow && pl.sched.Alternative(w.a, now) {
			w.preempted = true
			pl.preempted[c]++
			w.stop(errSlow)
		}
	}
}

// swarmPull reads the object's bytes into dst (its builder's) from the
// locations the owner named (loc), per the package doc above.
func (n *Node) swarmPull(ctx context.Context, owner Member, id trove.ObjectID, loc locateReply, dst []byte) error {
	chunk := n.pullChunkSize()
	pl := &puller{
		n: n, owner: owner, id: id, size: loc.size, chunk: chunk, dst: dst,
		sched: swarm.New(loc.size, swarm.Config{ChunkSize: chunk, RetryAfter: min(n.cfg.PullRefresh, 100*time.Millisecond), Seed: swarm.SeedOf(n.Addr())}),
		srcs:  map[string]*source{}, limit: n.cfg.PullSources, locs: loc.locs, others: map[string]bool{},
		running: map[swarm.Chunk]*chunkWork{}, preempted: map[swarm.Chunk]int{},
	}
	pl.gone.wake = make(chan struct{}, 1)
	n.pullers.add(pl)
	defer n.pullers.remove(pl)
	swarming := n.cfg.PullSources != 1
	if swarming {
		pl.p = &pulling{size: loc.size, chunk: chunk, buf: dst, have: swarm.NewBitmap(pl.sched.Chunks())}
		if !n.pulls.add(id, pl.p) {
			pl.p = nil // cannot happen (one Fetch per ID); serve nothing rather than the wrong bytes
		}
	}
	err := pl.run(ctx, swarming)
	if pl.p != nil {
		n.pulls.remove(id, pl.p)
	}
	if pl.sched.Stats().Sources > 1 {
		n.ctr.multiSourcePulls.Add(1)
	}
	return err
}

// run is the pull's event loop; it returns once no chunk pull or refresh of
// it is running.
func (pl *puller) run(ctx context.Context, swarming bool) (err error) {
	n := pl.n
	ctx, cancel := context.WithCancelCause(ctx)
	stopLife := context.AfterFunc(n.life, func() {
		cancel(fmt.Errorf("node %s is closing: %w", n.cfg.Name, trove.ErrClosed))
	})
	defer stopLife()
	var wg sync.WaitGroup
	results := make(chan chunkResult, 64)
	refreshes := make(chan refreshResult, 1)
	workers, refreshing, told := 0, false, false
	defer func() {
		cancel(nil)
		for workers > 0 {
			<-results
			workers--
		}
		wg.Wait()
		if err != nil && told {
			n.outq.push(pl.id.Node(), update{kind: updatePullEnd, id: pl.id})
		}
	}()
	refresh := func() {
		if refreshing || !swarming {
			return
		}
		refreshing, told = true, true
		have, pending := pl.sched.Have(), pl.sched.Pending()
		wg.Go(func() {
			locs, err := n.refreshLocations(ctx, pl.owner, pl.id, pl.chunk, have, pending)
			refreshes <- refreshResult{locs, err}
		})
	}
	pl.apply(pl.locs, false)
	tick := time.NewTicker(n.cfg.PullRefresh)
	defer tick.Stop()
	wake := time.NewTimer(time.Hour)
	defer wake.Stop()
	stuckRefreshes := 0
	for {
		if ctx.Err() != nil {
			return ownerErr(ctx, fmt.Errorf("pull %s: %w", pl.id, trove.ContextError(ctx)))
		}
		now := time.Now()
		for {
			a, ok := pl.sched.Next(now)
			if !ok {
				break
			}
			workers++
			wctx, stop := context.WithCancelCause(ctx)
			pl.running[a.Chunk] = &chunkWork{a: a, start: now, stop: stop}
			wg.Go(func() {
				// PullChunkTimeout is the transport's StallTimeout: a
				// chunk fails when no byte of it arrives for that long,
				// never because a busy holder sends it slowly.
				err := n.tr.Pull(wctx, string(a.Peer), pl.id, a.Off, pl.dst[a.Off:a.Off+a.Len])
				stop(nil)
				results <- chunkResult{a, err}
			})
		}
		pl.preemptSlow(now)
		if pl.sched.Complete() && workers == 0 {
			return nil
		}
		// No holder has some missing chunk: learn the locations again at
		// once; then, while partial holders may still get it, at each
		// tick, up to maxStuckRefreshes without a chunk arriving.
		if workers == 0 && !refreshing && pl.sched.Stuck() {
			if !swarming || stuckRefreshes > maxStuckRefreshes || stuckRefreshes > 0 && !pl.partials() {
				return pl.lost()
			}
			if stuckRefreshes == 0 {
				stuckRefreshes++
				refresh()
			}
		}
		if pl.failed > 3*pl.sched.Chunks()+8 {
			return pl.lost()
		}
		if t, ok := pl.sched.Wake(now); ok {
			wake.Reset(time.Until(t))
		}
		select {
		case <-ctx.Done():
			return ownerErr(ctx, fmt.Errorf("pull %s: %w", pl.id, trove.ContextError(ctx)))
		case r := <-results:
			workers--
			if ctx.Err() != nil {
				continue
			}
			if pl.chunkEnded(r, time.Now()) {
				stuckRefreshes = 0
			}
		case r := <-refreshes:
			refreshing = false
			if r.err != nil {
				n.log.Info("cluster: a pull's refresh of its object's locations failed; pulling on from the holders known", "object", pl.id, "owner", pl.owner.Name, "err", r.err)
				continue
			}
			pl.apply(r.locs, len(r.locs) >= maxHolders)
		case <-pl.gone.wake:
			pl.holdersGone()
		case <-tick.C:
			if workers == 0 && pl.sched.Stuck() {
				stuckRefreshes++
			}
			refresh()
		case <-wake.C:
		}
	}
}

// holdersGone drops the holders the membership declared dead or departed
// since the last call: their chunks under way are given up (each goroutine
// ends and reports the failure, and the chunk goes to another holder), and
// they are asked nothing more in this pull. An address a live member has
// again (a restarted node) is kept.
func (pl *puller) holdersGone() {
	pl.gone.mu.Lock()
	addrs := pl.gone.addrs
	pl.gone.addrs = nil
	pl.gone.mu.Unlock()
	for _, addr := range addrs {
		s := pl.srcs[addr]
		if s == nil || s.banned || pl.n.aliveAt(addr) {
			continue
		}
		err := &trove.NodeError{Kind: trove.ErrNodeUnreachable, Addr: addr, Object: pl.id, Op: "pull",
			Err: errors.New("the membership declared the holder dead or departed mid-pull")}
		for _, w := range pl.running {
			if string(w.a.Peer) == addr {
				w.stop(err)
			}
		}
		pl.n.log.Info("cluster: a holder died or left during a pull; pulling its chunks from others", "object", pl.id, "holder", addr)
		s.banned, s.lastErr = true, err
		pl.last = err
		pl.retire(s)
		pl.apply(pl.locs, true) // a capped pull (PullSources) takes the next holder
	}
}

// partials reports whether a partial holder (a node still pulling, which
// may yet get the chunks no one has) is among the active sources.
func (pl *puller) partials() bool {
	for _, l := range pl.locs {
		if s := pl.srcs[l.addr]; !l.full && s != nil && s.active {
			return true
		}
	}
	return false
}

// chunkEnded handles a chunk pull's end; it reports whether the chunk arrived.
func (pl *puller) chunkEnded(r chunkResult, now time.Time) bool {
	defer delete(pl.running, r.a.Chunk)
	s := pl.srcs[string(r.a.Peer)]
	if r.err == nil {
		if w := pl.running[r.a.Chunk]; w != nil {
			d := now.Sub(w.start)
			if pl.avg == 0 {
				pl.avg = d
			} else {
				pl.avg += (d - pl.avg) / 8
			}
		}
		if pl.p != nil {
			pl.p.mu.Lock()
			pl.p.have.Set(r.a.Chunk)
			pl.p.mu.Unlock()
		}
		pl.sched.Done(r.a)
		pl.n.ctr.chunksPulled.Add(1)
		s.fails = 0
		pl.settle(s)
		return true
	}
	n := pl.n
	if errors.Is(r.err, quic.ErrBusy) {
		// The holder is serving all it takes: ask another that has the
		// chunk, or this one after the scheduler's RetryAfter. Not a
		// failure of the holder, nor of the pull.
		n.ctr.pullsBusyRefusals.Add(1)
		pl.sched.Failed(r.a, now)
		pl.settle(s)
		return false
	}
	n.ctr.pullHolderFailures.Add(1)
	pl.last, s.lastErr = r.err, r.err
	pl.sched.Failed(r.a, now)
	// A chunk that was too slow (given up, or past PullChunkTimeout) backs
	// its holder off and goes to another if one has it; only errors drop
	// the holder. Errors and timeouts count against the pull (a holder that
	// never answers ends it), chunks given up as slow (at most maxPreempt
	// per chunk) do not.
	slow := errors.Is(r.err, errSlow)
	if !slow {
		pl.failed++
	}
	if !slow && !errors.Is(r.err, context.DeadlineExceeded) {
		s.fails++
	}
	if gone(r.err) || s.fails >= maxHolderFailures {
		if !s.banned {
			n.log.Info("cluster: a holder failed during a pull; pulling its chunks from others", "object", pl.id, "holder", s.addr, "err", r.err)
		}
		s.banned = true
		pl.retire(s)
		pl.apply(pl.locs, true) // a capped pull (PullSources) takes the next holder
	}
	pl.settle(s)
	return false
}

// gone reports whether a chunk's error means its holder cannot serve the
// object at all (it is unreachable, closing, or has no copy), rather than
// that this one chunk failed (mid-chunk, or too slow).
func gone(err error) bool {
	var re *quic.RemoteError
	if errors.As(err, &re) {
		return errors.Is(err, trove.ErrObjectEvicted) || errors.Is(err, trove.ErrUnknownObject) ||
			errors.Is(err, trove.ErrObjectFreed) || errors.Is(err, trove.ErrObjectAborted) || errors.Is(err, trove.ErrClosed)
	}
	return errors.Is(err, trove.ErrNodeUnreachable) && !errors.Is(err, context.DeadlineExceeded)
}

// retire stops giving s new chunks; it is removed from the scheduler once
// its chunks in flight end (never before: a chunk is pulled by one
// goroutine at a time).
func (pl *puller) retire(s *source) {
	if !s.active {
		return
	}
	s.active, s.retiring = false, true
	pl.sched.SetHolder(swarm.PeerID(s.addr), swarm.Bitmap{})
	pl.settle(s)
}

// settle removes a retiring source with nothing in flight.
func (pl *puller) settle(s *source) {
	if s.retiring && pl.sched.InFlight(swarm.PeerID(s.addr)) == 0 {
		s.retiring = false
		pl.sched.RemoveHolder(swarm.PeerID(s.addr))
	}
}

// apply takes the owner's list of locations: each holder not dropped is
// given to the scheduler with the chunks it has (at most PullSources of them
// at once), every other puller's chunks in flight too (a puller that holds
// no chunk yet is no holder), and holders no longer listed are retired,
// unless the list may have been cut (truncated).
func (pl *puller) apply(locs []location, truncated bool) {
	self := pl.n.Addr()
	pl.locs = locs
	listed := map[string]bool{}
	fetching := map[string]bool{}
	active := 0
	for _, s := range pl.order {
		if s.active {
			active++
		}
	}
	n := pl.sched.Chunks()
	for _, l := range locs {
		if l.addr == self || (!l.full && pl.p == nil) {
			continue // this node; partial copies are for swarm pulls only
		}
		if !l.full {
			fetching[l.addr] = true
			pl.others[l.addr] = true
			pl.sched.SetPending(swarm.PeerID(l.addr), rechunkAny(l.pending, l.chunk, pl.size, pl.chunk))
			if l.have.Count() == 0 {
				continue
			}
		}
		listed[l.addr] = true
		s := pl.srcs[l.addr]
		if s == nil {
			s = &source{addr: l.addr}
			pl.srcs[l.addr] = s
			pl.order = append(pl.order, s)
		}
		if s.banned {
			continue
		}
		if !s.active {
			if pl.limit > 0 && active >= pl.limit {
				continue
			}
			s.active, s.retiring = true, false
			active++
		}
		if l.full {
			pl.sched.SetHolder(swarm.PeerID(l.addr), swarm.FullBitmap(n))
		} else {
			pl.sched.SetHolder(swarm.PeerID(l.addr), rechunk(l.have, l.chunk, pl.size, pl.chunk))
		}
	}
	if truncated {
		return
	}
	for _, s := range pl.order {
		if s.active && !listed[s.addr] {
			pl.retire(s)
		}
	}
	for addr := range pl.others {
		if !fetching[addr] {
			delete(pl.others, addr)
			pl.sched.SetPending(swarm.PeerID(addr), swarm.Bitmap{})
		}
	}
}

// rechunkAny converts a puller's pending bitmap of src-byte chunks into this
// pull's chunks of dst bytes: a chunk is pending if any source chunk it
// overlaps is (some of its bytes are on their way there).
func rechunkAny(pending swarm.Bitmap, src, size, dst int64) swarm.Bitmap {
	if src == dst {
		return pending
	}
	n := int(chunksOf(size, dst))
	out := swarm.NewBitmap(n)
	for c := range n {
		lo := int64(c) * dst
		hi := min(size, lo+dst)
		for k := lo / src; k <= (hi-1)/src; k++ {
			if pending.Has(swarm.Chunk(k)) {
				out.Set(swarm.Chunk(c))
				break
			}
		}
	}
	return out
}

// rechunk converts a holder's bitmap of src-byte chunks into this pull's
// chunks of dst bytes: a chunk is held if every source chunk it overlaps is.
func rechunk(have swarm.Bitmap, src, size, dst int64) swarm.Bitmap {
	if src == dst {
		return have
	}
	n := int(chunksOf(size, dst))
	out := swarm.NewBitmap(n)
next:
	for c := range n {
		lo := int64(c) * dst
		hi := min(size, lo+dst)
		for k := lo / src; k <= (hi-1)/src; k++ {
			if !have.Has(swarm.Chunk(k)) {
				continue next
			}
		}
		out.Set(swarm.Chunk(c))
	}
	return out
}

// lost is the error of a pull no holder can finish.
func (pl *puller) lost() error {
	missing := 0
	for c := range pl.sched.Chunks() {
		if !pl.sched.Held(swarm.Chunk(c)) {
			missing++
		}
	}
	dropped := 0
	for _, s := range pl.order {
		if s.banned {
			dropped++
		}
	}
	why := "none of them has the missing chunks"
	if pl.last != nil {
		why = fmt.Sprintf("the last failure: %v", pl.last)
	}
	return &trove.NodeError{Kind: trove.ErrObjectLost, Node: pl.owner.Name, Addr: pl.owner.Addr, Object: pl.id, Op: "pull",
		Err: fmt.Errorf("%d of %d chunks missing after %d failed chunk pulls; %d of the %d holders the owner named failed and were dropped; %s",
			missing, pl.sched.Chunks(), pl.failed, dropped, len(pl.order), why)}
}

// refreshLocations tells id's owner which chunks this node holds and which
// it is fetching (opPulling), and returns the object's locations now.
func (n *Node) refreshLocations(ctx context.Context, owner Member, id trove.ObjectID, chunk int64, have, pending swarm.Bitmap) ([]location, error) {
	req, rep := bufs.Get(), bufs.Get()
	defer bufs.Put(req)
	defer bufs.Put(rep)
	req.B = appendPulling(req.B[:0], n.self, id, chunk, have, pending)
	if err := n.request(ctx, owner.Addr, opPulling, req.B, &rep.B); err != nil {
		return nil, err
	}
	loc, err := decodeLocateReply(rep.B, maxObjectSize)
	if err != nil {
		return nil, fmt.Errorf("locations of %s from node %s: %w", id, owner.Name, err)
	}
	if loc.locs == nil {
		return nil, fmt.Errorf("locations of %s from node %s: %w: an inline reply to a pull's refresh", id, owner.Name, errMessage)
	}
	return loc.locs, nil
}

// Holder is one node holding some or all of an object's bytes, as its
// owner knows it.
type Holder struct {
	Node   string // the member's name
	Addr   string
	Full   bool // a sealed copy: the primary (on the owner) or a copy
	Chunks int  // a partial copy's chunks held (0 if Full)
	Of     int  // and the object's chunks in that node's chunk size
}

// Holders lists the nodes holding id, an object this node owns, as it
// knows them now: the copies (from the batched updates of their Gets), this
// node's primary, and the nodes still pulling it with the chunks each said it
// holds at its last refresh. An object no other node borrows lists only the
// primary; one this node does not own gives nil.
func (n *Node) Holders(id trove.ObjectID) []Holder {
	if id.Node() != n.self {
		return nil
	}
	name := func(node trove.NodeID) (string, string) {
		m, _ := n.members.Lookup(node)
		return m.Name, m.Addr
	}
	var out []Holder
	for _, node := range n.own.holders(id, nil) {
		nm, addr := name(node)
		out = append(out, Holder{Node: nm, Addr: addr, Full: true})
	}
	out = append(out, Holder{Node: n.cfg.Name, Addr: n.Addr(), Full: true})
	for _, p := range n.own.partials(id, nil) {
		nm, addr := name(p.node)
		out = append(out, Holder{Node: nm, Addr: addr, Chunks: p.have.Count(), Of: p.have.Len()})
	}
	return out
}

// fullLocations is a locate reply's list of sealed copies at addrs.
func fullLocations(addrs []string) []location {
	locs := make([]location, len(addrs))
	for i, a := range addrs {
		locs[i] = location{addr: a, full: true}
	}
	return locs
}

// aliveAt reports whether a member alive or suspect now has address addr.
func (n *Node) aliveAt(addr string) bool {
	for _, m := range n.members.Members() {
		if m.Addr == addr && (m.State == StateAlive || m.State == StateSuspect) {
			return true
		}
	}
	return false
}

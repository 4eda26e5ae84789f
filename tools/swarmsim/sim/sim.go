package sim

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"time"

	"github.com/trovedb/trove/swarm"
)

// Config is one broadcast: the cluster, its links, the owner and the
// scheduler's limits. The zero value of a field means its Default*.
type Config struct {
	Nodes int   // N: the origin (node 0, also the object's owner) and N−1 pullers
	Size  int64 // the object's size S in bytes

	// Sched is every puller's swarm.Config (chunk size, limits per peer and
	// per pull, slow-holder threshold).
	Sched swarm.Config

	// Uplink and Downlink are every node's link rates in bytes per second,
	// each shared equally among the node's concurrent chunk transfers.
	Uplink, Downlink float64
	RTT              time.Duration // round trip between any two nodes

	// RateEvery is the most often flow rates are recomputed (max-min fair
	// shares of every link); between recomputations rates stay fixed.
	RateEvery time.Duration

	// Refresh is the cluster's PullRefresh: every Refresh a pulling node
	// sends the owner one opPulling, which reports the chunks it holds and
	// returns the object's locations. A Stuck node also refreshes at once,
	// at most once per StuckRetry. A pull starts with one opLocate and ends
	// with one report of its sealed copy.
	Refresh    time.Duration
	StuckRetry time.Duration

	// MaxHolders caps the locations in one reply, as the cluster's
	// maxHolders: sealed copies first (in the order they were reported),
	// the primary, then partial copies with at least one chunk (in the order
	// they first reported). Negative: no cap.
	MaxHolders int
	// SpreadHolders makes the owner list a different window of the partial
	// copies to each request (starting at a hash of the puller and its
	// request count) instead of always the first ones: with more pullers
	// than MaxHolders, every partial copy then gets asked.
	SpreadHolders bool

	// ChunkTimeout is the cluster's PullChunkTimeout: a chunk not arrived
	// this long after it was asked is given up (the transfer cancelled) and
	// reported Failed, so the scheduler asks it again after RetryAfter.
	// Negative: no timeout.
	ChunkTimeout time.Duration

	// OwnerRate is how many directory messages (locates, refreshes, reports)
	// the owner processes per second, one at a time, first come first served.
	OwnerRate float64

	// ServeSlots bounds the chunks a node sends at once; further requests
	// wait at the holder, first come first served. 0 means no bound: the
	// uplink is shared among every request that arrived.
	ServeSlots int
	// ServeQueue bounds the requests waiting for a slot; a request beyond
	// it is refused at once ("busy"), so its puller reports it Failed and
	// asks another holder (the scheduler backs the busy one off for
	// RetryAfter). 0 means no bound. Only with ServeSlots.
	ServeQueue int

	// SingleSource makes the owner name only the origin, as a cluster with
	// PullSources=1 does: every puller pulls every chunk from node 0.
	SingleSource bool

	// Stagger spreads the pullers' starts uniformly over [0, Stagger); 0 is
	// all at once.
	Stagger time.Duration

	// Fail lists nodes that die mid-broadcast; Detect is how long after a
	// death its peers and the owner learn of it (memberlist's suspicion).
	Fail   []Failure
	Detect time.Duration

	Seed int64

	// MaxSimTime bounds the simulated time: a broadcast still running then
	// is an error (a model or scheduler that stopped making progress).
	MaxSimTime time.Duration
}

// Failure is a node dying at a simulated time.
type Failure struct {
	Node int
	At   time.Duration
}

// Defaults: links like the namespace cluster's tbf cap, the transport's chunk.
const (
	DefaultUplink       = 200e6 / 8 // 200 Mbit/s
	DefaultRTT          = 200 * time.Microsecond
	DefaultRateEvery    = 5 * time.Millisecond
	DefaultRefresh      = 100 * time.Millisecond // cluster.DefaultPullRefresh
	DefaultMaxHolders   = 64                     // cluster's maxHolders
	DefaultChunkTimeout = 10 * time.Second       // cluster.DefaultPullChunkTimeout
	DefaultStuckRetry   = 20 * time.Millisecond
	DefaultOwnerRate    = 20000
	DefaultDetect       = 10 * time.Second // net/quic's DefaultIdleTimeout: a vanished peer's streams end then
	DefaultChunkSize    = 8 << 20          // net/quic's DefaultChunkSize, the cluster's pull chunk
	DefaultMaxSimTime   = 24 * time.Hour
	locateReplyHeader   = 16 // bytes of a locate reply before its holder entries
	locateHolderHeader  = 24 // node ID, address, chunk count per holder entry
)

func (c Config) withDefaults() Config {
	def := func(v *float64, d float64) {
		if *v <= 0 {
			*v = d
		}
	}
	defD := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&c.Uplink, DefaultUplink)
	def(&c.Downlink, c.Uplink)
	def(&c.OwnerRate, DefaultOwnerRate)
	defD(&c.RTT, DefaultRTT)
	defD(&c.RateEvery, DefaultRateEvery)
	defD(&c.StuckRetry, DefaultStuckRetry)
	defD(&c.Detect, DefaultDetect)
	defD(&c.MaxSimTime, DefaultMaxSimTime)
	if c.Sched.ChunkSize <= 0 {
		c.Sched.ChunkSize = DefaultChunkSize
	}
	if c.Sched.PerPeer <= 0 {
		c.Sched.PerPeer = swarm.DefaultPerPeer
	}
	if c.Sched.PerPull <= 0 {
		c.Sched.PerPull = swarm.DefaultPerPull
	}
	if c.Refresh <= 0 {
		c.Refresh = DefaultRefresh
	}
	if c.Sched.RetryAfter <= 0 {
		c.Sched.RetryAfter = min(c.Refresh, 100*time.Millisecond) // as the cluster's pull sets it
	}
	if c.MaxHolders == 0 {
		c.MaxHolders = DefaultMaxHolders
	}
	if c.ChunkTimeout == 0 {
		c.ChunkTimeout = DefaultChunkTimeout
	}
	return c
}

func (c Config) validate() error {
	switch {
	case c.Nodes < 2:
		return fmt.Errorf("sim: %d nodes: a broadcast needs the origin and at least one puller (Nodes ≥ 2)", c.Nodes)
	case c.Size <= 0:
		return fmt.Errorf("sim: object size %d: give a positive Size", c.Size)
	case c.Sched.SlowAfter > 0:
		return fmt.Errorf("sim: Sched.SlowAfter %v: the cluster's pull does not use re-asks (one writer per chunk); leave it 0", c.Sched.SlowAfter)
	}
	for _, f := range c.Fail {
		if f.Node <= 0 || f.Node >= c.Nodes {
			return fmt.Errorf("sim: failure of node %d: only pullers 1..%d can fail (the origin owns the object; its death ends every pull with ErrOwnerDied, which the model does not cover)", f.Node, c.Nodes-1)
		}
	}
	return nil
}

// Result is what one broadcast did. Times are simulated.
type Result struct {
	Nodes int
	Size  int64

	// Finish is each surviving puller's time from its start to holding the
	// whole object (index i−1 for node i; failed nodes are left out).
	Finish        []time.Duration
	P50, P99, Max time.Duration
	End           time.Duration // the last puller's finish, from time 0

	// Served counts the chunks each node (index = node) sent in full.
	Served                []int64
	ServedMean, ServedMax float64

	OriginEgress int64 // bytes node 0 sent, aborted transfers included
	EgressPerS   float64

	Locates, Reports int64 // directory messages the owner processed
	OwnerMsgs        int64 // Locates + Reports
	OwnerReplyBytes  int64 // bytes of the owner's locate replies
	OwnerBusy        time.Duration
	OwnerUtil        float64       // OwnerBusy / End
	OwnerMaxWait     time.Duration // longest a message queued at the owner

	// Conservation: chunk bytes that left holders in full (SentBytes) and
	// that arrived at pullers (RecvBytes) must agree; UsefulBytes is what
	// pullers kept (each chunk once), Duplicate what they received twice,
	// Aborted what left a holder in transfers that failed.
	SentBytes, RecvBytes, UsefulBytes, DuplicateBytes, AbortedBytes int64

	Failed     []int // nodes that died
	Refailed   int64 // assignments the pullers reported Failed
	TimedOut   int64 // of those, chunks given up after ChunkTimeout
	Busy       int64 // of those, requests refused by a holder's full ServeQueue
	Recomputes int64 // rate recomputations
	Events     int64
}

// Run simulates one broadcast. It is deterministic: the same Config gives the
// same Result.
func Run(cfg Config) (*Result, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	w := &world{cfg: cfg, res: &Result{Nodes: cfg.Nodes, Size: cfg.Size}}
	rng := rand.New(rand.NewPCG(uint64(cfg.Seed), 0x5eed))
	w.chunks = swarm.New(cfg.Size, cfg.Sched).Chunks()
	w.full = swarm.FullBitmap(w.chunks)
	w.dir = make([]entry, cfg.Nodes)
	for i := range cfg.Nodes {
		n := &node{id: i, peer: swarm.PeerID("n" + strconv.Itoa(i)), have: swarm.NewBitmap(w.chunks), seen: make([]uint64, cfg.Nodes)}
		w.nodes = append(w.nodes, n)
	}
	origin := w.nodes[0]
	origin.have = swarm.FullBitmap(w.chunks)
	origin.started, origin.done = true, true
	w.dir[0] = entry{have: w.full, ver: 1, full: true} // the primary
	w.remaining = cfg.Nodes - 1
	for _, n := range w.nodes[1:] {
		at := time.Duration(0)
		if cfg.Stagger > 0 {
			at = time.Duration(rng.Int64N(int64(cfg.Stagger)))
		}
		w.q.schedule(at, func() { w.startPull(n) })
	}
	for _, f := range cfg.Fail {
		w.q.schedule(f.At, func() { w.fail(w.nodes[f.Node]) })
	}
	for (w.q.Len() > 0 || w.wire.Len() > 0) && w.err == nil && w.remaining > 0 {
		var at time.Duration
		var run func()
		if w.wire.Len() > 0 && (w.q.Len() == 0 || w.wire[0].at < w.q.ev[0].at) {
			f := w.wire[0]
			at, run = f.at, func() { w.flowEnd(f) }
		} else {
			e := w.q.next()
			at, run = e.at, e.run
		}
		if at > cfg.MaxSimTime {
			return nil, fmt.Errorf("sim: broadcast to %d nodes still running at %v (MaxSimTime), %d pullers unfinished: raise MaxSimTime or look for a stall", cfg.Nodes, cfg.MaxSimTime, w.remaining)
		}
		if cfg.ChunkTimeout > 0 && at-w.lastArrive > 6*cfg.ChunkTimeout {
			return nil, fmt.Errorf("%w: broadcast to %d nodes: no chunk arrived from %v to %v (%d chunk pulls timed out): %d requests share the busiest uplink, so an %d-byte chunk takes longer than ChunkTimeout %v; raise ChunkTimeout or lower PerPeer",
				ErrStalled, cfg.Nodes, w.lastArrive, at, w.res.TimedOut, w.maxUp, cfg.Sched.ChunkSize, cfg.ChunkTimeout)
		}
		w.now = at
		w.res.Events++
		run()
	}
	if w.err != nil {
		return nil, w.err
	}
	if w.remaining > 0 {
		return nil, fmt.Errorf("sim: broadcast to %d nodes stalled at %v: %d pullers unfinished and nothing left to happen", cfg.Nodes, w.now, w.remaining)
	}
	w.summarise()
	return w.res, nil
}

// ErrStalled reports a broadcast that stopped making progress: every chunk
// pull gives up (ChunkTimeout) before its chunk arrives.
var ErrStalled = errors.New("sim: broadcast stalled")

// ErrModel reports a broken invariant of the model itself.
var ErrModel = errors.New("sim: model invariant broken")

func (w *world) fatal(format string, args ...any) {
	if w.err == nil {
		w.err = fmt.Errorf("%w: "+format, append([]any{ErrModel}, args...)...)
	}
}

func copyBitmap(b swarm.Bitmap, n int) swarm.Bitmap {
	c := swarm.NewBitmap(n)
	for i := range n {
		if b.Has(swarm.Chunk(i)) {
			c.Set(swarm.Chunk(i))
		}
	}
	return c
}

func (w *world) summarise() {
	r := w.res
	for _, n := range w.nodes[1:] {
		if n.dead {
			continue
		}
		r.Finish = append(r.Finish, n.finish-n.start)
		r.End = max(r.End, n.finish)
	}
	s := slices.Clone(r.Finish)
	slices.Sort(s)
	r.P50, r.P99, r.Max = quantile(s, 0.5), quantile(s, 0.99), s[len(s)-1]
	r.Served = make([]int64, len(w.nodes))
	var sum int64
	for i, n := range w.nodes {
		r.Served[i] = n.served
		sum += n.served
		r.ServedMax = max(r.ServedMax, float64(n.served))
	}
	r.ServedMean = float64(sum) / float64(len(w.nodes))
	r.EgressPerS = float64(r.OriginEgress) / float64(r.Size)
	r.OwnerMsgs = r.Locates + r.Reports
	if r.End > 0 {
		r.OwnerUtil = r.OwnerBusy.Seconds() / r.End.Seconds()
	}
}

// quantile is the nearest-rank quantile of sorted s.
func quantile(s []time.Duration, q float64) time.Duration {
	i := int(math.Ceil(q*float64(len(s)))) - 1
	return s[max(0, min(i, len(s)-1))]
}

package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"

	"github.com/trovedb/trove"
)

// loadConfig is what shapes the load, apart from where it goes.
type loadConfig struct {
	Sizes       []sizeWeight
	Mix         [numOps]int
	Concurrency int
	Duration    time.Duration // 0: no time limit (Ops must be set)
	Ops         int64         // 0: no op limit (Duration must be set)
	WorkingSet  int64         // bytes of live objects kept, over all workers
	OpTimeout   time.Duration
	WaitRefs    int    // refs per Wait (num_returns is 1)
	Seed        uint64 // seeds the op choices and the payloads
	// Cluster: the targets are nodes of one cluster. Worker i puts through
	// target i mod N; its gets and waits go to the other targets, which are
	// passed the refs by ID (Borrow), as another process on another node
	// would be, so every get of a large object is a transfer between nodes.
	Cluster bool
	// LocalGets (cluster mode) is the percentage of gets run on the node
	// that put the object, the same way (Borrow by ID, Get) but with no
	// transfer: the baseline the report sets the crossing gets against.
	LocalGets int
}

func (c loadConfig) validate() error {
	switch {
	case c.Duration <= 0 && c.Ops <= 0:
		return errors.New("unbounded run: set -duration and/or -ops to a positive value")
	case c.Duration < 0 || c.Ops < 0:
		return errors.New("-duration and -ops must not be negative")
	case c.Concurrency <= 0:
		return fmt.Errorf("-concurrency %d: need at least 1", c.Concurrency)
	case c.OpTimeout <= 0:
		return fmt.Errorf("-op-timeout %v: need a positive timeout", c.OpTimeout)
	case c.WorkingSet <= 0:
		return fmt.Errorf("-working-set %d: need a positive size", c.WorkingSet)
	case c.WaitRefs <= 0:
		return fmt.Errorf("-wait-refs %d: need at least 1", c.WaitRefs)
	case len(c.Sizes) == 0:
		return errors.New("no object sizes")
	case c.Mix[opPut] <= 0:
		return errors.New("the mix needs puts")
	case c.LocalGets < 0 || c.LocalGets > 100:
		return fmt.Errorf("-local-gets %d: need a percentage, 0 to 100", c.LocalGets)
	}
	// Each worker keeps WorkingSet/Concurrency bytes of objects and always its
	// newest one: a share smaller than the largest object is not the working
	// set asked for (-working-set 10 is 10 bytes, not 10 GiB).
	largest := slices.MaxFunc(c.Sizes, func(a, b sizeWeight) int { return cmp.Compare(a.Size, b.Size) }).Size
	if need := largest * int64(c.Concurrency); c.WorkingSet < need {
		return fmt.Errorf("-working-set %s is smaller than one object of the largest -sizes (%s) per worker: -concurrency %d needs at least %s; raise -working-set, or lower -sizes or -concurrency",
			trove.HumanBytes(c.WorkingSet), trove.HumanBytes(largest), c.Concurrency, trove.HumanBytes(need))
	}
	return nil
}

// target is one store the load goes to: a daemon's client or the embedded store.
type target struct {
	Name  string
	Store trove.Store
}

// maxSamples bounds the error messages kept for the report and printed as they
// happen.
const maxSamples = 20

// runner runs the load of one invocation.
type runner struct {
	cfg     loadConfig
	targets []target
	errOut  io.Writer // errors are printed here as they happen (up to maxSamples); nil: not printed

	issued     atomic.Int64 // ops started, for the -ops limit
	opsReached atomic.Bool
	workers    []*worker
	start      time.Time // set by newRunner: the progress display may read it as soon as run begins

	sizeTotal int // sum of size weights
	mixTotal  int // sum of op weights
	maxSize   int64
	latMax    int64 // largest latency recorded, ns

	errMu      sync.Mutex
	samples    []string
	errPrinted int
	errAborted atomic.Int64 // ops cut short by a hard abort: not errors
}

// errClass is how a failed op is counted.
type errClass int

const (
	errVerify  errClass = iota // bytes read back are wrong
	errTimeout                 // the op's deadline passed
	errOther
	numErrClasses
)

var errClassNames = [numErrClasses]string{"verify", "timeout", "other"}

type worker struct {
	id   int
	r    *runner
	st   trove.Store // where it puts
	home int         // st's index in r.targets
	rng  *rand.Rand

	// The ring of live refs, oldest first: ring[head], ring[(head+1)%len], ...
	ring      []entry
	head, n   int
	ringBytes int64
	budget    int64

	buf      []byte
	seedBase uint64
	seedNext uint64
	hist     [numOps]*hdrhistogram.Histogram

	// Read by the progress display while the worker runs.
	done  [numOps]atomic.Int64
	bytes [numOps]atomic.Int64
	errs  [numOps][numErrClasses]atomic.Int64
	_     [64]byte // keep workers' counters off each other's cache lines

	// Per target, in cluster mode only (nil otherwise): the same figures by
	// the node an op ran on. Written by the worker only, read after the run.
	per []perTarget
	// local: the get being run is on the node that put the object (record
	// and count file it apart).
	local bool
}

// perTarget is a worker's figures of the ops it ran on one target. Its
// histograms keep two significant digits (the totals keep three): a worker
// has one per target and op kind.
type perTarget struct {
	hist  [numOps]*hdrhistogram.Histogram
	bytes [numOps]int64
	errs  [numOps]int64
	// The gets on this node of objects it put itself (-local-gets), apart
	// from hist[opGet] and the rest, which are of other nodes' objects.
	localHist             *hdrhistogram.Histogram
	localBytes, localErrs int64
}

type entry struct {
	ref  trove.Ref
	size int64
	seed uint64
}

func newRunner(cfg loadConfig, targets []target, errOut io.Writer) (*runner, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if len(targets) == 0 {
		return nil, errors.New("no target store")
	}
	if cfg.Cluster && len(targets) < 2 {
		return nil, fmt.Errorf("cluster mode needs at least 2 nodes, have %d: give -cluster one -socket per node, or use -embedded-cluster 3", len(targets))
	}
	r := &runner{cfg: cfg, targets: targets, errOut: errOut, start: time.Now()}
	for _, s := range cfg.Sizes {
		r.sizeTotal += s.Weight
		r.maxSize = max(r.maxSize, s.Size)
	}
	for _, w := range cfg.Mix {
		r.mixTotal += w
	}
	// Latencies are recorded in ns up to twice the op timeout (longer ones, from a
	// store that overran its deadline, are clamped), to three significant digits.
	r.latMax = max(int64(2*cfg.OpTimeout), int64(time.Second))
	budget := max(cfg.WorkingSet/int64(cfg.Concurrency), 1)
	for i := range cfg.Concurrency {
		w := &worker{
			id:       i,
			r:        r,
			st:       targets[i%len(targets)].Store,
			home:     i % len(targets),
			rng:      rand.New(rand.NewPCG(cfg.Seed, uint64(i))),
			budget:   budget,
			seedBase: mix64(cfg.Seed ^ uint64(i+1)<<40),
			ring:     make([]entry, 16),
		}
		for k := range w.hist {
			w.hist[k] = hdrhistogram.New(1, r.latMax, 3)
		}
		if cfg.Cluster {
			w.per = make([]perTarget, len(targets))
			for t := range w.per {
				for k := range numOps {
					w.per[t].hist[k] = hdrhistogram.New(1, r.latMax, 2)
				}
				w.per[t].localHist = hdrhistogram.New(1, r.latMax, 2)
			}
		}
		r.workers = append(r.workers, w)
	}
	return r, nil
}

// run runs the load until the duration passes, the op limit is reached, or stop
// is closed; then it drops every ref it holds and returns. Ops in flight finish
// (each within the op timeout) unless ctx is cancelled, which aborts them.
func (r *runner) run(ctx context.Context, stop <-chan struct{}) {
	stopCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	if r.cfg.Duration > 0 {
		var c context.CancelFunc
		stopCtx, c = context.WithTimeout(stopCtx, r.cfg.Duration)
		defer c()
	}
	go func() {
		select {
		case <-stop:
			cancel()
		case <-stopCtx.Done():
		}
	}()
	var wg sync.WaitGroup
	for _, w := range r.workers {
		wg.Go(func() {
			defer w.dropAll()
			w.loop(ctx, stopCtx)
		})
	}
	wg.Wait()
}

func (w *worker) loop(opCtx, stopCtx context.Context) {
	r := w.r
	for stopCtx.Err() == nil {
		if r.cfg.Ops > 0 && r.issued.Add(1) > r.cfg.Ops {
			r.opsReached.Store(true)
			return
		}
		k := w.pickOp()
		if k != opPut && w.n == 0 {
			k = opPut // nothing to read yet
		}
		switch k {
		case opPut:
			w.put(opCtx)
		case opGet:
			w.get(opCtx)
		case opWait:
			w.wait(opCtx)
		}
	}
}

func (w *worker) pickOp() opKind {
	x := w.rng.IntN(w.r.mixTotal)
	for k, wt := range w.r.cfg.Mix {
		if x < wt {
			return opKind(k)
		}
		x -= wt
	}
	return opPut
}

func (w *worker) pickSize() int64 {
	x := w.rng.IntN(w.r.sizeTotal)
	for _, s := range w.r.cfg.Sizes {
		if x < s.Weight {
			return s.Size
		}
		x -= s.Weight
	}
	return w.r.cfg.Sizes[0].Size
}

func (w *worker) put(ctx context.Context) {
	size := w.pickSize()
	if int64(cap(w.buf)) < size {
		w.buf = make([]byte, w.r.maxSize)
	}
	w.seedNext++
	seed := w.seedBase + w.seedNext
	buf := w.buf[:size]
	fillPayload(buf, seed) // outside the timed region: latency is the store's

	opCtx, cancel := context.WithTimeout(ctx, w.r.cfg.OpTimeout)
	t0 := time.Now()
	ref, err := w.st.Put(opCtx, buf)
	lat := time.Since(t0)
	cancel()
	if err != nil {
		w.fail(ctx, opPut, w.home, fmt.Errorf("put of %s%s: %w", trove.HumanBytes(size), w.on(w.home), err))
		return
	}
	w.record(opPut, w.home, lat, size)
	w.push(entry{ref: ref, size: size, seed: seed})
}

// peer picks the target a get or wait runs on: in cluster mode any but the
// worker's own, so that the ref crosses nodes; otherwise the worker's own.
func (w *worker) peer() int {
	if !w.r.cfg.Cluster {
		return w.home
	}
	n := len(w.r.targets)
	return (w.home + 1 + w.rng.IntN(n-1)) % n
}

// on names target t for an error message in cluster mode ("" otherwise: the
// report lists the targets).
func (w *worker) on(t int) string {
	if !w.r.cfg.Cluster {
		return ""
	}
	return " on " + w.r.targets[t].Name
}

// borrow returns the refs a get or wait uses on target t: in cluster mode new
// handles there, borrowed by ID, which the caller MUST drop with drop;
// otherwise refs themselves, and a drop that does nothing.
func (w *worker) borrow(t int, refs []trove.Ref) (out []trove.Ref, drop func(), err error) {
	if !w.r.cfg.Cluster {
		return refs, func() {}, nil
	}
	st := w.r.targets[t].Store
	out = make([]trove.Ref, 0, len(refs))
	drop = func() {
		for _, r := range out {
			r.Drop()
		}
	}
	for _, r := range refs {
		b, err := st.Borrow(r.ID())
		if err != nil {
			drop()
			return nil, func() {}, fmt.Errorf("borrow of object %s: %w", r.ID(), err)
		}
		out = append(out, b)
	}
	return out, drop, nil
}

// get reads one of the worker's objects back and verifies it. In cluster
// mode the latency includes the Borrow by ID on the getting node (its
// registration with the owner) and the transfer; -local-gets of them run on
// the node that put the object.
func (w *worker) get(ctx context.Context) {
	e := w.at(w.rng.IntN(w.n))
	t := w.peer()
	local := false
	if w.r.cfg.Cluster && w.r.cfg.LocalGets > 0 && w.rng.IntN(100) < w.r.cfg.LocalGets {
		t, local = w.home, true
	}
	w.local = local
	defer func() { w.local = false }()
	st := w.r.targets[t].Store
	opCtx, cancel := context.WithTimeout(ctx, w.r.cfg.OpTimeout)
	t0 := time.Now()
	refs, drop, err := w.borrow(t, []trove.Ref{e.ref})
	var obj *trove.Object
	if err == nil {
		obj, err = st.Get(opCtx, refs[0])
	}
	lat := time.Since(t0)
	cancel()
	if err != nil {
		drop()
		w.fail(ctx, opGet, t, fmt.Errorf("get of object %s (%s)%s: %w", e.ref.ID(), trove.HumanBytes(e.size), w.on(t), err))
		return
	}
	verr := verifyPayload(obj.Bytes(), e.size, e.seed)
	obj.Release()
	drop()
	if verr != nil {
		w.count(opGet, t, errVerify, fmt.Errorf("MISMATCH: get of object %s (%s)%s: %w", e.ref.ID(), trove.HumanBytes(e.size), w.on(t), verr))
		return
	}
	w.record(opGet, t, lat, e.size)
}

func (w *worker) wait(ctx context.Context) {
	k := min(w.r.cfg.WaitRefs, w.n)
	start := w.rng.IntN(w.n)
	own := make([]trove.Ref, k) // k consecutive entries of the ring: distinct objects
	for i := range own {
		own[i] = w.at((start + i) % w.n).ref
	}
	t := w.peer()
	opCtx, cancel := context.WithTimeout(ctx, w.r.cfg.OpTimeout)
	t0 := time.Now()
	refs, drop, err := w.borrow(t, own)
	var ready, pending []trove.Ref
	if err == nil {
		ready, pending, err = w.r.targets[t].Store.Wait(opCtx, refs, 1)
	}
	lat := time.Since(t0)
	cancel()
	defer drop()
	if err != nil {
		w.fail(ctx, opWait, t, fmt.Errorf("wait on %d objects from %s%s: %w", k, own[0].ID(), w.on(t), err))
		return
	}
	// Every object here is sealed: Wait must report exactly one ready, from refs.
	bad := len(ready) != 1 || len(pending) != k-1
	if !bad {
		bad = true
		for _, ref := range refs {
			if ref.ID() == ready[0].ID() {
				bad = false
			}
		}
	}
	if bad {
		w.count(opWait, t, errVerify, fmt.Errorf("MISMATCH: wait on %d sealed objects from %s%s with num_returns 1 returned %d ready, %d pending", k, own[0].ID(), w.on(t), len(ready), len(pending)))
		return
	}
	w.record(opWait, t, lat, 0)
}

// record counts a successful op of kind k on target t.
func (w *worker) record(k opKind, t int, lat time.Duration, size int64) {
	ns := min(max(int64(lat), 1), w.r.latMax)
	_ = w.hist[k].RecordValue(ns) // in range by construction
	w.done[k].Add(1)
	w.bytes[k].Add(size)
	switch {
	case w.per == nil:
	case w.local:
		_ = w.per[t].localHist.RecordValue(ns)
		w.per[t].localBytes += size
	default:
		_ = w.per[t].hist[k].RecordValue(ns)
		w.per[t].bytes[k] += size
	}
}

// fail counts a failed op. ctx is the run's context (the op's parent): if it was
// cancelled (a second SIGINT), the op was cut short on purpose and is not an error.
func (w *worker) fail(ctx context.Context, k opKind, t int, err error) {
	switch {
	case ctx.Err() != nil:
		w.r.errAborted.Add(1)
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, trove.ErrGetTimeout):
		w.count(k, t, errTimeout, err)
	default:
		w.count(k, t, errOther, err)
	}
}

// count counts a failed op of kind k on target t.
func (w *worker) count(k opKind, t int, c errClass, err error) {
	w.errs[k][c].Add(1)
	switch {
	case w.per == nil:
	case w.local:
		w.per[t].localErrs++
	default:
		w.per[t].errs[k]++
	}
	r := w.r
	r.errMu.Lock()
	defer r.errMu.Unlock()
	if len(r.samples) < maxSamples {
		r.samples = append(r.samples, err.Error())
	}
	if r.errOut != nil && r.errPrinted <= maxSamples {
		if r.errPrinted == maxSamples {
			fmt.Fprintf(r.errOut, "loadgen: more errors; not printing them (counts in the report)\n")
		} else {
			fmt.Fprintf(r.errOut, "loadgen: %v\n", err)
		}
		r.errPrinted++
	}
}

// at returns the i-th live entry, oldest first.
func (w *worker) at(i int) entry { return w.ring[(w.head+i)%len(w.ring)] }

// push adds e as the newest entry and drops the oldest while the ring holds more
// than its share of the working set (it always keeps the newest).
func (w *worker) push(e entry) {
	if w.n == len(w.ring) {
		grown := make([]entry, 2*len(w.ring))
		for i := range w.n {
			grown[i] = w.at(i)
		}
		w.ring, w.head = grown, 0
	}
	w.ring[(w.head+w.n)%len(w.ring)] = e
	w.n++
	w.ringBytes += e.size
	for w.ringBytes > w.budget && w.n > 1 {
		w.popOldest()
	}
}

func (w *worker) popOldest() {
	e := &w.ring[w.head]
	e.ref.Drop()
	w.ringBytes -= e.size
	*e = entry{}
	w.head = (w.head + 1) % len(w.ring)
	w.n--
}

// dropAll drops every ref the worker still holds.
func (w *worker) dropAll() {
	for w.n > 0 {
		w.popOldest()
	}
}

// progress is a snapshot of the counters, for the progress display.
type progress struct {
	Elapsed time.Duration
	Ops     int64 // successful ops
	Done    [numOps]int64
	Bytes   [numOps]int64
	Errors  int64
}

func (r *runner) snapshot() progress {
	p := progress{Elapsed: time.Since(r.start)}
	for _, w := range r.workers {
		for k := range numOps {
			p.Done[k] += w.done[k].Load()
			p.Bytes[k] += w.bytes[k].Load()
			for c := range numErrClasses {
				p.Errors += w.errs[k][c].Load()
			}
		}
	}
	for _, d := range p.Done {
		p.Ops += d
	}
	return p
}

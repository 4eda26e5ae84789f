package task

import (
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"math"
	"runtime/debug"
	"slices"
	"sync"
	"time"

	"github.com/trovedb/trove"
)

// The executing side: calls placed on this node wait in one FIFO queue and
// start, in order, as soon as the resources they ask for are free (a call
// that does not fit yet lets later ones that fit go first, so a call asking
// for a custom resource does not hold back the CPU-only ones behind it). At
// most the node's CPUs' worth of calls run at once.
//
// The queue is one FIFO per distinct resource shape (the need of a call:
// {CPU: 1} for most), each job numbered in arrival order. Jobs of one shape
// need the same, so if a shape's head does not fit, nothing behind it does:
// the next job to start is always the head, of lowest number, among the
// shapes' heads that fit. Starting one costs O(shapes), not O(queue).
// Withdrawn and dropped jobs are marked gone and skipped when they reach
// their shape's head (lazy deletion); byID holds exactly the live queued
// ones.

// job is one call placed on this node.
type job struct {
	owner   trove.NodeID // the caller's node: the result's owner
	id      trove.ObjectID
	attempt int
	fn      *function
	need    Resources
	args    []trove.ObjectID // the zero ID where the argument is a literal
	lits    [][]byte         // nil, or per argument a small literal's bytes (nil for a ref)
	pf      *prefetch        // its ref arguments held here while it was queued (prefetch.go), or nil

	seq  uint64 // arrival order on this node
	gone bool   // withdrawn or dropped while queued (guarded by the executor's mu)

	submitted, started time.Time // queued here, started (guarded by the executor's mu)
}

// outcome is how a job ended.
type outcome struct {
	status   uint8
	size     int64
	inline   []byte
	panicked bool
	msg      string
	cause    error // the failure, on this node
}

// shapeQueue is the FIFO of the queued jobs of one resource shape.
type shapeQueue struct {
	need Resources // the shape: every job's need
	jobs []*job    // jobs[head:] are queued, oldest first (some may be gone)
	head int
}

// front drops gone jobs at the head and returns the first live one, or nil.
func (q *shapeQueue) front() *job {
	for q.head < len(q.jobs) {
		if j := q.jobs[q.head]; !j.gone {
			return j
		}
		q.pop()
	}
	return nil
}

func (q *shapeQueue) pop() {
	q.jobs[q.head] = nil
	q.head++
	if q.head == len(q.jobs) {
		q.jobs, q.head = q.jobs[:0], 0
	} else if q.head >= 1024 && q.head*2 >= len(q.jobs) {
		n := copy(q.jobs, q.jobs[q.head:])
		clear(q.jobs[n:])
		q.jobs, q.head = q.jobs[:n], 0
	}
}

// executor is a node's queue and slots.
type executor struct {
	total  Resources
	mu     sync.Mutex
	free   Resources               // guarded by mu
	seq    uint64                  // guarded by mu: the last job's number
	shape  map[string]*shapeQueue  // guarded by mu: by shapeKey of the need
	order  []*shapeQueue           // guarded by mu: the shapes, in creation order (pump's scan)
	run    map[trove.ObjectID]*job // guarded by mu: started, not reported
	byID   map[trove.ObjectID]*job // guarded by mu: queued (live)
	start  func(*job)              // runs a job (called with mu held: must not block)
	queued func(*job)              // called with mu held for a job left queued by enqueue (its prefetch): must not block
	done   bool                    // guarded by mu: drained (the runtime is closing)
	key    []byte                  // guarded by mu: shapeKey's buffer
	log    callLog                 // guarded by mu: the ended calls (Calls)
}

// The record's errors of calls that ended without running.
const (
	msgWithdrawn = "withdrawn: the caller's context ended (or its result's refs were dropped) before it started"
	msgDropped   = "dropped: its caller's node died or left before it started"
)

// maxShapes bounds the distinct shapes kept; past it, empty ones are
// forgotten (a new shape per call must not grow the scan forever).
const maxShapes = 64

func (ex *executor) init(total Resources) {
	ex.total = total
	ex.free = total.clone()
	ex.run = map[trove.ObjectID]*job{}
	ex.byID = map[trove.ObjectID]*job{}
	ex.shape = map[string]*shapeQueue{}
}

// shapeKey is need's canonical encoding (sorted names and amounts, zero
// amounts left out: they ask for nothing), in ex.key.
func (ex *executor) shapeKey(need Resources) []byte {
	b := ex.key[:0]
	if len(need) == 1 { // the usual case: no sort
		for k, v := range need {
			if v != 0 {
				b = appendString(b, k)
				b = binary.BigEndian.AppendUint64(b, math.Float64bits(v))
			}
		}
	} else {
		for _, k := range slices.Sorted(maps.Keys(need)) {
			if v := need[k]; v != 0 {
				b = appendString(b, k)
				b = binary.BigEndian.AppendUint64(b, math.Float64bits(v))
			}
		}
	}
	ex.key = b
	return b
}

// queueFor returns the FIFO of need's shape, made if new.
func (ex *executor) queueFor(need Resources) *shapeQueue {
	k := ex.shapeKey(need)
	if q := ex.shape[string(k)]; q != nil {
		return q
	}
	if len(ex.order) >= maxShapes {
		keep := ex.order[:0]
		for _, q := range ex.order {
			if q.front() != nil {
				keep = append(keep, q)
			} else {
				delete(ex.shape, string(ex.shapeKey(q.need)))
			}
		}
		clear(ex.order[len(keep):])
		ex.order = keep
		k = ex.shapeKey(need)
	}
	q := &shapeQueue{need: need}
	ex.shape[string(k)] = q
	ex.order = append(ex.order, q)
	return q
}

// enqueue queues j, or says why this node can never run it.
func (ex *executor) enqueue(j *job) error {
	if !ex.total.fits(j.need) {
		return fmt.Errorf("task: %s needs %v, more than this node has (%v)", j.fn.name, j.need, ex.total)
	}
	now := time.Now()
	ex.mu.Lock()
	defer ex.mu.Unlock()
	if ex.done {
		return fmt.Errorf("task: the runtime is closing: %w", trove.ErrClosed)
	}
	if _, dup := ex.byID[j.id]; dup {
		return nil // the caller sent it again (its ack was lost): once is enough
	}
	if _, dup := ex.run[j.id]; dup {
		return nil
	}
	ex.seq++
	j.seq, j.submitted = ex.seq, now
	q := ex.queueFor(j.need)
	q.jobs = append(q.jobs, j)
	ex.byID[j.id] = j
	ex.pumpLocked()
	if ex.byID[j.id] == j && ex.queued != nil {
		ex.queued(j) // it waits: hold and fetch its arguments meanwhile
	}
	return nil
}

// pumpLocked starts queued jobs while one fits: each time the oldest of the
// shapes' heads that fit (see above).
func (ex *executor) pumpLocked() {
	for !ex.done {
		j := ex.nextLocked()
		if j == nil {
			return
		}
		ex.start(j)
	}
}

// nextLocked takes the next job to start, if one fits now, and counts it
// running.
func (ex *executor) nextLocked() *job {
	var next *shapeQueue
	var nextSeq uint64
	for _, q := range ex.order {
		j := q.front()
		if j == nil || (next != nil && j.seq > nextSeq) || !ex.free.fits(q.need) {
			continue
		}
		next, nextSeq = q, j.seq
	}
	if next == nil {
		return nil
	}
	j := next.front()
	next.pop()
	ex.free.take(j.need)
	delete(ex.byID, j.id)
	ex.run[j.id] = j
	j.started = time.Now()
	return j
}

// finish records how j ended, gives its resources back and starts what now
// fits, but for the first such job, which it returns for the caller (j's
// slot) to run itself.
func (ex *executor) finish(j *job, out *outcome) *job {
	now := time.Now()
	ex.mu.Lock()
	defer ex.mu.Unlock()
	ex.free.give(j.need)
	delete(ex.run, j.id)
	ex.endedLocked(j, out.status != doneOK, out.msg, now)
	if ex.done {
		return nil
	}
	mine := ex.nextLocked()
	ex.pumpLocked()
	return mine
}

// withdraw removes the queued call id of owner, if it has not started.
func (ex *executor) withdraw(owner trove.NodeID, id trove.ObjectID) (*job, bool) {
	ex.mu.Lock()
	j := ex.byID[id]
	if j == nil || j.owner != owner {
		ex.mu.Unlock()
		return nil, false
	}
	delete(ex.byID, id)
	j.gone = true
	ex.endedLocked(j, true, msgWithdrawn, time.Now())
	ex.mu.Unlock()
	endPrefetch(j)
	return j, true
}

// dropOwner removes the queued calls of a node that died or left.
func (ex *executor) dropOwner(owner trove.NodeID) int {
	ex.mu.Lock()
	var dropped []*job
	for id, j := range ex.byID {
		if j.owner == owner {
			delete(ex.byID, id)
			j.gone = true
			ex.endedLocked(j, true, msgDropped, time.Now())
			dropped = append(dropped, j)
		}
	}
	ex.mu.Unlock()
	for _, j := range dropped {
		endPrefetch(j)
	}
	return len(dropped)
}

// drain stops starting calls and returns the queued ones, oldest first,
// their held arguments dropped.
func (ex *executor) drain() []*job {
	ex.mu.Lock()
	ex.done = true
	q := slices.Collect(maps.Values(ex.byID))
	slices.SortFunc(q, func(a, b *job) int { return cmp.Compare(a.seq, b.seq) })
	clear(ex.byID)
	clear(ex.shape)
	ex.order = nil
	ex.mu.Unlock()
	for _, j := range q {
		endPrefetch(j)
	}
	return q
}

// fitLoad is what placement asks of this node's executor: whether need
// fits in its free resources now, and its load (calls running and queued
// per CPU).
func (ex *executor) fitLoad(need Resources) (bool, float64) {
	ex.mu.Lock()
	defer ex.mu.Unlock()
	return ex.free.fits(need), float64(len(ex.run)+len(ex.byID)) / max(ex.total[CPU], 1)
}

// status is the executor's figures.
func (ex *executor) status() status {
	ex.mu.Lock()
	defer ex.mu.Unlock()
	return status{total: ex.total.clone(), free: ex.free.clone(), queued: len(ex.byID), running: len(ex.run)}
}

// startJob is the executor's start (called with its mu held): an idle slot
// goroutine takes j, or a new one is started for it. Slot goroutines live on
// after their job, keeping the stack they grew (a new goroutine per call
// grew its stack again on every call), and wait for the next; at most
// keepIdle of them wait at once, the others end.
func (rt *Runtime) startJob(j *job) {
	select {
	case rt.work <- j:
	default:
		rt.wg.Go(func() { rt.slot(j) })
	}
}

// slot runs j, then the job its end let start, or those handed to it,
// until Close or until enough other slots are idle.
func (rt *Runtime) slot(j *job) {
	for {
		out := rt.outcomeOf(j)
		endPrefetch(j) // after the call's own handles: the copy stays for the calls queued behind it
		next := rt.ex.finish(j, &out)
		rt.report(j, out) // never waits on the network (opDone is sent by the caller's lane)
		if next != nil {
			j = next
			continue
		}
		if rt.idle.Add(1) > rt.keepIdle {
			rt.idle.Add(-1)
			return
		}
		select {
		case j = <-rt.work:
			rt.idle.Add(-1)
		case <-rt.life.Done():
			rt.idle.Add(-1)
			return
		}
	}
}

// outcomeOf computes j's outcome: rt.execute for a function of this
// program, else a worker process runs it (dispatch.go).
func (rt *Runtime) outcomeOf(j *job) outcome {
	if j.fn.run != nil {
		return rt.execute(j)
	}
	if j.lits != nil {
		// A worker reads its arguments by ID: the literals carried in the
		// submit are stored here first, held until the worker reports.
		held, err := rt.storeLiterals(j)
		if err != nil {
			return rt.failed(j, err)
		}
		defer func() {
			for _, r := range held {
				r.Drop()
			}
		}()
	}
	return rt.dispatch(j)
}

// storeLiterals stores j's literal arguments in the node and names them
// in j.args by their IDs (j.lits is then nil).
func (rt *Runtime) storeLiterals(j *job) ([]trove.Ref, error) {
	args := slices.Clone(j.args)
	var held []trove.Ref
	for i, lit := range j.lits {
		if lit == nil {
			continue
		}
		r, err := rt.node.Put(rt.life, lit)
		if err != nil {
			for _, h := range held {
				h.Drop()
			}
			return nil, fmt.Errorf("store its argument %d (%d bytes, passed by value) for a worker: %w", i+1, len(lit), err)
		}
		held = append(held, r)
		args[i] = r.ID()
	}
	j.args, j.lits = args, nil
	return held, nil
}

// execute runs j: its top-level args are borrowed and resolved, the function
// called, and its result stored as the primary copy of j.id.
func (rt *Runtime) execute(j *job) outcome {
	ctx := rt.execCtx
	refs, err := rt.argRefs(ctx, j)
	if err != nil {
		return rt.failed(j, err)
	}
	defer func() {
		for _, r := range refs {
			r.Drop()
		}
	}()
	if len(refs) > 1 {
		// Bring every argument here at once (fetches in parallel), before
		// each is decoded in turn.
		objs, err := rt.node.GetAll(ctx, refs)
		if err != nil {
			return rt.failed(j, fmt.Errorf("resolve its arguments: %w", err))
		}
		for _, o := range objs {
			o.Release()
		}
	}
	sink := &resultSink{rt: rt, id: j.id}
	if err := protect(func() error { return j.fn.run(ctx, rt.node, rt.inline, refs, sink) }); err != nil {
		return rt.failed(j, err)
	}
	if !sink.stored {
		return rt.failed(j, errors.New("the function's result was not stored"))
	}
	out := outcome{status: doneOK, size: int64(sink.size)}
	if j.owner != rt.self && out.size <= rt.inline && out.size <= maxInline {
		if obj, err := rt.node.Local().PinByID(ctx, j.id); err == nil {
			out.inline = append([]byte(nil), obj.Bytes()...)
			obj.Release()
		}
	}
	return out
}

// argRefs returns handles on j's arguments: the refs borrowed (one
// BorrowAll), the literals stored here (local objects, dropped with the
// handles).
func (rt *Runtime) argRefs(ctx context.Context, j *job) ([]trove.Ref, error) {
	if j.lits == nil {
		refs, err := rt.node.BorrowAll(j.args)
		if err != nil {
			return nil, fmt.Errorf("borrow its arguments: %w", err)
		}
		return refs, nil
	}
	refs := make([]trove.Ref, len(j.args))
	var ids []trove.ObjectID
	for i, id := range j.args {
		if j.lits[i] == nil {
			ids = append(ids, id)
		}
	}
	var borrowed []trove.Ref
	if len(ids) > 0 {
		var err error
		if borrowed, err = rt.node.BorrowAll(ids); err != nil {
			return nil, fmt.Errorf("borrow its arguments: %w", err)
		}
	}
	k := 0
	for i, lit := range j.lits {
		if lit == nil {
			refs[i] = borrowed[k]
			k++
			continue
		}
		r, err := rt.node.Put(ctx, lit)
		if err != nil {
			for _, r := range refs {
				r.Drop()
			}
			for _, r := range borrowed[k:] {
				r.Drop()
			}
			return nil, fmt.Errorf("store its argument %d (%d bytes, passed by value) here: %w", i+1, len(lit), err)
		}
		refs[i] = r
	}
	return refs, nil
}

// failed is the outcome of a call that failed with err.
func (rt *Runtime) failed(j *job, err error) outcome {
	var ue *userError
	if errors.As(err, &ue) {
		err = ue.err
	}
	var pe *PanicError
	return outcome{status: doneFailed, panicked: errors.As(err, &pe), msg: err.Error(), cause: err}
}

// protect calls f, turning a panic (a fault on a read-only argument too)
// into a *PanicError.
func protect(f func() error) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			v := fmt.Sprint(r)
			if f, ok := r.(interface{ Addr() uintptr }); ok && f.Addr() != 0 {
				// SetPanicOnFault's panic: a fault at a non-nil address.
				v = fmt.Sprintf("%s (a fault at %#x: arguments read in place, the numeric slices, []byte and tensors larger than the store's InlineThreshold, are read-only memory, as numpy's 'assignment destination is read-only'; copy one before changing it)", v, f.Addr())
			}
			err = &PanicError{Value: v, Stack: string(debug.Stack())}
		}
	}()
	return f()
}

// report tells j's caller how it ended: at once if the caller is this
// node's runtime, else with opDone (batched per caller), sent again until
// the caller takes it, dies or leaves.
func (rt *Runtime) report(j *job, out outcome) {
	if j.owner == rt.self {
		rt.completed(j.id, j.attempt, rt.self, rt.name, out)
		return
	}
	m := doneReq{id: j.id, attempt: j.attempt, status: out.status, size: out.size,
		inline: out.inline, panicked: out.panicked, node: rt.name, msg: out.msg}
	if len(m.msg) > maxMessage {
		m.msg = m.msg[:maxMessage]
	}
	rt.sendDone(j.owner, m)
}

// resultSink is the trove.Store PutValue writes a call's result through:
// its PutFunc stores the object as the primary copy of the call's ID.
type resultSink struct {
	rt     *Runtime
	id     trove.ObjectID
	size   int
	stored bool
}

func (s *resultSink) PutFunc(ctx context.Context, size int, contains []trove.Ref, fill func(dst []byte) error) (trove.Ref, error) {
	if s.stored {
		return trove.Ref{}, errors.New("task: a call's result is stored once")
	}
	if err := s.rt.node.StoreResult(ctx, s.id, size, contains, fill); err != nil {
		return trove.Ref{}, fmt.Errorf("store the result: %w", err)
	}
	s.size, s.stored = size, true
	return trove.Ref{}, nil
}

func (s *resultSink) Put(ctx context.Context, data []byte) (trove.Ref, error) {
	return s.PutFunc(ctx, len(data), nil, func(dst []byte) error { copy(dst, data); return nil })
}

var errSink = errors.New("task: a result sink only stores")

func (s *resultSink) Get(context.Context, trove.Ref) (*trove.Object, error) { return nil, errSink }
func (s *resultSink) GetAll(context.Context, []trove.Ref) ([]*trove.Object, error) {
	return nil, errSink
}
func (s *resultSink) Wait(context.Context, []trove.Ref, int) ([]trove.Ref, []trove.Ref, error) {
	return nil, nil, errSink
}
func (s *resultSink) Borrow(trove.ObjectID) (trove.Ref, error) { return trove.Ref{}, errSink }

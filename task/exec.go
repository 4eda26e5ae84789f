package task

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"sync"
	"time"

	"github.com/trovedb/trove"
	"github.com/trovedb/trove/net/quic"
)

// The executing side: calls placed on this node wait in one FIFO queue and
// start, in order, as soon as the resources they ask for are free (a call
// that does not fit yet lets later ones that fit go first, so a call asking
// for a custom resource does not hold back the CPU-only ones behind it). At
// most the node's CPUs' worth of calls run at once.

// job is one call placed on this node.
type job struct {
	owner   trove.NodeID // the caller's node: the result's owner
	id      trove.ObjectID
	attempt int
	fn      *function
	need    Resources
	args    []trove.ObjectID
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

// executor is a node's queue and slots.
type executor struct {
	total Resources
	mu    sync.Mutex
	free  Resources               // guarded by mu
	queue []*job                  // guarded by mu: FIFO, not started
	run   map[trove.ObjectID]*job // guarded by mu: started, not reported
	byID  map[trove.ObjectID]*job // guarded by mu: queued
	start func(*job)              // runs a job (in a goroutine of its own)
	done  bool                    // guarded by mu: drained (the runtime is closing)
}

func (ex *executor) init(total Resources) {
	ex.total = total
	ex.free = total.clone()
	ex.run = map[trove.ObjectID]*job{}
	ex.byID = map[trove.ObjectID]*job{}
}

// enqueue queues j, or says why this node can never run it.
func (ex *executor) enqueue(j *job) error {
	if !ex.total.fits(j.need) {
		return fmt.Errorf("task: %s needs %v, more than this node has (%v)", j.fn.name, j.need, ex.total)
	}
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
	ex.queue = append(ex.queue, j)
	ex.byID[j.id] = j
	ex.pumpLocked()
	return nil
}

// pumpLocked starts every queued job that fits, in order.
func (ex *executor) pumpLocked() {
	k := 0
	for _, j := range ex.queue {
		if ex.done || !ex.free.fits(j.need) {
			ex.queue[k] = j
			k++
			continue
		}
		ex.free.take(j.need)
		delete(ex.byID, j.id)
		ex.run[j.id] = j
		ex.start(j)
	}
	clear(ex.queue[k:])
	ex.queue = ex.queue[:k]
}

// finish gives j's resources back and starts what now fits.
func (ex *executor) finish(j *job) {
	ex.mu.Lock()
	defer ex.mu.Unlock()
	ex.free.give(j.need)
	delete(ex.run, j.id)
	ex.pumpLocked()
}

// withdraw removes the queued call id of owner, if it has not started.
func (ex *executor) withdraw(owner trove.NodeID, id trove.ObjectID) (*job, bool) {
	ex.mu.Lock()
	defer ex.mu.Unlock()
	j := ex.byID[id]
	if j == nil || j.owner != owner {
		return nil, false
	}
	delete(ex.byID, id)
	for i, q := range ex.queue {
		if q == j {
			ex.queue = append(ex.queue[:i], ex.queue[i+1:]...)
			break
		}
	}
	return j, true
}

// dropOwner removes the queued calls of a node that died or left.
func (ex *executor) dropOwner(owner trove.NodeID) int {
	ex.mu.Lock()
	defer ex.mu.Unlock()
	k, n := 0, 0
	for _, j := range ex.queue {
		if j.owner == owner {
			delete(ex.byID, j.id)
			n++
			continue
		}
		ex.queue[k] = j
		k++
	}
	clear(ex.queue[k:])
	ex.queue = ex.queue[:k]
	return n
}

// drain stops starting calls and returns the queued ones.
func (ex *executor) drain() []*job {
	ex.mu.Lock()
	defer ex.mu.Unlock()
	ex.done = true
	q := ex.queue
	ex.queue = nil
	clear(ex.byID)
	return q
}

// status is the executor's figures.
func (ex *executor) status() status {
	ex.mu.Lock()
	defer ex.mu.Unlock()
	return status{total: ex.total.clone(), free: ex.free.clone(), queued: len(ex.queue), running: len(ex.run)}
}

// startJob is the executor's start: the job runs in a goroutine of its own.
func (rt *Runtime) startJob(j *job) {
	rt.wg.Go(func() {
		var out outcome
		if j.fn.run != nil {
			out = rt.execute(j)
		} else {
			out = rt.dispatch(j) // a worker process runs it (dispatch.go)
		}
		rt.ex.finish(j)
		rt.report(j, out)
	})
}

// execute runs j: its top-level args are borrowed and resolved, the function
// called, and its result stored as the primary copy of j.id.
func (rt *Runtime) execute(j *job) outcome {
	ctx := context.WithValue(rt.life, rtKey{}, rt)
	refs, err := rt.node.BorrowAll(j.args)
	if err != nil {
		return rt.failed(j, fmt.Errorf("borrow its arguments: %w", err))
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
// node's runtime, else with opDone, sent again until the caller takes it,
// dies or leaves.
func (rt *Runtime) report(j *job, out outcome) {
	if j.owner == rt.self {
		rt.completed(j.id, j.attempt, rt.self, rt.name, out)
		return
	}
	m := doneReq{from: rt.self, id: j.id, attempt: j.attempt, status: out.status, size: out.size,
		inline: out.inline, panicked: out.panicked, node: rt.name, msg: out.msg}
	if len(m.msg) > maxMessage {
		m.msg = m.msg[:maxMessage]
	}
	body := m.append(nil)
	for attempt := 0; ; attempt++ {
		rep, err := rt.node.Call(context.Background(), j.owner, opDone, body, nil)
		var answered *quic.RemoteError
		if err == nil || errors.As(err, &answered) {
			// Taken, or refused by a node that answered (its runtime is
			// closed, and has failed its calls): either way, done.
			if err != nil || len(rep) == 2 && rep[0] == wireVersion && rep[1] == 0 && out.status == doneOK {
				rt.node.DropResult(j.id) // the caller no longer wants it
			}
			return
		}
		select {
		case <-rt.node.Dead(j.owner):
			if out.status == doneOK {
				rt.node.DropResult(j.id)
			}
			return
		case <-rt.life.Done():
			return // closing: the node's own departure tells the caller
		case <-rt.node.Done():
			return
		case <-time.After(min(time.Duration(attempt+1)*50*time.Millisecond, time.Second)):
		}
	}
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

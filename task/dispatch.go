package task

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/trovedb/trove"
	"github.com/trovedb/trove/net/ipc"
)

// The worker side of a node's runtime (troved's): calls of functions this
// program does not run itself are run by worker processes attached to the
// node's ipc socket (worker.go is the worker's end). The executor still
// decides when a call starts (its CPUs and custom resources bound what runs
// on the node at once); a started call is then dispatched: given to a
// worker that registered its function and has a slot waiting for one (each
// of a worker's slots long-polls layerNext), or kept, FIFO, until one has.
// The executor's slot stays taken until the worker reports, so at most the
// node's CPUs' worth of calls run in its workers at once, and at most a
// worker's slots in each.
//
// A worker that dies (its connection ends: exit, kill -9) has its calls in
// progress reported doneLost to their callers, which run them again
// (MaxRetries, as Ray retries a task whose worker died), on this node's
// other workers or elsewhere; its builders and refs were released by the
// ipc server's cleanup before the hook runs. A worker that detaches cleanly
// (its Serve returning) has finished its calls; those given to it that it
// did not start are dispatched again. When the last worker of a function
// goes, its calls still waiting here are reported doneRefused, and their
// callers place them on other nodes.

// hub is a runtime's attached workers and the calls waiting for them.
type hub struct {
	mu      sync.Mutex
	srv     *ipc.Server        // guarded by mu: nil until ServeWorkers
	stop    func()             // guarded by mu: ends the OnClose hook
	gen     uint64             // guarded by mu: bumped when the workers' functions change
	workers map[uint64]*worker // guarded by mu: by connection ID
	pending []*dispatched      // guarded by mu: started calls no worker has taken yet, FIFO
}

// worker is one attached worker process.
type worker struct {
	conn     ipc.Conn
	fns      map[string]int // name → arity
	slots    int
	polls    []chan *dispatched             // parked layerNext requests, each waiting for a call
	assigned map[trove.ObjectID]*dispatched // given to it, not reported
}

func (w *worker) String() string {
	return fmt.Sprintf("worker pid %d (%q)", w.conn.PID(), w.conn.Name())
}

// dispatched is a started call on its way to (or in) a worker.
type dispatched struct {
	j   *job
	out chan outcome // buffered 1: written once, by whoever ends it
	w   *worker      // guarded by hub.mu: the worker it was given to
}

// ServeWorkers lets worker processes attached to srv (the node's ipc server:
// troved's socket) run calls placed on this node, and programs attached to
// it make calls through this runtime (Worker, Remote). srv's
// ServerConfig.Results must be the node (results are written in place).
// Call it once, before clients attach; Close stops it.
func (rt *Runtime) ServeWorkers(srv *ipc.Server) error {
	h := &rt.hub
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.srv != nil {
		return errors.New("task: ServeWorkers called twice")
	}
	if rt.closed.Load() {
		return fmt.Errorf("task: runtime of node %s: %w", rt.name, trove.ErrClosed)
	}
	h.srv = srv
	srv.Handle(layerRegister, rt.serveRegister)
	srv.Handle(layerNext, rt.serveNext)
	srv.Handle(layerDone, rt.serveWorkerDone)
	srv.Handle(layerCall, rt.serveCall)
	srv.Handle(layerDetach, rt.serveDetach)
	h.stop = srv.OnClose(rt.workerGone)
	return nil
}

// stopWorkers undoes ServeWorkers (Close): calls waiting for a worker are
// refused (their callers run them elsewhere).
func (rt *Runtime) stopWorkers() {
	h := &rt.hub
	h.mu.Lock()
	srv, stop := h.srv, h.stop
	waiting := h.pending
	h.pending = nil
	h.mu.Unlock()
	if srv != nil {
		for _, op := range []ipc.LayerOp{layerRegister, layerNext, layerDone, layerCall, layerDetach} {
			srv.Handle(op, nil)
		}
		stop()
	}
	for _, d := range waiting {
		d.end(outcome{status: doneRefused})
	}
}

func (d *dispatched) end(out outcome) {
	select {
	case d.out <- out:
	default: // ended already
	}
}

// servesLocked reports whether a worker registered name, with its arity.
func (h *hub) servesLocked(name string) (int, bool) {
	for _, w := range h.workers {
		if a, ok := w.fns[name]; ok {
			return a, true
		}
	}
	return 0, false
}

// runnable is the function the call of name with arity arguments runs as
// here: this program's (unless Config.WorkersOnly), else one that worker
// processes run (run nil), else nil.
func (rt *Runtime) runnable(name string, arity int) *function {
	if !rt.cfg.WorkersOnly {
		if f := lookupFunc(name); f != nil && f.arity == arity {
			return f
		}
	}
	rt.hub.mu.Lock()
	a, ok := rt.hub.servesLocked(name)
	rt.hub.mu.Unlock()
	if !ok || a != arity {
		return nil
	}
	return &function{name: name, arity: arity}
}

// canRun reports whether this node runs name (the view's placement test).
func (rt *Runtime) canRun(name string) bool {
	if !rt.cfg.WorkersOnly && lookupFunc(name) != nil {
		return true
	}
	rt.hub.mu.Lock()
	defer rt.hub.mu.Unlock()
	_, ok := rt.hub.servesLocked(name)
	return ok
}

// functions are the names of the functions this node runs, sorted, and
// their generation: it grows whenever they may have changed.
func (rt *Runtime) functions() (uint64, []string) {
	set := map[string]bool{}
	gen := uint64(0)
	if !rt.cfg.WorkersOnly {
		gen = registryGen.Load()
		for _, f := range registered() {
			set[f.name] = true
		}
	}
	rt.hub.mu.Lock()
	gen += rt.hub.gen
	for _, w := range rt.hub.workers {
		for f := range w.fns {
			set[f] = true
		}
	}
	rt.hub.mu.Unlock()
	names := make([]string, 0, len(set))
	for f := range set {
		names = append(names, f)
	}
	slices.Sort(names)
	if len(names) > maxFuncs {
		names = names[:maxFuncs]
	}
	return gen + 1, names // never 0: an asker's "none known"
}

// dispatch runs the started job j in a worker process and returns how it
// ended (on the executor's slot goroutine, which it holds until then).
func (rt *Runtime) dispatch(j *job) outcome {
	h := &rt.hub
	d := &dispatched{j: j, out: make(chan outcome, 1)}
	h.mu.Lock()
	if _, ok := h.servesLocked(j.fn.name); !ok {
		h.mu.Unlock()
		return outcome{status: doneRefused} // its last worker just went: elsewhere
	}
	if !h.giveLocked(d) {
		h.pending = append(h.pending, d)
	}
	h.mu.Unlock()
	select {
	case out := <-d.out:
		return out
	case <-rt.life.Done():
		h.mu.Lock()
		h.forgetLocked(d)
		h.mu.Unlock()
		return outcome{status: doneRefused}
	}
}

// giveLocked gives d to a worker of its function with a poll waiting, if
// one has.
func (h *hub) giveLocked(d *dispatched) bool {
	for _, w := range h.workers {
		if _, ok := w.fns[d.j.fn.name]; !ok || len(w.polls) == 0 {
			continue
		}
		ch := w.polls[0]
		w.polls = w.polls[1:]
		d.w = w
		w.assigned[d.j.id] = d
		ch <- d // buffered 1, and only giveLocked sends on it
		return true
	}
	return false
}

// forgetLocked removes d from the pending list and its worker.
func (h *hub) forgetLocked(d *dispatched) {
	if i := slices.Index(h.pending, d); i >= 0 {
		h.pending = slices.Delete(h.pending, i, i+1)
	}
	if d.w != nil && d.w.assigned[d.j.id] == d {
		delete(d.w.assigned, d.j.id)
	}
}

// serveRegister answers layerRegister: the connection becomes a worker of
// the functions it names.
func (rt *Runtime) serveRegister(ctx context.Context, c ipc.Conn, body []byte) ([]byte, error) {
	m, err := decodeRegister(body)
	if err != nil {
		return nil, err
	}
	w := &worker{conn: c, fns: make(map[string]int, len(m.fns)), slots: m.slots, assigned: map[trove.ObjectID]*dispatched{}}
	for _, f := range m.fns {
		w.fns[f.name] = f.arity
	}
	h := &rt.hub
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.workers[c.ID()] != nil {
		return nil, fmt.Errorf("task: %s registered twice (one Serve per connection at a time)", w)
	}
	for _, o := range h.workers {
		for name, a := range w.fns {
			if oa, ok := o.fns[name]; ok && oa != a {
				return nil, fmt.Errorf("task: %s registers %s with %d arguments, %s with %d: run one program's workers on a node (or name the functions apart)", w, name, a, o, oa)
			}
		}
	}
	h.workers[c.ID()] = w
	h.gen++
	return []byte{wireVersion}, nil
}

// serveNext answers layerNext: the next call for one of the worker's
// slots, when there is one.
func (rt *Runtime) serveNext(ctx context.Context, c ipc.Conn, body []byte) ([]byte, error) {
	if err := decodeEmpty(body); err != nil {
		return nil, err
	}
	h := &rt.hub
	h.mu.Lock()
	w := h.workers[c.ID()]
	if w == nil {
		h.mu.Unlock()
		return nil, errors.New("task: layerNext from a connection that is not a registered worker")
	}
	if len(w.polls) >= w.slots {
		h.mu.Unlock()
		return nil, fmt.Errorf("task: %s asks for more calls at once than its %d slots", w, w.slots)
	}
	for i, d := range h.pending {
		if _, ok := w.fns[d.j.fn.name]; ok {
			h.pending = slices.Delete(h.pending, i, i+1)
			d.w = w
			w.assigned[d.j.id] = d
			h.mu.Unlock()
			return jobReply(d.j), nil
		}
	}
	ch := make(chan *dispatched, 1)
	w.polls = append(w.polls, ch)
	h.mu.Unlock()
	var err error
	select {
	case d := <-ch:
		return jobReply(d.j), nil
	case <-ctx.Done():
		err = context.Cause(ctx)
	case <-c.ServerClosing():
		err = fmt.Errorf("task: troved is shutting down: %w", ipc.ErrServerClosed)
	}
	h.mu.Lock()
	if i := slices.Index(w.polls, ch); i >= 0 {
		w.polls = slices.Delete(w.polls, i, i+1)
	}
	h.mu.Unlock()
	select {
	case d := <-ch:
		// Given to it as it gave up: the reply may be dropped, but the call
		// stays its own until it reports, detaches or dies.
		return jobReply(d.j), nil
	default:
		return nil, err
	}
}

func jobReply(j *job) []byte {
	m := jobMsg{id: j.id, attempt: j.attempt, fn: j.fn.name, args: j.args}
	return m.append(nil)
}

// serveWorkerDone answers layerDone: how a call given to the worker ended.
func (rt *Runtime) serveWorkerDone(ctx context.Context, c ipc.Conn, body []byte) ([]byte, error) {
	m, err := decodeWorkerDone(body)
	if err != nil {
		return nil, err
	}
	h := &rt.hub
	h.mu.Lock()
	w := h.workers[c.ID()]
	var d *dispatched
	if w != nil {
		d = w.assigned[m.id]
	}
	if d == nil || d.j.attempt != m.attempt {
		h.mu.Unlock()
		// Not a call it has now (the runtime gave up on it: closing): the
		// report is dropped, and a result written for it with it.
		if d == nil && m.status == doneOK && m.inPlace {
			rt.node.DropResult(m.id)
		}
		return []byte{wireVersion}, nil
	}
	delete(w.assigned, m.id)
	h.mu.Unlock()
	d.end(rt.workerOutcome(ctx, c, w, d.j, &m))
	return []byte{wireVersion}, nil
}

// workerOutcome is the outcome of j as worker w reported it in m.
func (rt *Runtime) workerOutcome(ctx context.Context, c ipc.Conn, w *worker, j *job, m *workerDone) outcome {
	if m.status == doneFailed {
		return outcome{status: doneFailed, panicked: m.panicked, msg: fmt.Sprintf("%s: %s", w, m.msg)}
	}
	if !m.inPlace {
		contains, err := c.Borrowed(m.contains)
		if err != nil {
			return rt.failed(j, fmt.Errorf("%s: the result's nested refs: %w", w, err))
		}
		err = rt.node.StoreResult(ctx, j.id, int(m.size), contains, func(dst []byte) error { copy(dst, m.inline); return nil })
		for _, r := range contains {
			r.Drop()
		}
		if err != nil {
			return rt.failed(j, fmt.Errorf("store the result: %w", err))
		}
	}
	out := outcome{status: doneOK, size: m.size}
	if j.owner != rt.self && m.inline != nil && out.size <= maxInline {
		out.inline = append([]byte(nil), m.inline...)
	}
	return out
}

// serveDetach answers layerDetach: the worker stops taking calls; those
// given to it that it did not report go to others.
func (rt *Runtime) serveDetach(ctx context.Context, c ipc.Conn, body []byte) ([]byte, error) {
	if err := decodeEmpty(body); err != nil {
		return nil, err
	}
	rt.removeWorker(c, false)
	return []byte{wireVersion}, nil
}

// workerGone is the ipc server's OnClose hook.
func (rt *Runtime) workerGone(c ipc.Conn) { rt.removeWorker(c, true) }

// removeWorker removes c's worker: its calls in progress are lost if it
// died, else (a clean detach: it reported what it ran) dispatched again; the
// calls waiting for a function it was the last to run are refused.
func (rt *Runtime) removeWorker(c ipc.Conn, died bool) {
	h := &rt.hub
	h.mu.Lock()
	w := h.workers[c.ID()]
	if w == nil {
		h.mu.Unlock()
		return
	}
	delete(h.workers, c.ID())
	h.gen++
	var lost, orphans []*dispatched
	for _, d := range w.assigned {
		d.w = nil
		if died {
			lost = append(lost, d)
			continue
		}
		if !h.giveLocked(d) {
			h.pending = append([]*dispatched{d}, h.pending...) // it came first
		}
	}
	k := 0
	for _, d := range h.pending {
		if _, ok := h.servesLocked(d.j.fn.name); ok {
			h.pending[k] = d
			k++
		} else {
			orphans = append(orphans, d)
		}
	}
	clear(h.pending[k:])
	h.pending = h.pending[:k]
	h.mu.Unlock()
	for _, d := range lost {
		d.end(rt.lostOutcome(d.j, w))
	}
	for _, d := range orphans {
		d.end(outcome{status: doneRefused})
	}
}

// lostOutcome is how j ended when its worker w died running it: lost (run
// it again), unless the worker sealed its result before dying.
func (rt *Runtime) lostOutcome(j *job, w *worker) outcome {
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // look, never wait
	if obj, err := rt.node.Local().PinByID(ctx, j.id); err == nil {
		size := int64(obj.Size())
		obj.Release()
		return outcome{status: doneOK, size: size}
	}
	return outcome{status: doneLost, msg: fmt.Sprintf("%s exited while running it", w)}
}

// serveCall answers layerCall: a call made by a program attached to the
// node (a driver, or a worker's nested call), made here through this
// runtime; the client gets a handle on the result's future.
func (rt *Runtime) serveCall(ctx context.Context, c ipc.Conn, body []byte) ([]byte, error) {
	m, err := decodeCall(body)
	if err != nil {
		return nil, err
	}
	refs, err := c.Borrowed(m.args)
	if err != nil {
		return nil, fmt.Errorf("task: call %s: its arguments: %w", m.fn, err)
	}
	args := make([]func(context.Context, trove.Store) (trove.Ref, error), len(refs))
	taken := 0
	for i, r := range refs {
		args[i] = func(context.Context, trove.Store) (trove.Ref, error) { taken = i + 1; return r, nil }
	}
	fn := lookupFunc(m.fn)
	if fn == nil || fn.arity != len(refs) {
		fn = &function{name: m.fn, arity: len(refs)}
	}
	opts := callOpts{need: m.need, maxRetries: m.retries, set: true}
	// The call lives past this request: only Close or its result's last
	// handle withdraw it.
	fut, err := rt.submit(rt.life, fn, opts, args...)
	for _, r := range refs[taken:] {
		r.Drop()
	}
	if err != nil {
		return nil, err
	}
	defer fut.Drop()
	if err := c.Adopt(fut); err != nil {
		return nil, err
	}
	id := fut.ID()
	return append([]byte{wireVersion}, id[:]...), nil
}

package task

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"

	"github.com/trovedb/trove"
	"github.com/trovedb/trove/net/ipc"
)

// WorkerConfig configures a program attached to a troved (Attach).
type WorkerConfig struct {
	// Slots is how many calls Serve runs at once. Zero means GOMAXPROCS.
	// The node's CPUs and custom resources (troved -cpus, -resources) bound
	// what runs on the node at once, over all its workers.
	Slots int
}

// Worker is a program attached to a troved over its socket, as a Ray
// worker is to its raylet: it makes calls through the node's runtime (it is
// a Caller: Remote, and Gets of the results through its client), and Serve
// runs the calls the node gives it of the functions this program Defines
// (every worker runs the same program as every other, as Ray's do). A
// driver is a Worker that never Serves.
type Worker struct {
	c      *ipc.Client
	cfg    WorkerConfig
	inline int64

	mu      sync.Mutex
	serving bool // guarded by mu
}

// workerKey is the context key of the worker running a call.
type workerKey struct{}

// Attach attaches this program to the troved c is connected to (ipc.Dial).
// It sends nothing yet: calls through it and Serve do. The Worker does not
// own c: close c after the Worker's last use.
func Attach(c *ipc.Client, cfg WorkerConfig) (*Worker, error) {
	if c == nil {
		return nil, errors.New("task: Attach needs a connected *ipc.Client (ipc.Dial the troved's socket)")
	}
	if cfg.Slots < 0 || cfg.Slots > maxSlots {
		return nil, fmt.Errorf("task: WorkerConfig.Slots %d must be from 0 (GOMAXPROCS) to %d", cfg.Slots, maxSlots)
	}
	if cfg.Slots == 0 {
		cfg.Slots = runtime.GOMAXPROCS(0)
	}
	return &Worker{c: c, cfg: cfg, inline: c.InlineThreshold()}, nil
}

// Client is the worker's ipc client.
func (w *Worker) Client() *ipc.Client { return w.c }

// attachErr explains a failed request to the troved (a single-node troved's
// refusal says that remote functions need -listen).
func attachErr(what string, err error) error {
	return fmt.Errorf("task: %s through troved: %w", what, err)
}

// Serve registers the functions this program Defines with the troved and
// runs the calls it is given, up to WorkerConfig.Slots at once, until ctx
// ends; it then stops taking calls, lets those running finish (their
// contexts do not end with ctx) and reports them, detaches, and returns
// nil. If the connection fails it returns that error, and the node runs
// this worker's calls again elsewhere (MaxRetries). One Serve at a time.
func (w *Worker) Serve(ctx context.Context) error {
	w.mu.Lock()
	if w.serving {
		w.mu.Unlock()
		return errors.New("task: Worker.Serve is already running")
	}
	w.serving = true
	w.mu.Unlock()
	defer func() {
		w.mu.Lock()
		w.serving = false
		w.mu.Unlock()
	}()
	fns := registered()
	if len(fns) == 0 {
		return errors.New("task: this program Defines no functions for its worker to serve (Define them at package level)")
	}
	if len(fns) > maxFuncs {
		return fmt.Errorf("task: this program Defines %d functions; a worker registers at most %d", len(fns), maxFuncs)
	}
	reg := registerReq{slots: w.cfg.Slots, fns: fns}
	rep, err := w.c.CallLayer(ctx, layerRegister, reg.append(nil))
	if err == nil {
		err = decodeEmpty(rep)
	}
	if err != nil {
		return attachErr("register the worker", err)
	}
	// Running calls outlive ctx (they finish, then Serve detaches); a
	// broken connection ends them all.
	life, stop := context.WithCancelCause(context.WithoutCancel(ctx))
	defer stop(nil)
	polls, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, w.cfg.Slots)
	for range w.cfg.Slots {
		wg.Go(func() {
			if err := w.slot(polls, life); err != nil {
				errs <- err
				cancel()
				stop(err)
			}
		})
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return err
	}
	rep, err = w.c.CallLayer(context.WithoutCancel(ctx), layerDetach, []byte{wireVersion})
	if err == nil {
		err = decodeEmpty(rep)
	}
	if err != nil {
		return attachErr("detach the worker", err)
	}
	return nil
}

// slot takes calls one at a time until polls ends, running each in life.
func (w *Worker) slot(polls, life context.Context) error {
	for {
		rep, err := w.c.CallLayer(polls, layerNext, []byte{wireVersion})
		if polls.Err() != nil {
			return nil // what it was given meanwhile, the node gives others at detach
		}
		if err != nil {
			return attachErr("wait for a call", err)
		}
		j, err := decodeJob(rep)
		if err != nil {
			return attachErr("wait for a call", err)
		}
		m := w.run(context.WithValue(life, workerKey{}, w), &j)
		rep, err = w.c.CallLayer(context.WithoutCancel(life), layerDone, m.append(nil))
		m.release()
		if err == nil {
			err = decodeEmpty(rep)
		}
		if err != nil {
			return attachErr("report a call", err)
		}
	}
}

// run runs the call j: its arguments borrowed and resolved through the
// client (zero-copy from the daemon's shared memory), its result stored as
// the primary copy of j's ID in the daemon's store.
func (w *Worker) run(ctx context.Context, j *jobMsg) *workerDone {
	m := &workerDone{id: j.id, attempt: j.attempt}
	fail := func(err error) *workerDone {
		var ue *userError
		if errors.As(err, &ue) {
			err = ue.err
		}
		var pe *PanicError
		m.status, m.panicked, m.msg = doneFailed, errors.As(err, &pe), err.Error()
		if len(m.msg) > maxMessage {
			m.msg = m.msg[:maxMessage]
		}
		return m
	}
	fn := lookupFunc(j.fn)
	if fn == nil || fn.arity != len(j.args) {
		return fail(fmt.Errorf("this worker's program has no function %q of %d arguments (run one program's workers)", j.fn, len(j.args)))
	}
	refs, err := w.c.BorrowAll(j.args)
	if err != nil {
		return fail(fmt.Errorf("borrow its arguments: %w", err))
	}
	defer func() {
		for _, r := range refs {
			r.Drop()
		}
	}()
	sink := &workerSink{w: w, id: j.id, m: m}
	if err := protect(func() error { return fn.run(ctx, w.c, w.inline, refs, sink) }); err != nil {
		sink.undo()
		return fail(err)
	}
	if !sink.stored {
		return fail(errors.New("the function's result was not stored"))
	}
	m.status = doneOK
	return m
}

// release drops what the report held for the node (the result's nested
// refs, which the node has borrowed once it answered).
func (m *workerDone) release() {
	for _, r := range m.keep {
		r.Drop()
	}
	m.keep = nil
}

// workerSink is the trove.Store a worker's call's result is written
// through: small results travel inline in the report (with the IDs of the
// refs they contain, which the sink keeps alive until then), larger ones are
// written in place as the primary copy of the call's ID
// (ipc.Client.CreateResult).
type workerSink struct {
	w      *Worker
	id     trove.ObjectID
	m      *workerDone
	stored bool
}

func (s *workerSink) undo() { s.m.release() }

func (s *workerSink) PutFunc(ctx context.Context, size int, contains []trove.Ref, fill func(dst []byte) error) (trove.Ref, error) {
	if s.stored {
		return trove.Ref{}, errors.New("task: a call's result is stored once")
	}
	if s.w.inline > 0 && int64(size) <= s.w.inline && size <= maxInline {
		buf := make([]byte, size)
		if err := fill(buf); err != nil {
			return trove.Ref{}, err
		}
		for _, r := range contains {
			own, err := s.w.c.Borrow(r.ID())
			if err != nil {
				s.undo()
				return trove.Ref{}, fmt.Errorf("store the result: a nested ref: %w", err)
			}
			s.m.keep = append(s.m.keep, own)
			s.m.contains = append(s.m.contains, r.ID())
		}
		s.m.size, s.m.inline = int64(size), buf
		s.stored = true
		return trove.Ref{}, nil
	}
	b, err := s.w.c.CreateResult(ctx, s.id, size, contains)
	if err != nil {
		return trove.Ref{}, fmt.Errorf("store the result: %w", err)
	}
	if err := fill(b.Bytes()); err != nil {
		b.Abort()
		b.Ref().Drop()
		return trove.Ref{}, err
	}
	err = b.Seal()
	b.Ref().Drop()
	if err != nil {
		return trove.Ref{}, fmt.Errorf("store the result: %w", err)
	}
	s.m.size, s.m.inPlace = int64(size), true
	s.stored = true
	return trove.Ref{}, nil
}

func (s *workerSink) Put(ctx context.Context, data []byte) (trove.Ref, error) {
	return s.PutFunc(ctx, len(data), nil, func(dst []byte) error { copy(dst, data); return nil })
}

func (s *workerSink) Get(context.Context, trove.Ref) (*trove.Object, error) { return nil, errSink }
func (s *workerSink) GetAll(context.Context, []trove.Ref) ([]*trove.Object, error) {
	return nil, errSink
}
func (s *workerSink) Wait(context.Context, []trove.Ref, int) ([]trove.Ref, []trove.Ref, error) {
	return nil, nil, errSink
}
func (s *workerSink) Borrow(trove.ObjectID) (trove.Ref, error) { return trove.Ref{}, errSink }

// submit makes a call through the troved's runtime (layerCall): the
// arguments are stored or borrowed through the client, the node borrows
// them for the call, and the client adopts a handle on the result's future.
func (w *Worker) submit(ctx context.Context, fn *function, opts callOpts, args ...func(context.Context, trove.Store) (trove.Ref, error)) (trove.Ref, error) {
	need := opts.needs()
	if err := checkResources("call "+fn.name, need); err != nil {
		return trove.Ref{}, err
	}
	refs := make([]trove.Ref, 0, len(args))
	defer func() {
		for _, r := range refs {
			r.Drop()
		}
	}()
	m := callMsg{fn: fn.name, need: need, retries: opts.retries()}
	for i, a := range args {
		r, err := a(ctx, w.c)
		if err != nil {
			return trove.Ref{}, fmt.Errorf("task: call %s: argument %d: %w", fn.name, i+1, err)
		}
		refs = append(refs, r)
		m.args = append(m.args, r.ID())
	}
	// Not cancelled with ctx: the reply grants a handle (withdraw a call
	// made here by dropping its result's refs).
	rep, err := w.c.CallLayer(context.WithoutCancel(ctx), layerCall, m.append(nil))
	if err != nil {
		return trove.Ref{}, fmt.Errorf("task: call %s: %w", fn.name, err)
	}
	id, err := decodeCallReply(rep)
	if err != nil {
		return trove.Ref{}, fmt.Errorf("task: call %s: %w", fn.name, err)
	}
	return w.c.AdoptRef(id), nil
}

// Put implements trove.Store (the client's).
func (w *Worker) Put(ctx context.Context, data []byte) (trove.Ref, error) { return w.c.Put(ctx, data) }

// PutFunc implements trove.Store (the client's).
func (w *Worker) PutFunc(ctx context.Context, size int, contains []trove.Ref, fill func(dst []byte) error) (trove.Ref, error) {
	return w.c.PutFunc(ctx, size, contains, fill)
}

// Get implements trove.Store (the client's).
func (w *Worker) Get(ctx context.Context, ref trove.Ref) (*trove.Object, error) {
	return w.c.Get(ctx, ref)
}

// GetAll implements trove.Store (the client's).
func (w *Worker) GetAll(ctx context.Context, refs []trove.Ref) ([]*trove.Object, error) {
	return w.c.GetAll(ctx, refs)
}

// Wait implements trove.Store (the client's).
func (w *Worker) Wait(ctx context.Context, refs []trove.Ref, numReturns int) (ready, pending []trove.Ref, err error) {
	return w.c.Wait(ctx, refs, numReturns)
}

// Borrow implements trove.Store (the client's).
func (w *Worker) Borrow(id trove.ObjectID) (trove.Ref, error) { return w.c.Borrow(id) }

// BorrowAll is the client's BorrowAll (GetValue uses it for nested refs).
func (w *Worker) BorrowAll(ids []trove.ObjectID) ([]trove.Ref, error) { return w.c.BorrowAll(ids) }

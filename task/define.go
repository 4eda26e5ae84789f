package task

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"

	"github.com/trovedb/trove"
)

// Arg is an argument of a call: a value (Val), or a ref to a value of type T
// (Ref). Either way the function receives a T.
type Arg[T any] struct {
	ref trove.Ref                                                    // Ref
	put func(ctx context.Context, st trove.Store) (trove.Ref, error) // Val
}

// Val passes v by value: it is encoded once per Remote call (PutValue's
// encoding) and stored in the caller's node, small or large, and that one
// object is what every attempt of the call reads, wherever it runs: a large
// literal is never copied per retry or per hop. Refs nested in v arrive as
// live refs.
func Val[T any](v T) Arg[T] {
	return Arg[T]{put: func(ctx context.Context, st trove.Store) (trove.Ref, error) {
		return trove.PutValue(ctx, st, v)
	}}
}

// Ref passes a ref to a value of type T (stored with PutValue's encoding, or
// another call's result). It is resolved before the function runs: its bytes
// are brought to the executing node and decoded there. Objects larger than
// the store's InlineThreshold are handed over zero-copy (ViewValue): a
// top-level numeric slice, []byte or tensor then aliases the store's
// read-only memory, and a write into it faults, which fails the call with
// ErrTaskFailed; smaller ones are decoded into ordinary memory. The caller
// keeps its own handle (the call holds one of its own).
func Ref[T any](r trove.Ref) Arg[T] { return Arg[T]{ref: r} }

// argRef stores a's value if it is one and returns a handle of its own.
func (a Arg[T]) argRef(ctx context.Context, st trove.Store) (trove.Ref, error) {
	if a.put != nil {
		return a.put(ctx, st)
	}
	if a.ref.IsZero() {
		return trove.Ref{}, fmt.Errorf("task: an argument is the zero Arg or a zero ref; pass task.Val(v) or task.Ref[T](ref) with a live ref")
	}
	return st.Borrow(a.ref.ID())
}

// function is a Defined function as the runtime sees it.
type function struct {
	name  string
	arity int
	// run decodes args (resolved in st), calls the function and stores its
	// result with PutValue into sink. A returned *userError is the
	// function's failure; anything else failed around it.
	run func(ctx context.Context, st trove.Store, inline int64, args []trove.Ref, sink trove.Store) error
}

// userError is the function's own error (not resolution or storing).
type userError struct{ err error }

func (e *userError) Error() string { return e.err.Error() }
func (e *userError) Unwrap() error { return e.err }

// registry holds every Defined function of the program, by name.
var registry struct {
	mu sync.RWMutex
	m  map[string]*function // guarded by mu
}

func register(f *function) *function {
	if f.name == "" || len(f.name) > maxName {
		panic(fmt.Sprintf("task: a function's name must have 1 to %d bytes, not %q", maxName, f.name))
	}
	registry.mu.Lock()
	defer registry.mu.Unlock()
	if registry.m == nil {
		registry.m = map[string]*function{}
	}
	if _, dup := registry.m[f.name]; dup {
		panic(fmt.Sprintf("task: function %q is defined twice; names must be unique in the program", f.name))
	}
	registry.m[f.name] = f
	registryGen.Add(1)
	return f
}

// registryGen counts the registrations (a part of Runtime.functions's generation).
var registryGen atomic.Uint64

// registered lists the program's functions with their arities, by name.
func registered() []funcSig {
	registry.mu.RLock()
	defer registry.mu.RUnlock()
	fns := make([]funcSig, 0, len(registry.m))
	for _, f := range registry.m {
		fns = append(fns, funcSig{name: f.name, arity: f.arity})
	}
	sort.Slice(fns, func(i, j int) bool { return fns[i].name < fns[j].name })
	return fns
}

func lookupFunc(name string) *function {
	registry.mu.RLock()
	defer registry.mu.RUnlock()
	return registry.m[name]
}

// Functions lists the names of the program's Defined functions, sorted.
func Functions() []string {
	registry.mu.RLock()
	defer registry.mu.RUnlock()
	names := make([]string, 0, len(registry.m))
	for n := range registry.m {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// resolve decodes the argument ref as an A: zero-copy for objects larger
// than inline (release must be called after the function returns).
func resolve[A any](ctx context.Context, st trove.Store, inline int64, ref trove.Ref) (A, func(), error) {
	var zero A
	obj, err := st.Get(ctx, ref)
	if err != nil {
		return zero, nil, fmt.Errorf("resolve argument %s: %w", ref.ID(), err)
	}
	size := int64(obj.Size())
	if size <= inline {
		obj.Release()
		v, err := trove.GetValue[A](ctx, st, ref)
		if err != nil {
			return zero, nil, fmt.Errorf("resolve argument %s: %w", ref.ID(), err)
		}
		return v, func() {}, nil
	}
	defer obj.Release()
	v, view, err := trove.ViewValue[A](ctx, st, ref)
	if err != nil {
		return zero, nil, fmt.Errorf("resolve argument %s: %w", ref.ID(), err)
	}
	return v, view.Release, nil
}

// storeResult stores r as the call's result.
func storeResult[R any](ctx context.Context, sink trove.Store, r R) error {
	_, err := trove.PutValue(ctx, sink, r)
	return err
}

// Func0 is a Defined function of no arguments returning an R.
type Func0[R any] struct {
	f    *function
	opts callOpts
}

// Func1 is a Defined function of one argument.
type Func1[A, R any] struct {
	f    *function
	opts callOpts
}

// Func2 is a Defined function of two arguments.
type Func2[A, B, R any] struct {
	f    *function
	opts callOpts
}

// Func3 is a Defined function of three arguments.
type Func3[A, B, C, R any] struct {
	f    *function
	opts callOpts
}

// Define0 defines the remote function name (unique in the program; every
// node runs the same program, so every node's Runtime can run it). Define
// functions at package level, before Start.
func Define0[R any](name string, fn func(ctx context.Context) (R, error)) *Func0[R] {
	return &Func0[R]{f: register(&function{name: name, arity: 0,
		run: func(ctx context.Context, st trove.Store, inline int64, args []trove.Ref, sink trove.Store) error {
			r, err := fn(ctx)
			if err != nil {
				return &userError{err}
			}
			return storeResult(ctx, sink, r)
		}})}
}

// Define1 is Define0 for a function of one argument.
func Define1[A, R any](name string, fn func(ctx context.Context, a A) (R, error)) *Func1[A, R] {
	return &Func1[A, R]{f: register(&function{name: name, arity: 1,
		run: func(ctx context.Context, st trove.Store, inline int64, args []trove.Ref, sink trove.Store) error {
			a, ra, err := resolve[A](ctx, st, inline, args[0])
			if err != nil {
				return err
			}
			defer ra()
			r, err := fn(ctx, a)
			if err != nil {
				return &userError{err}
			}
			return storeResult(ctx, sink, r)
		}})}
}

// Define2 is Define0 for a function of two arguments.
func Define2[A, B, R any](name string, fn func(ctx context.Context, a A, b B) (R, error)) *Func2[A, B, R] {
	return &Func2[A, B, R]{f: register(&function{name: name, arity: 2,
		run: func(ctx context.Context, st trove.Store, inline int64, args []trove.Ref, sink trove.Store) error {
			a, ra, err := resolve[A](ctx, st, inline, args[0])
			if err != nil {
				return err
			}
			defer ra()
			b, rb, err := resolve[B](ctx, st, inline, args[1])
			if err != nil {
				return err
			}
			defer rb()
			r, err := fn(ctx, a, b)
			if err != nil {
				return &userError{err}
			}
			return storeResult(ctx, sink, r)
		}})}
}

// Define3 is Define0 for a function of three arguments.
func Define3[A, B, C, R any](name string, fn func(ctx context.Context, a A, b B, c C) (R, error)) *Func3[A, B, C, R] {
	return &Func3[A, B, C, R]{f: register(&function{name: name, arity: 3,
		run: func(ctx context.Context, st trove.Store, inline int64, args []trove.Ref, sink trove.Store) error {
			a, ra, err := resolve[A](ctx, st, inline, args[0])
			if err != nil {
				return err
			}
			defer ra()
			b, rb, err := resolve[B](ctx, st, inline, args[1])
			if err != nil {
				return err
			}
			defer rb()
			c, rc, err := resolve[C](ctx, st, inline, args[2])
			if err != nil {
				return err
			}
			defer rc()
			r, err := fn(ctx, a, b, c)
			if err != nil {
				return &userError{err}
			}
			return storeResult(ctx, sink, r)
		}})}
}

// Name is the function's name.
func (f *Func0[R]) Name() string { return f.f.name }

// Name is the function's name.
func (f *Func1[A, R]) Name() string { return f.f.name }

// Name is the function's name.
func (f *Func2[A, B, R]) Name() string { return f.f.name }

// Name is the function's name.
func (f *Func3[A, B, C, R]) Name() string { return f.f.name }

// Options returns a copy of f whose calls have opts (on top of f's own).
func (f *Func0[R]) Options(opts ...CallOption) *Func0[R] {
	return &Func0[R]{f: f.f, opts: f.opts.with(opts)}
}

// Options returns a copy of f whose calls have opts (on top of f's own).
func (f *Func1[A, R]) Options(opts ...CallOption) *Func1[A, R] {
	return &Func1[A, R]{f: f.f, opts: f.opts.with(opts)}
}

// Options returns a copy of f whose calls have opts (on top of f's own).
func (f *Func2[A, B, R]) Options(opts ...CallOption) *Func2[A, B, R] {
	return &Func2[A, B, R]{f: f.f, opts: f.opts.with(opts)}
}

// Options returns a copy of f whose calls have opts (on top of f's own).
func (f *Func3[A, B, C, R]) Options(opts ...CallOption) *Func3[A, B, C, R] {
	return &Func3[A, B, C, R]{f: f.f, opts: f.opts.with(opts)}
}

// Caller is what calls are made through: a node's *Runtime (an embedded
// node), or a *Worker (a program attached to a troved over its socket,
// whose calls troved's runtime makes). It is a trove.Store too, to Get the
// results. Only this package implements it.
type Caller interface {
	trove.Store
	// submit makes a call of fn with opts and args (see Runtime.submit).
	submit(ctx context.Context, fn *function, opts callOpts, args ...func(context.Context, trove.Store) (trove.Ref, error)) (trove.Ref, error)
}

var (
	_ Caller = (*Runtime)(nil)
	_ Caller = (*Worker)(nil)
)

func submitTo(ctx context.Context, x Caller, fn *function, opts callOpts, args ...func(context.Context, trove.Store) (trove.Ref, error)) (trove.Ref, error) {
	if x == nil {
		return trove.Ref{}, fmt.Errorf("task: call %s through a nil Caller; pass the *Runtime task.Start returned or the *Worker task.Attach returned", fn.name)
	}
	return x.submit(ctx, fn, opts, args...)
}

// Remote calls f on some node of the cluster and returns at once a ref to
// its result: a future owned by x's node (the caller's, or for a *Worker
// the troved it is attached to). GetValue[R](ctx, x, ref) decodes the
// result; a failure of the function fails it with ErrTaskFailed. If ctx
// ends before the call starts, a call made through a *Runtime is withdrawn
// (Gets of the ref then fail, saying so); one made through a *Worker is
// withdrawn when every ref to its result is dropped.
func (f *Func0[R]) Remote(ctx context.Context, x Caller) (trove.Ref, error) {
	return submitTo(ctx, x, f.f, f.opts)
}

// Remote is Func0.Remote for a function of one argument.
func (f *Func1[A, R]) Remote(ctx context.Context, x Caller, a Arg[A]) (trove.Ref, error) {
	return submitTo(ctx, x, f.f, f.opts, a.argRef)
}

// Remote is Func0.Remote for a function of two arguments.
func (f *Func2[A, B, R]) Remote(ctx context.Context, x Caller, a Arg[A], b Arg[B]) (trove.Ref, error) {
	return submitTo(ctx, x, f.f, f.opts, a.argRef, b.argRef)
}

// Remote is Func0.Remote for a function of three arguments.
func (f *Func3[A, B, C, R]) Remote(ctx context.Context, x Caller, a Arg[A], b Arg[B], c Arg[C]) (trove.Ref, error) {
	return submitTo(ctx, x, f.f, f.opts, a.argRef, b.argRef, c.argRef)
}

// CallOption is an option of a call (Options).
type CallOption func(*callOpts)

// callOpts are a call's options.
type callOpts struct {
	need       Resources // nil: the default, one CPU
	maxRetries int       // -1: the default
	set        bool      // maxRetries was set
}

func (o callOpts) with(opts []CallOption) callOpts {
	if o.need != nil {
		o.need = o.need.clone()
	}
	for _, f := range opts {
		f(&o)
	}
	return o
}

// CPUs asks for n of a node's CPU slots for the call (default 1, as Ray's
// num_cpus; 0 runs it beside the others, unbounded by slots).
func CPUs(n float64) CallOption {
	return func(o *callOpts) {
		if o.need == nil {
			o.need = Resources{}
		}
		o.need[CPU] = n
	}
}

// Resource asks for n of a node's custom resource name (Config.Resources):
// the call runs only on a node where that much is free.
func Resource(name string, n float64) CallOption {
	return func(o *callOpts) {
		if o.need == nil {
			o.need = Resources{}
		}
		o.need[name] = n
	}
}

// MaxRetries is how many times a call whose node dies before its result is
// sealed is run again elsewhere, and how many times a result lost with its
// node is computed again (default DefaultMaxRetries, as Ray; 0: never).
func MaxRetries(n int) CallOption {
	return func(o *callOpts) { o.maxRetries, o.set = n, true }
}

// DefaultMaxRetries is a call's MaxRetries unless set.
const DefaultMaxRetries = 3

// oneCPU is the need of a call that asks for nothing else: shared, read
// only (needs are never changed, only read into the Resources they are taken
// from and given back to).
var oneCPU = Resources{CPU: 1}

// need returns what the call asks for: one CPU unless set.
func (o callOpts) needs() Resources {
	if len(o.need) == 0 {
		return oneCPU
	}
	r := Resources{CPU: 1}
	for k, v := range o.need {
		r[k] = v
	}
	return r
}

func (o callOpts) retries() int {
	if o.set {
		return max(o.maxRetries, 0)
	}
	return DefaultMaxRetries
}

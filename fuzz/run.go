package fuzz

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/trovedb/trove"
	"github.com/trovedb/trove/engine"
)

// Deadlines the runner gives the store. An op that must succeed gets liveness,
// a generous bound that only a hang reaches; an op that must time out (a Get or
// Wait of a pending object) gets a short one. No outcome depends on how long
// anything took.
const (
	liveness = 30 * time.Second
	shortly  = 2 * time.Millisecond
)

// Failure is a script whose run did not match the model.
type Failure struct {
	Script *Script
	Op     int // index in Script.Ops of the op that failed; len(Ops) for the end
	Err    error
}

func (f *Failure) Error() string {
	where := "after the last op"
	if f.Op < len(f.Script.Ops) {
		where = fmt.Sprintf("at op %d %q", f.Op+1, f.Script.Ops[f.Op].String())
	}
	return fmt.Sprintf("fuzz: %s: %v", where, f.Err)
}

func (f *Failure) Unwrap() error { return f.Err }

// Annotated returns the script with the failing op marked, ready to be saved and
// replayed.
func (f *Failure) Annotated() string {
	var b strings.Builder
	fmt.Fprintf(&b, "# %v\nconfig %s\nthreads %d\n", f, f.Script.Config, f.Script.Threads)
	for i := range f.Script.Ops {
		b.WriteString(f.Script.Ops[i].String())
		if i == f.Op {
			fmt.Fprintf(&b, "  # FAILED: %v", f.Err)
		}
		b.WriteByte('\n')
	}
	return b.String()
}

// Run runs s against a new engine.Store spilling into dir (which must be empty
// and is left so), checking every op's outcome and every byte read against the
// model, Store.Check after every op when one thread runs and at every check
// otherwise, and at the end, once the runner has released, aborted and dropped
// whatever the script left, that the store is empty. It returns a *Failure, or
// an error that the script is invalid or the store could not be opened.
//
// The returned Stats are the store's before the cleanup: how much the run
// spilled, restored and waited for room.
func Run(s *Script, dir string) (engine.Stats, error) {
	st, err := OpenStore(s.Config, dir)
	if err != nil {
		return engine.Stats{}, err
	}
	stats, err := RunOn(st, s, dir)
	if cerr := st.Close(); cerr != nil && err == nil {
		err = &Failure{Script: s, Op: len(s.Ops), Err: fmt.Errorf("close: %w", cerr)}
	}
	if err == nil {
		if ferr := noFiles(dir, false); ferr != nil {
			err = &Failure{Script: s, Op: len(s.Ops), Err: fmt.Errorf("after Close: %w", ferr)}
		}
	}
	return stats, err
}

// OpenStore opens a store with the settings of the configuration named cfg,
// spilling into dir.
func OpenStore(cfg, dir string) (*engine.Store, error) {
	c, err := configNamed(cfg)
	if err != nil {
		return nil, err
	}
	st, err := engine.Open(c.engineConfig(dir))
	if err != nil {
		return nil, fmt.Errorf("fuzz: open the store: %w", err)
	}
	return st, nil
}

// RunOn is Run on st, an empty store that OpenStore opened for s's
// configuration with dir, which the caller closes. A run that passes leaves it
// empty again, ready for the next script: a fuzzer reuses one store (and its
// warm memory) for every input.
func RunOn(st *engine.Store, s *Script, dir string) (engine.Stats, error) {
	p, err := NewPlan(s)
	if err != nil {
		return engine.Stats{}, err
	}
	if got, want := st.Config(), p.Config.engineConfig(dir); got.Capacity != want.Capacity ||
		got.InlineThreshold != want.InlineThreshold || got.SpillThreshold != want.SpillThreshold {
		return engine.Stats{}, fmt.Errorf("fuzz: the store was not opened for configuration %s", s.Config)
	}
	r := newRunner(p, st)
	r.run()
	stats := st.Stats()
	r.cleanup()
	if r.fail == nil {
		if err := noFiles(dir, true); err != nil {
			r.failAt(len(s.Ops), err)
		}
	}
	if r.fail != nil {
		return stats, r.fail
	}
	return stats, nil
}

type runner struct {
	plan *Plan
	cfg  Config
	st   *engine.Store
	done []chan struct{} // per step, closed when it has run (or been skipped)

	ctx    context.Context // cancelled at the first failure: blocked Gets give up
	cancel context.CancelFunc

	// Indexed by name. An object's entries are written by the op that makes it
	// and read by ops that wait for that one (its done channel orders them); a
	// handle, view or builder is only used by its own thread, and by the main
	// goroutine between phases.
	ids      []trove.ObjectID
	want     [][]byte // each object's bytes: what Get must return
	handles  []trove.Ref
	views    []*trove.Object
	builders []*engine.Builder

	mu   sync.Mutex
	fail *Failure // the first failure
}

func newRunner(p *Plan, st *engine.Store) *runner {
	n := 1
	for _, m := range []map[int]int{p.Handles, p.Views} {
		for k := range m {
			n = max(n, k+1)
		}
	}
	for k := range p.Objects {
		n = max(n, k+1)
	}
	r := &runner{
		plan: p, cfg: p.Config, st: st, done: make([]chan struct{}, len(p.Steps)),
		ids: make([]trove.ObjectID, n), want: make([][]byte, n), handles: make([]trove.Ref, n),
		views: make([]*trove.Object, n), builders: make([]*engine.Builder, n),
	}
	for i := range r.done {
		r.done[i] = make(chan struct{})
	}
	r.ctx, r.cancel = context.WithCancel(context.Background())
	return r
}

func (r *runner) failAt(op int, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail == nil {
		r.fail = &Failure{Script: r.plan.Script, Op: op, Err: err}
		r.cancel()
	}
}

func (r *runner) failed() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.fail != nil
}

// run runs the phases one after the other: in each, one goroutine per thread
// runs that thread's ops in order, each after the ops it depends on.
func (r *runner) run() {
	steps := r.plan.Steps
	for start := 0; start < len(steps); {
		end := start + 1
		for end < len(steps) && steps[end].Op.Kind != KindCheck {
			end++
		}
		if steps[start].Op.Kind == KindCheck {
			if !r.failed() {
				if err := r.check(steps[start].Want.Stats); err != nil {
					r.failAt(start, err)
				}
			}
			close(r.done[start])
			start++
		}
		perThread := make([][]int, r.plan.Script.Threads)
		for i := start; i < end; i++ {
			perThread[steps[i].Op.Thread] = append(perThread[steps[i].Op.Thread], i)
		}
		var wg sync.WaitGroup
		for _, mine := range perThread {
			if len(mine) == 0 {
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				for _, i := range mine {
					r.runStep(i)
				}
			}()
		}
		wg.Wait()
		start = end
	}
}

func (r *runner) runStep(i int) {
	defer close(r.done[i])
	step := &r.plan.Steps[i]
	for _, d := range step.Deps {
		<-r.done[d] // every step closes its channel, failed or not
	}
	if r.failed() {
		return
	}
	if err := r.do(step); err != nil {
		r.failAt(i, err)
		return
	}
	if r.plan.Script.Threads == 1 && !r.cfg.Background {
		if err := r.st.Check(); err != nil {
			r.failAt(i, err)
		}
	}
}

// check is a barrier's work: no op runs, and no spill once WaitIdle returns
// (except the background spiller's, which holds only live objects).
func (r *runner) check(want *StatsWant) error {
	r.st.WaitIdle()
	if !r.cfg.Background {
		if err := r.st.Check(); err != nil {
			return err
		}
	}
	st := r.st.Stats()
	got := StatsWant{
		Objects: st.Objects, PendingObjects: st.PendingObjects, ObjectBytes: st.ObjectBytes,
		InlineObjects: st.InlineObjects, InlineBytes: st.InlineBytes,
		Views: st.Views, PinnedObjects: st.PinnedObjects, PinnedBytes: st.PinnedBytes,
	}
	if r.cfg.ExactSpill {
		got.SpilledObjects = st.SpilledObjects
	}
	if got != *want {
		return fmt.Errorf("stats differ from the model:\n  store %+v\n  model %+v", got, *want)
	}
	return nil
}

// errIs reports whether err is of kind k, or what is wrong.
func errIs(err error, k errKind) error {
	var ok bool
	switch k {
	case errNone:
		ok = err == nil
	case errInvalidRef:
		ok = errors.Is(err, trove.ErrInvalidRef)
	case errAborted:
		ok = errors.Is(err, trove.ErrObjectAborted)
	case errTimeout:
		ok = errors.Is(err, trove.ErrGetTimeout) && errors.Is(err, context.DeadlineExceeded)
	case errSealed:
		ok = errors.Is(err, trove.ErrSealed)
	case errBadValue:
		ok = errors.Is(err, trove.ErrBadValue)
	case errGone:
		ok = errors.Is(err, trove.ErrUnknownObject) || errors.Is(err, trove.ErrObjectFreed)
	}
	if ok {
		return nil
	}
	return fmt.Errorf("got error %v, want %v", err, k)
}

func (r *runner) refs(hs []int) []trove.Ref {
	refs := make([]trove.Ref, len(hs))
	for i, h := range hs {
		refs[i] = r.handles[h]
	}
	return refs
}

// checkView compares a view's bytes with object o's.
func (r *runner) checkView(v *trove.Object, o int) error {
	want := r.want[o]
	got := v.Bytes()
	if v.ID() != r.ids[o] {
		return fmt.Errorf("view of o%d names %s, want %s", o, v.ID(), r.ids[o])
	}
	if !bytes.Equal(got, want) {
		i := 0
		for i < min(len(got), len(want)) && got[i] == want[i] {
			i++
		}
		return fmt.Errorf("o%d: %d bytes read, %d put; first difference at byte %d", o, len(got), len(want), i)
	}
	return nil
}

func (r *runner) do(step *Step) error {
	op, want := &step.Op, &step.Want
	p := r.plan
	ctx, cancel := context.WithTimeout(r.ctx, liveness)
	defer cancel()
	switch op.Kind {
	case KindPut:
		data := content(op.Seed, op.Size)
		ref, err := r.st.Put(ctx, data)
		if err != nil {
			return fmt.Errorf("put: %w (%s)", err, r.arenaFigures())
		}
		r.ids[op.Obj], r.want[op.Obj], r.handles[op.Handle] = ref.ID(), data, ref
	case KindCreate:
		b, err := r.st.Create(ctx, op.Size)
		if err != nil {
			return fmt.Errorf("create: %w (%s)", err, r.arenaFigures())
		}
		data := content(op.Seed, op.Size)
		if len(b.Bytes()) != op.Size {
			return fmt.Errorf("create of %d bytes gave a builder of %d", op.Size, len(b.Bytes()))
		}
		copy(b.Bytes(), data)
		r.ids[op.Obj], r.want[op.Obj], r.handles[op.Handle], r.builders[op.Obj] = b.Ref().ID(), data, b.Ref(), b
	case KindSeal:
		return errIs(r.builders[op.Obj].Seal(), want.Err)
	case KindAbort:
		r.builders[op.Obj].Abort()
	case KindGet:
		if op.Mode == GetTimeout {
			var c2 context.CancelFunc
			ctx, c2 = context.WithTimeout(ctx, shortly)
			defer c2()
		}
		v, err := r.st.Get(ctx, r.handles[op.Handle])
		if err := errIs(err, want.Err); err != nil {
			v.Release()
			return err
		}
		if v == nil {
			return nil
		}
		if err := r.checkView(v, p.Handles[op.Handle]); err != nil {
			v.Release()
			return err
		}
		if op.Mode == GetHold {
			r.views[op.View] = v
		} else {
			v.Release()
		}
	case KindGetAll:
		vs, err := r.st.GetAll(ctx, r.refs(op.Handles))
		defer trove.ReleaseAll(vs)
		if err := errIs(err, want.Err); err != nil {
			return err
		}
		if err == nil && len(vs) != len(op.Handles) {
			return fmt.Errorf("getall of %d refs gave %d views", len(op.Handles), len(vs))
		}
		for i, v := range vs {
			if err := r.checkView(v, p.Handles[op.Handles[i]]); err != nil {
				return err
			}
		}
	case KindRelease:
		r.views[op.View].Release()
	case KindDrop:
		r.handles[op.Handle].Drop()
	case KindBorrow:
		ref, err := r.st.Borrow(r.ids[op.Obj])
		if err := errIs(err, want.Err); err != nil {
			ref.Drop()
			return err
		}
		if err == nil && ref.ID() != r.ids[op.Obj] {
			return fmt.Errorf("borrow of o%d gave a ref to %s", op.Obj, ref.ID())
		}
		r.handles[op.Handle] = ref
	case KindWait:
		wctx, c2 := context.WithTimeout(ctx, shortly)
		defer c2()
		refs := r.refs(op.Handles)
		ready, pending, err := r.st.Wait(wctx, refs, op.N)
		if err := errIs(err, want.Err); err != nil {
			return err
		}
		if want.Err == errInvalidRef {
			return nil
		}
		if err := samePositions("ready", ready, refs, want.Ready); err != nil {
			return err
		}
		return samePositions("pending", pending, refs, want.Pending)
	case KindSpill:
		n, err := r.st.Spill(context.Background(), r.refs(op.Handles))
		if err := errIs(err, want.Err); err != nil {
			return err
		}
		if want.SpillAtMost && n > want.Spilled || !want.SpillAtMost && n != want.Spilled {
			return fmt.Errorf("spill reported %d objects spilled; the model says %d (exact: %v)", n, want.Spilled, !want.SpillAtMost)
		}
	case KindPutValue:
		refs := r.refs(op.Handles)
		v := makeValue(op.Seed, refs)
		ref, err := trove.PutValue(ctx, r.st, v)
		if err := errIs(err, want.Err); err != nil {
			ref.Drop()
			return err
		}
		r.handles[op.Handle] = ref
		if err != nil {
			return nil
		}
		enc, err := encodeValue(v)
		if err != nil {
			return err
		}
		if len(enc) != p.Objects[op.Obj].Size {
			return fmt.Errorf("the value encodes to %d bytes; the model expected %d", len(enc), p.Objects[op.Obj].Size)
		}
		r.ids[op.Obj], r.want[op.Obj] = ref.ID(), enc
	case KindGetValue:
		got, err := trove.GetValue[Value](ctx, r.st, r.handles[op.Handle])
		if err := errIs(err, want.Err); err != nil {
			for _, ref := range got.Refs {
				ref.Drop()
			}
			return err
		}
		if err != nil {
			return nil
		}
		return r.bindValue(op, got)
	default:
		return fmt.Errorf("unknown op kind %d", op.Kind)
	}
	return nil
}

// arenaFigures says how the arena is used, for a creator's failure.
func (r *runner) arenaFigures() string {
	st := r.st.Stats()
	return fmt.Sprintf("arena: %d used, %d free, largest free %d, slabs %d with %d free in them, fragmentation %.2f; %d objects pinned (%d B), %d pending, %d spilled, %d fallback-mapped",
		st.Used, st.Free, st.LargestFree, st.SlabBytes, st.SlabFree, st.Fragmentation, st.PinnedObjects, st.PinnedBytes,
		st.PendingObjects, st.SpilledObjects, st.FallbackBytes)
}

// bindValue checks a decoded value against the one put, and keeps its refs as
// the op's new handles: one per distinct object, shared by its repeats.
func (r *runner) bindValue(op *Op, got Value) error {
	o := r.plan.Objects[r.plan.Handles[op.Handle]]
	wantRefs := make([]trove.Ref, len(o.Pattern))
	for i, c := range o.Pattern {
		wantRefs[i] = trove.NewRef(r.ids[c], nopOwner{}, nil)
	}
	if err := sameValue(got, makeValue(o.Seed, wantRefs)); err != nil {
		for _, ref := range got.Refs {
			ref.Drop()
		}
		return fmt.Errorf("getvalue: %w", err)
	}
	var distinct []trove.ObjectID
	for i, ref := range got.Refs {
		id := ref.ID()
		k := slices.Index(distinct, id)
		first := slices.IndexFunc(got.Refs, func(x trove.Ref) bool { return x.ID() == id })
		switch {
		case !ref.Bound() || ref.Dropped():
			return fmt.Errorf("getvalue: ref %d is not a live handle", i)
		case k < 0:
			distinct = append(distinct, id)
			r.handles[op.New[len(distinct)-1]] = ref
		case got.Refs[first] != ref:
			return fmt.Errorf("getvalue: refs %d and %d name one object with two handles", first, i)
		}
	}
	return nil
}

type nopOwner struct{}

func (nopOwner) ReleaseRef(trove.ObjectID, any) {}

// samePositions checks that got holds refs[i] for each i in want, in order.
func samePositions(what string, got, refs []trove.Ref, want []int) error {
	ok := len(got) == len(want)
	for i := 0; ok && i < len(want); i++ {
		ok = got[i] == refs[want[i]]
	}
	if ok {
		return nil
	}
	var pos []int
	for _, g := range got {
		pos = append(pos, slices.Index(refs, g))
	}
	return fmt.Errorf("wait returned as %s the refs at %v, want %v", what, pos, want)
}

// cleanup ends the script: every view released, builder aborted and handle
// dropped, in name order, then the store must be empty.
func (r *runner) cleanup() {
	defer r.cancel()
	for _, v := range r.views {
		v.Release()
	}
	for _, b := range r.builders {
		if b != nil {
			b.Abort()
		}
	}
	for _, h := range r.handles {
		h.Drop()
	}
	if r.failed() {
		return
	}
	end := len(r.plan.Script.Ops)
	r.st.WaitIdle()
	st := r.st.Stats()
	if st.Objects != 0 || st.ObjectBytes != 0 || st.Used != 0 || st.Views != 0 || st.PinnedObjects != 0 ||
		st.PinnedBytes != 0 || st.PendingObjects != 0 || st.InlineObjects != 0 {
		r.failAt(end, fmt.Errorf("store not empty after every ref was dropped: objects=%d bytes=%d used=%d views=%d pinned=%d pending=%d inline=%d",
			st.Objects, st.ObjectBytes, st.Used, st.Views, st.PinnedObjects, st.PendingObjects, st.InlineObjects))
		return
	}
	if st.SpilledObjects != 0 || st.SpilledBytes != 0 || st.SpillFiles != 0 || st.SpillDiskBytes != 0 ||
		st.InMemoryBytes != 0 || st.FallbackBytes != 0 {
		r.failAt(end, fmt.Errorf("spill state left after every ref was dropped: spilled %d objects / %d bytes, %d files / %d bytes on disk, %d in memory, %d mapped",
			st.SpilledObjects, st.SpilledBytes, st.SpillFiles, st.SpillDiskBytes, st.InMemoryBytes, st.FallbackBytes))
		return
	}
	if err := r.st.Check(); err != nil {
		r.failAt(end, err)
	}
}

// noFiles fails if a regular file is left under dir, but for the open store's
// owner lock (package spill's leftover.go) if open.
func noFiles(dir string, open bool) error {
	return filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() && !(open && strings.HasSuffix(path, ".lock")) {
			return fmt.Errorf("spill file %s left after every ref was dropped", path)
		}
		return nil
	})
}

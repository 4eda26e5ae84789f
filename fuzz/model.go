package fuzz

import (
	"fmt"
	"slices"
)

// The model is a plain description of the store: maps of objects, handles and
// views with their counts, applied to a script's ops in script order. It decides
// what every op must return, and which earlier ops of other threads each op must
// wait for (those that touched the same objects), so that running the threads
// concurrently cannot change any outcome.

// errKind is the class of error an op must return.
type errKind uint8

const (
	errNone       errKind = iota
	errInvalidRef         // trove.ErrInvalidRef: a dropped handle
	errAborted            // trove.ErrObjectAborted
	errTimeout            // trove.ErrGetTimeout (and context.DeadlineExceeded)
	errSealed             // trove.ErrSealed: a second Seal
	errBadValue           // trove.ErrBadValue: GetValue of a raw object
	errGone               // trove.ErrUnknownObject or trove.ErrObjectFreed: Borrow of a freed object
)

func (k errKind) String() string {
	return [...]string{"no error", "ErrInvalidRef", "ErrObjectAborted", "ErrGetTimeout", "ErrSealed", "ErrBadValue",
		"ErrUnknownObject or ErrObjectFreed"}[k]
}

// Want is what an op must return.
type Want struct {
	Err         errKind
	Ready       []int // wait: positions in Op.Handles returned ready, in order
	Pending     []int // wait: the others, in order
	Spilled     int   // spill: how many objects Spill reports
	SpillAtMost bool  // spill: Spilled is an upper bound (reclaims spill too)
	Stats       *StatsWant
}

// StatsWant is what Stats must say at a check.
type StatsWant struct {
	Objects, PendingObjects, ObjectBytes int64
	InlineObjects, InlineBytes           int64
	Views, PinnedObjects, PinnedBytes    int64
	SpilledObjects                       int64 // checked when the config's spills are exact
}

// Step is an op with what it must return and what it waits for.
type Step struct {
	Op    Op
	Want  Want
	Deps  []int // indexes of earlier steps, in other threads, that must be done first
	Phase int   // checks split the script into phases; a check is the first step of its phase
}

// Plan is a script checked against the model: the steps, and what the runner
// needs to know of each object, handle and view.
type Plan struct {
	Script  *Script
	Config  Config
	Steps   []Step
	Objects map[int]*ObjectInfo
	Handles map[int]int // handle → object
	Views   map[int]int // view → object
	Phases  int
}

// ObjectInfo describes an object as the script made it.
type ObjectInfo struct {
	Size    int
	Seed    uint64
	Value   bool
	Pattern []int // putvalue: the objects its refs name, in order, repeats included
}

// NewPlan checks s against the model and returns its plan, or the first op that
// makes no sense (an unknown name, an op on another thread's builder or handle, a
// Get that would block forever).
func NewPlan(s *Script) (*Plan, error) {
	cfg, err := configNamed(s.Config)
	if err != nil {
		return nil, err
	}
	m := newModel(cfg, s.Threads)
	for i := range s.Ops {
		if err := m.apply(s.Ops[i]); err != nil {
			return nil, fmt.Errorf("script op %d %q: %w", i+1, s.Ops[i].String(), err)
		}
	}
	if err := m.finish(); err != nil {
		return nil, fmt.Errorf("script: %w", err)
	}
	return m.plan(s), nil
}

type objState uint8

const (
	statePending objState = iota
	stateSealed
	stateAborted
	stateFreed
)

type mObj struct {
	ObjectInfo
	owner      int
	children   []int // distinct objects of Pattern, in order of first appearance
	state      objState
	created    bool // made by create: it has a builder
	builder    bool // the builder is still open: it holds a count
	handles    int
	views      int
	containers int // live objects holding a ref on it
	spilled    bool
	blocked    []int // steps blocked in Get on it while pending
}

func (o *mObj) live() bool { return o.state != stateFreed }

type mHandle struct {
	obj, thread int
	live        bool
}

type mView struct {
	obj, thread int
	live        bool
}

type model struct {
	cfg     Config
	threads int
	objs    map[int]*mObj
	handles map[int]*mHandle
	views   map[int]*mView
	last    map[int]int   // object → the last step that touched it
	woken   map[int][]int // object → blocking Gets of it that its Seal or Abort woke, until an op waits for them
	parked  []int         // per thread: the object it is blocked on, or 0
	steps   []Step
	phase   int
	maxName int
}

func newModel(cfg Config, threads int) *model {
	return &model{
		cfg: cfg, threads: threads,
		objs: map[int]*mObj{}, handles: map[int]*mHandle{}, views: map[int]*mView{},
		last: map[int]int{}, woken: map[int][]int{}, parked: make([]int, threads),
	}
}

func (m *model) plan(s *Script) *Plan {
	p := &Plan{Script: s, Config: m.cfg, Steps: m.steps, Objects: map[int]*ObjectInfo{},
		Handles: map[int]int{}, Views: map[int]int{}, Phases: m.phase + 1}
	for n, o := range m.objs {
		p.Objects[n] = &o.ObjectInfo
	}
	for n, h := range m.handles {
		p.Handles[n] = h.obj
	}
	for n, v := range m.views {
		p.Views[n] = v.obj
	}
	return p
}

// finish checks that the script leaves no thread blocked.
func (m *model) finish() error {
	for t, o := range m.parked {
		if o != 0 {
			return fmt.Errorf("thread %d is left blocked in a Get of o%d, which nothing seals or aborts", t, o)
		}
	}
	return nil
}

func (m *model) fresh(kind string, n int, taken bool) error {
	if n <= 0 {
		return fmt.Errorf("%s%d: names start at 1", kind, n)
	}
	if taken {
		return fmt.Errorf("%s%d is already named by an earlier op", kind, n)
	}
	m.maxName = max(m.maxName, n)
	return nil
}

// handle returns thread t's handle n.
func (m *model) handle(t, n int) (*mHandle, error) {
	h, ok := m.handles[n]
	switch {
	case !ok:
		return nil, fmt.Errorf("no handle h%d", n)
	case h.thread != t:
		return nil, fmt.Errorf("h%d belongs to thread %d (a handle is used by its own thread; borrow one)", n, h.thread)
	}
	return h, nil
}

// free frees o if nothing holds it, and what that lets go, and returns the
// objects whose state or counts that changed: those freed and the objects they
// contained. (An op that frees a value changes its children's counts even when
// they live on: a Borrow of a child must not run before it, nor after it
// either when the script says before.)
func (m *model) free(n int, changed []int) []int {
	o := m.objs[n]
	if !o.live() || o.handles > 0 || o.views > 0 || o.containers > 0 || o.builder {
		return changed
	}
	o.state = stateFreed
	changed = append(changed, n)
	for _, c := range o.children {
		m.objs[c].containers--
		changed = append(changed, c)
		changed = m.free(c, changed)
	}
	return changed
}

// apply checks op against the model, works out its Want and its dependencies,
// and applies it.
func (m *model) apply(op Op) error {
	if op.Kind == KindCheck {
		for t, o := range m.parked {
			if o != 0 {
				return fmt.Errorf("a check while thread %d is blocked in a Get of o%d would never start", t, o)
			}
		}
		m.phase++
		m.steps = append(m.steps, Step{Op: op, Phase: m.phase, Want: Want{Stats: m.stats()}})
		return nil
	}
	if op.Thread < 0 || op.Thread >= m.threads {
		return fmt.Errorf("thread %d: the script has threads 0 to %d", op.Thread, m.threads-1)
	}
	if o := m.parked[op.Thread]; o != 0 {
		return fmt.Errorf("thread %d is blocked in a Get of o%d until it is sealed or aborted", op.Thread, o)
	}
	var want Want
	var touched []int // objects whose state the op reads or changes
	noSync := false   // a blocking Get: later ops on its object must not wait for it
	var woken []int   // a Seal or Abort: the blocking Gets it ends
	t := op.Thread
	switch op.Kind {
	case KindPut, KindCreate, KindPutValue:
		if err := m.fresh("o", op.Obj, m.objs[op.Obj] != nil); err != nil {
			return err
		}
		if err := m.fresh("h", op.Handle, m.handles[op.Handle] != nil); err != nil {
			return err
		}
		o := &mObj{ObjectInfo: ObjectInfo{Size: op.Size, Seed: op.Seed}, owner: t, state: stateSealed, handles: 1}
		if op.Kind == KindPutValue {
			o.Value = true
			for _, hn := range op.Handles {
				h, err := m.handle(t, hn)
				if err != nil {
					return err
				}
				if !h.live {
					want.Err = errInvalidRef
				}
				o.Pattern = append(o.Pattern, h.obj)
				if !slices.Contains(o.children, h.obj) {
					o.children = append(o.children, h.obj)
				}
			}
			o.Size = valueSize(op.Seed, o.Pattern)
		}
		if op.Size < 0 || int64(op.Size) > m.cfg.Capacity {
			return fmt.Errorf("size %d outside [0, %d], the store's capacity", op.Size, m.cfg.Capacity)
		}
		if op.Kind == KindCreate {
			o.state, o.created, o.builder = statePending, true, true
		}
		m.handles[op.Handle] = &mHandle{obj: op.Obj, thread: t, live: want.Err == errNone}
		if want.Err != errNone {
			// Nothing is stored; the name stays taken, by an object that is gone.
			o.state, o.handles = stateFreed, 0
			m.objs[op.Obj] = o
			break
		}
		m.objs[op.Obj] = o
		touched = append(touched, op.Obj)
		for _, c := range o.children {
			m.objs[c].containers++
			touched = append(touched, c)
		}
	case KindSeal, KindAbort:
		o, ok := m.objs[op.Obj]
		if !ok {
			return fmt.Errorf("no object o%d", op.Obj)
		}
		if !o.created {
			return fmt.Errorf("o%d was not made by create: it has no builder", op.Obj)
		}
		if o.owner != t {
			return fmt.Errorf("o%d's builder belongs to thread %d", op.Obj, o.owner)
		}
		if !o.builder {
			if op.Kind == KindSeal {
				want.Err = errSealed
			}
			break
		}
		touched = append(touched, op.Obj)
		o.builder = false
		o.state = stateSealed
		blockedWant := errNone
		if op.Kind == KindAbort {
			o.state, blockedWant = stateAborted, errAborted
		}
		for _, s := range o.blocked {
			m.steps[s].Want.Err = blockedWant
			m.parked[m.steps[s].Op.Thread] = 0
		}
		// The next op on the object waits for the woken Gets too (they pin it
		// for a moment), though this one must not.
		woken = o.blocked
		o.blocked = nil
		touched = append(touched, m.free(op.Obj, nil)...)
	case KindGet, KindGetValue:
		h, err := m.handle(t, op.Handle)
		if err != nil {
			return err
		}
		if op.Kind == KindGet && op.Mode == GetHold {
			if err := m.fresh("v", op.View, m.views[op.View] != nil); err != nil {
				return err
			}
			m.views[op.View] = &mView{obj: h.obj, thread: t}
		}
		if op.Kind == KindGetValue {
			for i, n := range op.New {
				if err := m.fresh("h", n, m.handles[n] != nil || slices.Index(op.New, n) != i); err != nil {
					return err
				}
				m.handles[n] = &mHandle{thread: t}
			}
		}
		if !h.live {
			want.Err = errInvalidRef
			break
		}
		o := m.objs[h.obj]
		touched = append(touched, h.obj)
		switch {
		case o.state == statePending && op.Kind == KindGet && op.Mode == GetTimeout:
			want.Err = errTimeout
		case o.state == statePending && op.Kind == KindGet && op.Mode == GetBlock:
			if o.owner == t {
				return fmt.Errorf("thread %d would block on its own o%d", t, h.obj)
			}
			if p := m.parked[o.owner]; p != 0 {
				return fmt.Errorf("o%d's creator, thread %d, is itself blocked (on o%d)", h.obj, o.owner, p)
			}
			o.blocked = append(o.blocked, len(m.steps))
			m.parked[t] = h.obj
			noSync = true
		case o.state == statePending:
			return fmt.Errorf("o%d is pending: a Get of it needs \"timeout\" or \"block\"", h.obj)
		case op.Mode == GetTimeout || op.Mode == GetBlock:
			return fmt.Errorf("o%d is not pending: \"timeout\" and \"block\" are for pending objects", h.obj)
		case o.state == stateAborted:
			want.Err = errAborted
		case op.Kind == KindGetValue && !o.Value:
			want.Err = errBadValue
			o.spilled = false
		case op.Kind == KindGetValue:
			if len(op.New) != len(o.children) {
				return fmt.Errorf("o%d holds refs to %d distinct objects; getvalue names %d new handles", h.obj, len(o.children), len(op.New))
			}
			for i, c := range o.children {
				m.handles[op.New[i]].obj, m.handles[op.New[i]].live = c, true
				m.objs[c].handles++
				touched = append(touched, c)
			}
			o.spilled = false
		default:
			o.spilled = false
			if op.Mode == GetHold {
				m.views[op.View].live = true
				o.views++
			}
		}
	case KindGetAll:
		for _, hn := range op.Handles {
			h, err := m.handle(t, hn)
			if err != nil {
				return err
			}
			if !h.live {
				if want.Err == errNone {
					want.Err = errInvalidRef
				}
				continue
			}
			o := m.objs[h.obj]
			if o.state == statePending {
				return fmt.Errorf("getall of pending o%d would block", h.obj)
			}
			touched = append(touched, h.obj)
			if want.Err == errNone {
				if o.state == stateAborted {
					want.Err = errAborted
				} else {
					o.spilled = false // restored for its view
				}
			}
		}
	case KindRelease:
		v, ok := m.views[op.View]
		if !ok {
			return fmt.Errorf("no view v%d", op.View)
		}
		if v.thread != t {
			return fmt.Errorf("v%d belongs to thread %d", op.View, v.thread)
		}
		if !v.live {
			break
		}
		v.live = false
		m.objs[v.obj].views--
		touched = append(touched, v.obj)
		touched = append(touched, m.free(v.obj, nil)...)
	case KindDrop:
		h, err := m.handle(t, op.Handle)
		if err != nil {
			return err
		}
		if !h.live {
			break
		}
		h.live = false
		m.objs[h.obj].handles--
		touched = append(touched, h.obj)
		touched = append(touched, m.free(h.obj, nil)...)
	case KindBorrow:
		if err := m.fresh("h", op.Handle, m.handles[op.Handle] != nil); err != nil {
			return err
		}
		o, ok := m.objs[op.Obj]
		if !ok {
			return fmt.Errorf("no object o%d", op.Obj)
		}
		h := &mHandle{obj: op.Obj, thread: t}
		m.handles[op.Handle] = h
		touched = append(touched, op.Obj)
		// The engine refuses a new handle once the object's refs are gone, even
		// while a view still pins it: it is dying, freed at the last Release.
		if !o.live() || o.handles == 0 && o.containers == 0 && !o.builder {
			want.Err = errGone
			break
		}
		h.live = true
		o.handles++
	case KindWait:
		if op.N < 0 || op.N > len(op.Handles) {
			return fmt.Errorf("wait %d of %d handles", op.N, len(op.Handles))
		}
		cut, n := len(op.Handles), 0
		for i, hn := range op.Handles {
			h, err := m.handle(t, hn)
			if err != nil {
				return err
			}
			if n == op.N {
				cut = i
				break
			}
			if !h.live {
				want.Err = errInvalidRef
				break
			}
			touched = append(touched, h.obj)
			if m.objs[h.obj].state != statePending {
				n++
			}
		}
		if want.Err != errNone {
			break
		}
		if n < op.N {
			want.Err = errTimeout
		}
		for i, hn := range op.Handles {
			if i < cut && len(want.Ready) < op.N && m.objs[m.handles[hn].obj].state != statePending {
				want.Ready = append(want.Ready, i)
			} else {
				want.Pending = append(want.Pending, i)
			}
		}
	case KindSpill:
		var batch []int
		for _, hn := range op.Handles {
			h, err := m.handle(t, hn)
			if err != nil {
				return err
			}
			if want.Err != errNone {
				continue
			}
			if !h.live {
				want.Err = errInvalidRef
				continue
			}
			o := m.objs[h.obj]
			touched = append(touched, h.obj)
			if o.state != stateSealed || m.cfg.inline(o.Size) || o.views > 0 || slices.Contains(batch, h.obj) {
				continue
			}
			if m.cfg.ExactSpill && o.spilled {
				continue
			}
			batch = append(batch, h.obj)
		}
		// The objects before an invalid ref are spilled all the same; the count
		// is then 0.
		for _, n := range batch {
			m.objs[n].spilled = true
		}
		if want.Err == errNone {
			want.Spilled = len(batch)
		}
		want.SpillAtMost = !m.cfg.ExactSpill
	default:
		return fmt.Errorf("unknown op kind %d", op.Kind)
	}
	step := Step{Op: op, Want: want, Phase: m.phase}
	idx := len(m.steps)
	for _, o := range touched {
		deps := m.woken[o]
		if d, ok := m.last[o]; ok {
			deps = append(deps, d)
		}
		for _, d := range deps {
			if d != idx && m.steps[d].Op.Thread != t && !slices.Contains(step.Deps, d) {
				step.Deps = append(step.Deps, d)
			}
		}
		if !noSync {
			m.last[o] = idx
			delete(m.woken, o)
		}
	}
	if len(woken) > 0 {
		m.woken[op.Obj] = woken
	}
	m.steps = append(m.steps, step)
	return nil
}

func (m *model) stats() *StatsWant {
	s := &StatsWant{}
	for _, v := range m.views {
		if v.live {
			s.Views++
		}
	}
	for _, o := range m.objs {
		if !o.live() {
			continue
		}
		size := int64(o.Size)
		s.Objects++
		s.ObjectBytes += size
		if o.state == statePending {
			s.PendingObjects++
		}
		if m.cfg.inline(o.Size) {
			s.InlineObjects++
			s.InlineBytes += size
		}
		if o.views > 0 {
			s.PinnedObjects++
			s.PinnedBytes += size
		}
		if m.cfg.ExactSpill && o.spilled && o.state == stateSealed && !m.cfg.inline(o.Size) {
			s.SpilledObjects++
		}
	}
	return s
}

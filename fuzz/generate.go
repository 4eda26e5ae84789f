package fuzz

import (
	"fmt"
	"math/rand/v2"
	"slices"
)

// Source is the randomness a script is generated from: a seeded generator, or a
// fuzzer's bytes.
type Source interface {
	// IntN returns a number in [0, n), n > 0.
	IntN(n int) int
	// Exhausted reports whether the source has nothing more to give (a fuzzer's
	// bytes are used up): the script ends.
	Exhausted() bool
}

// SeedSource is a Source from a seed.
func SeedSource(seed uint64) Source {
	return seedSource{rand.New(rand.NewPCG(seed, 0x74726f7665))}
}

type seedSource struct{ r *rand.Rand }

func (s seedSource) IntN(n int) int  { return s.r.IntN(n) }
func (s seedSource) Exhausted() bool { return false }

// BytesSource is a Source reading a fuzzer's input: one byte per choice of up
// to 256, two for more. Once the bytes are used up every choice is 0.
func BytesSource(b []byte) Source { return &bytesSource{b: b} }

type bytesSource struct {
	b []byte
	i int
}

func (s *bytesSource) IntN(n int) int {
	v := 0
	for k := 1; k < n && k < 1<<16; k <<= 8 {
		if s.i < len(s.b) {
			v = v<<8 | int(s.b[s.i])
			s.i++
		}
	}
	return v % n
}

func (s *bytesSource) Exhausted() bool { return s.i >= len(s.b) }

// SpillDuringReclaim lets the generator emit Spill ops where a reclaim may be
// spilling at the same time: in configurations with the background spiller, and
// with more than one thread where creators reclaim (all but "large"). It found a
// data race (engine.Store.Spill read an object's arena offset before taking the
// hold bit, while a reclaim holding the object wrote it as it freed the memory;
// the race detector reported it in about one such script in thirty), fixed by
// taking the hold first. go test ./fuzz -spill-during-reclaim=false turns it off.
var SpillDuringReclaim = true

// Generate returns a script of at most maxOps ops (plus those that end it; 0
// means the configuration's Ops) for the configuration named cfg, with threads
// goroutines, choosing with src. Every generated script is valid: NewPlan
// accepts it.
func Generate(src Source, cfg string, threads, maxOps int) (*Script, error) {
	c, err := configNamed(cfg)
	if err != nil {
		return nil, err
	}
	if maxOps <= 0 {
		maxOps = c.Ops
	}
	g := &generator{src: src, m: newModel(c, threads), s: &Script{Config: cfg, Threads: threads}}
	g.noSpill = !SpillDuringReclaim && (c.Background || !c.ExactSpill && threads > 1)
	for len(g.s.Ops) < maxOps && !src.Exhausted() {
		g.step()
	}
	g.end()
	if _, err := NewPlan(g.s); err != nil {
		return nil, fmt.Errorf("fuzz: the generator made an invalid script (a bug in package fuzz): %w\n%s", err, g.s)
	}
	return g.s, nil
}

type generator struct {
	src  Source
	m    *model
	s    *Script
	next int // the last name given to an object, handle or view

	noSpill bool // no Spill ops: see SpillDuringReclaim
}

func (g *generator) name() int { g.next++; return g.next }

func (g *generator) chance(pct int) bool { return g.src.IntN(100) < pct }

// emit applies op to the model and adds it to the script.
func (g *generator) emit(op Op) {
	if err := g.m.apply(op); err != nil {
		panic(fmt.Sprintf("fuzz: generated op %q: %v", op.String(), err))
	}
	g.s.Ops = append(g.s.Ops, op)
}

func pick[T any](g *generator, xs []T) T { return xs[g.src.IntN(len(xs))] }

// thread's state, as the generator chooses from it.
func (g *generator) handles(t int, keep func(h *mHandle, o *mObj) bool) []int {
	var hs []int
	for n, h := range g.m.handles {
		if h.thread == t && h.live && keep(h, g.m.objs[h.obj]) {
			hs = append(hs, n)
		}
	}
	slices.Sort(hs) // map order is random; scripts must not be
	return hs
}

func (g *generator) deadHandles(t int) []int {
	var hs []int
	for n, h := range g.m.handles {
		if h.thread == t && !h.live {
			hs = append(hs, n)
		}
	}
	slices.Sort(hs)
	return hs
}

func (g *generator) views(t int, live bool) []int {
	var vs []int
	for n, v := range g.m.views {
		if v.thread == t && v.live == live {
			vs = append(vs, n)
		}
	}
	slices.Sort(vs)
	return vs
}

func (g *generator) objects(keep func(n int, o *mObj) bool) []int {
	var os []int
	for n, o := range g.m.objs {
		if keep(n, o) {
			os = append(os, n)
		}
	}
	slices.Sort(os)
	return os
}

// unmovable counts the views held and the builders open, in every thread.
func (g *generator) unmovable() int {
	n := 0
	for _, v := range g.m.views {
		if v.live {
			n++
		}
	}
	for _, o := range g.m.objs {
		if o.builder {
			n++
		}
	}
	return n
}

func (g *generator) liveBytes() int64 {
	var n int64
	for _, o := range g.m.objs {
		if o.live() {
			n += int64(o.Size)
		}
	}
	return n
}

// size picks an object size: a quarter kept inline, a quarter log-uniform up to
// the config's MaxSize, and half from a quarter of MaxSize up, so that the
// working set outgrows a small arena.
func (g *generator) size() int {
	c := g.m.cfg
	switch roll := g.src.IntN(4); {
	case roll == 0:
		return g.src.IntN(int(c.InlineThreshold) + 1)
	case roll >= 2:
		return c.MaxSize/4 + g.src.IntN(c.MaxSize-c.MaxSize/4+1)
	}
	lo := int(c.InlineThreshold) + 1
	bits := 0
	for lo<<bits < c.MaxSize {
		bits++
	}
	n := lo << g.src.IntN(bits+1)
	return min(n+g.src.IntN(n), c.MaxSize)
}

// some picks one to four of xs (repeats allowed), in a random order.
func (g *generator) some(xs []int) []int {
	n := 1 + g.src.IntN(4)
	out := make([]int, n)
	for i := range out {
		out[i] = pick(g, xs)
	}
	return out
}

// step adds one op (or a few, when one needs another first).
func (g *generator) step() {
	m := g.m
	var free []int // threads not blocked
	for t := range m.threads {
		if m.parked[t] == 0 {
			free = append(free, t)
		}
	}
	if len(free) == len(m.parked) && g.chance(2) {
		g.emit(Op{Kind: KindCheck})
		return
	}
	t := pick(g, free)
	for range 20 {
		if g.try(t, g.src.IntN(100)) {
			return
		}
	}
	g.put(t)
}

// try adds an op of the kind roll chooses for thread t, and reports false if t
// has nothing that kind of op could use.
func (g *generator) try(t, roll int) bool {
	m := g.m
	full := g.liveBytes() >= m.cfg.MaxLive
	live := g.handles(t, func(*mHandle, *mObj) bool { return true })
	ready := g.handles(t, func(_ *mHandle, o *mObj) bool { return o.state != statePending })
	switch {
	case roll < 14: // put
		if full {
			return false
		}
		g.put(t)
	case roll < 20: // create
		if full || g.unmovable() >= m.cfg.MaxUnmovable {
			return false
		}
		g.emit(Op{Kind: KindCreate, Thread: t, Obj: g.name(), Handle: g.name(), Size: g.size(), Seed: uint64(g.src.IntN(1 << 30))})
	case roll < 27: // seal, abort, or seal again
		mine := g.objects(func(_ int, o *mObj) bool { return o.owner == t && o.created })
		open := g.objects(func(_ int, o *mObj) bool { return o.owner == t && o.builder })
		switch {
		case len(open) > 0 && g.chance(80):
			kind := KindSeal
			if g.chance(25) {
				kind = KindAbort
			}
			g.emit(Op{Kind: kind, Thread: t, Obj: pick(g, open)})
		case len(mine) > 0:
			kind := KindSeal
			if g.chance(50) {
				kind = KindAbort
			}
			g.emit(Op{Kind: kind, Thread: t, Obj: pick(g, mine)})
		default:
			return false
		}
	case roll < 47: // get
		if len(live) == 0 {
			return false
		}
		h := pick(g, live)
		o := m.objs[m.handles[h].obj]
		op := Op{Kind: KindGet, Thread: t, Handle: h}
		switch {
		case o.state == statePending:
			op.Mode = GetTimeout
			if o.owner != t && m.parked[o.owner] == 0 && g.chance(50) {
				op.Mode = GetBlock
			}
		case g.unmovable() < m.cfg.MaxUnmovable && g.chance(30):
			op.Mode, op.View = GetHold, g.name()
		}
		if dead := g.deadHandles(t); len(dead) > 0 && g.chance(5) {
			op = Op{Kind: KindGet, Thread: t, Handle: pick(g, dead)} // ErrInvalidRef
		}
		g.emit(op)
	case roll < 52: // getall
		if len(ready) == 0 {
			return false
		}
		g.emit(Op{Kind: KindGetAll, Thread: t, Handles: g.some(ready)})
	case roll < 60: // release
		vs := g.views(t, true)
		if len(vs) == 0 || g.chance(5) {
			vs = g.views(t, false) // released already: a no-op
		}
		if len(vs) == 0 {
			return false
		}
		g.emit(Op{Kind: KindRelease, Thread: t, View: pick(g, vs)})
	case roll < 72: // drop
		hs := live
		if len(hs) == 0 || g.chance(5) {
			hs = g.deadHandles(t) // dropped already: a no-op
		}
		if len(hs) == 0 {
			return false
		}
		g.emit(Op{Kind: KindDrop, Thread: t, Handle: pick(g, hs)})
	case roll < 80: // borrow, mostly another thread's object, pending ones first
		objs := g.objects(func(_ int, o *mObj) bool { return o.live() && o.owner != t && o.state == statePending })
		if len(objs) == 0 || g.chance(50) {
			objs = g.objects(func(_ int, o *mObj) bool { return o.live() })
		}
		if g.chance(5) {
			objs = g.objects(func(_ int, o *mObj) bool { return !o.live() }) // ErrUnknownObject
		}
		if len(objs) == 0 {
			return false
		}
		g.emit(Op{Kind: KindBorrow, Thread: t, Handle: g.name(), Obj: pick(g, objs)})
	case roll < 85: // wait
		if len(live) == 0 {
			return false
		}
		hs := g.some(live)
		g.emit(Op{Kind: KindWait, Thread: t, Handles: hs, N: g.src.IntN(len(hs) + 1)})
	case roll < 90: // spill
		if len(live) == 0 || g.noSpill {
			return false
		}
		g.emit(Op{Kind: KindSpill, Thread: t, Handles: g.some(live)})
	case roll < 95: // putvalue
		if full {
			return false
		}
		var refs []int
		if len(live) > 0 && g.chance(85) {
			refs = g.some(live)
		}
		g.emit(Op{Kind: KindPutValue, Thread: t, Obj: g.name(), Handle: g.name(), Seed: uint64(g.src.IntN(1 << 30)), Handles: refs})
	default: // getvalue: of a value, or (rarely) of a raw object: ErrBadValue
		hs := g.handles(t, func(_ *mHandle, o *mObj) bool { return o.state == stateSealed && o.Value })
		if len(hs) == 0 || g.chance(5) {
			hs = g.handles(t, func(_ *mHandle, o *mObj) bool { return o.state != statePending })
		}
		if len(hs) == 0 {
			return false
		}
		h := pick(g, hs)
		op := Op{Kind: KindGetValue, Thread: t, Handle: h}
		if o := m.objs[m.handles[h].obj]; o.state == stateSealed && o.Value {
			for range o.children {
				op.New = append(op.New, g.name())
			}
		}
		g.emit(op)
	}
	return true
}

func (g *generator) put(t int) {
	g.emit(Op{Kind: KindPut, Thread: t, Obj: g.name(), Handle: g.name(), Size: g.size(), Seed: uint64(g.src.IntN(1 << 30))})
}

// end seals or aborts what threads are blocked on, then checks: the runner drops
// everything after the last op and checks the store is empty.
func (g *generator) end() {
	for {
		blocked := g.objects(func(_ int, o *mObj) bool { return len(o.blocked) > 0 && g.m.parked[o.owner] == 0 })
		if len(blocked) == 0 {
			break
		}
		o := blocked[0]
		g.emit(Op{Kind: KindSeal, Thread: g.m.objs[o].owner, Obj: o})
	}
	g.emit(Op{Kind: KindCheck})
}

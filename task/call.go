package task

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/trovedb/trove"
	"github.com/trovedb/trove/cluster"
	"github.com/trovedb/trove/net/quic"
)

// The calling side. A call is kept, with handles on its arguments, from
// Remote until its result's last handle is gone (its lineage: a result lost
// with its node is computed again from it). Calls are placed when made: on
// the runtimes whose resources could ever hold them, those with the asked
// resources free now (as last heard, minus what this runtime sent since)
// first; among them the node holding the most bytes of the call's
// arguments, then the least loaded. When every slot is busy the call goes to
// the best node all the same and waits in its queue: queues are per
// executing node (FIFO), so that a node's slots are counted in one place
// whichever callers share it.

// call is one Remote call, as its caller keeps it.
type call struct {
	fn   *function
	id   trove.ObjectID // the result's: the future's ID
	need Resources
	args []trove.Ref // the call's own handles on its arguments (zero for a literal)
	lits [][]byte    // nil, or per argument the small literal's bytes (nil for a ref)

	mu        sync.Mutex
	attempt   int          // guarded by mu: the current attempt (0 first)
	retries   int          // guarded by mu: attempts left after this one
	node      trove.NodeID // guarded by mu: where the current attempt runs (zero: not placed yet)
	done      bool         // guarded by mu: the current attempt reported (or the call failed)
	withdrawn bool         // guarded by mu: the caller's context ended
	started   bool         // guarded by mu: not withdrawable any more (the result came)
	stop      func() bool  // stops the caller's context's watch
	excluded  []trove.NodeID
}

// release drops the call's handles on its arguments.
func (c *call) release() {
	c.mu.Lock()
	args := c.args
	c.args, c.lits = nil, nil
	c.mu.Unlock()
	for _, r := range args {
		r.Drop()
	}
	if c.stop != nil {
		c.stop()
	}
}

type callTable struct {
	mu sync.Mutex
	m  map[trove.ObjectID]*call // guarded by mu
}

func (t *callTable) get(id trove.ObjectID) *call {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.m[id]
}

func (t *callTable) add(c *call) {
	t.mu.Lock()
	t.m[c.id] = c
	t.mu.Unlock()
}

func (t *callTable) remove(id trove.ObjectID) *call {
	t.mu.Lock()
	defer t.mu.Unlock()
	c := t.m[id]
	delete(t.m, id)
	return c
}

func (t *callTable) takeAll() []*call {
	t.mu.Lock()
	defer t.mu.Unlock()
	cs := make([]*call, 0, len(t.m))
	for _, c := range t.m {
		cs = append(cs, c)
	}
	clear(t.m)
	return cs
}

// each returns the calls for which keep is true.
func (t *callTable) filter(keep func(*call) bool) []*call {
	t.mu.Lock()
	defer t.mu.Unlock()
	var cs []*call
	for _, c := range t.m {
		if keep(c) {
			cs = append(cs, c)
		}
	}
	return cs
}

// LiveCalls is the number of calls made through rt whose results are still
// referenced (each keeps its arguments alive for its lineage).
func (rt *Runtime) LiveCalls() int {
	rt.calls.mu.Lock()
	defer rt.calls.mu.Unlock()
	return len(rt.calls.m)
}

// submit makes a call of fn: its arguments are stored (values) or borrowed
// (refs), its future minted, and it is placed.
func (rt *Runtime) submit(ctx context.Context, fn *function, opts callOpts, args ...func(context.Context, trove.Store) (trove.Ref, error)) (trove.Ref, error) {
	if rt == nil {
		return trove.Ref{}, errors.New("task: Remote with a nil *Runtime; pass the one task.Start returned")
	}
	if rt.closed.Load() {
		return trove.Ref{}, fmt.Errorf("task: call %s: the runtime of node %s is closed: %w", fn.name, rt.name, trove.ErrClosed)
	}
	need := opts.needs()
	if err := checkResources("call "+fn.name, need); err != nil {
		return trove.Ref{}, err
	}
	refs := make([]trove.Ref, 0, len(args))
	fail := func(err error) (trove.Ref, error) {
		for _, r := range refs {
			r.Drop()
		}
		return trove.Ref{}, err
	}
	var lits [][]byte
	as := argStore{Store: rt.node, max: int(min(rt.inline, maxLiteral))}
	for i, a := range args {
		as.lit = nil
		r, err := a(ctx, &as)
		if err != nil {
			return fail(fmt.Errorf("task: call %s: argument %d: %w", fn.name, i+1, err))
		}
		if as.lit != nil {
			if lits == nil {
				lits = make([][]byte, len(args))
			}
			lits[i] = as.lit
		}
		refs = append(refs, r)
	}
	fut, err := rt.node.NewFuture()
	if err != nil {
		return fail(fmt.Errorf("task: call %s: %w", fn.name, err))
	}
	c := &call{fn: fn, id: fut.ID(), need: need, args: refs, lits: lits, retries: opts.retries()}
	rt.calls.add(c)
	if ctx.Done() != nil { // a context that can end: its end withdraws the call
		c.mu.Lock()
		c.stop = context.AfterFunc(ctx, func() { rt.withdraw(c, context.Cause(ctx)) })
		c.mu.Unlock()
	}
	if ctx.Err() == nil { // else the AfterFunc withdraws it, unplaced
		rt.place(c)
	}
	return fut, nil
}

// place sends c's current attempt to the best node (see above), or fails it.
func (rt *Runtime) place(c *call) {
	for tries := 0; ; tries++ {
		c.mu.Lock()
		if c.done || c.withdrawn {
			c.mu.Unlock()
			return
		}
		excluded := slices.Clone(c.excluded)
		attempt := c.attempt
		c.mu.Unlock()
		to, err := rt.choose(c, excluded)
		if err != nil && tries == 0 {
			// The view may be stale (a runtime just started): look again.
			ctx, cancel := context.WithTimeout(rt.life, 5*time.Second)
			rt.refresh(ctx)
			cancel()
			continue
		}
		if err != nil {
			rt.fail(c, attempt, err)
			return
		}
		c.mu.Lock()
		if c.attempt != attempt || c.done || c.withdrawn {
			c.mu.Unlock()
			return
		}
		c.node = to
		args := make([]trove.ObjectID, len(c.args))
		for i, r := range c.args {
			args[i] = r.ID()
		}
		c.mu.Unlock()
		j := &job{owner: rt.self, id: c.id, attempt: attempt, fn: c.fn, need: c.need, args: args, lits: c.lits}
		if to == rt.self {
			if j.fn = rt.runnable(c.fn.name, len(args)); j.fn == nil {
				rt.exclude(c, to)
				continue
			}
			if err := rt.ex.enqueue(j); err != nil {
				rt.exclude(c, to)
				continue
			}
			return
		}
		rt.sendSubmit(c, j, to)
		return
	}
}

// exclude records that c cannot run on node.
func (rt *Runtime) exclude(c *call, node trove.NodeID) {
	c.mu.Lock()
	c.excluded = append(c.excluded, node)
	c.node = trove.NodeID{}
	c.mu.Unlock()
}

// fail fails c's attempt with err (no node can run it).
func (rt *Runtime) fail(c *call, attempt int, err error) {
	c.mu.Lock()
	if c.done || c.attempt != attempt {
		c.mu.Unlock()
		return
	}
	c.done = true
	c.mu.Unlock()
	rt.ex.callerFailed(c, attempt, rt.self, err.Error())
	rt.node.FailFuture(c.id, err)
	c.release()
}

// completed records how attempt of the call id ended on node from; it
// reports whether the caller keeps the result.
func (rt *Runtime) completed(id trove.ObjectID, attempt int, from trove.NodeID, fromName string, out outcome) bool {
	c := rt.calls.get(id)
	if c == nil {
		return false
	}
	c.mu.Lock()
	if c.done || c.attempt != attempt || c.node != from {
		c.mu.Unlock()
		return false
	}
	if out.status == doneRefused {
		c.excluded = append(c.excluded, from)
		c.node = trove.NodeID{}
		c.mu.Unlock()
		rt.place(c)
		return false
	}
	if out.status == doneLost {
		c.mu.Unlock()
		rt.rerun(c, from, false, &workerLost{node: fromName, msg: out.msg})
		return false
	}
	c.done, c.started = true, true
	c.mu.Unlock()
	switch out.status {
	case doneOK:
		if err := rt.node.ResolveFuture(id, from, out.size, out.inline); err != nil {
			return false
		}
		return true
	case doneFailed:
		cause := out.cause
		if cause == nil {
			cause = &remoteCause{msg: out.msg, panicked: out.panicked}
		}
		rt.node.FailFuture(id, &TaskError{Func: c.fn.name, Node: fromName, Err: cause})
	case doneWithdrawn:
		rt.node.FailFuture(id, fmt.Errorf("task: call of %s: %w", c.fn.name, errWithdrawn))
	}
	c.release() // a failed call's lineage is of no use
	return false
}

// withdraw withdraws c if it has not started: the caller's context ended.
func (rt *Runtime) withdraw(c *call, cause error) {
	c.mu.Lock()
	if c.done || c.withdrawn {
		c.mu.Unlock()
		return
	}
	c.withdrawn = true
	node := c.node
	c.mu.Unlock()
	switch {
	case node == (trove.NodeID{}):
		// Not placed (or between placements): nothing runs it.
		c.mu.Lock()
		c.done = true
		attempt := c.attempt
		c.mu.Unlock()
		err := fmt.Errorf("task: call of %s: %w (%v)", c.fn.name, errWithdrawn, cause)
		rt.ex.callerFailed(c, attempt, rt.self, err.Error())
		rt.node.FailFuture(c.id, err)
		c.release()
	case node == rt.self:
		if j, ok := rt.ex.withdraw(rt.self, c.id); ok {
			rt.completed(c.id, j.attempt, rt.self, rt.name, outcome{status: doneWithdrawn})
		}
	default:
		rt.wg.Go(func() { rt.sendWithdraw(node, c.id) })
	}
}

func (rt *Runtime) sendWithdraw(to trove.NodeID, id trove.ObjectID) {
	rep, err := rt.node.Call(rt.life, to, opWithdraw, appendIDReq(nil, rt.self, id), nil)
	if err == nil {
		err = checkAck(rep)
	}
	_ = err // unreachable: its death places the call again, which then sees it withdrawn
}

// onEvent follows the membership: calls running on a node that died or left
// are run again elsewhere (MaxRetries), and calls queued here by it dropped.
func (rt *Runtime) onEvent(ev cluster.Event) {
	if ev.Kind != cluster.EventDead && ev.Kind != cluster.EventLeft {
		return
	}
	dead := ev.Member.ID
	rt.view.remove(dead)
	rt.ex.dropOwner(dead)
	for _, c := range rt.calls.filter(func(c *call) bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		return !c.done && c.node == dead
	}) {
		rt.retry(c, dead, fmt.Errorf("its node %s %s before the call finished", ev.Member.Name, ev.Kind))
	}
}

// retry runs c again after its node died (or lost its result); it reports
// whether it will.
func (rt *Runtime) retry(c *call, dead trove.NodeID, why error) bool {
	return rt.rerun(c, dead, true, why)
}

// rerun is retry: on is the node where c's attempt ran, excluded from the
// next placement if exclude (its node died), not if only the worker process
// running it there did (why is then a *workerLost, which wraps ErrWorkerDied).
func (rt *Runtime) rerun(c *call, on trove.NodeID, exclude bool, why error) bool {
	c.mu.Lock()
	if c.node != on {
		c.mu.Unlock()
		return true // already elsewhere
	}
	if c.retries <= 0 || c.args == nil || c.withdrawn {
		attempts := c.attempt + 1
		done := c.done
		c.done = true
		c.mu.Unlock()
		if !done {
			var err error
			if exclude {
				err = fmt.Errorf("%v, after %d attempts (raise MaxRetries to try more): %w", why, attempts, trove.ErrNodeUnreachable)
			} else {
				err = fmt.Errorf("%w, after %d attempts (raise MaxRetries to try more)", why, attempts)
			}
			rt.node.FailFuture(c.id, &TaskError{Func: c.fn.name, Node: nodeName(rt.node, on), Err: err})
			c.release()
		}
		return false
	}
	c.retries--
	c.attempt++
	c.done, c.started = false, false
	c.node = trove.NodeID{}
	if exclude {
		c.excluded = append(c.excluded, on)
	}
	c.mu.Unlock()
	rt.wg.Go(func() { rt.place(c) })
	return true
}

func nodeName(n *cluster.Node, id trove.NodeID) string {
	if m, ok := n.Lookup(id); ok {
		return m.Name
	}
	return id.String()
}

// lost is FutureHooks.Lost: the result of the call id was lost with its
// node; it is computed again if the call's lineage allows.
func (rt *Runtime) lost(id trove.ObjectID, holder cluster.Member) (bool, error) {
	c := rt.calls.get(id)
	if c == nil {
		return false, errors.New("its call is not known to its owner any more")
	}
	c.mu.Lock()
	if c.node != holder.ID || !c.done {
		c.mu.Unlock()
		return false, errors.New("its call is not known to have run there")
	}
	if c.retries <= 0 || c.args == nil {
		c.mu.Unlock()
		return false, fmt.Errorf("its call of %s used its MaxRetries attempts (raise MaxRetries to try more)", c.fn.name)
	}
	c.done = false
	c.mu.Unlock()
	if !rt.retry(c, holder.ID, errors.New("its result was lost")) {
		return false, errors.New("its call could not be run again")
	}
	return true, nil
}

// freed is FutureHooks.Freed: the result's last handle is gone, and with it
// the call's lineage; a call still queued somewhere is withdrawn.
func (rt *Runtime) freed(id trove.ObjectID) {
	c := rt.calls.remove(id)
	if c == nil {
		return
	}
	c.mu.Lock()
	running := !c.done
	c.mu.Unlock()
	if running {
		rt.withdraw(c, errors.New("every ref to its result was dropped"))
	}
	c.release()
}

// serveSubmit answers opSubmit: each call is queued here, or refused.
func (rt *Runtime) serveSubmit(ctx context.Context, peer quic.Peer, body, reply []byte) ([]byte, error) {
	from, ms, err := decodeSubmits(body)
	if err != nil {
		return reply, fmt.Errorf("from %s: %w", peer.Name, err)
	}
	refused := make([]string, len(ms))
	for i, m := range ms {
		if err := rt.accept(from, peer, m); err != nil {
			refused[i] = err.Error()
		}
	}
	return appendSubmitReply(reply, refused), nil
}

// accept queues one submitted call (its literals copied out of the body).
func (rt *Runtime) accept(from trove.NodeID, peer quic.Peer, m submitReq) error {
	if m.id.Node() != from {
		return fmt.Errorf("%w: node %s submitted a call whose result %s it does not own", errMessage, peer.Name, m.id)
	}
	fn := rt.runnable(m.fn, len(m.args))
	if fn == nil {
		return fmt.Errorf("task: node %s cannot run %q: its program does not Define it and no worker attached to it registered it (attach a worker that Defines it)", rt.name, m.fn)
	}
	if len(m.args) != fn.arity {
		return fmt.Errorf("task: function %q takes %d arguments, the call passed %d (run one program across the cluster)", m.fn, fn.arity, len(m.args))
	}
	for i, lit := range m.lits {
		if lit != nil {
			m.lits[i] = slices.Clone(lit) // the body is the transport's
		}
	}
	return rt.ex.enqueue(&job{owner: from, id: m.id, attempt: m.attempt, fn: fn, need: m.need, args: m.args, lits: m.lits})
}

// serveDone answers opDone: an executor reports how calls made here ended.
func (rt *Runtime) serveDone(ctx context.Context, peer quic.Peer, body, reply []byte) ([]byte, error) {
	from, ms, err := decodeDones(body)
	if err != nil {
		return reply, fmt.Errorf("from %s: %w", peer.Name, err)
	}
	keep := make([]bool, len(ms))
	for i, m := range ms {
		keep[i] = rt.completed(m.id, m.attempt, from, m.node, outcome{status: m.status, size: m.size,
			inline: m.inline, panicked: m.panicked, msg: m.msg})
	}
	return appendDoneReply(reply, keep), nil
}

// serveWithdraw answers opWithdraw.
func (rt *Runtime) serveWithdraw(ctx context.Context, peer quic.Peer, body, reply []byte) ([]byte, error) {
	from, id, err := decodeIDReq(body)
	if err != nil {
		return reply, fmt.Errorf("from %s: %w", peer.Name, err)
	}
	if j, ok := rt.ex.withdraw(from, id); ok {
		rt.wg.Go(func() { rt.report(j, outcome{status: doneWithdrawn}) })
	}
	return append(reply, wireVersion), nil
}

// serveStatus answers opStatus.
func (rt *Runtime) serveStatus(ctx context.Context, peer quic.Peer, body, reply []byte) ([]byte, error) {
	_, known, err := decodeStatusReq(body)
	if err != nil {
		return reply, fmt.Errorf("from %s: %w", peer.Name, err)
	}
	st := rt.ex.status()
	st.gen, st.fns = rt.functions()
	if st.gen == known {
		st.fns = nil
	}
	return st.append(reply), nil
}

// peer is another runtime as this one last heard of it.
type peer struct {
	id   trove.NodeID
	name string
	st   status
	sent Resources       // what this runtime sent it since st
	n    int             // calls sent since st
	fns  map[string]bool // the functions it runs, as of st.gen
}

// runs reports whether p runs the function name (this runtime answers for itself).
func (rt *Runtime) runs(p *peer, name string) bool {
	if p.id == rt.self {
		return rt.canRun(name)
	}
	return p.fns[name]
}

type peerView struct {
	mu sync.Mutex
	m  map[trove.NodeID]*peer // guarded by mu
}

func (v *peerView) remove(id trove.NodeID) {
	v.mu.Lock()
	delete(v.m, id)
	v.mu.Unlock()
}

func (v *peerView) list() []NodeStatus {
	v.mu.Lock()
	defer v.mu.Unlock()
	out := make([]NodeStatus, 0, len(v.m))
	for _, p := range v.m {
		out = append(out, NodeStatus{Node: p.name, ID: p.id, Total: p.st.total.clone(), Free: p.st.free.clone(),
			Queued: p.st.queued, Running: p.st.running})
	}
	slices.SortFunc(out, func(a, b NodeStatus) int {
		switch {
		case a.Node < b.Node:
			return -1
		case a.Node > b.Node:
			return 1
		}
		return 0
	})
	return out
}

// refresh asks every alive member's runtime for its status (this node's
// own is read directly); members that have none, or do not answer, leave
// the view.
func (rt *Runtime) refresh(ctx context.Context) {
	type got struct {
		p  *peer
		id trove.NodeID
	}
	members := rt.node.Members()
	res := make(chan got, len(members))
	var wg sync.WaitGroup
	for _, m := range members {
		if m.State != cluster.StateAlive && m.State != cluster.StateSuspect {
			continue
		}
		if m.ID == rt.self {
			continue
		}
		var known uint64
		var fns map[string]bool
		rt.view.mu.Lock()
		if p := rt.view.m[m.ID]; p != nil {
			known, fns = p.st.gen, p.fns
		}
		rt.view.mu.Unlock()
		wg.Go(func() {
			rep, err := rt.node.Call(ctx, m.ID, opStatus, appendStatusReq(nil, rt.self, known), nil)
			var st status
			if err == nil {
				st, err = decodeStatus(rep)
			}
			if err != nil {
				res <- got{id: m.ID}
				return
			}
			if st.fns != nil {
				fns = make(map[string]bool, len(st.fns))
				for _, f := range st.fns {
					fns[f] = true
				}
			} else if st.gen != known {
				fns = nil // a reply without names for a generation never seen: refused below
			}
			st.fns = nil
			res <- got{p: &peer{id: m.ID, name: m.Name, st: st, sent: Resources{}, fns: fns}, id: m.ID}
		})
	}
	wg.Wait()
	close(res)
	self := &peer{id: rt.self, name: rt.name, st: rt.ex.status(), sent: Resources{}}
	if !rt.closed.Load() {
		rt.node.SetResources(int(self.st.total[CPU]), offered(self.st))
	}
	rt.view.mu.Lock()
	defer rt.view.mu.Unlock()
	if !rt.closed.Load() {
		rt.view.m[rt.self] = self
	}
	for g := range res {
		if g.p == nil {
			delete(rt.view.m, g.id)
		} else {
			rt.view.m[g.id] = g.p
		}
	}
	present := map[trove.NodeID]bool{rt.self: true}
	for _, m := range members {
		if m.State == cluster.StateAlive || m.State == cluster.StateSuspect {
			present[m.ID] = true
		}
	}
	for id := range rt.view.m {
		if !present[id] {
			delete(rt.view.m, id)
		}
	}
}

// refreshLoop refreshes the view every StatusInterval until Close.
func (rt *Runtime) refreshLoop() {
	t := time.NewTicker(rt.cfg.StatusInterval)
	defer t.Stop()
	for {
		select {
		case <-rt.life.Done():
			return
		case <-t.C:
			ctx, cancel := context.WithTimeout(rt.life, max(rt.cfg.StatusInterval, time.Second))
			rt.refresh(ctx)
			cancel()
		}
	}
}

// choose picks the node for c's attempt (see above).
func (rt *Runtime) choose(c *call, excluded []trove.NodeID) (trove.NodeID, error) {
	var bytesAt map[trove.NodeID]int64
	if len(c.args) > 0 {
		var buf [8]cluster.Location
		locs := rt.node.Locations(c.args, buf[:0])
		bytesAt = map[trove.NodeID]int64{}
		for _, l := range locs {
			bytesAt[l.Node] += l.Bytes
		}
		// Arguments other nodes own, and this node has no copy of: their
		// owners say where they are and how large (where.go).
		var foreign []trove.Ref
		for _, r := range c.args {
			if id := r.ID(); !id.IsZero() && id.Node() != rt.self && len(rt.node.Locations([]trove.Ref{r}, buf[:0])) == 0 {
				foreign = append(foreign, r)
			}
		}
		for _, l := range rt.foreignLocations(foreign, nil) {
			bytesAt[l.Node] += l.Bytes
		}
	}
	rt.view.mu.Lock()
	defer rt.view.mu.Unlock()
	var best *peer
	bestFree := false
	var bestLoad float64
	feasible, running := 0, 0
	for _, p := range rt.view.m {
		if !rt.runs(p, c.fn.name) {
			continue
		}
		running++
		if slices.Contains(excluded, p.id) || !p.st.total.fits(c.need) {
			continue
		}
		feasible++
		var isFree bool
		var load float64
		if p.id == rt.self {
			isFree, load = rt.ex.fitLoad(c.need)
		} else {
			free := p.st.free.clone()
			free.take(p.sent)
			isFree = free.fits(c.need)
			load = float64(p.st.running+p.st.queued+p.n) / max(p.st.total[CPU], 1)
		}
		better := false
		switch {
		case best == nil:
			better = true
		case isFree != bestFree:
			better = isFree
		case bytesAt[p.id] != bytesAt[best.id]:
			better = bytesAt[p.id] > bytesAt[best.id]
		case load != bestLoad:
			better = load < bestLoad
		case (p.id == rt.self) != (best.id == rt.self):
			better = p.id == rt.self
		default:
			better = p.name < best.name
		}
		if better {
			best, bestFree, bestLoad = p, isFree, load
		}
	}
	if best == nil {
		var largest []string
		for _, p := range rt.view.m {
			largest = append(largest, fmt.Sprintf("%s %v", p.name, p.st.total))
		}
		slices.Sort(largest)
		if running == 0 {
			return trove.NodeID{}, fmt.Errorf("task: call of %s: no node of the cluster runs %s (%d runtimes): attach a worker that Defines it to a troved (task.Attach, Worker.Serve), or Define it in an embedded node's program", c.fn.name, c.fn.name, len(rt.view.m))
		}
		if len(rt.view.m) == 0 || feasible == 0 && len(excluded) == 0 {
			return trove.NodeID{}, fmt.Errorf("task: call of %s needs %v, and no runtime of the cluster has that much (runtimes: %v): start one whose task.Config (CPUs, Resources) has it, or ask for less (task.CPUs, task.Resource)",
				c.fn.name, c.need, largest)
		}
		return trove.NodeID{}, fmt.Errorf("task: call of %s needs %v, and no runtime of the cluster that has it could take it (runtimes: %v; tried %d)",
			c.fn.name, c.need, largest, len(excluded))
	}
	if best.id != rt.self { // this node's own figures are read live
		best.sent.add(c.need)
		best.n++
	}
	return best.id, nil
}

// offered is a status as the node gossips it: CPU first, then the custom
// resources by name.
func offered(st status) []cluster.Resource {
	rs := []cluster.Resource{{Name: CPU, Total: st.total[CPU], Free: st.free[CPU]}}
	for _, k := range slices.Sorted(maps.Keys(st.total)) {
		if k != CPU {
			rs = append(rs, cluster.Resource{Name: k, Total: st.total[k], Free: st.free[k]})
		}
	}
	return rs
}

package cluster

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/trovedb/trove"
	"github.com/trovedb/trove/engine"
	"github.com/trovedb/trove/net/quic"
)

// Futures: objects this node owns whose bytes another node writes, and the
// request seam for the layers above cluster (remote functions, task/). The
// cluster knows nothing of functions; it offers:
//
//   - Handle and Call: ops from FirstLayerOp up are served by handlers the
//     layer above registers, and sent to a member by its node ID. A Call ends
//     with the caller's ctx, or with ErrNodeUnreachable once the membership
//     declares the member dead or departed (
//     Config.RequestTimeout bounds it too). Watch, Lookup and Dead expose
//     the membership to them.
//   - On the owner (the caller's node): NewFuture mints a ref to a new ID of
//     this node, with no bytes yet (engine.Store.Future). Gets of it, here and
//     on every borrowing node, wait until ResolveFuture says which node holds
//     the primary copy (and how large it is), then pull it from there like any
//     copy; FailFuture makes them fail with the error given instead. The owner
//     keeps the future's record (its holder) while any handle anywhere holds
//     it; when the last one is gone it tells the holder to free the primary
//     (opDropResult) and calls FutureHooks.Freed. When the holder dies,
//     FutureHooks.Lost says whether the result will be computed again (the
//     future is then pending again) or is lost (Gets fail with ErrObjectLost
//     and the reason).
//   - On the node that computed the result: StoreResult writes it as the
//     primary copy of the caller's ID (engine.Store.CreateResult) and keeps it
//     until its owner says to drop it, or dies.
//
// Invariants: a future is in the table from NewFuture until its engine entry
// is freed (Released); a result in the results table holds one ref on its
// primary, dropped exactly once (opDropResult, the owner's death, or Close).

// FirstLayerOp is the first request op for the layers above cluster
// (Handle). The cluster's own ops are below it.
const FirstLayerOp quic.Op = 64

// opDropResult: the owner's last handles of futures are gone; the node
// holding their results frees the primaries. Body: header, then 1 to
// maxDropBatch ids(16) (one id: the first form of the message). Reply:
// empty. The owner sends them per holder in batches: what gathers while one
// request is on its way goes in the next.
const opDropResult quic.Op = 16

// maxDropBatch bounds the ids of one opDropResult.
const maxDropBatch = 4096

// LayerHandler serves a request of an op registered with Handle. body is
// valid only during the call; the reply is appended to reply. A returned
// error reaches the caller as a *quic.RemoteError matching, with errors.Is,
// the trove error it matched.
type LayerHandler func(ctx context.Context, peer quic.Peer, body, reply []byte) ([]byte, error)

// Handle registers h to serve requests of op, which must be FirstLayerOp or
// above; a nil h unregisters it.
func (n *Node) Handle(op quic.Op, h LayerHandler) error {
	if op < FirstLayerOp {
		return fmt.Errorf("cluster: op %d is the cluster's own; layers above use %d and up", op, FirstLayerOp)
	}
	n.layer.mu.Lock()
	defer n.layer.mu.Unlock()
	if n.layer.m == nil {
		n.layer.m = map[quic.Op]LayerHandler{}
	}
	if h == nil {
		delete(n.layer.m, op)
	} else {
		n.layer.m[op] = h
	}
	return nil
}

// serveLayer serves an op of the layers above (HandleRequest).
func (n *Node) serveLayer(ctx context.Context, peer quic.Peer, op quic.Op, body, reply []byte) ([]byte, error) {
	n.layer.mu.Lock()
	h := n.layer.m[op]
	n.layer.mu.Unlock()
	if h == nil {
		return reply, fmt.Errorf("node %s serves no op %d (its program registered no handler for it: is the layer above started there?)", n.cfg.Name, op)
	}
	return h(ctx, peer, body, reply)
}

// Call sends a request of op (FirstLayerOp or above) to member to and
// returns the reply appended to reply. It ends with ctx, after
// Config.RequestTimeout, or with trove.ErrNodeUnreachable once the membership
// declares to dead or departed.
func (n *Node) Call(ctx context.Context, to trove.NodeID, op quic.Op, body, reply []byte) ([]byte, error) {
	if op < FirstLayerOp {
		return reply, fmt.Errorf("cluster: op %d is the cluster's own; layers above use %d and up", op, FirstLayerOp)
	}
	m, ok := n.members.Lookup(to)
	if !ok || m.State == StateDead || m.State == StateLeft || n.isDead(to) {
		name := m.Name
		if name == "" {
			name = to.String()
		}
		return reply, &trove.NodeError{Kind: trove.ErrNodeUnreachable, Node: name, Addr: m.Addr, Op: "call",
			Err: errors.New("it is not an alive member of the cluster")}
	}
	ctx, stop := n.memberCtx(ctx, m, "call")
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, n.cfg.RequestTimeout)
	defer cancel()
	reply, err := n.tr.Request(ctx, m.Addr, op, body, reply)
	if err != nil {
		if cause := context.Cause(ctx); errors.Is(cause, trove.ErrNodeUnreachable) {
			return reply, cause
		}
	}
	return reply, err
}

// memberCtx derives a context that ends with ErrNodeUnreachable once m is
// declared dead or leaves; stop releases it.
func (n *Node) memberCtx(ctx context.Context, m Member, op string) (context.Context, func()) {
	ctx, cancel := context.WithCancelCause(ctx)
	dead := n.deadChan(m.ID)
	go func() {
		select {
		case <-dead:
			cancel(&trove.NodeError{Kind: trove.ErrNodeUnreachable, Node: m.Name, Addr: m.Addr, Op: op,
				Err: errors.New("the membership declared it dead or departed")})
		case <-ctx.Done():
		}
	}()
	return ctx, func() { cancel(nil) }
}

// FutureHooks are what the layer above is told about its futures.
type FutureHooks struct {
	// Lost: the node holding a resolved future's result died. Return true if
	// the result will be computed again (the future is pending until the next
	// ResolveFuture or FailFuture), or false with the reason it cannot be.
	Lost func(id trove.ObjectID, holder Member) (recompute bool, why error)
	// Freed: the future's last handle, on every node, is gone.
	Freed func(id trove.ObjectID)
}

// SetFutureHooks sets the hooks of every future of this node.
func (n *Node) SetFutureHooks(h FutureHooks) {
	n.fut.mu.Lock()
	n.fut.hooks = h
	n.fut.mu.Unlock()
}

// future is the owner's record of one future.
type future struct {
	ready  chan struct{} // closed when resolved or failed; a new one while pending again
	holder trove.NodeID  // the primary's node, once resolved
	size   int64
	err    error  // the failure, once failed
	inline []byte // a small result's bytes, until the first fetch copies them
}

type futureTable struct {
	mu    sync.Mutex
	m     map[trove.ObjectID]*future // guarded by mu
	hooks FutureHooks                // guarded by mu
}

// NewFuture returns a ref to a new object this node owns, whose bytes
// another node (or this one, StoreResult) will write; see above.
func (n *Node) NewFuture() (trove.Ref, error) {
	ref, err := n.local.Future()
	if err != nil {
		return ref, err
	}
	n.fut.mu.Lock()
	if n.fut.m == nil {
		n.fut.m = map[trove.ObjectID]*future{}
	}
	n.fut.m[ref.ID()] = &future{ready: make(chan struct{})}
	n.fut.mu.Unlock()
	return ref, nil
}

// ResolveFuture records that node holder holds the sealed primary of future
// id, of size bytes: Gets waiting for it pull it from there. If inline is
// not nil it is the result's bytes (a small one): this node keeps them
// until its first Get copies them, so that Get asks nobody.
func (n *Node) ResolveFuture(id trove.ObjectID, holder trove.NodeID, size int64, inline []byte) error {
	n.fut.mu.Lock()
	f := n.fut.m[id]
	if f == nil {
		n.fut.mu.Unlock()
		return fmt.Errorf("resolve %s: no such future on node %s (its refs were all dropped): %w", id, n.cfg.Name, trove.ErrObjectFreed)
	}
	f.holder, f.size, f.err = holder, size, nil
	f.inline = nil
	if inline != nil && holder != n.self && int64(len(inline)) == size {
		// Kept here for the first Get's fetch to copy from (only the
		// fetch creates the copy: two creators of one remote entry at
		// once must not race).
		f.inline = slices.Clone(inline)
	}
	select {
	case <-f.ready:
	default:
		close(f.ready)
	}
	n.fut.mu.Unlock()
	return nil
}

// FailFuture makes every Get of future id fail with err.
func (n *Node) FailFuture(id trove.ObjectID, err error) {
	n.fut.mu.Lock()
	defer n.fut.mu.Unlock()
	f := n.fut.m[id]
	if f == nil {
		return
	}
	f.holder, f.err, f.inline = trove.NodeID{}, err, nil
	select {
	case <-f.ready:
	default:
		close(f.ready)
	}
}

// lookup returns future id's record.
func (t *futureTable) lookup(id trove.ObjectID) *future {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.m[id]
}

// state is a consistent read of f: its ready channel and, if closed, its outcome.
func (t *futureTable) state(f *future) (ready chan struct{}, holder trove.NodeID, size int64, err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return f.ready, f.holder, f.size, f.err
}

// takeInline returns and forgets f's inline bytes, if it has size of them.
func (t *futureTable) takeInline(f *future, size int64) []byte {
	t.mu.Lock()
	defer t.mu.Unlock()
	b := f.inline
	if int64(len(b)) != size || b == nil {
		return nil
	}
	f.inline = nil
	return b
}

// await waits until future id is resolved or failed, and returns its outcome.
func (n *Node) awaitFuture(ctx context.Context, id trove.ObjectID, f *future) (holder trove.NodeID, size int64, err error) {
	ready, _, _, _ := n.fut.state(f)
	select {
	case <-ready:
		_, holder, size, err = n.fut.state(f)
		return holder, size, err
	case <-ctx.Done():
		return holder, 0, fmt.Errorf("future %s: %w", id, trove.ContextError(ctx))
	case <-n.life.Done():
		return holder, 0, fmt.Errorf("future %s: node %s is closing: %w", id, n.cfg.Name, trove.ErrClosed)
	}
}

// fetchFuture is Fetch of a future this node owns: once resolved, its bytes
// are pulled from the holder into a copy here.
func (n *Node) fetchFuture(ctx context.Context, id trove.ObjectID, st *engine.Store) error {
	for round := 0; ; round++ {
		f := n.fut.lookup(id)
		if f == nil {
			return fmt.Errorf("future %s of node %s: no record of it (it was freed): %w", id, n.cfg.Name, trove.ErrObjectFreed)
		}
		holder, size, err := n.awaitFuture(ctx, id, f)
		if err != nil {
			return err
		}
		m, ok := n.members.Lookup(holder)
		if holder == n.self {
			// Stored here as the primary: the entry is sealed, not absent.
			return nil
		}
		if data := n.fut.takeInline(f, size); data != nil {
			b, err := st.CreateCopy(ctx, id, len(data))
			if errors.Is(err, engine.ErrCopyExists) {
				return nil
			}
			if err != nil {
				return err
			}
			copy(b.Bytes(), data)
			err = b.Seal()
			b.Ref().Drop()
			return err
		}
		if !ok {
			return &trove.NodeError{Kind: trove.ErrObjectLost, Node: holder.String(), Object: id, Op: "get",
				Err: errors.New("the node holding the result is not a member of the cluster")}
		}
		b, err := st.CreateCopy(ctx, id, int(size))
		if errors.Is(err, engine.ErrCopyExists) {
			return nil
		}
		if err != nil {
			return err
		}
		pctx, stop := n.memberCtx(ctx, m, "pull")
		err = n.tr.Pull(pctx, m.Addr, id, 0, b.Bytes())
		stop()
		if err == nil {
			n.ctr.pulls.Add(1)
			n.ctr.bytesIn.Add(size)
			err = b.Seal()
			b.Ref().Drop()
			return err
		}
		b.Abort()
		b.Ref().Drop()
		if ctx.Err() != nil || round >= 3 {
			return &trove.NodeError{Kind: trove.ErrObjectLost, Node: m.Name, Addr: m.Addr, Object: id, Op: "pull",
				Err: fmt.Errorf("the node holding the result could not serve it: %w", err)}
		}
		// The holder may be dying: wait (bounded) for the membership to say
		// so; its death makes the future pending again or lost (holderDied).
		t := time.NewTimer(n.cfg.RequestTimeout)
		select {
		case <-n.deadChan(holder):
		case <-t.C:
		case <-ctx.Done():
		}
		t.Stop()
		if !n.isDead(holder) {
			return &trove.NodeError{Kind: trove.ErrObjectLost, Node: m.Name, Addr: m.Addr, Object: id, Op: "pull",
				Err: fmt.Errorf("the node holding the result could not serve it: %w", err)}
		}
		n.holderDied(holder) // idempotent: the event may not have been handled yet
	}
}

// locateFuture answers opLocate for a future this node owns: once it is
// resolved, its bytes if it is small (a copy made here first), else the node
// holding its primary after the holders of copies.
func (n *Node) locateFuture(ctx context.Context, id trove.ObjectID, f *future, reply []byte) ([]byte, error) {
	holder, size, err := n.awaitFuture(ctx, id, f)
	if err != nil {
		return reply, err
	}
	if size <= n.inlineMax || holder == n.self {
		ref, err := n.local.Borrow(id)
		if err != nil {
			return reply, err
		}
		defer ref.Drop()
		obj, err := n.local.Get(ctx, ref)
		if err != nil {
			return reply, err
		}
		defer obj.Release()
		if int64(obj.Size()) <= n.inlineMax {
			n.ctr.bytesOut.Add(int64(obj.Size()))
			return appendInlineReply(reply, obj.Bytes()), nil
		}
		return appendLocationsReply(reply, int64(obj.Size()), fullLocations(n.holderAddrs(id, trove.NodeID{}))), nil
	}
	m, ok := n.members.Lookup(holder)
	if !ok || m.State == StateDead || m.State == StateLeft {
		return reply, &trove.NodeError{Kind: trove.ErrObjectLost, Node: holder.String(), Object: id, Op: "locate",
			Err: errors.New("the node holding the result has left the cluster")}
	}
	return appendLocationsReply(reply, size, fullLocations(n.holderAddrs(id, holder))), nil
}

// holderAddrs lists the addresses to pull id from: holders of copies, then
// primary's node (this one if primary is zero).
func (n *Node) holderAddrs(id trove.ObjectID, primary trove.NodeID) []string {
	var ids [8]trove.NodeID
	addrs := make([]string, 0, 4)
	for _, node := range n.own.holders(id, ids[:0]) {
		if m, ok := n.members.Lookup(node); ok && m.State == StateAlive && len(m.Addr) <= maxAddr && len(addrs) < maxHolders-1 {
			addrs = append(addrs, m.Addr)
		}
	}
	if primary == (trove.NodeID{}) {
		return append(addrs, n.Addr())
	}
	m, _ := n.members.Lookup(primary)
	return append(addrs, m.Addr)
}

// releasedFuture handles the free of a future's engine entry (its last
// handle on every node gone): the holder is told to free the primary.
func (n *Node) releasedFuture(id trove.ObjectID) {
	n.fut.mu.Lock()
	f := n.fut.m[id]
	delete(n.fut.m, id)
	hooks := n.fut.hooks
	n.fut.mu.Unlock()
	if f == nil {
		return
	}
	if f.holder != (trove.NodeID{}) && f.holder != n.self && f.err == nil {
		n.drops.add(n, f.holder, id)
	}
	if hooks.Freed != nil {
		hooks.Freed(id)
	}
}

// dropLanes are the opDropResult batches waiting per holder.
type dropLanes struct {
	mu sync.Mutex
	m  map[trove.NodeID]*dropLane // guarded by mu
}

type dropLane struct {
	ids []trove.ObjectID // guarded by dropLanes.mu
}

// add queues id's drop for holder; the lane's goroutine starts if none runs.
func (d *dropLanes) add(n *Node, holder trove.NodeID, id trove.ObjectID) {
	d.mu.Lock()
	if d.m == nil {
		d.m = map[trove.NodeID]*dropLane{}
	}
	l := d.m[holder]
	start := l == nil
	if start {
		l = &dropLane{}
		d.m[holder] = l
	}
	l.ids = append(l.ids, id)
	d.mu.Unlock()
	if start {
		go n.dropResults(holder, l)
	}
}

// take returns up to maxDropBatch of l's ids, or none (and retires l).
func (d *dropLanes) take(holder trove.NodeID, l *dropLane, dst []trove.ObjectID) []trove.ObjectID {
	d.mu.Lock()
	defer d.mu.Unlock()
	k := min(len(l.ids), maxDropBatch)
	dst = append(dst[:0], l.ids[:k]...)
	rest := copy(l.ids, l.ids[k:])
	l.ids = l.ids[:rest]
	if k == 0 {
		delete(d.m, holder)
	}
	return dst
}

// dropResults tells holder to free the results of its lane, a batch at a
// time, each retried until the holder takes it, dies or leaves, or this
// node closes.
func (n *Node) dropResults(holder trove.NodeID, l *dropLane) {
	req, rep := bufs.Get(), bufs.Get()
	defer bufs.Put(req)
	defer bufs.Put(rep)
	var ids []trove.ObjectID
	for {
		ids = n.drops.take(holder, l, ids)
		if len(ids) == 0 {
			return
		}
		req.B = appendDropResults(req.B[:0], n.self, ids)
	retry:
		for {
			m, ok := n.members.Lookup(holder)
			if !ok || m.State == StateDead || m.State == StateLeft || n.isDead(holder) {
				break
			}
			err := n.request(n.life, m.Addr, opDropResult, req.B, &rep.B)
			if err == nil || n.life.Err() != nil {
				break
			}
			select {
			case <-time.After(n.retryDelay()):
			case <-n.deadChan(holder):
				break retry
			case <-n.life.Done():
				break retry
			}
		}
	}
}

func appendDropResults(b []byte, from trove.NodeID, ids []trove.ObjectID) []byte {
	b = appendHeader(b, from)
	for _, id := range ids {
		b = append(b, id[:]...)
	}
	return b
}

// decodeDropResults decodes an opDropResult body: its sender and the ids,
// each owned by the sender.
func decodeDropResults(body []byte) (trove.NodeID, []trove.ObjectID, error) {
	if len(body) < headerLen+idLen || (len(body)-headerLen)%idLen != 0 || (len(body)-headerLen)/idLen > maxDropBatch || body[0] != wireVersion {
		return trove.NodeID{}, nil, fmt.Errorf("%w: %d-byte drop-result request", errMessage, len(body))
	}
	from := trove.NodeID(body[1:headerLen])
	ids := make([]trove.ObjectID, (len(body)-headerLen)/idLen)
	for i := range ids {
		ids[i] = trove.ObjectID(body[headerLen+i*idLen:])
		if ids[i].Node() != from {
			return trove.NodeID{}, nil, fmt.Errorf("%w: node %s asked to drop %s, which it does not own", errMessage, from, ids[i])
		}
	}
	return from, ids, nil
}

// holderDied handles the death of a node holding results of this node's
// futures: each is pending again while FutureHooks.Lost decides, then
// computed again, or failed with the reason it cannot be. (Pending first: a
// recomputation may resolve the future before Lost returns.)
func (n *Node) holderDied(dead trove.NodeID) {
	n.fut.mu.Lock()
	hooks := n.fut.hooks
	var lost []trove.ObjectID
	for id, f := range n.fut.m {
		if f.holder == dead && f.err == nil {
			lost = append(lost, id)
			f.holder, f.size, f.inline = trove.NodeID{}, 0, nil
			f.ready = make(chan struct{})
		}
	}
	n.fut.mu.Unlock()
	m, _ := n.members.Lookup(dead)
	for _, id := range lost {
		recompute, why := false, errors.New("no layer above keeps how to compute it again")
		if hooks.Lost != nil {
			recompute, why = hooks.Lost(id, m)
		}
		if !recompute {
			n.FailFuture(id, &trove.NodeError{Kind: trove.ErrObjectLost, Node: m.Name, Addr: m.Addr, Object: id, Op: "get",
				Err: fmt.Errorf("the only copy of this result was on that node, which died, and it cannot be computed again: %w", why)})
		}
	}
}

// results is a node's table of the results it stores for other nodes' futures.
type results struct {
	mu sync.Mutex
	m  map[trove.ObjectID]trove.Ref // guarded by mu: one ref on each primary
}

// StoreResult writes a result of size bytes as the primary copy of id, a
// future of another node (or of this one), with fill; it holds each of
// contains alive while it lives. The node keeps it until the owner says to
// drop it (its last handle gone) or dies. The caller then reports it to the
// owner, which calls ResolveFuture.
func (n *Node) StoreResult(ctx context.Context, id trove.ObjectID, size int, contains []trove.Ref, fill func(dst []byte) error) error {
	b, err := n.CreateResult(ctx, id, size, contains)
	if err != nil {
		return err
	}
	if err := fill(b.Bytes()); err != nil {
		b.Abort()
		b.Ref().Drop()
		return err
	}
	if err := b.Seal(); err != nil {
		b.Ref().Drop()
		return err
	}
	return n.KeepResult(b.Ref())
}

// CreateResult is StoreResult's first half, for a result written by
// another process of this node (a task worker, through the ipc daemon,
// which is the ipc.ResultStore): a builder of the pending primary copy of
// id. The caller MUST either Abort it and drop its ref, or Seal it and hand
// its ref to KeepResult.
func (n *Node) CreateResult(ctx context.Context, id trove.ObjectID, size int, contains []trove.Ref) (*engine.Builder, error) {
	if id.Node() != n.self && n.isDead(id.Node()) {
		return nil, n.ownerDied(id, "store result")
	}
	return n.local.CreateResult(ctx, id, size, contains)
}

// KeepResult is StoreResult's second half: ref is the sealed result's
// builder's ref, which the node keeps while the result's owner wants it
// (DropResult), or drops at once if the owner is this node (the future's
// own handles keep it alive).
func (n *Node) KeepResult(ref trove.Ref) error {
	id := ref.ID()
	if id.Node() == n.self {
		ref.Drop()
		return nil
	}
	n.res.mu.Lock()
	if n.res.m == nil {
		n.res.m = map[trove.ObjectID]trove.Ref{}
	}
	old, dup := n.res.m[id]
	n.res.m[id] = ref
	n.res.mu.Unlock()
	if dup {
		old.Drop()
	}
	if n.isDead(id.Node()) {
		n.forgetResults(id.Node())
		return n.ownerDied(id, "store result")
	}
	return nil
}

// DropResult frees the result id if this node stores it (its caller no
// longer wants it).
func (n *Node) DropResult(id trove.ObjectID) {
	n.res.mu.Lock()
	ref, ok := n.res.m[id]
	delete(n.res.m, id)
	n.res.mu.Unlock()
	if ok {
		ref.Drop()
	}
}

// forgetResults drops the results stored for owner, which died or left.
func (n *Node) forgetResults(owner trove.NodeID) {
	var drop []trove.Ref
	n.res.mu.Lock()
	for id, ref := range n.res.m {
		if id.Node() == owner {
			drop = append(drop, ref)
			delete(n.res.m, id)
		}
	}
	n.res.mu.Unlock()
	for _, r := range drop {
		r.Drop()
	}
}

// dropAllResults drops every stored result (the node is closing).
func (n *Node) dropAllResults() {
	n.res.mu.Lock()
	m := n.res.m
	n.res.m = nil
	n.res.mu.Unlock()
	for _, r := range m {
		r.Drop()
	}
}

// serveDropResult answers opDropResult.
func (n *Node) serveDropResult(body, reply []byte) ([]byte, error) {
	_, ids, err := decodeDropResults(body)
	if err != nil {
		return reply, err
	}
	for _, id := range ids {
		n.DropResult(id)
	}
	return append(reply, wireVersion), nil
}

// Results is the number of results this node stores for other nodes' futures.
func (n *Node) Results() int {
	n.res.mu.Lock()
	defer n.res.mu.Unlock()
	return len(n.res.m)
}

// Futures is the number of this node's futures still referenced.
func (n *Node) Futures() int {
	n.fut.mu.Lock()
	defer n.fut.mu.Unlock()
	return len(n.fut.m)
}

// Watch calls fn with every membership event from now on, in order, from one
// goroutine; cancel stops it.
func (n *Node) Watch(fn func(Event)) (cancel func()) { return n.members.Watch(fn) }

// Lookup returns the member whose store has node ID id, as this node knows it.
func (n *Node) Lookup(id trove.NodeID) (Member, bool) { return n.members.Lookup(id) }

// Dead is closed once node id is declared dead or has left.
func (n *Node) Dead(id trove.NodeID) <-chan struct{} { return n.deadChan(id) }

// Location is where some of an object's bytes are: a node holding a sealed
// copy (or the primary), and the object's size.
type Location struct {
	Node  trove.NodeID
	Bytes int64
}

// Locations appends, for each of refs, the nodes known here to hold its
// bytes: for objects this node owns, its own primary and the copies its
// borrowers reported; for its futures, the node holding the result; for
// other nodes' objects, this node if it holds a copy. It asks nobody.
func (n *Node) Locations(refs []trove.Ref, dst []Location) []Location {
	var ids [8]trove.NodeID
	for _, r := range refs {
		id := r.ID()
		if id.Node() == n.self {
			if f := n.fut.lookup(id); f != nil {
				ready, holder, size, err := n.fut.state(f)
				select {
				case <-ready:
					if err == nil {
						dst = append(dst, Location{holder, size})
					}
				default:
				}
				continue
			}
		}
		obj, err := n.local.TryGet(r)
		if err != nil || obj == nil {
			continue // not here, or not sealed yet
		}
		size := int64(obj.Size())
		obj.Release()
		dst = append(dst, Location{n.self, size})
		if id.Node() == n.self {
			for _, h := range n.own.holders(id, ids[:0]) {
				dst = append(dst, Location{h, size})
			}
		}
	}
	return dst
}

// Done is closed when the node closes (or crashes: CloseAbruptly).
func (n *Node) Done() <-chan struct{} { return n.life.Done() }

// CloseAbruptly stops the node without leaving the cluster, as a crash
// would: its transport and store close at once, and the others declare it
// dead when it stops answering their probes. It is for tests of the
// failure handling of the layers above (and chaos tools); use Close
// otherwise.
func (n *Node) CloseAbruptly() error {
	if !n.markClosed() {
		return nil
	}
	return n.shutdown()
}

// offer is what a node offers the layers above (SetResources).
type offer struct {
	slots int
	rs    []Resource
}

// SetResources sets the CPU slots and resources this node offers the layers
// above (remote functions), gossiped with its meta every StatsInterval (at
// most 8 resources, names of at most 32 bytes; others are not gossiped) and
// listed in its Member: `trove status` shows them.
func (n *Node) SetResources(slots int, rs []Resource) {
	n.offered.Store(&offer{slots: slots, rs: slices.Clone(rs)})
}

func (n *Node) offer() (int, []Resource) {
	o := n.offered.Load()
	if o == nil {
		return 0, nil
	}
	return o.slots, o.rs
}

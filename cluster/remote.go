package cluster

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/trovedb/trove"
	"github.com/trovedb/trove/engine"
	"github.com/trovedb/trove/net/quic"
)

// The borrower's side: the Node as its local store's engine.Remote.

// remote is the Node as its store's engine.Remote.
type remote Node

var _ engine.Remote = (*remote)(nil)

// maxObjectSize bounds the size a locate reply may announce (CreateCopy then
// refuses what does not fit this node's capacity).
const maxObjectSize = 1 << 62

// Fetch brings a sealed copy of id into st: it asks the owner (waiting, as a
// future, until the owner has sealed it), then writes the inline bytes of a
// small object into a CreateCopy builder, or pulls a large one's chunks
// straight into the builder from the locations the owner named, several
// holders at once (swarmPull, pull.go), seals it and tells the owner it holds
// a copy.
// Small objects are also kept in a bounded, lossy cache (smallCache), so that
// fetching one again (its arena copy evicted, or dropped and borrowed anew)
// asks nobody.
func (r *remote) Fetch(ctx context.Context, id trove.ObjectID, st *engine.Store) (err error) {
	n := (*Node)(r)
	n.ctr.remoteGets.Add(1)
	defer func() {
		switch {
		case err == nil:
		case errors.Is(ctx.Err(), context.Canceled):
			n.ctr.fetchesCancelled.Add(1) // nobody wants it any more: not a failure
		default:
			n.ctr.fetchErrors.Add(1)
		}
	}()
	if id.Node() == n.self {
		return n.fetchFuture(ctx, id, st)
	}
	m, err := n.owner(id, "get")
	if err != nil {
		return err
	}
	ctx, stop := n.ownerCtx(ctx, id, "get")
	defer stop()
	if data, ok := n.small.get(id); ok {
		n.ctr.cacheHits.Add(1)
		return n.copyInline(ctx, st, id, data)
	}
	req, rep := bufs.Get(), bufs.Get()
	defer bufs.Put(req)
	defer bufs.Put(rep)
	req.B = appendIDRequest(req.B[:0], n.self, id)
	rep.B, err = n.tr.Request(ctx, m.Addr, opLocate, req.B, rep.B[:0])
	if err != nil {
		return n.settle(ctx, id, err)
	}
	loc, err := decodeLocateReply(rep.B, maxObjectSize)
	if err != nil {
		return fmt.Errorf("locate %s at node %s: %w", id, m.Name, err)
	}
	b, err := st.CreateCopy(ctx, id, int(loc.size))
	if errors.Is(err, engine.ErrCopyExists) {
		return nil
	}
	if err != nil {
		return err
	}
	defer b.Ref().Drop()
	if loc.locs == nil {
		n.ctr.remoteInline.Add(1)
		copy(b.Bytes(), loc.inline)
		n.small.put(id, loc.inline)
	} else {
		n.ctr.pulls.Add(1)
		if err := n.swarmPull(ctx, m, id, loc, b.Bytes()); err != nil {
			b.Abort()
			return err
		}
	}
	n.ctr.bytesIn.Add(loc.size)
	if err := b.Seal(); err != nil {
		return err
	}
	n.outq.push(id.Node(), update{kind: updateCopied, id: id})
	return nil
}

// copyInline makes id's copy in st from bytes this node already has (the
// small-object cache), and tells the owner it holds one.
func (n *Node) copyInline(ctx context.Context, st *engine.Store, id trove.ObjectID, data []byte) error {
	b, err := st.CreateCopy(ctx, id, len(data))
	if errors.Is(err, engine.ErrCopyExists) {
		return nil
	}
	if err != nil {
		return err
	}
	defer b.Ref().Drop()
	copy(b.Bytes(), data)
	if err := b.Seal(); err != nil {
		return err
	}
	n.outq.push(id.Node(), update{kind: updateCopied, id: id})
	return nil
}

// settle is the error of a call to id's owner that failed with err. An owner
// that cannot be reached, or says it is closing, may be dying (a crashed node's connections break
// before the membership declares it dead): wait, up to Config.RequestTimeout,
// for the membership to say so, and report ErrOwnerDied if it does, rather
// than an ErrNodeUnreachable the caller might retry forever.
func (n *Node) settle(ctx context.Context, id trove.ObjectID, err error) error {
	// ErrClosed from the owner: it is shutting down (closed or crashing).
	if !errors.Is(err, trove.ErrNodeUnreachable) && !errors.Is(err, trove.ErrClosed) || ctx.Err() != nil {
		return ownerErr(ctx, err)
	}
	t := time.NewTimer(n.cfg.RequestTimeout)
	defer t.Stop()
	select {
	case <-ctx.Done(): // the owner's death (ownerCtx), or the caller
	case <-t.C:
	}
	return ownerErr(ctx, err)
}

// ownerErr is err, or the owner's death if that is what ended ctx.
func ownerErr(ctx context.Context, err error) error {
	if cause := context.Cause(ctx); errors.Is(cause, trove.ErrOwnerDied) {
		return cause
	}
	return err
}

// borrowing is this node's count of live Borrowed registrations of a foreign ID.
type borrowing struct {
	count int
	reg   chan struct{} // non-nil while the first registration's request is under way; closed when it ends
}

type borrowTable struct {
	mu sync.Mutex
	m  map[trove.ObjectID]*borrowing // guarded by mu
}

// Borrowed registers this node as a borrower of id with its owner, once per
// ID while this node borrows it (later registrations are counted here).
func (r *remote) Borrowed(ctx context.Context, id trove.ObjectID) error {
	n := (*Node)(r)
	t := &n.bor
	for {
		t.mu.Lock()
		b := t.m[id]
		if b != nil && b.reg == nil {
			b.count++
			t.mu.Unlock()
			return nil
		}
		if b != nil {
			ch := b.reg
			t.mu.Unlock()
			<-ch
			continue
		}
		b = &borrowing{reg: make(chan struct{})}
		t.m[id] = b
		t.mu.Unlock()
		err := n.register(ctx, id)
		var answered *quic.RemoteError
		if err != nil && errors.Is(err, trove.ErrNodeUnreachable) && !errors.As(err, &answered) && !errors.Is(err, trove.ErrOwnerDied) {
			// The owner may have registered this node before the call
			// failed (a reply lost, a deadline passed): undo it. An owner
			// that had not registered it ignores the release.
			n.outq.push(id.Node(), update{kind: updateRelease, id: id})
		}
		t.mu.Lock()
		if err != nil {
			delete(t.m, id)
		} else {
			b.count = 1
		}
		ch := b.reg
		b.reg = nil
		t.mu.Unlock()
		close(ch)
		return err
	}
}

// register sends opBorrow to id's owner.
func (n *Node) register(ctx context.Context, id trove.ObjectID) error {
	m, err := n.owner(id, "borrow")
	if err != nil {
		return err
	}
	ctx, stop := n.ownerCtx(ctx, id, "borrow")
	defer stop()
	req, rep := bufs.Get(), bufs.Get()
	defer bufs.Put(req)
	defer bufs.Put(rep)
	req.B = appendIDRequest(req.B[:0], n.self, id)
	if err := n.request(ctx, m.Addr, opBorrow, req.B, &rep.B); err != nil {
		return n.settle(ctx, id, err)
	}
	return checkEmptyReply(rep.B)
}

// Released queues the release of id for its owner (sent in a batch).
func (r *remote) Released(id trove.ObjectID) {
	n := (*Node)(r)
	if id.Node() == n.self {
		n.releasedFuture(id) // only futures are remote entries of this node's own IDs
		return
	}
	t := &n.bor
	t.mu.Lock()
	b := t.m[id]
	last := false
	if b != nil && b.reg == nil {
		b.count--
		if last = b.count == 0; last {
			delete(t.m, id)
		}
	}
	t.mu.Unlock()
	if last && !n.isDead(id.Node()) {
		n.outq.push(id.Node(), update{kind: updateRelease, id: id})
	}
}

// borrowed is the number of foreign IDs this node borrows.
func (t *borrowTable) len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.m)
}

// updateQueue gathers the releases and new copies this node owes owners.
type updateQueue struct {
	mu   sync.Mutex
	m    map[trove.NodeID][]update // by owner; guarded by mu
	wake chan struct{}
}

func (q *updateQueue) init() {
	q.m = map[trove.NodeID][]update{}
	q.wake = make(chan struct{}, 1)
}

func (q *updateQueue) push(owner trove.NodeID, u update) {
	q.mu.Lock()
	q.m[owner] = append(q.m[owner], u)
	q.mu.Unlock()
	q.poke()
}

func (q *updateQueue) poke() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

func (q *updateQueue) take() map[trove.NodeID][]update {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.m) == 0 {
		return nil
	}
	m := q.m
	q.m = map[trove.NodeID][]update{}
	return m
}

// requeue puts back updates an owner did not take.
func (q *updateQueue) requeue(owner trove.NodeID, us []update) {
	q.mu.Lock()
	q.m[owner] = append(us, q.m[owner]...)
	q.mu.Unlock()
}

// forgetNode drops what was owed to a node that died or left.
func (q *updateQueue) forgetNode(owner trove.NodeID) {
	q.mu.Lock()
	delete(q.m, owner)
	q.mu.Unlock()
}

// pending is the number of updates not yet sent.
func (q *updateQueue) pending() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	n := 0
	for _, us := range q.m {
		n += len(us)
	}
	return n
}

// sendUpdates runs until Close: it gathers updates for ReleaseDelay after the
// first, then sends one batch per owner; a batch an owner did not take is
// sent again after DefaultRetryDelay, until the owner takes it or is declared
// dead (then it is dropped: the owner has forgotten this node).
func (n *Node) sendUpdates() {
	for {
		select {
		case <-n.outq.wake:
		case <-n.life.Done():
			return
		}
		select {
		case <-time.After(n.cfg.ReleaseDelay):
		case <-n.life.Done():
			return
		}
		if failed := n.flushUpdates(n.life); failed {
			time.AfterFunc(n.retryDelay(), n.outq.poke)
		}
	}
}

// flushUpdates sends every queued update, one batch per owner in parallel,
// and reports whether some must be sent again.
func (n *Node) flushUpdates(ctx context.Context) (failed bool) {
	batch := n.outq.take()
	var (
		wg sync.WaitGroup
		mu sync.Mutex
	)
	for owner, us := range batch {
		wg.Go(func() {
			for len(us) > 0 {
				k := min(len(us), maxUpdates)
				if err := n.sendBatch(ctx, owner, us[:k]); err != nil {
					if !n.isDead(owner) && ctx.Err() == nil {
						n.outq.requeue(owner, us)
						mu.Lock()
						failed = true
						mu.Unlock()
					}
					return
				}
				us = us[k:]
			}
		})
	}
	wg.Wait()
	return failed
}

func (n *Node) sendBatch(ctx context.Context, owner trove.NodeID, us []update) error {
	m, ok := n.members.Lookup(owner)
	if !ok || m.State == StateDead || m.State == StateLeft {
		return errors.New("owner gone")
	}
	req, rep := bufs.Get(), bufs.Get()
	defer bufs.Put(req)
	defer bufs.Put(rep)
	req.B = appendUpdates(req.B[:0], n.self, us)
	if err := n.request(ctx, m.Addr, opUpdate, req.B, &rep.B); err != nil {
		n.log.Info("cluster: owner did not take a batch of releases; retrying", "owner", m.Name, "updates", len(us), "err", err)
		return err
	}
	return checkEmptyReply(rep.B)
}

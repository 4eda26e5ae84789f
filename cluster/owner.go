package cluster

import (
	"context"
	"fmt"
	"io"
	"slices"
	"sync"

	"github.com/trovedb/trove"
	"github.com/trovedb/trove/engine"
	"github.com/trovedb/trove/net/quic"
	"github.com/trovedb/trove/swarm"
)

// The owner's side. A node owns the objects it creates (their IDs name it);
// for every one that another node borrows it keeps an ownedMeta: which nodes
// borrow it (and how many registrations each has outstanding) and which of
// them hold a sealed copy. The object's size and seal state are the local
// store's own. The meta holds one engine ref on the primary (an engine.Hold: a count
// without a Ref handle), which keeps it
// (and, through it, what it contains) alive for all borrowing nodes together:
// the primary lives while any local handle, containing object or borrowing
// node holds it. The meta goes, and the ref with it, when the last borrower
// releases the object or is declared dead.
//
// Copies need no separate order to drop: every node that holds a copy holds
// a ref to it, so it is a borrower, and its release arrives only after its
// last handle is gone and its copy freed (engine.Remote.Released). When the
// owner frees the primary, then, no copy is left anywhere; and a borrower that
// dies takes its copies with it. So the engine needs no "owned object freed"
// callback, and EvictCopy is not used for frees.

// ownedMeta is what an owner keeps per borrowed object, beyond its store's
// entry: the engine hold and the first borrowing node inline (one
// allocation of 40 bytes), the others and any partial copies being pulled,
// rarely any, apart.
type ownedMeta struct {
	hold  engine.Hold    // the count held on the primary for the borrowers
	one   borrower       // the first borrowing node; count 0 when there is none
	more  *[]borrower    // the other borrowing nodes
	pulls *[]partialCopy // borrowing nodes still pulling the object (opPulling), rarely any
}

// partialCopy is a borrowing node's copy in progress, as it last said.
type partialCopy struct {
	node    trove.NodeID
	chunk   int64        // its chunk size
	have    swarm.Bitmap // the chunks it holds (the owner's own copy of the bits)
	pending swarm.Bitmap // the chunks it is fetching (as many as have)
}

// setPull records node's partial copy, replacing what it said before.
func (m *ownedMeta) setPull(node trove.NodeID, chunk int64, have, pending swarm.Bitmap) {
	if m.pulls == nil {
		m.pulls = new([]partialCopy)
	}
	for i := range *m.pulls {
		if p := &(*m.pulls)[i]; p.node == node {
			p.chunk, p.have, p.pending = chunk, have, pending
			return
		}
	}
	*m.pulls = append(*m.pulls, partialCopy{node: node, chunk: chunk, have: have, pending: pending})
}

// endPull forgets node's partial copy, if any.
func (m *ownedMeta) endPull(node trove.NodeID) {
	if m.pulls == nil {
		return
	}
	*m.pulls = slices.DeleteFunc(*m.pulls, func(p partialCopy) bool { return p.node == node })
	if len(*m.pulls) == 0 {
		m.pulls = nil
	}
}

// borrower is one node borrowing an owned object.
type borrower struct {
	node  trove.NodeID
	count uint32 // registrations (opBorrow) not yet released
	copy  bool   // it told the owner it holds a sealed copy
}

// find returns node's record, or nil.
func (m *ownedMeta) find(node trove.NodeID) *borrower {
	if m.one.node == node {
		return &m.one
	}
	if m.more != nil {
		for i := range *m.more {
			if (*m.more)[i].node == node {
				return &(*m.more)[i]
			}
		}
	}
	return nil
}

// add records node's first registration.
func (m *ownedMeta) add(node trove.NodeID) {
	b := borrower{node: node, count: 1}
	if m.one.count == 0 {
		m.one = b
		return
	}
	if m.more == nil {
		m.more = new([]borrower)
	}
	*m.more = append(*m.more, b)
}

// remove forgets node, which must be recorded (its count may be zero
// already); it reports whether no borrower is left.
func (m *ownedMeta) remove(node trove.NodeID) bool {
	if m.one.node == node {
		m.one = borrower{}
		if m.more != nil {
			last := len(*m.more) - 1
			m.one = (*m.more)[last]
			*m.more = (*m.more)[:last]
		}
	} else if m.more != nil {
		*m.more = slices.DeleteFunc(*m.more, func(b borrower) bool { return b.node == node })
	}
	if m.more != nil && len(*m.more) == 0 {
		m.more = nil
	}
	return m.one.count == 0
}

// each calls fn for every borrowing node.
func (m *ownedMeta) each(fn func(*borrower)) {
	if m.one.count == 0 {
		return
	}
	fn(&m.one)
	if m.more != nil {
		for i := range *m.more {
			fn(&(*m.more)[i])
		}
	}
}

const ownerShards = 32

type ownerShard struct {
	mu sync.Mutex
	m  map[trove.ObjectID]*ownedMeta // guarded by mu
}

// ownerTable holds the metas of a node's owned objects that others borrow.
type ownerTable struct {
	st     *engine.Store // the holds are on its objects
	shards [ownerShards]ownerShard
}

func (t *ownerTable) init(st *engine.Store) {
	t.st = st
	for i := range t.shards {
		t.shards[i].m = map[trove.ObjectID]*ownedMeta{}
	}
}

func (t *ownerTable) shard(id trove.ObjectID) *ownerShard {
	return &t.shards[int(id[15])%ownerShards]
}

// borrow registers one more borrow of id by node, taking the engine ref if it
// is the object's first borrow.
func (t *ownerTable) borrow(node trove.NodeID, id trove.ObjectID) error {
	sh := t.shard(id)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	m := sh.m[id]
	if m == nil {
		hold, err := t.st.HoldID(id) // never blocks: id is this store's own
		if err != nil {
			return err
		}
		m = &ownedMeta{hold: hold}
		sh.m[id] = m
	}
	if b := m.find(node); b != nil {
		b.count++
		return nil
	}
	m.add(node)
	return nil
}

// release ends one borrow of id by node; when the last borrow of the last
// borrower ends it gives the hold back (outside the lock) and reports true.
func (t *ownerTable) release(node trove.NodeID, id trove.ObjectID) bool {
	sh := t.shard(id)
	sh.mu.Lock()
	m := t.releaseLocked(sh, node, id)
	sh.mu.Unlock()
	if m == nil {
		return false
	}
	t.st.Unhold(m.hold)
	return true
}

// releaseLocked is release under sh.mu: it returns the meta it removed.
func (t *ownerTable) releaseLocked(sh *ownerShard, node trove.NodeID, id trove.ObjectID) *ownedMeta {
	m := sh.m[id]
	if m == nil {
		return nil
	}
	b := m.find(node)
	if b == nil {
		return nil
	}
	// A release means the node's entry, and its copy with it, is gone; a
	// later borrow of the same node (counted here) has no copy yet.
	b.copy = false
	m.endPull(node)
	if b.count--; b.count > 0 || !m.remove(node) {
		return nil
	}
	delete(sh.m, id)
	return m
}

// copied records that node holds a sealed copy of id (its partial one, if
// it had told of it, is now full).
func (t *ownerTable) copied(node trove.NodeID, id trove.ObjectID) {
	sh := t.shard(id)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if m := sh.m[id]; m != nil {
		if b := m.find(node); b != nil {
			b.copy = true
			m.endPull(node)
		}
	}
}

// pulling records that node, a borrower of id, is pulling it, holds the
// chunks in have (of chunk bytes each) and is fetching those in pending. A
// node that does not borrow id (its release crossed this message) is not
// recorded.
func (t *ownerTable) pulling(node trove.NodeID, id trove.ObjectID, chunk int64, have, pending swarm.Bitmap) {
	sh := t.shard(id)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if m := sh.m[id]; m != nil {
		if b := m.find(node); b != nil && !b.copy {
			m.setPull(node, chunk, have, pending)
		}
	}
}

// pullEnded forgets node's partial copy of id: its pull failed.
func (t *ownerTable) pullEnded(node trove.NodeID, id trove.ObjectID) {
	sh := t.shard(id)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if m := sh.m[id]; m != nil {
		m.endPull(node)
	}
}

// partials appends the partial copies of id (their bitmaps are the table's
// own: the caller only reads them, and a later pulling replaces, never
// changes, a bitmap).
func (t *ownerTable) partials(id trove.ObjectID, dst []partialCopy) []partialCopy {
	sh := t.shard(id)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if m := sh.m[id]; m != nil && m.pulls != nil {
		dst = append(dst, *m.pulls...)
	}
	return dst
}

// holders appends the nodes that hold sealed copies of id.
func (t *ownerTable) holders(id trove.ObjectID, dst []trove.NodeID) []trove.NodeID {
	sh := t.shard(id)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if m := sh.m[id]; m != nil {
		m.each(func(b *borrower) {
			if b.copy {
				dst = append(dst, b.node)
			}
		})
	}
	return dst
}

// forgetNode drops every borrow of node (declared dead or departed) and
// reports how many objects it borrowed.
func (t *ownerTable) forgetNode(node trove.NodeID) int {
	type held struct {
		hold engine.Hold
	}
	var drop []held
	n := 0
	for i := range t.shards {
		sh := &t.shards[i]
		sh.mu.Lock()
		for id, m := range sh.m {
			if m.find(node) == nil {
				continue
			}
			n++
			m.endPull(node)
			if m.remove(node) {
				delete(sh.m, id)
				drop = append(drop, held{m.hold})
			}
		}
		sh.mu.Unlock()
	}
	for _, h := range drop {
		t.st.Unhold(h.hold)
	}
	return n
}

// dropAll forgets every meta (the node is closing).
func (t *ownerTable) dropAll() {
	for i := range t.shards {
		sh := &t.shards[i]
		sh.mu.Lock()
		m := sh.m
		sh.m = map[trove.ObjectID]*ownedMeta{}
		sh.mu.Unlock()
		for _, o := range m {
			t.st.Unhold(o.hold)
		}
	}
}

// len is the number of owned objects other nodes borrow.
func (t *ownerTable) len() int {
	n := 0
	for i := range t.shards {
		sh := &t.shards[i]
		sh.mu.Lock()
		n += len(sh.m)
		sh.mu.Unlock()
	}
	return n
}

// handler is the Node as net/quic's Handler: it serves peers' requests and chunks.
type handler Node

var _ quic.Handler = (*handler)(nil)

// HandleRequest serves a control request.
func (h *handler) HandleRequest(ctx context.Context, peer quic.Peer, op quic.Op, body, reply []byte) ([]byte, error) {
	n := (*Node)(h)
	if !n.ready.Load() {
		return reply, fmt.Errorf("this node is still joining the cluster; try again: %w", trove.ErrNodeUnreachable)
	}
	if f := n.stall.Load(); f != nil {
		(*f)(ctx)
	}
	if op >= FirstLayerOp {
		return n.serveLayer(ctx, peer, op, body, reply)
	}
	if op == opDropResult {
		return n.serveDropResult(body, reply)
	}
	if op == opObjects {
		_, limit, err := decodeListRequest(body)
		if err != nil {
			return reply, fmt.Errorf("from %s (%s): %w", peer.Name, peer.Addr, err)
		}
		total, es := n.localObjects(limit)
		return appendListReply(reply, total, es), nil
	}
	req, err := decodeRequest(op, body, nil)
	if err != nil {
		return reply, fmt.Errorf("from %s (%s): %w", peer.Name, peer.Addr, err)
	}
	switch op {
	case opLocate:
		return n.serveLocate(ctx, req.id, reply)
	case opBorrow:
		if err := n.ownsLive(req.id); err != nil {
			return reply, err
		}
		if err := n.own.borrow(req.from, req.id); err != nil {
			return reply, fmt.Errorf("node %s registering as a borrower of %s: %w", peer.Name, req.id, err)
		}
		return append(reply, wireVersion), nil
	case opUpdate:
		for _, u := range req.updates {
			switch u.kind {
			case updateRelease:
				n.own.release(req.from, u.id)
			case updateCopied:
				n.own.copied(req.from, u.id)
			case updatePullEnd:
				n.own.pullEnded(req.from, u.id)
			}
		}
		return append(reply, wireVersion), nil
	case opPulling:
		if err := n.ownsLive(req.id); err != nil {
			return reply, err
		}
		n.own.pulling(req.from, req.id, req.chunk, req.have, req.pending)
		n.ctr.pullRefreshes.Add(1)
		return n.serveLocate(ctx, req.id, reply)
	}
	return reply, fmt.Errorf("cluster: unknown op %d", op)
}

// ownsLive checks that this node owns id and is not closing.
func (n *Node) ownsLive(id trove.ObjectID) error {
	if id.Node() != n.self {
		return fmt.Errorf("node %s does not own %s (its owner is node %s): %w", n.cfg.Name, id, id.Node(), trove.ErrUnknownObject)
	}
	if n.closed() {
		return fmt.Errorf("node %s is closing: %w", n.cfg.Name, trove.ErrClosed)
	}
	return nil
}

// serveLocate answers opLocate and opPulling: once the object is sealed
// (the call waits for it, as a future, until the caller gives up), its bytes
// if it is small, else its locations: the holders of sealed copies first,
// this node (the primary) next, then the nodes still pulling it with the
// chunks each holds and those it is fetching (a puller that holds none yet
// is listed for what it fetches: the others leave those chunks to it), at
// most maxHolders in all and maxPartialBytes of bitmaps. Only members alive
// now are listed.
func (n *Node) serveLocate(ctx context.Context, id trove.ObjectID, reply []byte) ([]byte, error) {
	if err := n.ownsLive(id); err != nil {
		return reply, err
	}
	if f := n.fut.lookup(id); f != nil {
		return n.locateFuture(ctx, id, f, reply)
	}
	obj, err := n.local.PinByID(ctx, id)
	if err != nil {
		return reply, err
	}
	defer obj.Release()
	size := int64(obj.Size())
	if size <= n.inlineMax {
		n.ctr.bytesOut.Add(size)
		return appendInlineReply(reply, obj.Bytes()), nil
	}
	alive := func(node trove.NodeID) (string, bool) {
		m, ok := n.members.Lookup(node)
		return m.Addr, ok && m.State == StateAlive && len(m.Addr) <= maxAddr && m.Addr != ""
	}
	var ids [8]trove.NodeID
	locs := make([]location, 0, 4)
	for _, node := range n.own.holders(id, ids[:0]) {
		if addr, ok := alive(node); ok && len(locs) < maxHolders-1 {
			locs = append(locs, location{addr: addr, full: true})
		}
	}
	locs = append(locs, location{addr: n.Addr(), full: true})
	budget := maxPartialBytes
	for _, p := range n.own.partials(id, nil) {
		addr, ok := alive(p.node)
		if !ok || len(locs) >= maxHolders || chunksOf(size, p.chunk) != int64(p.have.Len()) || p.pending.Len() != p.have.Len() ||
			p.have.Count() == 0 && p.pending.Count() == 0 {
			continue
		}
		if budget -= p.have.EncodedLen() + p.pending.EncodedLen(); budget < 0 {
			break
		}
		locs = append(locs, location{addr: addr, chunk: p.chunk, have: p.have, pending: p.pending})
	}
	return appendLocationsReply(reply, size, locs), nil
}

// ServeChunk serves bytes of an object this node holds: its primary, a copy,
// or the chunks it has of a copy it is still pulling (servePartial).
func (h *handler) ServeChunk(ctx context.Context, peer quic.Peer, id trove.ObjectID, off, size int64, w io.Writer) error {
	n := (*Node)(h)
	if f := n.serveHook.Load(); f != nil {
		if err := (*f)(ctx, peer, id, off); err != nil {
			return err
		}
	}
	done, err := n.serving.enter(ctx)
	if err != nil {
		return err
	}
	defer done()
	if served, err := n.servePartial(id, off, size, w); served {
		return err
	}
	obj, err := n.local.PinByID(ctx, id)
	if err != nil {
		return err
	}
	defer obj.Release()
	b := obj.Bytes()
	if f := n.chunkFault.Load(); f != nil {
		if err := (*f)(ctx, id); err != nil {
			_, _ = w.Write(b[off : off+size/2]) // fail mid-chunk, as a holder dying would
			return err
		}
	}
	if off < 0 || size < 0 || off > int64(len(b)) || size > int64(len(b))-off {
		return fmt.Errorf("chunk [%d, +%d) of %s is outside its %d bytes: %w", off, size, id, len(b), trove.ErrUnknownObject)
	}
	k, err := w.Write(b[off : off+size])
	n.ctr.bytesOut.Add(int64(k))
	return err
}

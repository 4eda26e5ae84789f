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
)

// The owner's side. A node owns the objects it creates (their IDs name it);
// for every one that another node borrows it keeps an ownedMeta: which nodes
// borrow it (and how many registrations each has outstanding) and which of
// them hold a sealed copy. The object's size and seal state are the local
// store's own. The meta holds one engine ref on the primary, which keeps it
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
// entry: one ref and, almost always, a one-element slice.
type ownedMeta struct {
	ref       trove.Ref
	borrowers []borrower
}

// borrower is one node borrowing an owned object.
type borrower struct {
	node  trove.NodeID
	count uint32 // registrations (opBorrow) not yet released
	copy  bool   // it told the owner it holds a sealed copy
}

const ownerShards = 32

type ownerShard struct {
	mu sync.Mutex
	m  map[trove.ObjectID]*ownedMeta // guarded by mu
}

// ownerTable holds the metas of a node's owned objects that others borrow.
type ownerTable struct {
	shards [ownerShards]ownerShard
}

func (t *ownerTable) init() {
	for i := range t.shards {
		t.shards[i].m = map[trove.ObjectID]*ownedMeta{}
	}
}

func (t *ownerTable) shard(id trove.ObjectID) *ownerShard {
	return &t.shards[int(id[15])%ownerShards]
}

// borrow registers one more borrow of id by node, taking the engine ref if it
// is the object's first borrow.
func (t *ownerTable) borrow(st *engine.Store, node trove.NodeID, id trove.ObjectID) error {
	sh := t.shard(id)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	m := sh.m[id]
	if m == nil {
		ref, err := st.Borrow(id) // never blocks: id is this store's own
		if err != nil {
			return err
		}
		m = &ownedMeta{ref: ref}
		sh.m[id] = m
	}
	for i := range m.borrowers {
		if m.borrowers[i].node == node {
			m.borrowers[i].count++
			return nil
		}
	}
	m.borrowers = append(m.borrowers, borrower{node: node, count: 1})
	return nil
}

// release ends one borrow of id by node; when the last borrow of the last
// borrower ends it returns the meta's ref for the caller to drop (outside the lock).
func (t *ownerTable) release(node trove.NodeID, id trove.ObjectID) (trove.Ref, bool) {
	sh := t.shard(id)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	m := sh.m[id]
	if m == nil {
		return trove.Ref{}, false
	}
	i := slices.IndexFunc(m.borrowers, func(b borrower) bool { return b.node == node })
	if i < 0 {
		return trove.Ref{}, false
	}
	// A release means the node's entry, and its copy with it, is gone; a
	// later borrow of the same node (counted here) has no copy yet.
	m.borrowers[i].copy = false
	if m.borrowers[i].count--; m.borrowers[i].count > 0 {
		return trove.Ref{}, false
	}
	m.borrowers = slices.Delete(m.borrowers, i, i+1)
	if len(m.borrowers) > 0 {
		return trove.Ref{}, false
	}
	delete(sh.m, id)
	return m.ref, true
}

// copied records that node holds a sealed copy of id.
func (t *ownerTable) copied(node trove.NodeID, id trove.ObjectID) {
	sh := t.shard(id)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if m := sh.m[id]; m != nil {
		for i := range m.borrowers {
			if m.borrowers[i].node == node {
				m.borrowers[i].copy = true
			}
		}
	}
}

// holders appends the nodes that hold sealed copies of id.
func (t *ownerTable) holders(id trove.ObjectID, dst []trove.NodeID) []trove.NodeID {
	sh := t.shard(id)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if m := sh.m[id]; m != nil {
		for _, b := range m.borrowers {
			if b.copy {
				dst = append(dst, b.node)
			}
		}
	}
	return dst
}

// forgetNode drops every borrow of node (declared dead or departed) and
// reports how many objects it borrowed.
func (t *ownerTable) forgetNode(node trove.NodeID) int {
	var drop []trove.Ref
	n := 0
	for i := range t.shards {
		sh := &t.shards[i]
		sh.mu.Lock()
		for id, m := range sh.m {
			j := slices.IndexFunc(m.borrowers, func(b borrower) bool { return b.node == node })
			if j < 0 {
				continue
			}
			n++
			m.borrowers = slices.Delete(m.borrowers, j, j+1)
			if len(m.borrowers) == 0 {
				delete(sh.m, id)
				drop = append(drop, m.ref)
			}
		}
		sh.mu.Unlock()
	}
	for _, r := range drop {
		r.Drop()
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
			o.ref.Drop()
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
		if err := n.own.borrow(n.local, req.from, req.id); err != nil {
			return reply, fmt.Errorf("node %s registering as a borrower of %s: %w", peer.Name, req.id, err)
		}
		return append(reply, wireVersion), nil
	case opUpdate:
		for _, u := range req.updates {
			switch u.kind {
			case updateRelease:
				if ref, last := n.own.release(req.from, u.id); last {
					ref.Drop()
				}
			case updateCopied:
				n.own.copied(req.from, u.id)
			}
		}
		return append(reply, wireVersion), nil
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

// serveLocate answers opLocate: once the object is sealed (the call waits
// for it, as a future, until the caller gives up), its bytes if it is small,
// else the nodes to pull it from: holders of copies first, this node last.
func (n *Node) serveLocate(ctx context.Context, id trove.ObjectID, reply []byte) ([]byte, error) {
	if err := n.ownsLive(id); err != nil {
		return reply, err
	}
	obj, err := n.local.PinByID(ctx, id)
	if err != nil {
		return reply, err
	}
	defer obj.Release()
	if int64(obj.Size()) <= n.inlineMax {
		return appendInlineReply(reply, obj.Bytes()), nil
	}
	var ids [8]trove.NodeID
	addrs := make([]string, 0, 4)
	for _, node := range n.own.holders(id, ids[:0]) {
		if m, ok := n.members.Lookup(node); ok && m.State == StateAlive && len(m.Addr) <= maxAddr && len(addrs) < maxHolders-1 {
			addrs = append(addrs, m.Addr)
		}
	}
	addrs = append(addrs, n.Addr())
	return appendHoldersReply(reply, int64(obj.Size()), addrs), nil
}

// ServeChunk serves bytes of an object this node holds: its primary or a copy.
func (h *handler) ServeChunk(ctx context.Context, peer quic.Peer, id trove.ObjectID, off, size int64, w io.Writer) error {
	n := (*Node)(h)
	obj, err := n.local.PinByID(ctx, id)
	if err != nil {
		return err
	}
	defer obj.Release()
	b := obj.Bytes()
	if f := n.chunkFault.Load(); f != nil {
		if err := (*f)(id); err != nil {
			_, _ = w.Write(b[off : off+size/2]) // fail mid-chunk, as a holder dying would
			return err
		}
	}
	if off < 0 || size < 0 || off > int64(len(b)) || size > int64(len(b))-off {
		return fmt.Errorf("chunk [%d, +%d) of %s is outside its %d bytes: %w", off, size, id, len(b), trove.ErrUnknownObject)
	}
	_, err = w.Write(b[off : off+size])
	return err
}

package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/trovedb/trove"
	"github.com/trovedb/trove/engine"
	"github.com/trovedb/trove/net/quic"
)

// Node is one member of a cluster: a local engine store, the transport to its
// peers and its membership. It satisfies trove.Store for refs owned by any
// node: a ref made on another node is Borrowed here by its ID, and Get pulls a
// copy of its bytes into the local arena.
type Node struct {
	cfg     Config
	local   *engine.Store
	tr      *quic.Transport
	members memberView
	log     *slog.Logger
	self    trove.NodeID
	unwatch func()

	inlineMax int64 // the largest object answered inline by this owner

	// chunkFault, set only by tests, makes ServeChunk fail half-way through
	// a chunk when it returns an error.
	chunkFault atomic.Pointer[func(ctx context.Context, id trove.ObjectID) error]
	// stall, set only by tests, is called before each request is served: a
	// node that does not answer.
	stall atomic.Pointer[func(ctx context.Context)]

	// serveHook, set only by tests, is called before each chunk is served,
	// with the asking peer and the chunk's offset; an error refuses the chunk.
	serveHook atomic.Pointer[func(ctx context.Context, peer quic.Peer, id trove.ObjectID, off int64) error]

	pulls   pullTable    // pulls in progress, served from while they run
	pullers pullWatchers // pulls in progress, told of holders that die
	serving serveGate    // bounds the chunks served at once (Config.ServeSlots, ServeQueue)
	ctr     counters     // Stats
	small   *smallCache  // small objects fetched from their owners

	own   ownerTable  // objects this node owns that other nodes borrow
	fut   futureTable // this node's futures (future.go)
	res   results     // results this node stores for other nodes' futures
	drops dropLanes   // opDropResult batches per holder
	layer struct {    // handlers of the layers above (Handle)
		mu sync.Mutex
		m  map[quic.Op]LayerHandler // guarded by mu
	}
	bor  borrowTable
	outq updateQueue

	life context.Context // ends at Close: the parent of background work
	stop context.CancelFunc
	bg   sync.WaitGroup

	ready atomic.Bool // the membership is up: requests are served

	offered atomic.Pointer[offer] // SetResources's, gossiped in the meta

	mu struct {
		sync.Mutex
		dead   map[trove.NodeID]chan struct{} // closed when the node is declared dead or left; made on first wait
		closed bool
	}
}

var _ trove.Store = (*Node)(nil)

// Open starts a node: it opens the local store, listens on cfg.Listen, and
// joins the cluster at cfg.Join (or starts one).
func Open(ctx context.Context, cfg Config) (*Node, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	n := &Node{cfg: cfg, log: cfg.Logger}
	if n.small, err = newSmallCache(cfg.SmallCacheBytes); err != nil {
		return nil, fmt.Errorf("cluster: the small-object cache (Config.SmallCacheBytes %d): %w", cfg.SmallCacheBytes, err)
	}
	n.life, n.stop = context.WithCancel(context.Background())
	n.mu.dead = map[trove.NodeID]chan struct{}{}
	n.bor.m = map[trove.ObjectID]*borrowing{}
	n.outq.init()
	n.serving.init(cfg.ServeSlots, cfg.ServeQueue, &n.ctr)

	scfg := cfg.Store
	scfg.Remote = (*remote)(n)
	if n.local, err = engine.Open(scfg); err != nil {
		n.stop()
		return nil, fmt.Errorf("cluster: open the local store: %w", err)
	}
	n.self = n.local.Node()
	n.own.init(n.local)
	n.inlineMax = n.local.Config().InlineThreshold
	n.tr, err = quic.Listen(ctx, quic.Config{
		Addr: cfg.Listen, CertsDir: cfg.CertsDir, Insecure: cfg.Insecure, Name: cfg.Name,
		Handler: (*handler)(n), ChunkSize: cfg.ChunkSize, Streams: cfg.Streams,
		IdleTimeout: cfg.IdleTimeout, StallTimeout: cfg.PullChunkTimeout, Logger: cfg.Logger,
	})
	if err != nil {
		n.stop()
		_ = n.local.Close()
		return nil, fmt.Errorf("cluster: listen on %s (Config.Listen): %w", cfg.Listen, err)
	}
	if limit := int64(quic.DefaultMaxMessage) - 64; n.inlineMax > limit {
		n.inlineMax = limit
	}
	cfg.Name = n.tr.Name()
	n.cfg.Name = cfg.Name
	n.members, err = startMembers(ctx, membershipConfig{
		Name: cfg.Name, ID: n.self, Transport: n.tr, Join: cfg.Join, Log: cfg.Logger,
		Stats: func() (int64, int64) {
			st := n.local.Stats()
			return st.Capacity, st.Used
		},
		Offer:         n.offer,
		ProbeInterval: cfg.ProbeInterval, ProbeTimeout: cfg.ProbeTimeout, GossipInterval: cfg.GossipInterval,
		PushPullInterval: cfg.PushPullInterval, DeadNodeReclaimTime: cfg.DeadNodeReclaimTime, SuspicionMult: cfg.SuspicionMult,
		StatsInterval: cfg.StatsInterval, RejoinInterval: cfg.RejoinInterval,
	})
	if err != nil {
		n.stop()
		_ = n.tr.Close()
		_ = n.local.Close()
		return nil, fmt.Errorf("cluster: join %v (Config.Join): %w", cfg.Join, err)
	}
	n.ready.Store(true)
	n.unwatch = n.members.Watch(n.onEvent)
	n.bg.Go(n.sendUpdates)
	return n, nil
}

// Close leaves the cluster gracefully (peers see this node as left and forget
// its borrows at once), then closes the transport and the local store.
func (n *Node) Close() error {
	if !n.markClosed() {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), n.cfg.RequestTimeout)
	n.flushUpdates(ctx)
	cancel()
	// The leave is gossiped, at the membership's pace, not a request's: bound
	// it apart (it returns as soon as the broadcast is out).
	ctx, cancel = context.WithTimeout(context.Background(), max(n.cfg.RequestTimeout, leaveTimeout))
	err := n.members.Leave(ctx)
	cancel()
	return errors.Join(err, n.shutdown())
}

// leaveTimeout is the least time Close gives the membership to gossip that
// this node leaves (a short Config.RequestTimeout must not make a graceful
// leave look like a death).
const leaveTimeout = 5 * time.Second

// shutdown stops everything but the Leave: what Close and a crash share.
func (n *Node) shutdown() error {
	n.unwatch()
	n.stop()
	n.bg.Wait()
	err := n.members.Close()
	err = errors.Join(err, n.tr.Close())
	n.own.dropAll()
	n.dropAllResults()
	n.small.close()
	return errors.Join(err, n.local.Close())
}

func (n *Node) markClosed() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.mu.closed {
		return false
	}
	n.mu.closed = true
	return true
}

func (n *Node) closed() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.mu.closed
}

// Addr is the node's cluster address, what other nodes Join.
func (n *Node) Addr() string { return n.tr.Addr() }

// ID is the node's ID: the owner part of every ObjectID it mints.
func (n *Node) ID() trove.NodeID { return n.self }

// Name is the node's name in the cluster.
func (n *Node) Name() string { return n.cfg.Name }

// Members lists the cluster's members as this node sees them.
func (n *Node) Members() []Member { return n.members.Members() }

// Local is the node's local store.
func (n *Node) Local() *engine.Store { return n.local }

// Put implements trove.Store: the object is owned by this node.
func (n *Node) Put(ctx context.Context, data []byte) (trove.Ref, error) {
	return n.local.Put(ctx, data)
}

// PutFunc implements trove.Store.
func (n *Node) PutFunc(ctx context.Context, size int, contains []trove.Ref, fill func(dst []byte) error) (trove.Ref, error) {
	return n.local.PutFunc(ctx, size, contains, fill)
}

// Get implements trove.Store: a ref owned by another node is fetched from it
// (and the holders of copies) into the local store the first time.
func (n *Node) Get(ctx context.Context, ref trove.Ref) (*trove.Object, error) {
	return n.local.Get(ctx, ref)
}

// GetAll implements trove.Store; absent objects are fetched in parallel.
func (n *Node) GetAll(ctx context.Context, refs []trove.Ref) ([]*trove.Object, error) {
	return n.local.GetAll(ctx, refs)
}

// Wait implements trove.Store, across owners, in input order.
func (n *Node) Wait(ctx context.Context, refs []trove.Ref, numReturns int) (ready, pending []trove.Ref, err error) {
	return n.local.Wait(ctx, refs, numReturns)
}

// Borrow implements trove.Store: an ID another node owns is registered with
// its owner before Borrow returns.
func (n *Node) Borrow(id trove.ObjectID) (trove.Ref, error) {
	return n.local.Borrow(id)
}

// onEvent follows the membership: a node that died or left owns nothing any
// more (fetches from it fail with ErrOwnerDied) and borrows nothing here.
func (n *Node) onEvent(ev Event) {
	if ev.Kind != EventDead && ev.Kind != EventLeft {
		return
	}
	n.pullers.holderGone(ev.Member.Addr)
	id := ev.Member.ID
	n.mu.Lock()
	if c, ok := n.mu.dead[id]; ok {
		select {
		case <-c:
		default:
			close(c)
		}
	} else {
		c := make(chan struct{})
		close(c)
		n.mu.dead[id] = c
	}
	n.mu.Unlock()
	if dropped := n.own.forgetNode(id); dropped > 0 {
		n.log.Info("cluster: forgot a departed node's borrows", "node", ev.Member.Name, "state", ev.Member.State.String(), "objects", dropped)
	}
	n.outq.forgetNode(id)
	n.forgetResults(id)
	n.holderDied(id)
}

// deadChan is closed once node id is declared dead or has left.
func (n *Node) deadChan(id trove.NodeID) <-chan struct{} {
	n.mu.Lock()
	defer n.mu.Unlock()
	c, ok := n.mu.dead[id]
	if !ok {
		c = make(chan struct{})
		n.mu.dead[id] = c
	}
	return c
}

// isDead reports whether node id was declared dead or left.
func (n *Node) isDead(id trove.NodeID) bool {
	select {
	case <-n.deadChan(id):
		return true
	default:
		return false
	}
}

// ownerDied is the error of a call about id whose owner is gone.
func (n *Node) ownerDied(id trove.ObjectID, op string) error {
	m, _ := n.members.Lookup(id.Node())
	name := m.Name
	if name == "" {
		name = id.Node().String()
	}
	return &trove.NodeError{Kind: trove.ErrOwnerDied, Node: name, Addr: m.Addr, Object: id, Op: op,
		Err: errors.New("the membership declared it dead or departed")}
}

// owner returns the live member that owns id, or ErrOwnerDied.
func (n *Node) owner(id trove.ObjectID, op string) (Member, error) {
	m, ok := n.lookup(id.Node())
	if !ok {
		return m, &trove.NodeError{Kind: trove.ErrOwnerDied, Node: id.Node().String(), Object: id, Op: op,
			Err: errors.New("no member of the cluster has this node ID (it left, died and was forgotten, or never joined)")}
	}
	if m.State == StateDead || m.State == StateLeft || n.isDead(m.ID) {
		return m, n.ownerDied(id, op)
	}
	return m, nil
}

// lookup finds node id's member. A node this one has not heard of yet (gossip
// of a join takes a few rounds) is waited for, up to Config.RequestTimeout;
// the wait reads the local membership only.
func (n *Node) lookup(id trove.NodeID) (Member, bool) {
	m, ok := n.members.Lookup(id)
	if ok {
		return m, true
	}
	found := make(chan struct{}, 1)
	cancel := n.members.Watch(func(ev Event) {
		if ev.Member.ID == id {
			select {
			case found <- struct{}{}:
			default:
			}
		}
	})
	defer cancel()
	t := time.NewTimer(n.cfg.RequestTimeout)
	defer t.Stop()
	for {
		if m, ok := n.members.Lookup(id); ok {
			return m, true
		}
		select {
		case <-found:
		case <-t.C:
			return n.members.Lookup(id)
		case <-n.life.Done():
			return Member{}, false
		}
	}
}

// ownerCtx derives a context that ends with ErrOwnerDied once id's owner is
// declared dead or leaves; stop releases it.
func (n *Node) ownerCtx(ctx context.Context, id trove.ObjectID, op string) (context.Context, func()) {
	ctx, cancel := context.WithCancelCause(ctx)
	dead := n.deadChan(id.Node())
	done := make(chan struct{})
	go func() {
		select {
		case <-dead:
			cancel(n.ownerDied(id, op))
		case <-done:
		case <-ctx.Done():
		}
	}()
	return ctx, func() { close(done); cancel(nil) }
}

// request sends a bounded control request to the node at addr.
func (n *Node) request(ctx context.Context, addr string, op quic.Op, body []byte, reply *[]byte) error {
	ctx, cancel := context.WithTimeout(ctx, n.cfg.RequestTimeout)
	defer cancel()
	var err error
	*reply, err = n.tr.Request(ctx, addr, op, body, (*reply)[:0])
	return err
}

// retryDelay is how long a failed batch waits before it is sent again.
func (n *Node) retryDelay() time.Duration { return DefaultRetryDelay }

// BorrowAll is Borrow of many IDs at once, all or nothing (GetValue uses it
// for a value's nested refs: each foreign one is registered with its owner
// before BorrowAll returns).
func (n *Node) BorrowAll(ids []trove.ObjectID) ([]trove.Ref, error) {
	return n.local.BorrowAll(ids)
}

// BorrowContained is engine.Store.BorrowContained, for values decoded on the node
// that holds their container's primary.
func (n *Node) BorrowContained(obj *trove.Object, ids []trove.ObjectID) ([]trove.Ref, bool) {
	return n.local.BorrowContained(obj, ids)
}

package task

import (
	"context"
	"errors"
	"fmt"
	"math"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/trovedb/trove"
	"github.com/trovedb/trove/cluster"
	"github.com/trovedb/trove/net/quic"
)

// Config is a node's runtime: what it offers the cluster's calls.
type Config struct {
	// CPUs is the node's CPU slots: how many calls (of one CPU each) run at
	// once. Zero means GOMAXPROCS.
	CPUs float64
	// Resources are the node's custom resources (as Ray's
	// resources={'Custom': 2}): a call asking for some (Resource) runs only
	// where they are free.
	Resources map[string]float64
	// WorkersOnly makes the node run only the functions that worker
	// processes attached to it registered (Runtime.ServeWorkers), not
	// those this program Defines: troved's runtime, which Defines none, and
	// tests of workers run so.
	WorkersOnly bool
	// StatusInterval is how often the runtime asks the other nodes'
	// runtimes for their free resources and load (placement). Zero means
	// DefaultStatusInterval.
	StatusInterval time.Duration
}

// DefaultStatusInterval is Config.StatusInterval's default.
const DefaultStatusInterval = 200 * time.Millisecond

// Runtime runs remote functions on one cluster node: it places the calls
// made through it (Remote) on the cluster's runtimes and executes the calls
// placed on its node. It satisfies trove.Store by delegating to the node, so
// a program Puts and Gets through it.
type Runtime struct {
	node   *cluster.Node
	self   trove.NodeID
	name   string
	inline int64 // the store's InlineThreshold
	total  Resources
	cfg    Config

	life    context.Context // ends at Close
	execCtx context.Context // life, naming rt (FromContext): the context of every function run here
	stop    context.CancelFunc
	wg      sync.WaitGroup // background work and running functions
	closed  atomic.Bool

	ex       executor
	hub      hub          // the worker processes attached to the node (dispatch.go)
	work     chan *job    // the executor's jobs handed to idle slot goroutines (unbuffered)
	idle     atomic.Int64 // slot goroutines waiting on work
	keepIdle int64        // how many may wait: the node's CPUs, at least 1
	calls    callTable
	pre      prefetcher // the queued calls' argument prefetches (prefetch.go)
	out      outbox
	view     peerView
	unwatch  func()
}

var _ trove.Store = (*Runtime)(nil)

// started holds the runtime of each node, one at most.
var started struct {
	mu sync.Mutex
	m  map[*cluster.Node]*Runtime // guarded by mu
}

// Start starts node's runtime: the node executes every function Defined in
// this program (every node runs the same program), with cfg's CPUs and
// resources, and calls made through the returned Runtime are placed on the
// cluster's runtimes. One runtime per node; Close it before the node.
func Start(node *cluster.Node, cfg Config) (*Runtime, error) {
	if cfg.CPUs == 0 {
		cfg.CPUs = float64(runtime.GOMAXPROCS(0))
	}
	if cfg.StatusInterval <= 0 {
		cfg.StatusInterval = DefaultStatusInterval
	}
	total := Resources{}
	for k, v := range cfg.Resources {
		total[k] = v
	}
	if _, ok := total[CPU]; ok {
		return nil, fmt.Errorf("task: Config.Resources names %q; set Config.CPUs instead", CPU)
	}
	total[CPU] = cfg.CPUs
	if err := checkResources("Config", total); err != nil {
		return nil, err
	}
	rt := &Runtime{node: node, self: node.ID(), name: node.Name(), total: total, cfg: cfg,
		inline: node.Local().Config().InlineThreshold}
	rt.life, rt.stop = context.WithCancel(context.Background())
	rt.execCtx = context.WithValue(rt.life, rtKey{}, rt)
	rt.ex.init(total)
	rt.ex.start = rt.startJob
	rt.ex.queued = rt.queuePrefetch
	rt.work = make(chan *job)
	rt.keepIdle = max(int64(math.Ceil(cfg.CPUs)), 1)
	rt.calls.m = map[trove.ObjectID]*call{}
	rt.out.subs = map[trove.NodeID]*subLane{}
	rt.out.dones = map[trove.NodeID]*doneLane{}
	rt.view.m = map[trove.NodeID]*peer{}
	rt.hub.workers = map[uint64]*worker{}

	started.mu.Lock()
	if started.m == nil {
		started.m = map[*cluster.Node]*Runtime{}
	}
	if started.m[node] != nil {
		started.mu.Unlock()
		rt.stop()
		return nil, fmt.Errorf("task: node %s already has a runtime; Close it first", node.Name())
	}
	started.m[node] = rt
	started.mu.Unlock()

	handlers := map[quic.Op]cluster.LayerHandler{
		opSubmit: rt.serveSubmit, opDone: rt.serveDone, opWithdraw: rt.serveWithdraw, opStatus: rt.serveStatus,
		opCalls: rt.serveCalls, opWhere: rt.serveWhere,
	}
	for op, h := range handlers {
		if err := node.Handle(op, h); err != nil {
			rt.unregister()
			return nil, err
		}
	}
	node.SetFutureHooks(cluster.FutureHooks{Lost: rt.lost, Freed: rt.freed})
	rt.unwatch = node.Watch(rt.onEvent)
	ctx, cancel := context.WithTimeout(rt.life, 5*time.Second)
	rt.refresh(ctx)
	cancel()
	rt.wg.Go(rt.refreshLoop)
	return rt, nil
}

// unregister undoes Start's registrations.
func (rt *Runtime) unregister() {
	for _, op := range ops {
		_ = rt.node.Handle(op, nil)
	}
	started.mu.Lock()
	delete(started.m, rt.node)
	started.mu.Unlock()
}

// Close stops the runtime: calls queued here are handed back to their
// callers (which run them elsewhere), running functions see their context
// end and are waited for, and calls made through it that have not finished
// fail with trove.ErrClosed. Results already computed stay readable while
// the node is open.
func (rt *Runtime) Close() error {
	if rt.closed.Swap(true) {
		return nil
	}
	rt.node.SetFutureHooks(cluster.FutureHooks{})
	rt.node.SetResources(0, nil)
	rt.unwatch()
	rt.stopWorkers()
	for _, j := range rt.ex.drain() {
		rt.report(j, outcome{status: doneRefused})
	}
	rt.stop()
	rt.wg.Wait()
	rt.unregister()
	for _, c := range rt.calls.takeAll() {
		c.mu.Lock()
		done := c.done
		c.done = true
		c.mu.Unlock()
		if !done {
			rt.node.FailFuture(c.id, fmt.Errorf("task: call of %s: the runtime of node %s closed before it finished: %w", c.fn.name, rt.name, trove.ErrClosed))
		}
		c.release()
	}
	return nil
}

// Node is the runtime's node.
func (rt *Runtime) Node() *cluster.Node { return rt.node }

// rtKey is the context key of the runtime executing a call.
type rtKey struct{}

// FromContext returns the runtime executing the call whose context ctx is
// (a function that makes calls of its own uses it), or nil, as in a worker
// process: CallerFrom works in both.
func FromContext(ctx context.Context) *Runtime {
	rt, _ := ctx.Value(rtKey{}).(*Runtime)
	return rt
}

// CallerFrom returns what is executing the call whose context ctx is, for
// calls of its own and Gets: the node's Runtime in an embedded node, the
// *Worker in a worker process. It is nil outside a call.
func CallerFrom(ctx context.Context) Caller {
	if rt := FromContext(ctx); rt != nil {
		return rt
	}
	if w, ok := ctx.Value(workerKey{}).(*Worker); ok {
		return w
	}
	return nil
}

// Put implements trove.Store (the node's).
func (rt *Runtime) Put(ctx context.Context, data []byte) (trove.Ref, error) {
	return rt.node.Put(ctx, data)
}

// PutFunc implements trove.Store (the node's).
func (rt *Runtime) PutFunc(ctx context.Context, size int, contains []trove.Ref, fill func(dst []byte) error) (trove.Ref, error) {
	return rt.node.PutFunc(ctx, size, contains, fill)
}

// Get implements trove.Store (the node's).
func (rt *Runtime) Get(ctx context.Context, ref trove.Ref) (*trove.Object, error) {
	return rt.node.Get(ctx, ref)
}

// GetAll implements trove.Store (the node's).
func (rt *Runtime) GetAll(ctx context.Context, refs []trove.Ref) ([]*trove.Object, error) {
	return rt.node.GetAll(ctx, refs)
}

// Wait implements trove.Store (the node's).
func (rt *Runtime) Wait(ctx context.Context, refs []trove.Ref, numReturns int) (ready, pending []trove.Ref, err error) {
	return rt.node.Wait(ctx, refs, numReturns)
}

// Borrow implements trove.Store (the node's).
func (rt *Runtime) Borrow(id trove.ObjectID) (trove.Ref, error) {
	return rt.node.Borrow(id)
}

// BorrowAll is the node's BorrowAll (GetValue uses it for nested refs).
func (rt *Runtime) BorrowAll(ids []trove.ObjectID) ([]trove.Ref, error) {
	return rt.node.BorrowAll(ids)
}

// NodeStatus is one node's runtime as another sees it.
type NodeStatus struct {
	Node            string
	ID              trove.NodeID
	Total, Free     Resources
	Queued, Running int
}

// ClusterResources is the total of every runtime's resources in the
// cluster (CPU and custom), like ray.cluster_resources().
func (rt *Runtime) ClusterResources(ctx context.Context) (Resources, error) {
	return rt.sum(ctx, func(p NodeStatus) Resources { return p.Total })
}

// AvailableResources is what is free of them now, like
// ray.available_resources().
func (rt *Runtime) AvailableResources(ctx context.Context) (Resources, error) {
	return rt.sum(ctx, func(p NodeStatus) Resources { return p.Free })
}

func (rt *Runtime) sum(ctx context.Context, f func(NodeStatus) Resources) (Resources, error) {
	nodes, err := rt.Nodes(ctx)
	if err != nil {
		return nil, err
	}
	r := Resources{}
	for _, n := range nodes {
		r.add(f(n))
	}
	return r, nil
}

// Nodes asks every runtime of the cluster for its resources and load now.
func (rt *Runtime) Nodes(ctx context.Context) ([]NodeStatus, error) {
	if rt.closed.Load() {
		return nil, fmt.Errorf("task: runtime of node %s: %w", rt.name, trove.ErrClosed)
	}
	rt.refresh(ctx)
	if err := ctx.Err(); err != nil {
		return nil, trove.ContextError(ctx)
	}
	return rt.view.list(), nil
}

// errWithdrawn is the cause of a withdrawn call's failure.
var errWithdrawn = errors.New("the caller's context ended before the call started, so it was withdrawn")

package localcluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/trovedb/trove"
	"github.com/trovedb/trove/cluster"
	"github.com/trovedb/trove/engine"
	"github.com/trovedb/trove/task"
)

// Settle bounds the waits for the membership to converge and for every node's
// store to drain (releases travel to owners in batches). Both take
// milliseconds; the bound is generous for a loaded machine.
const Settle = 20 * time.Second

// StatsInterval is how often each node gossips its figures when they changed
// (cluster.Config.StatsInterval).
const StatsInterval = 100 * time.Millisecond

// Config says what cluster Open starts.
type Config struct {
	// Nodes is how many nodes to start; default 3.
	Nodes int
	// Capacity is each node's shared memory; default 256 MiB.
	Capacity int64
	// Prefault populates the arenas of every node but the first up front (a
	// fraction of a second each, in parallel), so that bytes pulled into them
	// land in warm memory rather than first-touch page faults.
	Prefault bool
	// Log receives the nodes' warnings and errors; nil discards them. Writes
	// come from the nodes' goroutines: Open serialises them.
	Log io.Writer
}

// Cluster is an in-process cluster. Nodes[0] is the first node, which the
// others joined; the examples run their driver on it.
type Cluster struct {
	Nodes    []*cluster.Node
	runtimes []*task.Runtime // StartTasks's, closed before the nodes
}

// SyncWriter returns a writer that serialises writes to w, for a program
// whose own output and its nodes' log lines (written from their goroutines)
// share w.
func SyncWriter(w io.Writer) io.Writer { return &lockedWriter{w: w} }

// lockedWriter serialises writes to w: the nodes log from their goroutines.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// Open starts the cluster's nodes, named node-1 … node-N, and waits, up to
// Settle, until every node lists every node alive. On error nothing is left
// running.
func Open(ctx context.Context, cfg Config) (*Cluster, error) {
	if cfg.Nodes <= 0 {
		cfg.Nodes = 3
	}
	if cfg.Capacity <= 0 {
		cfg.Capacity = 256 << 20
	}
	logw := io.Discard
	if cfg.Log != nil {
		logw = &lockedWriter{w: cfg.Log}
	}
	log := slog.New(slog.NewTextHandler(logw, &slog.HandlerOptions{Level: slog.LevelWarn}))
	config := func(i int) cluster.Config {
		return cluster.Config{
			Store:    engine.Config{Capacity: cfg.Capacity, PrefaultAll: cfg.Prefault && i > 0},
			Name:     fmt.Sprintf("node-%d", i+1),
			Listen:   "127.0.0.1:0",
			Insecure: true, // every node is in this process, on loopback: see the package doc
			// Gossip often, so that joins and leaves spread in milliseconds and
			// a program starts and ends at once.
			GossipInterval: 20 * time.Millisecond,
			// Gossip a node's figures (used bytes, free slots) every 100 ms
			// when they change, so that members' figures are fresh at once
			// (WaitGossiped).
			StatsInterval: StatsInterval,
			Logger:        log,
		}
	}
	first, err := cluster.Open(ctx, config(0))
	if err != nil {
		return nil, fmt.Errorf("localcluster: start node-1: %w", err)
	}
	c := &Cluster{Nodes: make([]*cluster.Node, cfg.Nodes)}
	c.Nodes[0] = first
	errs := make([]error, cfg.Nodes)
	var wg sync.WaitGroup
	for i := 1; i < cfg.Nodes; i++ {
		wg.Go(func() {
			nc := config(i)
			nc.Join = []string{first.Addr()}
			c.Nodes[i], errs[i] = cluster.Open(ctx, nc)
			if errs[i] != nil {
				errs[i] = fmt.Errorf("localcluster: start %s: %w", nc.Name, errs[i])
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, errors.Join(err, c.Close())
	}
	if err := c.waitMembers(ctx); err != nil {
		return nil, errors.Join(err, c.Close())
	}
	return c, nil
}

// waitMembers waits, up to Settle, until every node lists every node alive.
func (c *Cluster) waitMembers(ctx context.Context) error {
	return poll(ctx, func() string {
		for _, n := range c.Nodes {
			alive := map[trove.NodeID]bool{}
			for _, m := range n.Members() {
				alive[m.ID] = m.State == cluster.StateAlive
			}
			for _, o := range c.Nodes {
				if !alive[o.ID()] {
					return fmt.Sprintf("%s does not see %s alive", n.Name(), o.Name())
				}
			}
		}
		return ""
	}, "the in-process cluster did not converge", "is the machine overloaded, or the loopback interface filtered?")
}

// Close closes the task runtimes, then the nodes, the last started first;
// each node leaves the cluster.
func (c *Cluster) Close() error {
	errs := []error{c.closeTasks()}
	for _, n := range slices.Backward(c.Nodes) {
		if n != nil {
			errs = append(errs, n.Close())
		}
	}
	return errors.Join(errs...)
}

// Node returns the node that owns id (the one whose ID id names), or nil.
func (c *Cluster) Node(id trove.NodeID) *cluster.Node {
	for _, n := range c.Nodes {
		if n.ID() == id {
			return n
		}
	}
	return nil
}

// Busy describes what n's store still holds, or "" if it holds nothing.
func Busy(n *cluster.Node) string {
	s := n.Local().Stats()
	if s.Objects == 0 && s.ObjectBytes == 0 && s.Used == 0 && s.PinnedObjects == 0 && s.Views == 0 && s.RemoteObjects == 0 {
		return ""
	}
	return fmt.Sprintf("%s: objects=%d bytes=%d used=%d pinned=%d views=%d refs to other nodes' objects=%d",
		n.Name(), s.Objects, s.ObjectBytes, s.Used, s.PinnedObjects, s.Views, s.RemoteObjects)
}

// WaitDrained waits, up to Settle, until every node's store is empty, then
// checks each store's consistency. Releases reach owners in batches, and an
// owner frees its primary only when the last borrower's release has arrived;
// refs a program forgot to Drop are released by the garbage collector, which
// the wait runs, so a leak that shows here is a pinned view or a live ref.
func (c *Cluster) WaitDrained(ctx context.Context) error {
	err := poll(ctx, func() string {
		var left []string
		for _, n := range c.Nodes {
			if b := Busy(n); b != "" {
				left = append(left, b)
			}
		}
		if len(left) > 0 {
			runtime.GC()
		}
		return strings.Join(left, "; ")
	}, "stores not empty after every ref was dropped", "a view not Released, or a ref still reachable")
	if err != nil {
		return err
	}
	for _, n := range c.Nodes {
		n.Local().WaitIdle()
		if err := n.Local().Check(); err != nil {
			return fmt.Errorf("localcluster: %s: %w", n.Name(), err)
		}
	}
	return nil
}

// WaitGossiped waits, up to Settle, until every node's view of every member's
// used bytes (cluster.Member.Used, as last gossiped) is that member's store's
// own figure: a program that prints the members' table then prints true
// figures, not ones a StatsInterval old. Figures that keep changing (a store
// in use) may never match: call it once the stores are still.
func (c *Cluster) WaitGossiped(ctx context.Context) error {
	return poll(ctx, func() string {
		for _, n := range c.Nodes {
			for _, m := range n.Members() {
				o := c.Node(m.ID)
				if o == nil {
					continue // not one of ours: a member this cluster did not open
				}
				if used := o.Local().Stats().Used; m.Used != used {
					return fmt.Sprintf("%s sees %s using %d bytes, its store says %d", n.Name(), m.Name, m.Used, used)
				}
			}
		}
		return ""
	}, "members' gossiped figures did not catch up with the stores", "is the machine overloaded?")
}

// poll calls cond until it returns "", ctx ends or Settle passes; then the
// error says what, what cond said last, and hint.
func poll(ctx context.Context, cond func() string, what, hint string) error {
	deadline := time.Now().Add(Settle)
	for {
		s := cond()
		if s == "" {
			return nil
		}
		if !time.Now().Before(deadline) {
			return fmt.Errorf("localcluster: %s within %v: %s (%s)", what, Settle, s, hint)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("localcluster: %s: %w (%s)", what, ctx.Err(), s)
		case <-time.After(5 * time.Millisecond):
		}
	}
}

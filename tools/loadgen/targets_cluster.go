package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/trovedb/trove/cluster"
	"github.com/trovedb/trove/engine"
)

// defaultClusterCapacity is each -embedded-cluster node's shared memory when
// -capacity is not given: the engine's default (30% of RAM) once per node
// would ask for most of the machine.
const defaultClusterCapacity = 256 << 20

// Bounds of an embedded cluster's start (every node seeing every other
// alive) and drain (releases reach owners in batches; an owner frees its
// primary when the last borrower's release has arrived). Both take
// milliseconds; the bounds are generous for a loaded machine.
const (
	clusterConverge = 20 * time.Second
	clusterDrain    = 20 * time.Second
)

// embeddedCluster opens an in-process cluster of n nodes, each a target. The
// nodes run Insecure on 127.0.0.1 (self-signed TLS that checks no one,
// unauthenticated gossip): they are all in this process, so there is nobody
// to authenticate. A real cluster's nodes are troved daemons given
// certificates; loadgen reaches them with -cluster and their -socket paths.
func embeddedCluster(ctx context.Context, o *options, n int, stderr io.Writer) (targetSet, error) {
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	capacity := int64(o.capacity)
	if capacity == 0 {
		capacity = defaultClusterCapacity
	}
	var nodes []*cluster.Node
	closeAll := func() {
		for _, nd := range nodes {
			_ = nd.Close()
		}
	}
	for i := range n {
		name := fmt.Sprintf("node-%d", i+1)
		cfg := cluster.Config{
			Store: engine.Config{
				Capacity:        capacity,
				InlineThreshold: int64(o.inline),
			},
			Name:           name,
			Listen:         "127.0.0.1:0",
			Insecure:       true,
			GossipInterval: 20 * time.Millisecond, // in one process: joins and leaves spread at once
			Logger:         log,
		}
		// Each node spills to its own directory under every -spill-dir.
		for _, d := range o.spillDirs {
			cfg.Store.SpillDirs = append(cfg.Store.SpillDirs, filepath.Join(d, name))
		}
		if i > 0 {
			cfg.Join = []string{nodes[0].Addr()}
		}
		nd, err := cluster.Open(ctx, cfg)
		if err != nil {
			closeAll()
			return nil, fmt.Errorf("-embedded-cluster: start %s: %w", name, err)
		}
		nodes = append(nodes, nd)
	}
	if err := converge(ctx, nodes); err != nil {
		closeAll()
		return nil, err
	}
	var ts targetSet
	for _, nd := range nodes {
		ts = append(ts, openTarget{
			target:    target{Name: nd.Name(), Store: nd},
			closer:    nd,
			inProcess: true,
			state:     func(ctx context.Context) StoreState { return drainedNode(ctx, nd) },
			info: func(context.Context) (nodeInfo, error) {
				return nodeInfo{Name: nd.Name(), Stats: nd.Stats().Fields()}, nil
			},
		})
	}
	return ts, nil
}

// converge waits until every node lists every node alive.
func converge(ctx context.Context, nodes []*cluster.Node) error {
	deadline := time.Now().Add(clusterConverge)
	for {
		missing := ""
		for _, n := range nodes {
			alive := map[string]bool{}
			for _, m := range n.Members() {
				alive[m.Name] = m.State == cluster.StateAlive
			}
			for _, o := range nodes {
				if !alive[o.Name()] && missing == "" {
					missing = fmt.Sprintf("%s does not see %s alive", n.Name(), o.Name())
				}
			}
		}
		if missing == "" {
			return nil
		}
		if !time.Now().Before(deadline) {
			return fmt.Errorf("-embedded-cluster: the nodes did not converge within %v: %s (an overloaded machine, or the loopback interface filtered?)", clusterConverge, missing)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("-embedded-cluster: interrupted while the nodes were starting")
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// drainedNode is an embedded node's figures after the run, read until its
// store holds nothing (up to clusterDrain): loadgen dropped every ref it put
// and every ref it borrowed, on every node.
func drainedNode(ctx context.Context, n *cluster.Node) StoreState {
	deadline := time.Now().Add(clusterDrain)
	for {
		st := n.Local().Stats()
		drained := st.Objects == 0 && st.Used == 0 && st.PinnedObjects == 0 && st.Views == 0 && st.RemoteObjects == 0
		if drained || !time.Now().Before(deadline) || ctx.Err() != nil {
			n.Local().WaitIdle() // an object dropped while being spilled is freed when the write ends
			s := engineState(n.Name(), n.Local().Stats())
			s.Drained = &drained
			return s
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// checkClusterSockets checks that the daemons of -cluster are distinct nodes:
// two sockets of one daemon would put and get on the same node.
func checkClusterSockets(ctx context.Context, ts targetSet) error {
	seen := map[string]string{}
	for _, t := range ts {
		if t.node == nil {
			continue
		}
		node, err := t.node(ctx)
		if err != nil {
			return fmt.Errorf("-cluster: -socket %s: %w", t.Name, err)
		}
		if other, dup := seen[node]; dup {
			return fmt.Errorf("-cluster: -socket %s and -socket %s are the same node (%s); give one socket per node of the cluster", other, t.Name, node)
		}
		seen[node] = t.Name
	}
	if len(ts) < 2 {
		return errors.New("-cluster needs the sockets of at least 2 nodes of one cluster (repeat -socket), or use -embedded-cluster N")
	}
	return nil
}

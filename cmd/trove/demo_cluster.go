package main

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"

	"time"

	"github.com/trovedb/trove"
	"github.com/trovedb/trove/cluster"
	"github.com/trovedb/trove/engine"
	"github.com/trovedb/trove/net/ipc"
	"github.com/trovedb/trove/net/quic"
)

// The demo's cluster: three nodes in this process, on 127.0.0.1 with ports the
// kernel picks, so that `trove demo` needs no set-up and leaves nothing behind.
const (
	demoNodes = 3
	// demoSettle bounds the waits for the membership to converge and for every
	// node's store to drain (releases travel to owners in batches). Both take
	// milliseconds; the bound is generous for a loaded machine.
	demoSettle = 20 * time.Second
)

// demoCluster is the demo's in-process cluster. nodes[0] runs the walkthrough.
type demoCluster struct {
	nodes []*cluster.Node
}

// lockedWriter serialises writes to w: the demo's prose and the nodes' log
// lines (written from their goroutines) share one output.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// openDemoCluster starts the demo's nodes, each with capacity bytes of shared
// memory, the later ones joining the first, and waits until every node sees
// every other alive. The nodes log warnings and errors only, to logw.
//
// The nodes run Insecure: self-signed TLS that verifies no one and
// unauthenticated gossip. That is for a laptop, where every node is in one
// process on the loopback interface; a real cluster's nodes are given
// certificates from one CA (`trove cert create-ca`, `trove cert create-node`,
// troved -certs-dir), and Open refuses to start without them unless Insecure
// is asked for.
func openDemoCluster(ctx context.Context, capacity int64, logw io.Writer) (*demoCluster, error) {
	log := slog.New(slog.NewTextHandler(logw, &slog.HandlerOptions{Level: slog.LevelWarn}))
	config := func(i int) cluster.Config {
		return cluster.Config{
			// Node 1's arena fills as the walkthrough runs. The others are
			// populated up front (a fraction of a second each, in parallel), so
			// that the transfer the demo times lands in warm memory, not in
			// first-touch page faults, which on this class of machine are many
			// times slower than the transfer.
			Store:    engine.Config{Capacity: capacity, PrefaultAll: i > 0},
			Name:     fmt.Sprintf("node-%d", i+1),
			Listen:   "127.0.0.1:0",
			Insecure: true, // a laptop demo: see the comment above
			// All three nodes are in this process: gossip often, so that
			// joins and leaves spread in milliseconds and the demo starts and
			// ends at once.
			GossipInterval: 20 * time.Millisecond,
			Logger:         log,
		}
	}
	first, err := cluster.Open(ctx, config(0))
	if err != nil {
		return nil, fmt.Errorf("demo: start node-1: %w", err)
	}
	c := &demoCluster{nodes: make([]*cluster.Node, demoNodes)}
	c.nodes[0] = first
	errs := make([]error, demoNodes)
	var wg sync.WaitGroup
	for i := 1; i < demoNodes; i++ {
		wg.Go(func() {
			cfg := config(i)
			cfg.Join = []string{first.Addr()}
			c.nodes[i], errs[i] = cluster.Open(ctx, cfg)
			if errs[i] != nil {
				errs[i] = fmt.Errorf("demo: start %s: %w", cfg.Name, errs[i])
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

// waitMembers waits, up to demoSettle, until every node lists every node alive.
func (c *demoCluster) waitMembers(ctx context.Context) error {
	deadline := time.Now().Add(demoSettle)
	for {
		missing := ""
		for _, n := range c.nodes {
			alive := map[trove.NodeID]bool{}
			for _, m := range n.Members() {
				alive[m.ID] = m.State == cluster.StateAlive
			}
			for _, o := range c.nodes {
				if !alive[o.ID()] && missing == "" {
					missing = fmt.Sprintf("%s does not see %s alive", n.Name(), o.Name())
				}
			}
		}
		if missing == "" {
			return nil
		}
		if !time.Now().Before(deadline) {
			return fmt.Errorf("demo: the in-process cluster did not converge within %v: %s (is the machine overloaded, or the loopback interface filtered?)", demoSettle, missing)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// Close closes the nodes, the last started first; each leaves the cluster.
func (c *demoCluster) Close() error {
	var errs []error
	for _, n := range slices.Backward(c.nodes) {
		if n != nil {
			errs = append(errs, n.Close())
		}
	}
	return errors.Join(errs...)
}

// busy describes what a node's store still holds, or "" if it holds nothing.
func busy(n *cluster.Node) string {
	s := n.Local().Stats()
	if s.Objects == 0 && s.ObjectBytes == 0 && s.Used == 0 && s.PinnedObjects == 0 && s.Views == 0 && s.RemoteObjects == 0 {
		return ""
	}
	return fmt.Sprintf("%s: objects=%d bytes=%d used=%d pinned=%d views=%d refs to other nodes' objects=%d",
		n.Name(), s.Objects, s.ObjectBytes, s.Used, s.PinnedObjects, s.Views, s.RemoteObjects)
}

// waitDrained waits, up to demoSettle, until every node's store is empty:
// releases reach owners in batches, and an owner frees its primary only when
// the last borrower's release has arrived.
func (c *demoCluster) waitDrained(ctx context.Context) error {
	deadline := time.Now().Add(demoSettle)
	for {
		var left []string
		for _, n := range c.nodes {
			if b := busy(n); b != "" {
				left = append(left, b)
			}
		}
		if len(left) == 0 {
			for _, n := range c.nodes {
				n.Local().WaitIdle()
			}
			return nil
		}
		if !time.Now().Before(deadline) {
			return fmt.Errorf("demo: stores not empty %v after every ref was dropped: %s", demoSettle, strings.Join(left, "; "))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// printNodeMembers prints the cluster's members as n sees them, in the table
// trove status prints for a cluster node. The used figures are gossiped every
// cluster.DefaultStatsInterval, so they lag the stores' own.
func printNodeMembers(out io.Writer, n *cluster.Node) {
	ms := n.Members()
	slices.SortFunc(ms, func(a, b cluster.Member) int { return strings.Compare(a.Name, b.Name) })
	infos := make([]ipc.MemberInfo, len(ms))
	for i, m := range ms {
		infos[i] = ipc.MemberInfo{Name: m.Name, ID: m.ID.String(), Addr: m.Addr, State: m.State.String(),
			Capacity: m.Capacity, Used: m.Used, Updated: m.Updated, Self: m.ID == n.ID()}
	}
	printMembers(out, infos, time.Now())
}

// rate formats size bytes moved in d as MB/s (10^6 bytes a second).
func rate(size int64, d time.Duration) string {
	return fmt.Sprintf("%.0f MB/s", float64(size)/max(d.Seconds(), 1e-9)/1e6)
}

// clusterExample is the part of the tour Ray's single-node notebook cannot
// show: a ref made on one node and got on another ("if the current node's
// object store does not contain the object, the object is downloaded").
func clusterExample(ctx context.Context, c *demoCluster, say func(string, ...any), scale func(time.Duration) time.Duration, quick bool, capacity int64) error {
	a, b, cn := c.nodes[0], c.nodes[1], c.nodes[2]
	inline := a.Local().Config().InlineThreshold
	say("Ray: \"If the current node's object store does not contain the object, the object is downloaded.\"")

	// A large object: put on A, got on B and then on C, each pulling it in
	// chunks into its own arena.
	size := min(int64(64<<20), capacity/4)
	if quick {
		size = min(size, 4<<20) // tests run the demo under -race, where every byte costs more
	}
	bld, err := a.Local().Create(ctx, int(size))
	if err != nil {
		return err
	}
	fillPattern(bld.Bytes(), 7)
	sum := crc32.ChecksumIEEE(bld.Bytes())
	big := bld.Ref()
	if err := bld.Seal(); err != nil {
		big.Drop()
		return err
	}
	say("%s: put a %s object: %v (its ID names its owner, %s)", a.Name(), trove.HumanBytes(size), big, a.Name())
	// Node 2 keeps its copy while node 3 pulls: it is a holder then, too.
	held := []trove.Ref{big}
	defer func() { dropAll(held) }()
	from := a.Name()
	for _, n := range []*cluster.Node{b, cn} {
		// The ref passed by ID, as another process or node would receive it.
		r, err := n.Borrow(big.ID())
		if err != nil {
			return err
		}
		held = append(held, r)
		t0 := time.Now()
		obj, err := n.Get(ctx, r)
		took := time.Since(t0)
		if err != nil {
			return err
		}
		ok := crc32.ChecksumIEEE(obj.Bytes()) == sum
		obj.Release()
		if !ok {
			return fmt.Errorf("the %s object got on %s differs from what %s put", trove.HumanBytes(size), n.Name(), a.Name())
		}
		say("%s: Borrow(id), Get: pulled %s from %s in %v: %s (%s chunks, up to %d parallel QUIC streams, straight into %s's arena); checksum matches",
			n.Name(), trove.HumanBytes(size), from, took.Round(time.Microsecond), rate(size, took),
			trove.HumanBytes(quic.DefaultChunkSize), quic.DefaultStreams, n.Name())
		t0 = time.Now()
		obj, err = n.Get(ctx, r)
		took = time.Since(t0)
		if err != nil {
			return err
		}
		obj.Release()
		say("%s: a second Get reads the copy it now holds: %v, no transfer (fetches from other nodes so far: %d)",
			n.Name(), took.Round(time.Microsecond), n.Local().Stats().Fetches)
		from = fmt.Sprintf("the holders %s names (%s's copy first, its primary last)", a.Name(), n.Name())
	}
	dropAll(held)
	held = nil
	say("(a transfer's speed here is quic-go's on loopback on a shared machine; perf.md has measured figures against raw quic-go)")

	// A small object: answered inline by its owner, in the reply.
	msg := "hello from " + a.Name()
	small, err := trove.PutValue(ctx, a, msg)
	if err != nil {
		return err
	}
	onC, err := cn.Borrow(small.ID())
	if err != nil {
		small.Drop()
		return err
	}
	t0 := time.Now()
	got, err := trove.GetValue[string](ctx, cn, onC)
	took := time.Since(t0)
	if err != nil {
		return err
	}
	if got != msg {
		return fmt.Errorf("%s got %q, %s put %q", cn.Name(), got, a.Name(), msg)
	}
	say("%s: Get of a small object (%q; at most %s is answered inline, inside the owner's reply): %v",
		cn.Name(), got, trove.HumanBytes(inline), took.Round(time.Microsecond))
	onC.Drop()
	small.Drop()

	// Nested refs across nodes: x on A, a dict holding it on B, read on C.
	say("\nnested refs across nodes:")
	x := make([]int, 20)
	for i := range x {
		x[i] = i * i
	}
	xRef, err := trove.PutValue(ctx, a, x)
	if err != nil {
		return err
	}
	xOnB, err := b.Borrow(xRef.ID())
	if err != nil {
		return err
	}
	dict, err := trove.PutValue(ctx, b, map[string]trove.Ref{"obj": xOnB})
	if err != nil {
		return err
	}
	xRef.Drop()
	xOnB.Drop()
	say("  x=%v... put on %s; {\"obj\": ref to x} put on %s; both nodes dropped their own refs to x: the dict keeps it alive", x[:5], a.Name(), b.Name())
	dictOnC, err := cn.Borrow(dict.ID())
	if err != nil {
		return err
	}
	dict.Drop()
	d, err := trove.GetValue[map[string]trove.Ref](ctx, cn, dictOnC)
	if err != nil {
		return err
	}
	dictOnC.Drop() // the nested ref was registered with x's owner as it was decoded
	inner, err := trove.GetValue[[]int](ctx, cn, d["obj"])
	if err != nil {
		return err
	}
	if !slices.Equal(inner, x) {
		return fmt.Errorf("x got on %s through the dict is %v, want %v", cn.Name(), inner, x)
	}
	say("  %s: got the dict (owner %s), dropped it, then x through the ref inside (owner %s): %v...", cn.Name(), b.Name(), a.Name(), inner[:5])
	d["obj"].Drop()

	// Wait across owners: three values still being produced, one per node.
	say("\nWait across owners (%s waits on values produced on all three nodes):", cn.Name())
	delays := []time.Duration{600 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond}
	var owned, borrowed, refs []trove.Ref
	defer func() {
		dropAll(borrowed)
		dropAll(owned)
	}()
	for i, n := range c.nodes {
		d := scale(delays[i])
		v := uint64(100 * (i + 1))
		r, err := remote(ctx, n.Local(), 8, func(dst []byte) {
			time.Sleep(d)
			binary.LittleEndian.PutUint64(dst, v)
		})
		if err != nil {
			return err
		}
		owned = append(owned, r)
		if n == cn {
			refs = append(refs, r)
			continue
		}
		br, err := cn.Borrow(r.ID()) // pending: borrowed before it is sealed, like a task's result
		if err != nil {
			return err
		}
		borrowed = append(borrowed, br)
		refs = append(refs, br)
	}
	remaining := refs
	for len(remaining) > 0 {
		var ready []trove.Ref
		ready, remaining, err = cn.Wait(ctx, remaining, 1)
		if err != nil {
			return err
		}
		if len(ready) != 1 {
			return fmt.Errorf("wait(num_returns=1) returned %d ready", len(ready))
		}
		obj, err := cn.Get(ctx, ready[0])
		if err != nil {
			return err
		}
		say("  ready: %v, owned by %s = %d (%d still being produced)", ready[0], ownerName(c, ready[0]), binary.LittleEndian.Uint64(obj.Bytes()), len(remaining))
		obj.Release()
	}
	ready, pending, err := cn.Wait(ctx, refs, len(refs))
	if err != nil {
		return err
	}
	inOrder := len(ready) == len(refs) && len(pending) == 0
	for i := range ready {
		inOrder = inOrder && ready[i].ID() == refs[i].ID()
	}
	if !inOrder {
		return fmt.Errorf("wait(num_returns=%d) across owners: ready %v pending %v, want all of %v in input order", len(refs), ready, pending, refs)
	}
	var owners []string
	for _, r := range ready {
		owners = append(owners, ownerName(c, r))
	}
	say("  wait(num_returns=3): 3 ready_refs in input order (owners %s), remaining_refs=[]", strings.Join(owners, ", "))
	return nil
}

// ownerName is the name of the demo node that owns ref.
func ownerName(c *demoCluster, ref trove.Ref) string {
	for _, n := range c.nodes {
		if n.ID() == ref.ID().Node() {
			return n.Name()
		}
	}
	return ref.ID().Node().String()
}

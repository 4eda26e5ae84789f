package main

import (
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/trovedb/trove"
	"github.com/trovedb/trove/cluster"
	"github.com/trovedb/trove/internal/localcluster"
	"github.com/trovedb/trove/internal/seeds"
	"github.com/trovedb/trove/net/ipc"
	"github.com/trovedb/trove/net/quic"
	"github.com/trovedb/trove/task"
)

// The demo's cluster: three nodes in this process (internal/localcluster), on
// 127.0.0.1 with ports the kernel picks, so that `trove demo` needs no set-up
// and leaves nothing behind, each running a task runtime.
const demoNodes = 3

// demoCluster is the demo's in-process cluster. Nodes[0] runs the walkthrough,
// through rts[0].
type demoCluster struct {
	*localcluster.Cluster
	rts []*task.Runtime
}

// delayedValue returns v after d: the cluster section's calls on each node.
var delayedValue = task.Define2("delayed_value", func(ctx context.Context, d time.Duration, v uint64) (uint64, error) {
	return v, seeds.Sleep(ctx, d)
})

// openDemoCluster starts the demo's nodes, each with capacity bytes of shared
// memory, and a task runtime on each: GOMAXPROCS CPU slots, and, as Ray
// gives every node a "node:<address>" resource, a "node:<name>" resource of
// 1 that pins a call to one node when it asks for it; node-1 also declares the
// tutorial's resources={'Custom': 2}. The nodes log warnings and errors only,
// to logw.
//
// Nodes 2 and 3 are populated up front (a fraction of a second each, in
// parallel), so that the transfer the demo times lands in warm memory, not in
// first-touch page faults, which on this class of machine are many times
// slower than the transfer. Node 1's arena fills as the walkthrough runs.
//
// The nodes run Insecure (see internal/localcluster): a real cluster's nodes
// are given certificates from one CA (`trove cert create-ca`, `trove cert
// create-node`, troved -certs-dir).
func openDemoCluster(ctx context.Context, capacity int64, logw io.Writer) (*demoCluster, error) {
	c, err := localcluster.Open(ctx, localcluster.Config{Nodes: demoNodes, Capacity: capacity, Prefault: true, Log: logw})
	if err != nil {
		return nil, fmt.Errorf("demo: %w", err)
	}
	rts, err := c.StartTasks(func(i int) task.Config {
		res := map[string]float64{"node:" + c.Nodes[i].Name(): 1}
		if i == 0 {
			res["Custom"] = 2
		}
		return task.Config{Resources: res}
	})
	if err != nil {
		return nil, errors.Join(fmt.Errorf("demo: %w", err), c.Close())
	}
	return &demoCluster{Cluster: c, rts: rts}, nil
}

// onNode is the call option that runs a call on n.
func onNode(n *cluster.Node) task.CallOption { return task.Resource("node:"+n.Name(), 0.001) }

// printNodeMembers prints the cluster's members as n sees them, in the table
// trove status prints for a cluster node. The store figures are as last
// gossiped (every localcluster.StatsInterval when they change): the caller
// waits for them (Cluster.WaitGossiped) to print the stores' own. The slots
// and resources are each runtime's now, from rts (task.Runtime.Nodes asks
// every runtime), where gossip would show them up to a StatsInterval old.
func printNodeMembers(out io.Writer, n *cluster.Node, rts []task.NodeStatus) {
	ms := n.Members()
	slices.SortFunc(ms, func(a, b cluster.Member) int { return strings.Compare(a.Name, b.Name) })
	infos := make([]ipc.MemberInfo, len(ms))
	for i, m := range ms {
		infos[i] = ipc.MemberInfo{Name: m.Name, ID: m.ID.String(), Addr: m.Addr, State: m.State.String(),
			Capacity: m.Capacity, Used: m.Used, Updated: m.Updated, Self: m.ID == n.ID()}
		for _, st := range rts {
			if st.ID != m.ID {
				continue
			}
			infos[i].Slots = int(st.Total[task.CPU])
			names := []string{task.CPU} // CPU first, as status lists it, then the custom ones by name
			for _, name := range slices.Sorted(maps.Keys(st.Total)) {
				if name != task.CPU {
					names = append(names, name)
				}
			}
			for _, name := range names {
				infos[i].Resources = append(infos[i].Resources, ipc.ResourceInfo{Name: name, Total: st.Total[name], Free: st.Free[name]})
			}
		}
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
	a, b, cn := c.Nodes[0], c.Nodes[1], c.Nodes[2]
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
	defer func() { seeds.DropAll(held) }()
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
	seeds.DropAll(held)
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

	// Wait across owners: three calls still running, each made by one node's
	// runtime and run there, so each result is owned by a different node.
	say("\nWait across owners (%s waits on calls made and running on all three nodes):", cn.Name())
	delays := []time.Duration{600 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond}
	var owned, borrowed, refs []trove.Ref
	defer func() {
		seeds.DropAll(borrowed)
		seeds.DropAll(owned)
	}()
	for i, n := range c.Nodes {
		d := scale(delays[i])
		v := uint64(100 * (i + 1))
		r, err := delayedValue.Options(onNode(n)).Remote(ctx, c.rts[i], task.Val(d), task.Val(v))
		if err != nil {
			return err
		}
		owned = append(owned, r)
		if n == cn {
			refs = append(refs, r)
			continue
		}
		br, err := cn.Borrow(r.ID()) // pending: borrowed before the call has finished
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
		v, err := trove.GetValue[uint64](ctx, cn, ready[0])
		if err != nil {
			return err
		}
		say("  ready: %v, owned by %s = %d (%d still running)", ready[0], ownerName(c, ready[0]), v, len(remaining))
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
	for _, n := range c.Nodes {
		if n.ID() == ref.ID().Node() {
			return n.Name()
		}
	}
	return ref.ID().Node().String()
}

package main

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"time"

	"github.com/trovedb/trove"
	"github.com/trovedb/trove/engine"
	"github.com/trovedb/trove/internal/batchinfer"
	"github.com/trovedb/trove/internal/localcluster"
	"github.com/trovedb/trove/internal/seeds"
	"github.com/trovedb/trove/internal/seeds/batchinference"
	"github.com/trovedb/trove/internal/seeds/objects"
	"github.com/trovedb/trove/internal/seeds/remoteobjects"
	"github.com/trovedb/trove/internal/seeds/tensors"
	"github.com/trovedb/trove/internal/seeds/tour"
)

// cmdDemo is `trove demo`: the tutorial, on an in-process cluster of three nodes.
func cmdDemo(ctx context.Context, args []string, out io.Writer) error {
	cmd := newCommand("demo", "demo [-capacity SIZE] [-quick]",
		"Walks through Ray's remote-objects tutorials (put/get, remote calls, Wait, tensors,\n"+
			"passing objects, the read-only fault, batch inference on Parquet shards) on an\n"+
			"in-process cluster of three nodes on 127.0.0.1 (no daemon, no set-up, no certificates:\n"+
			"the nodes run Insecure, fine on a laptop only), then puts a ref on one node and gets it\n"+
			"on another, checking every result; exits 1 if one is wrong. It prints prose for\n"+
			"people: no --json.")
	capacity := sizeFlag(256 << 20)
	cmd.fs.Var(&capacity, "capacity", "each node's shared memory (`SIZE`: 256MiB, 1GiB, or bytes)")
	quick := cmd.fs.Bool("quick", false, "shorten the waits 20 times, the timed transfer to 4 MiB and the shards 100 times (for tests)")
	pos, err := cmd.parse(args, out)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("demo: unexpected argument %q (demo takes only flags)", pos[0])
	}
	if capacity <= 0 {
		return usagef("demo: -capacity %d: want a positive size such as 256MiB", int64(capacity))
	}
	return demo(ctx, out, demoOptions{capacity: int64(capacity), quick: *quick})
}

// sizeFlag is a byte size flag, parsed by trove.ParseBytes as every command's
// sizes are ("1GiB", "512MiB", "4096").
type sizeFlag int64

func (f *sizeFlag) String() string { return trove.HumanBytes(int64(*f)) }

func (f *sizeFlag) Set(s string) error {
	n, err := trove.ParseBytes(s)
	if err != nil {
		return err
	}
	*f = sizeFlag(n)
	return nil
}

type demoOptions struct {
	capacity int64
	quick    bool // scale every sleep down 20×, and the timed transfer to 4 MiB
}

// demo walks through the seed documents' steps (internal/seeds: the same code
// as examples/) on node 1 of an in-process cluster, with remote calls running
// on all three nodes, then shows what a cluster adds: a ref put on one node
// and got on another.
func demo(ctx context.Context, out io.Writer, opt demoOptions) (err error) {
	start := time.Now()
	scale := func(d time.Duration) time.Duration {
		if opt.quick {
			return d / 20
		}
		return d
	}
	// The nodes' log lines (warnings and errors only) come from their goroutines.
	out = localcluster.SyncWriter(out)
	say := func(format string, args ...any) { fmt.Fprintf(out, format+"\n", args...) }
	section := func(title string) { say("\n## %s", title) }

	c, err := openDemoCluster(ctx, opt.capacity, out)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := c.Close(); cerr != nil {
			err = errors.Join(err, fmt.Errorf("demo: closing the cluster: %w", cerr))
		}
	}()
	// The walkthrough is driven from node 1: its puts land in node 1's store,
	// its calls run wherever the cluster has free slots. A document's second
	// is a quarter of one here, as in examples/.
	d := &seeds.Driver{Cluster: c.Cluster, RT: c.rts[0], Out: out, Unit: scale(time.Second / 4)}
	st := c.Nodes[0].Local()
	cfg := st.Config()
	say("# trove demo: Ray's remote objects and remote functions, on a cluster of %d nodes in this process", len(c.Nodes))
	say("each node: its own store of %s shared memory (objects over %s kept there, smaller ones inline), on 127.0.0.1",
		trove.HumanBytes(cfg.Capacity), trove.HumanBytes(cfg.InlineThreshold))
	say("the nodes run Insecure (self-signed TLS that checks no one, unauthenticated gossip): fine for a laptop demo,\n" +
		"never for a real cluster, whose nodes get certificates from `trove cert create-ca` / `create-node` (troved -certs-dir)")
	say("the steps below are the seed documents' cells, the code examples/ runs (internal/seeds/<document>), each a\n"+
		"document's second scaled to %v; they are driven from %s (node ID %s), and their calls run on all three nodes", d.Unit, c.Nodes[0].Name(), st.Node())

	rows := batchinfer.SeedRows
	if opt.quick {
		rows = make([]int, len(batchinfer.SeedRows))
		for i, n := range batchinfer.SeedRows {
			rows[i] = n / 100
		}
	}
	for _, s := range []struct {
		title string
		step  seeds.Step
	}{
		{"The cluster's resources (remoteobjects)", remoteobjects.ClusterResources},
		{"Single object refs: put / get (remoteobjects)", remoteobjects.SingleRef},
		{"Multiple object refs: get a list of refs (remoteobjects)", remoteobjects.MultipleRefs},
		{"Composable futures: a remote call whose argument is a ref (tour)", tour.RemoteObjects},
		{"Timing out: Get of a call still running (remoteobjects)", remoteobjects.TimingOut},
		{"Waiting without blocking: Wait on ten calls finishing at random times (remoteobjects)", remoteobjects.WaitingWithoutBlocking},
		{"Passing objects by value: top-level refs are resolved (tensors)", tensors.PassByValue},
		{"Passing objects by reference: refs inside a value arrive as refs (tensors)", tensors.PassByReference},
		{"Nested objects: a list keeps the object it holds alive (objects)", objects.Nested},
		{"100 random tensors of shape ((i+1)*25, 50), put, transformed by remote calls in parallel, checked (tensors)", tensors.Tensors},
		{"Objects are immutable: an argument read in place is mapped read-only (tensors)", tensors.ReadOnly},
		{"Distributed batch inference: a model put once, one call per Parquet shard, Arrow predictions (batchinference)", batchinference.Step(rows)},
	} {
		section(s.title)
		if err := s.step(ctx, d); err != nil {
			return err
		}
	}

	// --- Spilling ------------------------------------------------------------------
	section("Object spilling: putting three times the store's capacity")
	if err := spillExample(ctx, st, say); err != nil {
		return err
	}

	// --- The cluster -----------------------------------------------------------------
	section(fmt.Sprintf("Across the cluster: put on one node, get on another (%d nodes)", len(c.Nodes)))
	if err := clusterExample(ctx, c, say, scale, opt.quick, opt.capacity); err != nil {
		return err
	}

	// --- Stats ---------------------------------------------------------------------
	section("Store statistics on every node (every ref dropped, every view released)")
	if err := c.WaitDrained(ctx); err != nil {
		return err
	}
	for _, n := range c.Nodes {
		s := n.Local().Stats()
		say("%s: objects=%d bytes=%s pinned=%d views=%d arena used=%s of %s (populated %s) puts=%d gets=%d fetches=%d frees=%d",
			n.Name(), s.Objects, trove.HumanBytes(s.ObjectBytes), s.PinnedObjects, s.Views, trove.HumanBytes(s.Used),
			trove.HumanBytes(s.Capacity), trove.HumanBytes(s.Populated), s.Puts, s.Gets, s.Fetches, s.Frees)
	}
	// The members' figures are gossiped (every localcluster.StatsInterval when
	// they change): wait until node 1's view of each matches that node's store.
	if err := c.WaitGossiped(ctx); err != nil {
		return err
	}
	statuses, err := d.RT.Nodes(ctx)
	if err != nil {
		return err
	}
	say("members as %s sees them (USED as gossiped, waited for until it is each store's own; SLOTS and RESOURCES asked of each runtime now):", c.Nodes[0].Name())
	printNodeMembers(out, c.Nodes[0], statuses)
	say("\nall freed; demo finished in %v", time.Since(start).Round(time.Millisecond))
	return nil
}

// spillExample puts three times the store's capacity in 16 MiB objects: the store
// spills the least recently used to disk as memory fills (Ray 1.3+ does the same),
// and every Get brings its object back, intact.
func spillExample(ctx context.Context, st *engine.Store, say func(string, ...any)) error {
	const size = 16 << 20
	capacity := st.Config().Capacity
	n := int(3 * capacity / size)
	say("capacity %s; putting %d objects of %s (%s), spilling to %v",
		trove.HumanBytes(capacity), n, trove.HumanBytes(size), trove.HumanBytes(int64(n)*size), st.Config().SpillDirs)
	sums := make([]uint32, n)
	refs := make([]trove.Ref, n)
	for i := range refs {
		b, err := st.Create(ctx, size)
		if err != nil {
			return err
		}
		fillPattern(b.Bytes(), uint64(i))
		sums[i] = crc32.ChecksumIEEE(b.Bytes())
		refs[i] = b.Ref()
		if err := b.Seal(); err != nil {
			return err
		}
		if (i+1)%(n/3) == 0 {
			s := st.Stats()
			say("  put %3d (%s): %s in memory, %d objects (%s) spilled in %d files",
				i+1, trove.HumanBytes(int64(i+1)*size), trove.HumanBytes(s.Used),
				s.SpilledObjects, trove.HumanBytes(s.SpilledBytes), s.SpillFilesWritten)
		}
	}
	for i, r := range refs {
		obj, err := st.Get(ctx, r)
		if err != nil {
			return err
		}
		ok := crc32.ChecksumIEEE(obj.Bytes()) == sums[i]
		obj.Release()
		if !ok {
			return fmt.Errorf("object %d came back different from what was put", i)
		}
	}
	s := st.Stats()
	say("got all %d back intact (checksums match): %d restored from disk at %.0f MB/s, %d mapped from their spill files; spilled at %.0f MB/s",
		n, s.Restores, s.RestoreThroughput/1e6, s.FallbackAllocations, s.SpillThroughput/1e6)
	seeds.DropAll(refs)
	st.WaitIdle() // an object dropped while being spilled is freed when its write ends
	s = st.Stats()
	say("refs dropped: %d spill files and %s left on disk", s.SpillFiles, trove.HumanBytes(s.SpillDiskBytes))
	if s.SpillFiles != 0 || s.SpilledObjects != 0 {
		return fmt.Errorf("spill files left after every ref was dropped: %+v", s)
	}
	return nil
}

// fillPattern fills b with bytes that depend on seed.
func fillPattern(b []byte, seed uint64) {
	x := seed*0x9e3779b97f4a7c15 + 1
	for i := 0; i+8 <= len(b); i += 8 {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		binary.LittleEndian.PutUint64(b[i:], x)
	}
}

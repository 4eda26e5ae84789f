package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/trovedb/trove"
	"github.com/trovedb/trove/tools/netcluster/netns"
)

// BroadcastOptions shape one broadcast: node 0 puts an object of Size bytes,
// the Getters (default: every other node) Get it at once.
type BroadcastOptions struct {
	Size    int
	Seed    uint64
	Timeout time.Duration // bound on each Get
	Getters []int         // node indexes; nil means every node not the origin or seeded
	// Seeded nodes Get the object one after another before the Getters
	// start, and keep their copy (ref held, view released) to the end: holders
	// the owner names first. SeedSettle is then waited for the owner to learn
	// of their copies (the updates are asynchronous; ~ms).
	Seeded     []int
	SeedSettle time.Duration
	// Started, if set, is called once every Get has been sent (faults are
	// injected from it); Ended once they have all returned, before the
	// bytes are checked and the nodes drained (faults are undone from it).
	Started, Ended func()
	Drained        time.Duration // bound on the drain check after the refs are dropped; 0: 30 s
}

// GetResult is one node's Get.
type GetResult struct {
	Node     int
	Duration time.Duration
	Err      error
}

// BroadcastResult is what a broadcast did.
type BroadcastResult struct {
	Size    int
	Gets    []GetResult
	Overall time.Duration // from the Gets' start to the last one's end
	// Per node, from the host-side veth: bytes the node sent and received
	// during the Gets.
	LinkOut, LinkIn []uint64
	// Per node, from the daemons' own cluster stats (trove_cluster_bytes_out_total,
	// _in_total): object bytes served and received; -1 where unreadable (a
	// killed node).
	ServedBytes, PulledBytes []int64
	Drops                    []netns.Drops // per node, when loss was set
	// CPUSeconds is the live troveds' user and system CPU time during the Gets.
	CPUSeconds float64
}

// OriginEgress is the bytes node 0's link sent during the Gets.
func (r *BroadcastResult) OriginEgress() uint64 { return r.LinkOut[0] }

// fill writes the pattern of seed into b: each 8-byte word is a splitmix64 of
// its index, so any byte's right value is known from its offset alone.
func fill(b []byte, seed uint64) {
	var i uint64
	for ; int(i*8+8) <= len(b); i++ {
		binary.LittleEndian.PutUint64(b[i*8:], splitmix(seed+i))
	}
	var tail [8]byte
	binary.LittleEndian.PutUint64(tail[:], splitmix(seed+i))
	copy(b[i*8:], tail[:])
}

func splitmix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// firstDiff is the offset of the first byte where got differs from want, or -1.
func firstDiff(got, want []byte) int {
	if len(got) != len(want) {
		return min(len(got), len(want))
	}
	const step = 1 << 20
	for off := 0; off < len(got); off += step {
		end := min(off+step, len(got))
		if !bytes.Equal(got[off:end], want[off:end]) {
			for i := off; i < end; i++ {
				if got[i] != want[i] {
					return i
				}
			}
		}
	}
	return -1
}

// Broadcast runs one broadcast on c. Every Get that succeeds is checked byte
// for byte against the pattern; then every view is released, every ref
// dropped, and every live node must drain to zero objects, bytes and pins.
// The error joins every failed Get, mismatch and undrained node.
func Broadcast(ctx context.Context, c *Cluster, o BroadcastOptions) (*BroadcastResult, error) {
	if o.Timeout == 0 {
		o.Timeout = 10 * time.Minute
	}
	if o.Drained == 0 {
		o.Drained = 30 * time.Second
	}
	getters := o.Getters
	if getters == nil {
		for i := 1; i < len(c.Nodes); i++ {
			if !slices.Contains(o.Seeded, i) {
				getters = append(getters, i)
			}
		}
	}
	if o.Size <= 0 {
		return nil, fmt.Errorf("broadcast: size %d: want at least one byte", o.Size)
	}
	for _, g := range append(slices.Clone(getters), o.Seeded...) {
		if g < 1 || g >= len(c.Nodes) {
			return nil, fmt.Errorf("broadcast: node %d: the getters and seeded nodes are 1 to %d (0 is the origin)", g, len(c.Nodes)-1)
		}
	}
	origin := c.Nodes[0]
	b, err := origin.Client.Create(ctx, o.Size)
	if err != nil {
		return nil, fmt.Errorf("create %d bytes on %s: %w", o.Size, origin.Name, err)
	}
	fill(b.Bytes(), o.Seed)
	if err := b.Seal(); err != nil {
		return nil, fmt.Errorf("seal on %s: %w", origin.Name, err)
	}
	ref := b.Ref()
	defer ref.Drop()
	want := make([]byte, o.Size)
	fill(want, o.Seed)

	var seededRefs []trove.Ref
	defer func() { // on failure paths; Drop is idempotent
		for _, r := range seededRefs {
			r.Drop()
		}
	}()
	for _, i := range o.Seeded {
		n := c.Nodes[i]
		r, err := n.Client.Borrow(ref.ID())
		if err != nil {
			return nil, fmt.Errorf("borrow %s on %s: %w", ref.ID(), n.Name, err)
		}
		seededRefs = append(seededRefs, r)
		gctx, cancel := context.WithTimeout(ctx, o.Timeout)
		obj, err := n.Client.Get(gctx, r)
		cancel()
		if err != nil {
			return nil, fmt.Errorf("seed a copy on %s: %w", n.Name, err)
		}
		d := firstDiff(obj.Bytes(), want)
		obj.Release()
		if d >= 0 {
			return nil, fmt.Errorf("seed a copy on %s: first wrong byte at offset %d of %d", n.Name, d, o.Size)
		}
	}
	if len(o.Seeded) > 0 {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(o.SeedSettle):
		}
	}

	// Borrow the ID on every getter first, so that the Gets start together.
	refs := make([]trove.Ref, len(getters))
	defer func() { // on failure paths; a zero Ref's Drop does nothing
		for _, r := range refs {
			r.Drop()
		}
	}()
	for i, g := range getters {
		if refs[i], err = c.Nodes[g].Client.Borrow(ref.ID()); err != nil {
			return nil, fmt.Errorf("borrow %s on %s: %w", ref.ID(), c.Nodes[g].Name, err)
		}
	}
	res := &BroadcastResult{Size: o.Size, Gets: make([]GetResult, len(getters)),
		LinkOut: make([]uint64, len(c.Nodes)), LinkIn: make([]uint64, len(c.Nodes)),
		ServedBytes: make([]int64, len(c.Nodes)), PulledBytes: make([]int64, len(c.Nodes)),
		Drops: make([]netns.Drops, len(c.Nodes))}
	before := make([]netns.LinkCounters, len(c.Nodes))
	served0, pulled0 := c.clusterBytes(ctx)
	for i, n := range c.Nodes {
		if before[i], err = n.Host.Counters(); err != nil {
			return nil, err
		}
	}

	objs := make([]*trove.Object, len(getters))
	var wg sync.WaitGroup
	cpu0 := c.cpuSeconds()
	start := time.Now()
	for i, g := range getters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			gctx, cancel := context.WithTimeout(ctx, o.Timeout)
			defer cancel()
			t0 := time.Now()
			obj, err := c.Nodes[g].Client.Get(gctx, refs[i])
			res.Gets[i] = GetResult{Node: g, Duration: time.Since(t0), Err: err}
			objs[i] = obj
		}()
	}
	if o.Started != nil {
		o.Started()
	}
	wg.Wait()
	res.Overall = time.Since(start)
	res.CPUSeconds = c.cpuSeconds() - cpu0
	if o.Ended != nil {
		o.Ended()
	}
	for i, n := range c.Nodes {
		after, err := n.Host.Counters()
		if err != nil {
			return nil, err
		}
		res.LinkOut[i], res.LinkIn[i] = after.OutBytes-before[i].OutBytes, after.InBytes-before[i].InBytes
		res.Drops[i], _ = n.Host.Drops()
	}
	served1, pulled1 := c.clusterBytes(ctx)
	for i := range c.Nodes {
		res.ServedBytes[i], res.PulledBytes[i] = delta(served0[i], served1[i]), delta(pulled0[i], pulled1[i])
	}

	var errs []error
	for i, g := range getters {
		n := c.Nodes[g]
		if res.Gets[i].Err != nil {
			errs = append(errs, fmt.Errorf("get on %s: %w", n.Name, res.Gets[i].Err))
		} else if d := firstDiff(objs[i].Bytes(), want); d >= 0 {
			errs = append(errs, fmt.Errorf("get on %s: %d bytes, first wrong byte at offset %d of %d", n.Name, len(objs[i].Bytes()), d, o.Size))
		}
		if objs[i] != nil {
			objs[i].Release()
		}
		refs[i].Drop()
	}
	ref.Drop()
	for _, r := range seededRefs {
		r.Drop()
	}
	for _, n := range c.Nodes {
		if n.Alive() {
			errs = append(errs, n.AwaitDrained(ctx, o.Drained))
		}
	}
	return res, errors.Join(errs...)
}

func delta(a, b int64) int64 {
	if a < 0 || b < 0 {
		return -1
	}
	return b - a
}

// clusterBytes reads every node's cluster bytes out and in; -1 where a node
// cannot be read.
func (c *Cluster) clusterBytes(ctx context.Context) (out, in []int64) {
	out, in = make([]int64, len(c.Nodes)), make([]int64, len(c.Nodes))
	for i, n := range c.Nodes {
		out[i], in[i] = -1, -1
		if !n.Alive() {
			continue
		}
		if v, err := n.Metric(ctx, "trove_cluster_bytes_out_total"); err == nil {
			out[i] = int64(v)
		}
		if v, err := n.Metric(ctx, "trove_cluster_bytes_in_total"); err == nil {
			in[i] = int64(v)
		}
	}
	return out, in
}

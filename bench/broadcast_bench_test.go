package bench

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/trovedb/trove"
	"github.com/trovedb/trove/cluster"
	"github.com/trovedb/trove/engine"
)

// broadcastCluster is k in-process nodes of one cluster; node 0 puts.
type broadcastCluster struct{ nodes []*cluster.Node }

func newBroadcastCluster(b *testing.B, k int, capacity int64, pullSources int) *broadcastCluster {
	b.Helper()
	c := &broadcastCluster{}
	for i := range k {
		cfg := cluster.Config{
			Store:    engine.Config{Capacity: capacity},
			Name:     fmt.Sprintf("bcast-%d-%d", pullSources, i),
			Insecure: true, ChunkSize: 1 << 20, PullSources: pullSources,
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		}
		if i > 0 {
			cfg.Join = []string{c.nodes[0].Addr()}
		}
		n, err := cluster.Open(ctx, cfg)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { n.Close() })
		c.nodes = append(c.nodes, n)
	}
	deadline := time.Now().Add(20 * time.Second)
	for _, n := range c.nodes {
		for alive(n) < k {
			if time.Now().After(deadline) {
				b.Fatalf("%s sees %d of %d members alive", n.Name(), alive(n), k)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	return c
}

func alive(n *cluster.Node) int {
	k := 0
	for _, m := range n.Members() {
		if m.State == cluster.StateAlive {
			k++
		}
	}
	return k
}

// broadcast puts src on node 0, has every other node Borrow and Get it at
// once (every byte checked), drops everything and waits until the copies
// are freed. It returns the wall time from the first Get to the last one's
// end and the bytes node 0 served.
func (c *broadcastCluster) broadcast(b *testing.B, src []byte) (time.Duration, int64) {
	owner := c.nodes[0]
	ref, err := owner.Put(ctx, src)
	if err != nil {
		b.Fatal(err)
	}
	refs := make([]trove.Ref, len(c.nodes))
	for i, n := range c.nodes[1:] {
		if refs[i+1], err = n.Borrow(ref.ID()); err != nil {
			b.Fatal(err)
		}
	}
	out0 := owner.Stats().BytesOut
	var wg sync.WaitGroup
	errs := make([]error, len(c.nodes))
	t0 := time.Now()
	for i, n := range c.nodes[1:] {
		wg.Go(func() {
			obj, err := n.Get(ctx, refs[i+1])
			if err != nil {
				errs[i+1] = err
				return
			}
			if !bytes.Equal(obj.Bytes(), src) {
				errs[i+1] = fmt.Errorf("%s got different bytes", n.Name())
			}
			obj.Release()
		})
	}
	wg.Wait()
	d := time.Since(t0)
	out := owner.Stats().BytesOut - out0
	for _, err := range errs {
		if err != nil {
			b.Fatal(err)
		}
	}
	for _, r := range refs[1:] {
		r.Drop()
	}
	ref.Drop()
	deadline := time.Now().Add(20 * time.Second)
	for _, n := range c.nodes {
		for n.Local().Stats().Objects != 0 {
			if time.Now().After(deadline) {
				b.Fatalf("%s still holds %d objects after the broadcast", n.Name(), n.Local().Stats().Objects)
			}
			time.Sleep(50 * time.Microsecond)
		}
	}
	return d, out
}

// BenchmarkClusterBroadcast: one node of four puts a 64 MiB object and the
// other three Get it at once, with swarm pulls (PullSources 0: every holder,
// nodes still pulling included) and, in turns in the same iteration on a
// second cluster, with single-source pulls (PullSources 1, the baseline:
// each pulls from one sealed copy, Ray's PullFromRandomLocation). Loopback
// has no link cap, so the time ratio says little; the figure is the origin's
// egress: origin-MiB/object for each and x_origin (swarm's / single's; the
// issue's goal is ≤ 2 objects' worth at any N, single-source sends N-1).
func BenchmarkClusterBroadcast(b *testing.B) {
	const size = 64 << 20
	const k = 4
	swarm := newBroadcastCluster(b, k, 2*size, 0)
	single := newBroadcastCluster(b, k, 2*size, 1)
	src := bytes.Repeat([]byte{0x5b}, size)
	for i := range src {
		src[i] += byte(i >> 20) // chunks differ: a misplaced chunk is caught
	}
	swarm.broadcast(b, src) // warm: connections, windows, arena pages
	single.broadcast(b, src)
	b.SetBytes(2 * (k - 1) * size)
	b.ReportAllocs()
	var swarmT, singleT time.Duration
	var swarmOut, singleOut int64
	for b.Loop() {
		d, out := swarm.broadcast(b, src)
		swarmT, swarmOut = swarmT+d, swarmOut+out
		d, out = single.broadcast(b, src)
		singleT, singleOut = singleT+d, singleOut+out
	}
	n := float64(b.N)
	b.ReportMetric(float64(swarmOut)/n/float64(1<<20), "swarm-origin-MiB/object")
	b.ReportMetric(float64(singleOut)/n/float64(1<<20), "single-origin-MiB/object")
	b.ReportMetric(float64(swarmOut)/float64(singleOut), "x_origin")
	b.ReportMetric(float64(swarmT.Nanoseconds())/n, "swarm-ns/broadcast")
	b.ReportMetric(float64(singleT.Nanoseconds())/n, "single-ns/broadcast")
	b.ReportMetric(float64(singleT)/float64(swarmT), "x_time_single/swarm")
}

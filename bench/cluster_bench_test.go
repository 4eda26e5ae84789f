package bench

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/trovedb/trove"
	"github.com/trovedb/trove/cluster"
	"github.com/trovedb/trove/engine"
)

// The cluster's benchmarks: a remote Get between two cluster.Nodes (put on A,
// Borrow and Get on B, the copy dropped after each Get so that every Get
// fetches again) against a raw quic-go transfer of the same bytes with the
// same certificates, in turns, in the same run.

// clusterPair is two nodes of one cluster, with certificates, and a raw
// quic-go server on B's credentials for the baseline.
type clusterPair struct {
	a, b       *cluster.Node
	aDir, bDir string
}

func newClusterPair(b *testing.B, capacity int64) *clusterPair {
	b.Helper()
	aDir, bDir := benchCerts(b)
	open := func(dir string, join []string) *cluster.Node {
		n, err := cluster.Open(ctx, cluster.Config{
			Store:    engine.Config{Capacity: capacity, PrefaultAll: true},
			CertsDir: dir, Join: join,
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { n.Close() })
		return n
	}
	p := &clusterPair{aDir: aDir, bDir: bDir}
	p.a = open(aDir, nil)
	p.b = open(bDir, []string{p.a.Addr()})
	return p
}

// remoteGet borrows id on B, gets it (the fetch), checks its size, and drops
// it again; it returns the time of the Get alone.
func (p *clusterPair) remoteGet(b *testing.B, id trove.ObjectID, size int) time.Duration {
	ref, err := p.b.Borrow(id)
	if err != nil {
		b.Fatal(err)
	}
	t0 := time.Now()
	obj, err := p.b.Get(ctx, ref)
	d := time.Since(t0)
	if err != nil {
		b.Fatal(err)
	}
	if obj.Size() != size {
		b.Fatalf("got %d bytes, want %d", obj.Size(), size)
	}
	obj.Release()
	ref.Drop()
	// The copy is freed with the last handle: wait for it, so that the next
	// Borrow makes a new entry and the next Get fetches again.
	for p.b.Local().Stats().Objects != 0 {
		time.Sleep(10 * time.Microsecond)
	}
	return d
}

// BenchmarkClusterGet measures a remote Get (the owner's locate and, above the
// inline threshold, the chunked pull into B's arena, sealed) alongside a raw
// quic-go transfer of the same bytes on one new stream of one connection.
// x_raw-quic is raw quic-go's time / the Get's (≥ 0.9 is the goal for pulls);
// for 1 KiB, x_get_p50 is the Get's median latency / raw quic-go's (≤ 2 is
// the goal). local-get-ns is a Get on B of the copy it holds, and
// x_local_copy that over a Get of A's primary on A.
//
// tcp-tls-MB/s is a TCP+TLS 1.3 transfer of the same bytes (same
// certificates, one connection) in the same turns: quic-go's CPU cost per byte
// is the ceiling here, and this says by how much.
func BenchmarkClusterGet(b *testing.B) {
	for _, size := range []int{1 << 10, 1 << 20, 16 << 20, 64 << 20, 256 << 20} {
		b.Run("size="+sizeName(size), func(b *testing.B) {
			p := newClusterPair(b, 2*int64(size)+64<<20)
			src := bytes.Repeat([]byte{0x5a}, size)
			ref, err := p.a.Put(ctx, src)
			if err != nil {
				b.Fatal(err)
			}
			defer ref.Drop()
			raw := newRawQUIC(b, p.aDir, p.bDir, src)
			tcp := newRawTCP(b, p.aDir, p.bDir, src)
			dst := make([]byte, size)
			clear(dst)
			p.remoteGet(b, ref.ID(), size) // warm: connection, windows
			if err := raw.get(dst); err != nil {
				b.Fatal(err)
			}
			if err := tcp.get(dst); err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(3 * size))
			b.ReportAllocs()
			var ours, theirs []time.Duration
			var oursT, theirsT, tcpT time.Duration
			for b.Loop() {
				t0 := time.Now()
				if err := raw.get(dst); err != nil {
					b.Fatal(err)
				}
				d := time.Since(t0)
				theirs, theirsT = append(theirs, d), theirsT+d
				d = p.remoteGet(b, ref.ID(), size)
				ours, oursT = append(ours, d), oursT+d
				t0 = time.Now()
				if err := tcp.get(dst); err != nil {
					b.Fatal(err)
				}
				tcpT += time.Since(t0)
			}
			b.ReportMetric(float64(size)*float64(b.N)/oursT.Seconds()/1e6, "get-MB/s")
			b.ReportMetric(float64(size)*float64(b.N)/theirsT.Seconds()/1e6, "raw-quic-MB/s")
			b.ReportMetric(float64(size)*float64(b.N)/tcpT.Seconds()/1e6, "tcp-tls-MB/s")
			b.ReportMetric(float64(theirsT)/float64(oursT), "x_raw-quic")
			slices.Sort(ours)
			slices.Sort(theirs)
			b.ReportMetric(float64(ours[len(ours)/2].Nanoseconds()), "get-p50-ns")
			b.ReportMetric(float64(ours[len(ours)/2])/float64(theirs[len(theirs)/2]), "x_get_p50")
			b.StopTimer()
			localCopy(b, p, ref)
		})
	}
}

// localCopy reports a Get on B of a copy B holds against a Get on A of the
// primary, 1000 of each in turns (median of each).
func localCopy(b *testing.B, p *clusterPair, ref trove.Ref) {
	br, err := p.b.Borrow(ref.ID())
	if err != nil {
		b.Fatal(err)
	}
	defer br.Drop()
	get := func(n *cluster.Node, r trove.Ref) time.Duration {
		t0 := time.Now()
		obj, err := n.Get(ctx, r)
		d := time.Since(t0)
		if err != nil {
			b.Fatal(err)
		}
		obj.Release()
		return d
	}
	get(p.b, br) // the fetch
	var copyT, primT []time.Duration
	for range 1000 {
		copyT = append(copyT, get(p.b, br))
		primT = append(primT, get(p.a, ref))
	}
	slices.Sort(copyT)
	slices.Sort(primT)
	b.ReportMetric(float64(copyT[500].Nanoseconds()), "local-copy-get-ns")
	b.ReportMetric(float64(copyT[500])/float64(primT[500]), "x_local_copy")
}

// BenchmarkClusterGetSmall measures remote Gets of 1 KiB objects (the owner
// answers inline) from 1 and from 32 goroutines on B, alongside raw quic-go
// request/responses of 1 KiB on a new stream each from the same goroutines,
// in turns. Each goroutine has its own object, borrowed once; after each Get
// B's copy is evicted (EvictCopy), so that every Get fetches from the owner
// again. Reported as in BenchmarkQUICRequest: get-req/s and raw-quic-req/s,
// x_get (the Gets' time / raw quic-go's), and the median latencies (over
// every goroutine's calls) and x_get_p50 (≤ 2 is the goal).
func BenchmarkClusterGetSmall(b *testing.B) {
	const size = 1 << 10
	p := newClusterPair(b, 64<<20)
	small := bytes.Repeat([]byte{0x5a}, size)
	raw := newRawQUIC(b, p.aDir, p.bDir, small)
	const objects = 64 // at least one per goroutine
	refs := make([]trove.Ref, objects)
	for i := range refs {
		ref, err := p.a.Put(ctx, small)
		if err != nil {
			b.Fatal(err)
		}
		defer ref.Drop()
		if refs[i], err = p.b.Borrow(ref.ID()); err != nil {
			b.Fatal(err)
		}
		defer refs[i].Drop()
	}
	var next atomic.Int64
	// get returns a func for one goroutine: a Get of its own object on B,
	// its bytes copied into reply, the copy evicted again.
	get := func() func([]byte) ([]byte, error) {
		ref := refs[int(next.Add(1)-1)%objects]
		return func(reply []byte) ([]byte, error) {
			obj, err := p.b.Get(ctx, ref)
			if err != nil {
				return reply[:0], err
			}
			reply = append(reply[:0], obj.Bytes()...)
			obj.Release()
			if !p.b.Local().EvictCopy(ref.ID()) {
				return reply, fmt.Errorf("copy of %s not evicted: the next Get would not fetch", ref.ID())
			}
			return reply, nil
		}
	}
	theirs := func() func([]byte) ([]byte, error) {
		return func(reply []byte) ([]byte, error) { return reply[:size], raw.get(reply[:size]) }
	}
	if _, err := get()(nil); err != nil { // warm
		b.Fatal(err)
	}
	for _, par := range []int{1, 32} {
		b.Run(fmt.Sprintf("goroutines=%d", par), func(b *testing.B) {
			runRequestsPer(b, par, "get", get, theirs)
		})
	}
	if f := p.b.Local().Stats().Fetches; f < 2 {
		b.Fatalf("%d fetches: the Gets did not fetch", f)
	}
}

// BenchmarkClusterPutGet is Ray's "1:1 put, get on another node" figure
// (ray/release/microbenchmark's put-gigabytes style), in GB/s: node A puts
// 64 MiB objects (a copy into A's arena) while node B borrows and gets each one
// (the pull into B's arena), releases and drops it, sustained, with up to two
// objects in flight; A drops its ref once B has the object. Alongside, in the
// same iteration, raw quic-go transfers the same bytes (one connection, one
// stream each, the transport's windows). put-get-GB/s is bytes got on B over
// the wall time of the round; raw-quic-GB/s likewise; x_raw-quic is raw quic-go's
// time / ours.
func BenchmarkClusterPutGet(b *testing.B) {
	const (
		size     = 64 << 20
		perRound = 4
		inFlight = 2
	)
	p := newClusterPair(b, (2*inFlight+2)*size+64<<20)
	src := bytes.Repeat([]byte{0x5a}, size)
	raw := newRawQUIC(b, p.aDir, p.bDir, src)
	dst := make([]byte, size)
	clear(dst)
	round := func() {
		ids := make(chan trove.Ref, inFlight)
		slots := make(chan struct{}, inFlight)
		var wg sync.WaitGroup
		wg.Go(func() { // node A: put
			defer close(ids)
			for range perRound {
				slots <- struct{}{}
				ref, err := p.a.Put(ctx, src)
				if err != nil {
					b.Error(err)
					return
				}
				ids <- ref
			}
		})
		for ref := range ids { // node B: borrow, get, drop
			br, err := p.b.Borrow(ref.ID())
			if err != nil {
				b.Fatal(err)
			}
			obj, err := p.b.Get(ctx, br)
			if err != nil {
				b.Fatal(err)
			}
			if obj.Size() != size || obj.Bytes()[size-1] != 0x5a {
				b.Fatalf("got %d bytes", obj.Size())
			}
			obj.Release()
			br.Drop()
			ref.Drop()
			<-slots
		}
		wg.Wait()
	}
	round() // warm: connection, windows, arena pages
	if err := raw.get(dst); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(2 * perRound * size)
	b.ReportAllocs()
	var oursT, theirsT time.Duration
	for b.Loop() {
		t0 := time.Now()
		round()
		oursT += time.Since(t0)
		t0 = time.Now()
		for range perRound {
			if err := raw.get(dst); err != nil {
				b.Fatal(err)
			}
		}
		theirsT += time.Since(t0)
	}
	got := float64(perRound*size) * float64(b.N)
	b.ReportMetric(got/oursT.Seconds()/1e9, "put-get-GB/s")
	b.ReportMetric(got/theirsT.Seconds()/1e9, "raw-quic-GB/s")
	b.ReportMetric(float64(theirsT)/float64(oursT), "x_raw-quic")
}

package bench

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	quicgo "github.com/quic-go/quic-go"

	"github.com/trovedb/trove"
	"github.com/trovedb/trove/cluster"
	"github.com/trovedb/trove/engine"
	"github.com/trovedb/trove/net/quic"
)

// The transport's benchmarks: pulls of 1–256 MiB between two nodes against a
// raw quic-go bulk transfer of the same bytes (same certificates, one
// connection, the same flow-control windows) and a TCP+TLS 1.3 one, and a 1 KiB
// request/response against a raw quic-go one, all on loopback in the same run.

// quicWindows are the flow-control windows of every QUIC side here, ours and raw.
const (
	quicStreamWindow = quic.DefaultStreamWindow
	quicConnWindow   = quic.DefaultConnWindow
)

// benchCerts makes a CA and two nodes' credentials.
func benchCerts(b *testing.B) (a, c string) {
	b.Helper()
	root := b.TempDir()
	ca := filepath.Join(root, "ca")
	if err := cluster.CreateCA(ca); err != nil {
		b.Fatal(err)
	}
	a, c = filepath.Join(root, "a"), filepath.Join(root, "b")
	for dir, name := range map[string]string{a: "a", c: "b"} {
		if err := cluster.CreateNodeCert(ca, dir, name, "127.0.0.1"); err != nil {
			b.Fatal(err)
		}
	}
	return a, c
}

// tlsFrom is a plain TLS 1.3 configuration from a node directory, for the raw
// baselines: the same certificate and key exchange as the transport's.
func tlsFrom(b *testing.B, dir string) *tls.Config {
	b.Helper()
	cert, err := tls.LoadX509KeyPair(filepath.Join(dir, quic.CertFile), filepath.Join(dir, quic.KeyFile))
	if err != nil {
		b.Fatal(err)
	}
	return &tls.Config{MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{cert}, NextProtos: []string{"bench"},
		InsecureSkipVerify: true, ClientAuth: tls.RequireAnyClientCert}
}

func rawQUICConfig() *quicgo.Config {
	return &quicgo.Config{
		InitialStreamReceiveWindow: quicStreamWindow, MaxStreamReceiveWindow: quicStreamWindow,
		InitialConnectionReceiveWindow: quicConnWindow, MaxConnectionReceiveWindow: quicConnWindow,
		MaxIncomingStreams: 1024, MaxIdleTimeout: 30 * time.Second,
	}
}

// rawQUIC is a raw quic-go server and one client connection to it. Each stream
// carries an 8-byte request (how many bytes to send back) and the reply.
type rawQUIC struct {
	conn *quicgo.Conn
	src  []byte
}

func newRawQUIC(b *testing.B, srvDir, cliDir string, src []byte) *rawQUIC {
	b.Helper()
	ln, err := quicgo.ListenAddr("127.0.0.1:0", tlsFrom(b, srvDir), rawQUICConfig())
	if err != nil {
		b.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			conn, err := ln.Accept(context.Background())
			if err != nil {
				return
			}
			wg.Go(func() {
				for {
					s, err := conn.AcceptStream(context.Background())
					if err != nil {
						return
					}
					go func() {
						var req [8]byte
						if _, err := io.ReadFull(s, req[:]); err != nil {
							s.CancelWrite(1)
							return
						}
						_, _ = s.Write(src[:binary.BigEndian.Uint64(req[:])])
						s.Close()
						_, _ = io.Copy(io.Discard, s)
					}()
				}
			})
		}
	})
	conn, err := quicgo.DialAddr(context.Background(), ln.Addr().String(), tlsFrom(b, cliDir), rawQUICConfig())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		conn.CloseWithError(0, "")
		ln.Close()
		wg.Wait()
	})
	return &rawQUIC{conn: conn, src: src}
}

// get asks for len(dst) bytes on a new stream and reads them into dst.
func (r *rawQUIC) get(dst []byte) error {
	s, err := r.conn.OpenStreamSync(context.Background())
	if err != nil {
		return err
	}
	var req [8]byte
	binary.BigEndian.PutUint64(req[:], uint64(len(dst)))
	if _, err := s.Write(req[:]); err != nil {
		return err
	}
	s.Close()
	if _, err := io.ReadFull(s, dst); err != nil {
		return err
	}
	var one [1]byte
	if n, err := s.Read(one[:]); n != 0 || err != io.EOF {
		return fmt.Errorf("raw quic: %d bytes past the reply (%v)", n, err)
	}
	return nil
}

// rawTCP is a TCP+TLS 1.3 loopback connection serving the same requests.
type rawTCP struct {
	conn net.Conn
}

func newRawTCP(b *testing.B, srvDir, cliDir string, src []byte) *rawTCP {
	b.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", tlsFrom(b, srvDir))
	if err != nil {
		b.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		var req [8]byte
		for {
			if _, err := io.ReadFull(c, req[:]); err != nil {
				return
			}
			if _, err := c.Write(src[:binary.BigEndian.Uint64(req[:])]); err != nil {
				return
			}
		}
	})
	conn, err := tls.Dial("tcp", ln.Addr().String(), tlsFrom(b, cliDir))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		conn.Close()
		ln.Close()
		wg.Wait()
	})
	return &rawTCP{conn: conn}
}

func (r *rawTCP) get(dst []byte) error {
	var req [8]byte
	binary.BigEndian.PutUint64(req[:], uint64(len(dst)))
	if _, err := r.conn.Write(req[:]); err != nil {
		return err
	}
	_, err := io.ReadFull(r.conn, dst)
	return err
}

// holder serves chunks of the objects of its store, by ID, and 1 KiB replies.
type holder struct {
	st    *engine.Store
	mu    sync.Mutex
	refs  map[trove.ObjectID]trove.Ref
	small []byte
}

func (h *holder) HandleRequest(_ context.Context, _ quic.Peer, _ quic.Op, _, reply []byte) ([]byte, error) {
	return append(reply, h.small...), nil
}

func (h *holder) ServeChunk(ctx context.Context, _ quic.Peer, id trove.ObjectID, off, n int64, w io.Writer) error {
	h.mu.Lock()
	ref, ok := h.refs[id]
	h.mu.Unlock()
	if !ok {
		return fmt.Errorf("object %s: %w", id, trove.ErrUnknownObject)
	}
	obj, err := h.st.Get(ctx, ref)
	if err != nil {
		return err
	}
	defer obj.Release()
	_, err = w.Write(obj.Bytes()[off : off+n])
	return err
}

// pullPair is two nodes' stores and transports: the holder has one object of
// size bytes, the puller pulls it into CreateCopy builders.
type pullPair struct {
	puller, holderT *quic.Transport
	pst             *engine.Store
	id              trove.ObjectID
	src             []byte // the object's bytes on the Go heap, for the raw baselines
	aDir, bDir      string
}

func newPullPair(b *testing.B, size, chunk, streams int) *pullPair {
	b.Helper()
	aDir, bDir := benchCerts(b)
	hst := openStore(b, int64(size)+4<<20, true)
	pst := openStore(b, int64(size)+4<<20, true)
	bld, err := hst.Create(ctx, size)
	if err != nil {
		b.Fatal(err)
	}
	for i := range bld.Bytes() {
		bld.Bytes()[i] = byte(i * 7)
	}
	src := slices.Clone(bld.Bytes())
	ref := bld.Ref()
	if err := bld.Seal(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(ref.Drop)
	h := &holder{st: hst, refs: map[trove.ObjectID]trove.Ref{ref.ID(): ref}, small: make([]byte, 1<<10)}
	ht, err := quic.Listen(ctx, quic.Config{CertsDir: bDir, Handler: h})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { ht.Close() })
	pt, err := quic.Listen(ctx, quic.Config{CertsDir: aDir, ChunkSize: chunk, Streams: streams, MaxChunk: max(chunk, quic.DefaultMaxChunk)})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { pt.Close() })
	return &pullPair{puller: pt, holderT: ht, pst: pst, id: ref.ID(), src: src, aDir: aDir, bDir: bDir}
}

// pull pulls the object into a CreateCopy builder, seals and drops it.
func (p *pullPair) pull(b *testing.B) {
	bld, err := p.pst.CreateCopy(ctx, p.id, len(p.src))
	if err != nil {
		b.Fatal(err)
	}
	if err := p.puller.Pull(ctx, p.holderT.Addr(), p.id, 0, bld.Bytes()); err != nil {
		b.Fatal(err)
	}
	ref := bld.Ref()
	if err := bld.Seal(); err != nil {
		b.Fatal(err)
	}
	ref.Drop()
}

// alternate runs each of ops once per iteration, in turn, and reports each
// one's throughput (name-MB/s) and the first op's time / each other's
// (x_name): measured side by side, so that the load of a shared machine falls
// on all of them alike. ns/op is the time of one round of all of them.
func alternate(b *testing.B, size int, names []string, ops ...func() error) {
	b.SetBytes(int64(size * len(ops)))
	b.ReportAllocs()
	total := make([]time.Duration, len(ops))
	for b.Loop() {
		for i, op := range ops {
			t0 := time.Now()
			if err := op(); err != nil {
				b.Fatalf("%s: %v", names[i], err)
			}
			total[i] += time.Since(t0)
		}
	}
	for i, d := range total {
		b.ReportMetric(float64(size)*float64(b.N)/d.Seconds()/1e6, names[i]+"-MB/s")
		if i > 0 {
			b.ReportMetric(float64(d)/float64(total[0]), "x_"+names[i])
		}
	}
}

// BenchmarkQUICPull measures Pull of a whole object between two nodes into the
// puller's arena (CreateCopy, pull, seal, drop) alongside a raw quic-go and a
// TCP+TLS 1.3 transfer of the same bytes on one stream. Reported: each one's
// MB/s, and x_raw-quic and x_tcp-tls: the time of those / the pull's, i.e. the
// pull's throughput as a fraction of theirs (≥ 0.9 of raw quic-go is the goal).
func BenchmarkQUICPull(b *testing.B) {
	for _, size := range putSizes {
		b.Run("size="+sizeName(size), func(b *testing.B) {
			p := newPullPair(b, size, quic.DefaultChunkSize, quic.DefaultStreams)
			raw := newRawQUIC(b, p.bDir, p.aDir, p.src)
			tcp := newRawTCP(b, p.bDir, p.aDir, p.src)
			dst := make([]byte, size)
			clear(dst) // pre-faulted, like the arena
			p.pull(b)  // warm: connection, windows
			_ = raw.get(dst)
			alternate(b, size, []string{"pull", "raw-quic", "tcp-tls"},
				func() error { p.pull(b); return nil },
				func() error { return raw.get(dst) },
				func() error { return tcp.get(dst) })
		})
	}
}

// BenchmarkQUICPullChunks measures a 64 MiB pull with 1, 4, 8 and 16 MiB
// chunks on 1, 2, 4 and 8 streams (the choice of DefaultChunkSize and
// DefaultStreams), alongside a raw quic-go transfer.
func BenchmarkQUICPullChunks(b *testing.B) {
	const size = 64 << 20
	for _, chunk := range []int{1 << 20, 4 << 20, 8 << 20, 16 << 20} {
		for _, streams := range []int{1, 2, 4, 8} {
			b.Run(fmt.Sprintf("chunk=%s/streams=%d", sizeName(chunk), streams), func(b *testing.B) {
				pullChunks(b, size, chunk, streams)
			})
		}
	}
}

// pullChunks is one case of BenchmarkQUICPullChunks.
func pullChunks(b *testing.B, size, chunk, streams int) {
	p := newPullPair(b, size, chunk, streams)
	raw := newRawQUIC(b, p.bDir, p.aDir, p.src)
	dst := make([]byte, size)
	clear(dst)
	p.pull(b)
	_ = raw.get(dst)
	alternate(b, size, []string{"pull", "raw-quic"},
		func() error { p.pull(b); return nil },
		func() error { return raw.get(dst) })
}

// BenchmarkQUICRequest measures a 1 KiB reply to a small request (what a remote
// Get of a 1 KiB object costs on the wire) through the transport alongside a
// raw quic-go request/response on a new stream each, from 1 goroutine (with
// each one's median latency) and from 32. x_request is the transport's time /
// raw quic-go's (≤ 2 is the goal).
func BenchmarkQUICRequest(b *testing.B) {
	p := newPullPair(b, 1<<20, quic.DefaultChunkSize, quic.DefaultStreams)
	small := make([]byte, 1<<10)
	raw := newRawQUIC(b, p.bDir, p.aDir, small)
	body := make([]byte, 16)
	id := p.id
	copy(body, id[:])
	addr := p.holderT.Addr()
	ours := func(reply []byte) ([]byte, error) { return p.puller.Request(ctx, addr, 1, body, reply[:0]) }
	theirs := func(reply []byte) ([]byte, error) { return reply[:1<<10], raw.get(reply[:1<<10]) }
	if _, err := ours(nil); err != nil {
		b.Fatal(err)
	}
	for _, par := range []int{1, 32} {
		b.Run(fmt.Sprintf("goroutines=%d", par), func(b *testing.B) {
			runRequests(b, par, ours, theirs)
		})
	}
}

// runRequests runs ours and theirs in turn, b.N times each, from par
// goroutines, and reports their request rates, the ratio of their times and
// their median latencies.
func runRequests(b *testing.B, par int, ours, theirs func([]byte) ([]byte, error)) {
	same := func(f func([]byte) ([]byte, error)) func() func([]byte) ([]byte, error) {
		return func() func([]byte) ([]byte, error) { return f }
	}
	runRequestsPer(b, par, "request", same(ours), same(theirs))
}

// runRequestsPer is runRequests with a call of each kind made per goroutine
// (newOurs, newTheirs), its metrics named name-req/s, x_name and so on.
func runRequestsPer(b *testing.B, par int, name string, newOurs, newTheirs func() func([]byte) ([]byte, error)) {
	b.SetBytes(2 << 10)
	b.ReportAllocs()
	var mu sync.Mutex
	var oursT, theirsT time.Duration
	var oursLat, theirsLat []time.Duration
	one := func(call func([]byte) ([]byte, error), buf []byte, lat *[]time.Duration) ([]byte, time.Duration) {
		t0 := time.Now()
		buf, err := call(buf)
		d := time.Since(t0)
		if err != nil || len(buf) != 1<<10 {
			b.Errorf("%s: %d bytes, %v", name, len(buf), err)
		}
		if lat != nil && len(*lat) < 1<<16 {
			*lat = append(*lat, d)
		}
		return buf, d
	}
	if par == 1 {
		ours, theirs := newOurs(), newTheirs()
		buf := make([]byte, 1<<10)
		for b.Loop() {
			var d time.Duration
			buf, d = one(theirs, buf, &theirsLat)
			theirsT += d
			buf, d = one(ours, buf, &oursLat)
			oursT += d
		}
	} else {
		b.SetParallelism((par + 1) / 2) // GOMAXPROCS=2 here: 2×16 goroutines
		b.RunParallel(func(pb *testing.PB) {
			mu.Lock()
			ours, theirs := newOurs(), newTheirs()
			mu.Unlock()
			buf := make([]byte, 1<<10)
			var o, t time.Duration
			var oLat, tLat []time.Duration
			for pb.Next() {
				var d time.Duration
				buf, d = one(theirs, buf, &tLat)
				t += d
				buf, d = one(ours, buf, &oLat)
				o += d
			}
			mu.Lock()
			oursT += o
			theirsT += t
			oursLat, theirsLat = append(oursLat, oLat...), append(theirsLat, tLat...)
			mu.Unlock()
		})
	}
	// Median latencies, from one goroutine or from all of them together.
	slices.Sort(oursLat)
	slices.Sort(theirsLat)
	b.ReportMetric(float64(oursLat[len(oursLat)/2].Nanoseconds()), name+"-p50-ns")
	b.ReportMetric(float64(theirsLat[len(theirsLat)/2].Nanoseconds()), "raw-quic-p50-ns")
	b.ReportMetric(float64(oursLat[len(oursLat)/2])/float64(theirsLat[len(theirsLat)/2]), "x_"+name+"_p50")
	// Per goroutine, the two ran in turn: each one's rate is par requests over
	// its own share of the time.
	secs := func(d time.Duration) float64 { return d.Seconds() / float64(par) }
	b.ReportMetric(float64(b.N)/secs(oursT), name+"-req/s")
	b.ReportMetric(float64(b.N)/secs(theirsT), "raw-quic-req/s")
	b.ReportMetric(float64(oursT)/float64(theirsT), "x_"+name)
}

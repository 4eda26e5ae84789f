package quic_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	quicgo "github.com/quic-go/quic-go"

	"github.com/trovedb/trove"
	"github.com/trovedb/trove/net/quic"
)

var bg = context.Background()

// Requests between nodes with certificates from one CA: replies arrive, the
// handler sees the caller's certificate name, handler errors match trove's
// errors, and one connection per peer pair carries every call both ways.
func TestRequestMutualTLS(t *testing.T) {
	certs := makeCerts(t, "a", "b")
	ha, hb := newHandler(), newHandler()
	a := listen(t, quic.Config{CertsDir: certs["a"], Handler: ha})
	b := listen(t, quic.Config{CertsDir: certs["b"], Handler: hb})
	if a.Name() != "a" || b.Name() != "b" {
		t.Fatalf("names %q %q, want the certificates' a, b", a.Name(), b.Name())
	}
	for i := range 10 {
		body := bytes.Repeat([]byte{byte(i)}, 100*i)
		reply, err := a.Request(bg, b.Addr(), opEcho, body, nil)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(reply, body) {
			t.Fatalf("request %d: reply of %d bytes differs from the body", i, len(reply))
		}
	}
	// The reply is appended to the buffer passed in.
	reply, err := a.Request(bg, b.Addr(), opPeer, nil, []byte("peer="))
	if err != nil || string(reply) != "peer=a" {
		t.Fatalf("b saw the caller as %q (%v), want peer=a", reply, err)
	}
	// The other direction reuses the connection a opened.
	reply, err = b.Request(bg, a.Addr(), opPeer, nil, nil)
	if err != nil || string(reply) != "b" {
		t.Fatalf("a saw the caller as %q (%v), want b", reply, err)
	}
	_, err = a.Request(bg, b.Addr(), opUnknown, []byte{1}, nil)
	var re *quic.RemoteError
	if !errors.Is(err, trove.ErrUnknownObject) || !errors.As(err, &re) || re.Peer != "b" || re.Op != opUnknown {
		t.Fatalf("handler error arrived as %v, want a RemoteError from b matching ErrUnknownObject", err)
	}
	if sa, sb := a.Stats(), b.Stats(); sa.Dials != 1 || sb.Dials != 0 || sa.Conns != 1 || sb.Conns != 1 || sb.Accepts != 1 {
		t.Fatalf("stats a %+v, b %+v: want one connection, dialled once by a", sa, sb)
	}
	if p := a.Peers(); len(p) != 1 || p[0].Name != "b" || p[0].Addr != b.Addr() {
		t.Fatalf("a's peers %+v, want b at %s", p, b.Addr())
	}
}

// A node whose certificate comes from another CA is refused at the handshake,
// both ways, and the refusing side's log says why.
func TestOtherCARefused(t *testing.T) {
	ours := makeCerts(t, "a")
	theirs := makeCerts(t, "intruder")
	var logA, logI logBuf
	a := listen(t, quic.Config{CertsDir: ours["a"], Handler: newHandler(), Logger: logA.logger()})
	in := listen(t, quic.Config{CertsDir: theirs["intruder"], Handler: newHandler(), Logger: logI.logger()})

	_, err := in.Request(bg, a.Addr(), opEcho, []byte("hi"), nil)
	if !errors.Is(err, trove.ErrNodeUnreachable) || !strings.Contains(err.Error(), "TLS handshake refused") {
		t.Fatalf("intruder's request: %v, want ErrNodeUnreachable saying the handshake was refused", err)
	}
	// The intruder, dialling, refuses a's certificate: unknown authority.
	logI.waitLog(t, "refused to connect to a peer", "not from this cluster's CA", "unknown authority", "peer=a")

	_, err = a.Request(bg, in.Addr(), opEcho, []byte("hi"), nil)
	if !errors.Is(err, trove.ErrNodeUnreachable) {
		t.Fatalf("request to the intruder: %v, want ErrNodeUnreachable", err)
	}
	logA.waitLog(t, "refused to connect to a peer", "peer=intruder", "unknown authority")
	if a.Stats().Conns != 0 || in.Stats().Conns != 0 {
		t.Fatalf("a connection was set up: a %+v, intruder %+v", a.Stats(), in.Stats())
	}
}

// An Insecure node presents a self-signed certificate: a node with certificates
// refuses it when it connects, and logs why with the caller's address.
func TestInsecurePeerRefusedByAcceptor(t *testing.T) {
	certs := makeCerts(t, "a")
	var logA logBuf
	a := listen(t, quic.Config{CertsDir: certs["a"], Handler: newHandler(), Logger: logA.logger()})
	lax := listen(t, quic.Config{Insecure: true, Name: "lax", Handler: newHandler()})
	_, err := lax.Request(bg, a.Addr(), opEcho, []byte("hi"), nil)
	if !errors.Is(err, trove.ErrNodeUnreachable) || !strings.Contains(err.Error(), "TLS handshake refused") {
		t.Fatalf("insecure node's request: %v, want ErrNodeUnreachable saying the handshake was refused", err)
	}
	logA.waitLog(t, "refused a connection from a peer", "peer=lax", "addr="+lax.Addr())
}

// Two Insecure nodes talk, each knowing the other by the name it claims.
func TestInsecure(t *testing.T) {
	a := listen(t, quic.Config{Insecure: true, Name: "a", Handler: newHandler()})
	b := listen(t, quic.Config{Insecure: true, Name: "b", Handler: newHandler()})
	reply, err := a.Request(bg, b.Addr(), opPeer, nil, nil)
	if err != nil || string(reply) != "a" {
		t.Fatalf("b saw %q (%v), want a", reply, err)
	}
}

func TestConfigErrors(t *testing.T) {
	certs := makeCerts(t, "a")
	other := makeCerts(t, "x")
	// A node directory whose certificate is from another CA than its ca.crt.
	mixed := t.TempDir()
	copyFile(t, filepath.Join(other["x"], quic.CAFile), filepath.Join(mixed, quic.CAFile))
	copyFile(t, filepath.Join(certs["a"], quic.CertFile), filepath.Join(mixed, quic.CertFile))
	copyFile(t, filepath.Join(certs["a"], quic.KeyFile), filepath.Join(mixed, quic.KeyFile))
	for _, tc := range []struct {
		name string
		cfg  quic.Config
		want string
	}{
		{"no credentials", quic.Config{}, "set CertsDir"},
		{"both", quic.Config{CertsDir: certs["a"], Insecure: true}, "choose one"},
		{"name differs", quic.Config{CertsDir: certs["a"], Name: "b"}, `differs from the name "a"`},
		{"missing dir", quic.Config{CertsDir: t.TempDir()}, "trove cert create-ca"},
		{"other CA", quic.Config{CertsDir: mixed}, "is not signed by the CA"},
		{"bad address", quic.Config{Insecure: true, Addr: "127.0.0.1:notaport"}, "listen address"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr, err := quic.Listen(bg, tc.cfg)
			if err == nil {
				tr.Close()
				t.Fatal("Listen succeeded")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q lacks %q", err, tc.want)
			}
		})
	}
}

// Pulls of a whole object in parallel chunks and of ranges inside it, and
// the errors a holder sends back.
func TestPull(t *testing.T) {
	certs := makeCerts(t, "a", "b")
	hb := newHandler()
	const size = 5<<20 + 12345
	data := pattern(size, 1)
	hb.add(oid(1), data, false)
	a := listen(t, quic.Config{CertsDir: certs["a"], ChunkSize: 1 << 20, Streams: 3})
	b := listen(t, quic.Config{CertsDir: certs["b"], Handler: hb, MaxChunk: 2 << 20})

	for _, tc := range []struct{ off, n int }{{0, size}, {0, 1}, {size - 1, 1}, {1<<20 - 3, 3 << 20}, {777, 1 << 20}} {
		dst := make([]byte, tc.n)
		if err := a.Pull(bg, b.Addr(), oid(1), int64(tc.off), dst); err != nil {
			t.Fatalf("pull [%d, +%d): %v", tc.off, tc.n, err)
		}
		if !bytes.Equal(dst, data[tc.off:tc.off+tc.n]) {
			t.Fatalf("pull [%d, +%d): bytes differ", tc.off, tc.n)
		}
	}
	err := a.Pull(bg, b.Addr(), oid(2), 0, make([]byte, 10))
	var re *quic.RemoteError
	if !errors.Is(err, trove.ErrUnknownObject) || !errors.As(err, &re) || re.Object != oid(2) || re.Peer != "b" {
		t.Fatalf("pull of an unknown object: %v, want a RemoteError from b for %s matching ErrUnknownObject", err, oid(2))
	}
	if err := a.Pull(bg, b.Addr(), oid(1), size-5, make([]byte, 10)); err == nil || !strings.Contains(err.Error(), "past the end") {
		t.Fatalf("pull past the end: %v", err)
	}
	// A chunk larger than the holder serves: ErrTooLarge, and the connection lives.
	big := listen(t, quic.Config{CertsDir: certs["a"], ChunkSize: 4 << 20})
	if err := big.Pull(bg, b.Addr(), oid(1), 0, make([]byte, 4<<20)); !errors.Is(err, quic.ErrTooLarge) {
		t.Fatalf("pull of a chunk above MaxChunk: %v, want ErrTooLarge", err)
	}
	if _, err := big.Request(bg, b.Addr(), opEcho, []byte("x"), nil); err != nil {
		t.Fatal(err)
	}
	if b.Stats().ProtocolErrors != 0 {
		t.Fatalf("b counted protocol errors: %+v", b.Stats())
	}
}

// Message bounds: a request body too large is refused before it is sent; a
// reply too large comes back as ErrTooLarge.
func TestMessageBounds(t *testing.T) {
	certs := makeCerts(t, "a", "b")
	a := listen(t, quic.Config{CertsDir: certs["a"], MaxMessage: 1 << 20})
	b := listen(t, quic.Config{CertsDir: certs["b"], Handler: newHandler(), MaxMessage: 1 << 20})
	if _, err := a.Request(bg, b.Addr(), opEcho, make([]byte, 1<<20+1), nil); !errors.Is(err, quic.ErrTooLarge) {
		t.Fatalf("oversized request: %v, want ErrTooLarge", err)
	}
	if a.Stats().Dials != 0 {
		t.Fatal("an oversized request dialled")
	}
	if _, err := a.Request(bg, b.Addr(), opBig, []byte{2}, nil); !errors.Is(err, quic.ErrTooLarge) || !strings.Contains(err.Error(), "MaxMessage") {
		t.Fatalf("oversized reply: %v, want ErrTooLarge naming MaxMessage", err)
	}
	if reply, err := a.Request(bg, b.Addr(), opEcho, make([]byte, 1<<20), nil); err != nil || len(reply) != 1<<20 {
		t.Fatalf("request of exactly MaxMessage: %d bytes, %v", len(reply), err)
	}
}

// A small request is answered while a large pull on the same connection is in
// progress: the chunk's handler stops half-way and waits; the request's reply
// arrives before it is let go.
func TestRequestNotBehindPull(t *testing.T) {
	certs := makeCerts(t, "a", "b")
	hb := newHandler()
	const size = 8 << 20
	data := pattern(size, 2)
	hb.add(oid(1), data, true)
	a := listen(t, quic.Config{CertsDir: certs["a"], ChunkSize: 2 << 20, Streams: 4})
	b := listen(t, quic.Config{CertsDir: certs["b"], Handler: hb})

	dst := make([]byte, size)
	pulled := make(chan error, 1)
	go func() { pulled <- a.Pull(bg, b.Addr(), oid(1), 0, dst) }()
	for range 4 { // every chunk is half sent and held
		select {
		case <-hb.halfway:
		case err := <-pulled:
			t.Fatalf("pull ended before its chunks were held: %v", err)
		case <-time.After(20 * time.Second):
			t.Fatal("chunks never reached their middle")
		}
	}
	for i := range 20 {
		reply, err := a.Request(bg, b.Addr(), opEcho, []byte{byte(i)}, nil)
		if err != nil || !bytes.Equal(reply, []byte{byte(i)}) {
			t.Fatalf("request %d during the pull: %q, %v", i, reply, err)
		}
	}
	select {
	case err := <-pulled:
		t.Fatalf("the pull ended while its chunks were held: %v", err)
	default:
	}
	close(hb.gate)
	if err := <-pulled; err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(dst, data) {
		t.Fatal("pulled bytes differ")
	}
	if a.Stats().Dials != 1 {
		t.Fatalf("%d dials, want one connection for the pull and the requests", a.Stats().Dials)
	}
}

// A holder that leaves mid-pull, cleanly or by vanishing: the pull ends with
// ErrNodeUnreachable, within the caller's deadline or, without one, the idle
// timeout. Never a hang.
func TestPeerGoneMidPull(t *testing.T) {
	for _, tc := range []struct {
		name     string
		vanish   bool // silently (socket closed) rather than Close
		deadline bool // the puller's ctx has a deadline
	}{
		{"close", false, false},
		{"vanish with deadline", true, true},
		{"vanish idle timeout", true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			certs := makeCerts(t, "a", "b")
			hb := newHandler()
			hb.add(oid(1), pattern(4<<20, 3), true)
			a := listen(t, quic.Config{CertsDir: certs["a"], IdleTimeout: 2 * time.Second})
			b := listen(t, quic.Config{CertsDir: certs["b"], Handler: hb, IdleTimeout: 2 * time.Second})
			ctx := bg
			if tc.deadline {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(bg, 1500*time.Millisecond)
				defer cancel()
			}
			pulled := make(chan error, 1)
			go func() { pulled <- a.Pull(ctx, b.Addr(), oid(1), 0, make([]byte, 4<<20)) }()
			select {
			case <-hb.halfway:
			case <-time.After(20 * time.Second):
				t.Fatal("chunk never reached its middle")
			}
			if tc.vanish {
				b.VanishForTest()
			} else if err := b.Close(); err != nil {
				t.Fatal(err)
			}
			var err error
			select {
			case err = <-pulled:
			case <-time.After(30 * time.Second):
				t.Fatal("pull hangs after its holder left")
			}
			if !errors.Is(err, trove.ErrNodeUnreachable) {
				t.Fatalf("pull: %v, want ErrNodeUnreachable", err)
			}
			var ne *trove.NodeError
			if !errors.As(err, &ne) || ne.Object != oid(1) || ne.Addr != b.Addr() || !strings.Contains(err.Error(), oid(1).String()) {
				t.Fatalf("pull error %v does not name object %s at %s", err, oid(1), b.Addr())
			}
			if tc.deadline != errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("pull error %v: DeadlineExceeded matches %v, want %v", err, !tc.deadline, tc.deadline)
			}
			if tc.deadline && ctx.Err() == nil {
				t.Fatalf("pull gave up (%v) before its deadline", err)
			}
			close(hb.gate)
		})
	}
}

// A canceled ctx (not a deadline) is the caller's doing: its cause comes back,
// not ErrNodeUnreachable.
func TestRequestCanceled(t *testing.T) {
	certs := makeCerts(t, "a", "b")
	hb := newHandler()
	hb.add(oid(1), pattern(1<<20, 4), true)
	a := listen(t, quic.Config{CertsDir: certs["a"]})
	b := listen(t, quic.Config{CertsDir: certs["b"], Handler: hb})
	ctx, cancel := context.WithCancel(bg)
	pulled := make(chan error, 1)
	go func() { pulled <- a.Pull(ctx, b.Addr(), oid(1), 0, make([]byte, 1<<20)) }()
	<-hb.halfway
	cancel()
	if err := <-pulled; !errors.Is(err, context.Canceled) || errors.Is(err, trove.ErrNodeUnreachable) {
		t.Fatalf("canceled pull: %v, want context.Canceled only", err)
	}
	close(hb.gate)
	if _, err := a.Request(bg, b.Addr(), opEcho, []byte("x"), nil); err != nil {
		t.Fatalf("request after a canceled pull: %v", err)
	}
}

// A peer (with valid credentials) that sends garbage or oversized frames is
// disconnected and logged; the node keeps serving its other peers.
func TestGarbageDisconnects(t *testing.T) {
	certs := makeCerts(t, "b", "good", "bad")
	var logB logBuf
	b := listen(t, quic.Config{CertsDir: certs["b"], Handler: newHandler(), MaxMessage: 1 << 16, Logger: logB.logger()})
	good := listen(t, quic.Config{CertsDir: certs["good"]})
	if _, err := good.Request(bg, b.Addr(), opEcho, []byte("before"), nil); err != nil {
		t.Fatal(err)
	}
	for i, tc := range []struct {
		name  string
		frame []byte
		want  string
	}{
		{"unknown kind", []byte{9, 1, 2, 3}, "unknown stream kind 9"},
		{"oversized request", []byte{1, 0, 1, 0, 1, 0, 1}, "exceeds the 65536-byte message bound"},
		{"op zero", []byte{1, 0, 0, 0, 0, 0, 0}, "request op 0"},
		{"truncated body", []byte{1, 0, 1, 0, 0, 0, 9, 1, 2}, "ended inside the request body"},
		{"bytes after the frame", []byte{1, 0, 1, 0, 0, 0, 1, 1, 2}, "bytes after the end of the frame"},
		{"truncated chunk request", []byte{2, 1, 2, 3}, "ended inside the chunk request"},
		{"empty chunk", emptyChunkRequest(), "chunk range"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conn := rawDial(t, certs["bad"], b.Addr())
			s, err := conn.OpenStreamSync(bg)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := s.Write(tc.frame); err != nil {
				t.Fatal(err)
			}
			s.Close()
			select {
			case <-conn.Context().Done():
			case <-time.After(20 * time.Second):
				t.Fatal("the node did not disconnect the peer")
			}
			var ae *quicgo.ApplicationError
			if err := context.Cause(conn.Context()); !errors.As(err, &ae) || ae.ErrorCode != 1 || !ae.Remote {
				t.Fatalf("connection closed with %v, want the node's protocol-violation code", err)
			}
			logB.waitLog(t, "disconnecting a peer that broke the protocol", "peer=bad", tc.want)
			if got := b.Stats().ProtocolErrors; got != int64(i+1) {
				t.Fatalf("%d protocol errors counted, want %d", got, i+1)
			}
			if _, err := good.Request(bg, b.Addr(), opEcho, []byte("after"), nil); err != nil {
				t.Fatalf("another peer's request after the garbage: %v", err)
			}
		})
	}
}

// rawDial connects to addr with a node's credentials, bypassing the transport,
// to send what a broken or hostile peer would.
func rawDial(t *testing.T, dir, addr string) *quicgo.Conn {
	t.Helper()
	cert, err := tls.LoadX509KeyPair(filepath.Join(dir, quic.CertFile), filepath.Join(dir, quic.KeyFile))
	if err != nil {
		t.Fatal(err)
	}
	conf := &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"trove/1"}, InsecureSkipVerify: true}
	conn, err := quicgo.DialAddr(bg, addr, conf, &quicgo.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.CloseWithError(0, "") })
	return conn
}

func emptyChunkRequest() []byte {
	id := oid(1)
	return append(append([]byte{2}, id[:]...), make([]byte, 16)...)
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// A node killed and restarted at its address: calls on the old connection end
// (the new process answers them with a stateless reset, keyed from the node's
// key) and a new connection reaches the new process, without waiting for the
// idle timeout. (Without the reset key this test fails: every call times out.)
func TestPeerRestartedAtItsAddress(t *testing.T) {
	certs := makeCerts(t, "a", "b")
	a := listen(t, quic.Config{CertsDir: certs["a"], IdleTimeout: 5 * time.Minute})
	b := listen(t, quic.Config{CertsDir: certs["b"], Handler: newHandler(), IdleTimeout: 5 * time.Minute})
	if _, err := a.Request(bg, b.Addr(), opEcho, []byte("1"), nil); err != nil {
		t.Fatal(err)
	}
	addr := b.Addr()
	b.VanishForTest()
	listen(t, quic.Config{CertsDir: certs["b"], Addr: addr, Handler: newHandler()})
	// Every call fails fast (reset) or succeeds; one reaches the new process
	// long before the 5-minute idle timeout would have dropped the old connection.
	deadline := time.Now().Add(60 * time.Second)
	for i := 0; ; i++ {
		ctx, cancel := context.WithTimeout(bg, 5*time.Second)
		reply, err := a.Request(ctx, addr, opEcho, []byte{byte(i)}, nil)
		cancel()
		if err == nil {
			if !bytes.Equal(reply, []byte{byte(i)}) {
				t.Fatalf("reply %q to %d", reply, i)
			}
			break
		}
		if !errors.Is(err, trove.ErrNodeUnreachable) {
			t.Fatalf("call %d to the restarted node: %v, want ErrNodeUnreachable until it succeeds", i, err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("the restarted node is still unreachable: %v", err)
		}
	}
	if a.Stats().Dials != 2 {
		t.Fatalf("%d dials, want 2 (the first run, the restarted one)", a.Stats().Dials)
	}
}

// A holder whose handler fails after sending part of a chunk: the puller's
// error says so, the holder's log says why, and the connection lives on.
func TestChunkFailsMidway(t *testing.T) {
	certs := makeCerts(t, "a", "b")
	hb := newHandler()
	hb.add(oid(1), pattern(1<<20, 5), false)
	hb.failing[oid(1)] = true
	var logB logBuf
	a := listen(t, quic.Config{CertsDir: certs["a"]})
	b := listen(t, quic.Config{CertsDir: certs["b"], Handler: hb, Logger: logB.logger()})
	err := a.Pull(bg, b.Addr(), oid(1), 0, make([]byte, 1<<20))
	var re *quic.RemoteError
	if !errors.As(err, &re) || re.Object != oid(1) || !strings.Contains(err.Error(), "failed after sending part") {
		t.Fatalf("pull from a failing holder: %v, want a RemoteError saying it failed mid-chunk", err)
	}
	logB.waitLog(t, "serving a peer's stream failed", "peer=a", "disk read of object "+oid(1).String()+" failed")
	if _, err := a.Request(bg, b.Addr(), opEcho, []byte("x"), nil); err != nil || a.Stats().Dials != 1 {
		t.Fatalf("request after the failed chunk: %v, %d dials", err, a.Stats().Dials)
	}
}

// Three nodes calling each other concurrently: every call is answered, and each
// pair of nodes shares one connection (the first call of a pair dials it; the
// other direction reuses it).
func TestThreeNodesConcurrent(t *testing.T) {
	certs := makeCerts(t, "n0", "n1", "n2")
	var nodes []*quic.Transport
	for i := range 3 {
		h := newHandler()
		h.add(oid(uint64(i+1)), pattern(3<<20, byte(i)), false)
		nodes = append(nodes, listen(t, quic.Config{CertsDir: certs[fmt.Sprintf("n%d", i)], Handler: h, ChunkSize: 1 << 20}))
	}
	// First contact in one order, so no two dials race for a pair.
	for i, from := range nodes {
		for _, to := range nodes[i+1:] {
			if _, err := from.Request(bg, to.Addr(), opEcho, []byte("hi"), nil); err != nil {
				t.Fatal(err)
			}
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for i, from := range nodes {
		for j, to := range nodes {
			if i == j {
				continue
			}
			wg.Go(func() {
				for k := range 5 {
					body := []byte(fmt.Sprintf("%d->%d #%d", i, j, k))
					reply, err := from.Request(bg, to.Addr(), opEcho, body, nil)
					if err == nil && !bytes.Equal(reply, body) {
						err = fmt.Errorf("reply %q to %q", reply, body)
					}
					if err != nil {
						errs <- err
						return
					}
				}
			})
			wg.Go(func() {
				dst := make([]byte, 3<<20)
				if err := from.Pull(bg, to.Addr(), oid(uint64(j+1)), 0, dst); err != nil {
					errs <- err
				} else if !bytes.Equal(dst, pattern(3<<20, byte(j))) {
					errs <- fmt.Errorf("pull %d from %d: bytes differ", i, j)
				}
			})
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	var dials int64
	for i, n := range nodes {
		st := n.Stats()
		dials += st.Dials
		if st.Conns != 2 {
			t.Errorf("node %d has %d connections, want one per peer (2)", i, st.Conns)
		}
	}
	if dials != 3 {
		t.Errorf("%d dials for 3 pairs of nodes", dials)
	}
}

// A node killed (no goodbye) and restarted at its address under Insecure,
// where it cannot reset its old connections (its stateless-reset key died
// with it): once the new run has dialled a peer, the peer's calls reach the
// new run at once, not after the old connection's idle timeout. (Before an
// accepted connection replaced the registered one, every call here timed out.)
func TestPeerRestartedInsecure(t *testing.T) {
	a := listen(t, quic.Config{Insecure: true, Name: "a", Handler: newHandler(), IdleTimeout: 5 * time.Minute})
	b := listen(t, quic.Config{Insecure: true, Name: "b", Handler: newHandler(), IdleTimeout: 5 * time.Minute})
	if _, err := a.Request(bg, b.Addr(), opEcho, []byte("1"), nil); err != nil {
		t.Fatal(err)
	}
	addr := b.Addr()
	b.VanishForTest()
	b2 := listen(t, quic.Config{Insecure: true, Name: "b", Addr: addr, Handler: newHandler(), IdleTimeout: 5 * time.Minute})
	if _, err := b2.Request(bg, a.Addr(), opEcho, []byte("hello"), nil); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(bg, 20*time.Second)
	defer cancel()
	if reply, err := a.Request(ctx, addr, opEcho, []byte("2"), nil); err != nil || string(reply) != "2" {
		t.Fatalf("call to the restarted node: %q, %v", reply, err)
	}
}

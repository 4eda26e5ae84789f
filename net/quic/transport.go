package quic

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sort"
	"sync"
	"sync/atomic"

	quicgo "github.com/quic-go/quic-go"

	"github.com/trovedb/trove"
)

// Transport is one node's end of the node-to-node transport: one UDP socket
// that accepts peers' connections and dials its own, one connection per peer,
// reused by every call. Its methods are safe for concurrent use.
type Transport struct {
	cfg    Config
	log    *slog.Logger
	creds  *credentials
	qconf  *quicgo.Config
	udp    *net.UDPConn
	tr     *quicgo.Transport
	ln     *quicgo.Listener
	ctx    context.Context // ends at Close
	cancel context.CancelFunc
	wg     sync.WaitGroup // the accept loop, each connection's loop, each stream's handler

	dials, accepts, protocolErrors atomic.Int64

	tags struct {
		sync.Mutex
		m map[Tag]*TagHandler
	}
	packets struct {
		sync.Mutex
		queues map[string]*packetQueue // by peer address, while packets wait
	}

	mu struct {
		sync.Mutex
		closed  bool
		conns   map[string]*peerConn  // by the peer's address, as Addr strings
		dialing map[string]*dialState // dials in flight, by the address dialled
	}
}

// peerConn is a live connection and the peer its handshake named.
type peerConn struct {
	conn *quicgo.Conn
	peer Peer
}

// dialState is a dial in flight that callers for the same address wait on.
type dialState struct {
	done chan struct{} // closed when pc or err is set
	pc   *peerConn
	err  error
}

// Listen opens a transport on cfg.Addr. Close it to leave: its connections are
// closed and its handlers waited for.
func Listen(ctx context.Context, cfg Config) (*Transport, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	var creds *credentials
	if cfg.CertsDir != "" {
		if creds, err = loadCredentials(cfg.CertsDir); err != nil {
			return nil, err
		}
		if cfg.Name != "" && cfg.Name != creds.name {
			return nil, fmt.Errorf("quic: Name %q differs from the name %q in %s/%s; leave Name empty or use that node's certificates", cfg.Name, creds.name, cfg.CertsDir, CertFile)
		}
		cfg.Name = creds.name
	} else if creds, err = selfSigned(cfg.Name); err != nil {
		return nil, fmt.Errorf("quic: make a self-signed certificate: %w", err)
	}
	uaddr, err := net.ResolveUDPAddr("udp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("quic: listen address %q: %w", cfg.Addr, err)
	}
	udp, err := net.ListenUDP("udp", uaddr)
	if err != nil {
		return nil, fmt.Errorf("quic: listen on %s: %w", cfg.Addr, err)
	}
	raiseBuffers(udp, cfg.Logger)
	t := &Transport{
		cfg:   cfg,
		log:   cfg.Logger,
		creds: creds,
		udp:   udp,
		tr:    &quicgo.Transport{Conn: udp, StatelessResetKey: creds.resetKey()},
		qconf: &quicgo.Config{
			HandshakeIdleTimeout: cfg.DialTimeout,
			MaxIdleTimeout:       cfg.IdleTimeout,
			KeepAlivePeriod:      cfg.IdleTimeout / 3,
			// Whole windows from the start: every chunk is a new stream, and
			// one that had to grow its window from quic-go's 512 KiB would
			// spend its first round trips doing so. The windows are credit,
			// not buffers: memory is used only by bytes a reader leaves unread.
			InitialStreamReceiveWindow:     uint64(cfg.StreamWindow),
			MaxStreamReceiveWindow:         uint64(cfg.StreamWindow),
			InitialConnectionReceiveWindow: uint64(cfg.ConnWindow),
			MaxConnectionReceiveWindow:     uint64(cfg.ConnWindow),
			MaxIncomingStreams:             1024,
			MaxIncomingUniStreams:          256, // packets (tagged.go)
		},
	}
	t.ctx, t.cancel = context.WithCancel(context.WithoutCancel(ctx))
	t.mu.conns = map[string]*peerConn{}
	t.mu.dialing = map[string]*dialState{}
	t.ln, err = t.tr.Listen(creds.serverTLS(t.log), t.qconf)
	if err != nil {
		udp.Close()
		return nil, fmt.Errorf("quic: listen on %s: %w", udp.LocalAddr(), err)
	}
	t.wg.Add(1)
	go t.acceptLoop()
	return t, nil
}

// Addr is the address the transport listens on, "host:port", with the port
// chosen if Config.Addr's was 0. Peers dial it.
func (t *Transport) Addr() string { return t.udp.LocalAddr().String() }

// Name is this node's name: its certificate's common name, or Config.Name
// under Insecure.
func (t *Transport) Name() string { return t.cfg.Name }

// Close closes every connection (peers see the transport leave at once), stops
// accepting, and waits for running handlers, which see their ctx end.
func (t *Transport) Close() error {
	t.mu.Lock()
	if t.mu.closed {
		t.mu.Unlock()
		return nil
	}
	t.mu.closed = true
	conns := t.mu.conns
	t.mu.conns = map[string]*peerConn{}
	t.mu.Unlock()
	t.cancel()
	err := t.ln.Close()
	for _, pc := range conns {
		_ = pc.conn.CloseWithError(codeClosing, "transport closing")
	}
	t.wg.Wait()
	// Closing the quic-go transport closes every connection it still has:
	// ones accepted or dialled while Close ran.
	if e := t.tr.Close(); err == nil {
		err = e
	}
	if e := t.udp.Close(); err == nil && !errors.Is(e, net.ErrClosed) {
		err = e
	}
	if err != nil && !errors.Is(err, net.ErrClosed) {
		return fmt.Errorf("quic: close %s: %w", t.Addr(), err)
	}
	return nil
}

// Stats are a transport's counters.
type Stats struct {
	Conns          int   // live connections
	Dials          int64 // connections this node dialled
	Accepts        int64 // connections peers dialled
	ProtocolErrors int64 // peers disconnected for breaking the wire format
}

// Stats returns the transport's counters.
func (t *Transport) Stats() Stats {
	t.mu.Lock()
	n := len(t.mu.conns)
	t.mu.Unlock()
	return Stats{Conns: n, Dials: t.dials.Load(), Accepts: t.accepts.Load(), ProtocolErrors: t.protocolErrors.Load()}
}

// Peers lists the peers the transport has a connection to, by address.
func (t *Transport) Peers() []Peer {
	t.mu.Lock()
	peers := make([]Peer, 0, len(t.mu.conns))
	for _, pc := range t.mu.conns {
		peers = append(peers, pc.peer)
	}
	t.mu.Unlock()
	sort.Slice(peers, func(i, j int) bool { return peers[i].Addr < peers[j].Addr })
	return peers
}

func (t *Transport) acceptLoop() {
	defer t.wg.Done()
	for {
		conn, err := t.ln.Accept(t.ctx)
		if err != nil {
			return // closed
		}
		t.accepts.Add(1)
		t.adopt(conn, true)
	}
}

// adopt registers a connection that finished its handshake and serves its
// streams. A dialled one is registered if no live one to that peer is (a
// simultaneous first contact from both sides leaves the second connection
// serving until it idles out). An accepted one always is: the peer dialled
// again, so it restarted or lost the registered connection, which may look
// alive for up to IdleTimeout if the peer was killed and cannot reset it
// (Insecure: its stateless-reset key died with it). Calls go to its new run at
// once, and the old connection serves what it still carries until it ends.
func (t *Transport) adopt(conn *quicgo.Conn, accepted bool) *peerConn {
	pc := &peerConn{conn: conn, peer: Peer{Name: peerNameOf(conn.ConnectionState().TLS), Addr: conn.RemoteAddr().String()}}
	t.mu.Lock()
	if t.mu.closed {
		t.mu.Unlock()
		_ = conn.CloseWithError(codeClosing, "transport closing")
		return pc
	}
	if old, ok := t.mu.conns[pc.peer.Addr]; accepted || !ok || old.conn.Context().Err() != nil {
		t.mu.conns[pc.peer.Addr] = pc
	}
	t.wg.Add(2)
	t.mu.Unlock()
	go t.serveConn(pc)
	go t.servePackets(pc)
	return pc
}

// serveConn accepts the peer's streams until the connection ends, then forgets it.
func (t *Transport) serveConn(pc *peerConn) {
	defer t.wg.Done()
	for {
		s, err := pc.conn.AcceptStream(t.ctx)
		if err != nil {
			break
		}
		t.wg.Add(1)
		go t.serveStream(pc, s)
	}
	t.mu.Lock()
	if t.mu.conns[pc.peer.Addr] == pc {
		delete(t.mu.conns, pc.peer.Addr)
	}
	t.mu.Unlock()
	_ = pc.conn.CloseWithError(codeClosing, "")
}

// conn returns the live connection to addr, dialling it if there is none. Dials
// to one address are shared; a caller whose ctx ends stops waiting, the dial
// goes on for the others, bounded by DialTimeout.
func (t *Transport) conn(ctx context.Context, addr string) (*peerConn, error) {
	t.mu.Lock()
	if pc, ok := t.mu.conns[addr]; ok && pc.conn.Context().Err() == nil {
		t.mu.Unlock()
		return pc, nil
	}
	t.mu.Unlock()
	// Resolve to the form connections are registered under (what a peer's
	// Addr returns), so "localhost:p" and "127.0.0.1:p" share one connection.
	uaddr, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return nil, &trove.NodeError{Kind: trove.ErrNodeUnreachable, Addr: addr, Op: "dial", Err: err}
	}
	key := uaddr.String()
	t.mu.Lock()
	if t.mu.closed {
		t.mu.Unlock()
		return nil, &trove.NodeError{Kind: trove.ErrNodeUnreachable, Addr: addr, Op: "dial", Err: fmt.Errorf("this node's transport is closed: %w", trove.ErrClosed)}
	}
	if pc, ok := t.mu.conns[key]; ok && pc.conn.Context().Err() == nil {
		t.mu.Unlock()
		return pc, nil
	}
	d, ok := t.mu.dialing[key]
	if !ok {
		d = &dialState{done: make(chan struct{})}
		t.mu.dialing[key] = d
		t.wg.Add(1)
		go t.dial(key, uaddr, d)
	}
	t.mu.Unlock()
	select {
	case <-d.done:
		return d.pc, d.err
	case <-ctx.Done():
		return nil, unreachable(ctx, "dial", "", addr, trove.ObjectID{}, ctx.Err())
	}
}

func (t *Transport) dial(key string, uaddr *net.UDPAddr, d *dialState) {
	defer t.wg.Done()
	ctx, cancel := context.WithTimeout(t.ctx, t.cfg.DialTimeout)
	defer cancel()
	t.dials.Add(1)
	conn, err := t.tr.Dial(ctx, uaddr, t.creds.tlsConfig(t.log, true, key), t.qconf)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			err = fmt.Errorf("no handshake within %v (Config.DialTimeout)", t.cfg.DialTimeout)
		}
		d.err = &trove.NodeError{Kind: trove.ErrNodeUnreachable, Addr: key, Op: "dial", Err: explain(err)}
	} else {
		d.pc = t.adopt(conn, false)
	}
	t.mu.Lock()
	delete(t.mu.dialing, key)
	t.mu.Unlock()
	close(d.done)
}

// track adds a goroutine to t.wg unless the transport is closed (Close is
// waiting, or has waited, for them all).
func (t *Transport) track() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.mu.closed {
		return false
	}
	t.wg.Add(1)
	return true
}

// disconnect closes pc's connection after its peer broke the wire format.
func (t *Transport) disconnect(pc *peerConn, err error) {
	t.protocolErrors.Add(1)
	t.log.Warn("quic: disconnecting a peer that broke the protocol", "peer", pc.peer.Name, "addr", pc.peer.Addr, "err", err)
	_ = pc.conn.CloseWithError(codeProtocol, "protocol violation")
}

// forget drops pc from the connection map, if it is still there, and closes it.
func (t *Transport) forget(pc *peerConn) {
	t.mu.Lock()
	if t.mu.conns[pc.peer.Addr] == pc {
		delete(t.mu.conns, pc.peer.Addr)
	}
	t.mu.Unlock()
	_ = pc.conn.CloseWithError(codeClosing, "")
}

package ipc

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fxamacker/cbor/v2"
	"golang.org/x/sys/unix"

	"github.com/trovedb/trove"
	"github.com/trovedb/trove/engine"
)

// ErrServerClosed is returned by Serve after Shutdown, and to requests that
// arrive while the daemon shuts down.
var ErrServerClosed = errors.New("ipc: daemon shutting down")

// ServerConfig configures a Server. The zero value works.
type ServerConfig struct {
	// Logger receives connection events and protocol errors. Default slog.Default().
	Logger *slog.Logger
	// MaxMessage is the largest request accepted, in bytes; a larger one closes
	// the client's connection. Default DefaultMaxMessage, or more if the store's
	// inline threshold needs it.
	MaxMessage int
	// Version is the daemon's version, shown by `trove status`.
	Version string
}

// Server serves a store to the processes of this node over a unix socket.
type Server struct {
	st      *engine.Store
	cfg     ServerConfig
	log     *slog.Logger
	started time.Time
	inline  int64 // the store's inline threshold (0: every object in the arena)

	// ctx is cancelled (with ErrServerClosed) when Shutdown gives up waiting:
	// every request still running ends with that error.
	ctx    context.Context
	cancel context.CancelCauseFunc

	reqs  sync.WaitGroup // requests running in goroutines of their own
	conns sync.WaitGroup // connections being served

	mu struct {
		sync.Mutex
		ln       *net.UnixListener
		path     string
		closing  bool
		conns    map[*conn]struct{}
		kept     map[trove.ObjectID]trove.Ref // objects held for `trove put`
		nextConn uint64
	}

	accepted, requests, protoErrors, bytesIn, bytesOut atomic.Uint64
	refs, views, builders                              atomic.Int64
}

// NewServer returns a server for st. It does not own st: close the store after
// Shutdown.
func NewServer(st *engine.Store, cfg ServerConfig) *Server {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	inline := max(st.Config().InlineThreshold, 0)
	if cfg.MaxMessage <= 0 {
		cfg.MaxMessage = max(DefaultMaxMessage, int(inline)+64<<10)
	}
	s := &Server{st: st, cfg: cfg, log: cfg.Logger, started: time.Now(), inline: inline}
	s.ctx, s.cancel = context.WithCancelCause(context.Background())
	s.mu.conns = make(map[*conn]struct{})
	s.mu.kept = make(map[trove.ObjectID]trove.Ref)
	return s
}

// DefaultSocket is where the daemon listens unless told otherwise: $TROVE_SOCKET,
// else $XDG_RUNTIME_DIR/trove/troved.sock, else /tmp/trove-<uid>/troved.sock.
func DefaultSocket() string {
	if p := os.Getenv("TROVE_SOCKET"); p != "" {
		return p
	}
	if d := os.Getenv("XDG_RUNTIME_DIR"); d != "" {
		return filepath.Join(d, "trove", "troved.sock")
	}
	return filepath.Join(os.TempDir(), fmt.Sprintf("trove-%d", os.Getuid()), "troved.sock")
}

// Listen makes the daemon's socket at path: its directory is created (mode 0700)
// if missing, a stale socket left by a dead daemon is removed (a live one is an
// error), and the socket is made accessible to its owner only (mode 0600).
func Listen(path string) (*net.UnixListener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("ipc: socket directory: %w", err)
	}
	if _, err := os.Lstat(path); err == nil {
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			return nil, fmt.Errorf("ipc: a daemon is already listening on %s; stop it or choose another -socket", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("ipc: removing stale socket: %w", err)
		}
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("ipc: listen: %w", err)
	}
	ln.SetUnlinkOnClose(false) // Shutdown removes it, before waiting for requests
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		os.Remove(path)
		return nil, fmt.Errorf("ipc: socket mode: %w", err)
	}
	return ln, nil
}

// Serve accepts clients on ln until Shutdown, then returns ErrServerClosed.
func (s *Server) Serve(ln *net.UnixListener) error {
	s.mu.Lock()
	if s.mu.closing {
		s.mu.Unlock()
		ln.Close()
		return ErrServerClosed
	}
	s.mu.ln, s.mu.path = ln, ln.Addr().String()
	s.mu.Unlock()
	for {
		c, err := ln.AcceptUnix()
		if err != nil {
			s.mu.Lock()
			closing := s.mu.closing
			s.mu.Unlock()
			if closing {
				return ErrServerClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				time.Sleep(10 * time.Millisecond)
				continue
			}
			return fmt.Errorf("ipc: accept: %w", err)
		}
		s.start(c)
	}
}

func (s *Server) start(nc *net.UnixConn) {
	s.mu.Lock()
	if s.mu.closing {
		s.mu.Unlock()
		nc.Close()
		return
	}
	s.mu.nextConn++
	c := &conn{srv: s, nc: nc, id: s.mu.nextConn, connected: time.Now()}
	c.out.conn = nc
	c.ctx, c.cancel = context.WithCancelCause(s.ctx)
	c.mu.refs = make(map[trove.ObjectID]*held)
	c.mu.views = make(map[uint64]*trove.Object)
	c.mu.builders = make(map[trove.ObjectID]*engine.Builder)
	c.mu.inflight = make(map[uint64]context.CancelCauseFunc)
	s.mu.conns[c] = struct{}{}
	s.conns.Add(1)
	s.mu.Unlock()
	s.accepted.Add(1)
	c.pid = peerPID(nc)
	go c.serve()
}

// peerPID asks the kernel which process is at the other end (SO_PEERCRED): the
// client's word for it is not needed.
func peerPID(nc *net.UnixConn) int {
	raw, err := nc.SyscallConn()
	if err != nil {
		return 0
	}
	pid := 0
	_ = raw.Control(func(fd uintptr) {
		if cred, err := unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED); err == nil {
			pid = int(cred.Pid)
		}
	})
	return pid
}

// Shutdown stops the server: it stops accepting, removes the socket file, lets
// requests in progress finish until ctx ends, fails those still running with
// ErrServerClosed, then closes every connection and releases everything its
// clients held (and the objects kept for `trove put`). Requests arriving
// meanwhile fail with ErrServerClosed. The store stays open.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	if s.mu.closing {
		s.mu.Unlock()
		s.conns.Wait()
		return nil
	}
	s.mu.closing = true
	ln, path := s.mu.ln, s.mu.path
	s.mu.Unlock()
	if ln != nil {
		ln.Close()
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			s.log.Warn("could not remove the socket", "path", path, "err", err)
		}
	}
	done := make(chan struct{})
	go func() { s.reqs.Wait(); close(done) }()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = fmt.Errorf("ipc: shutdown: requests still running when %w; they were failed", context.Cause(ctx))
		s.cancel(ErrServerClosed)
		<-done
	}
	s.mu.Lock()
	for c := range s.mu.conns {
		c.nc.Close() // its serve loop cleans up
	}
	s.mu.Unlock()
	s.conns.Wait()
	s.cancel(ErrServerClosed)
	s.mu.Lock()
	for id, r := range s.mu.kept {
		r.Drop()
		delete(s.mu.kept, id)
	}
	s.mu.Unlock()
	return err
}

func (s *Server) closing() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.mu.closing
}

// ServerStats are the server's figures.
type ServerStats struct {
	Clients        int    // connected now
	Accepted       uint64 // connections since start
	Requests       uint64 // requests since start
	ProtocolErrors uint64 // connections closed for a malformed or oversized message
	BytesIn        uint64 // bytes received
	BytesOut       uint64 // bytes sent (object bytes in shared memory are not counted: they are never sent)
	Refs           int64  // objects referenced on behalf of clients now
	Views          int64  // views pinned on behalf of clients now
	Builders       int64  // unsealed objects clients are writing now
	Kept           int    // objects kept by `trove put`
}

// Stats returns the server's figures.
func (s *Server) Stats() ServerStats {
	s.mu.Lock()
	clients, kept := len(s.mu.conns), len(s.mu.kept)
	s.mu.Unlock()
	return ServerStats{
		Clients: clients, Accepted: s.accepted.Load(), Requests: s.requests.Load(),
		ProtocolErrors: s.protoErrors.Load(), BytesIn: s.bytesIn.Load(), BytesOut: s.bytesOut.Load(),
		Refs: s.refs.Load(), Views: s.views.Load(), Builders: s.builders.Load(), Kept: kept,
	}
}

// conn is one client's connection and everything held on its behalf, which is
// released when it goes.
type conn struct {
	srv       *Server
	nc        *net.UnixConn
	out       sender
	id        uint64
	pid       int
	name      string // from the handshake
	connected time.Time
	hello     atomic.Bool // handshake done: name and pid are set, never to change

	ctx    context.Context // cancelled when the connection ends
	cancel context.CancelCauseFunc
	reqs   sync.WaitGroup // this connection's requests running in goroutines

	mu struct {
		sync.Mutex
		dead     bool // cleaned up: results arriving now are released, not registered
		refs     map[trove.ObjectID]*held
		views    map[uint64]*trove.Object
		nextView uint64
		builders map[trove.ObjectID]*engine.Builder
		inflight map[uint64]context.CancelCauseFunc
	}
}

// held is one object a client references: one engine ref for all of the
// client's handles, n of them.
type held struct {
	ref trove.Ref
	n   int
}

func (c *conn) logger() *slog.Logger {
	return c.srv.log.With("client", c.id, "pid", c.pid, "name", c.name)
}

// serve reads and handles requests until the connection ends, then releases
// everything the client held.
func (c *conn) serve() {
	defer c.srv.conns.Done()
	defer c.cleanup()
	br := bufio.NewReaderSize(c.nc, 64<<10)
	var hdr [headerSize]byte
	var body []byte
	for {
		// Replies to requests that came together go out together: hold them
		// while more requests are buffered, write them before waiting.
		if br.Buffered() < headerSize {
			if err := c.out.uncork(); err != nil {
				return
			}
		} else {
			c.out.cork()
		}
		if _, err := io.ReadFull(br, hdr[:]); err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
				c.logger().Info("client connection lost", "err", err)
			}
			return
		}
		h, err := parseHeader(hdr[:], c.srv.cfg.MaxMessage)
		if err == nil && h.nfds != 0 {
			err = fmt.Errorf("%w: clients send no file descriptors", errProtocol)
		}
		if err == nil && !c.hello.Load() && h.op != opHello {
			err = fmt.Errorf("%w: %s before the handshake", errProtocol, h.op)
		}
		if err == nil {
			if n := h.bodyLen(); cap(body) < n {
				body = make([]byte, n)
			}
			body = body[:h.bodyLen()]
			if br.Buffered() < len(body) {
				err = c.out.uncork() // the rest of the body may be a while
			}
			if _, err = io.ReadFull(br, body); err == nil {
				c.srv.bytesIn.Add(uint64(headerSize + len(body)))
				c.srv.requests.Add(1)
				err = c.handle(h, body)
			}
		}
		if err != nil {
			if errors.Is(err, errProtocol) || errors.Is(err, errTooLarge) {
				c.srv.protoErrors.Add(1)
				c.logger().Warn("closing client connection: bad message", "reason", err)
			} else if !errors.Is(err, net.ErrClosed) {
				c.logger().Info("client connection lost", "err", err)
			}
			return
		}
	}
}

// cleanup releases everything the client held: builders are aborted, views
// released, refs dropped. It runs once the connection is gone.
func (c *conn) cleanup() {
	c.nc.Close()
	c.cancel(errDead)
	c.reqs.Wait() // its requests end (their context is cancelled); what they registered is collected below
	c.mu.Lock()
	c.mu.dead = true
	refs, views, builders := c.mu.refs, c.mu.views, c.mu.builders
	c.mu.refs, c.mu.views, c.mu.builders = nil, nil, nil
	c.mu.Unlock()
	for _, b := range builders {
		b.Abort()
	}
	for _, v := range views {
		v.Release()
	}
	for _, h := range refs {
		h.ref.Drop()
	}
	c.srv.builders.Add(-int64(len(builders)))
	c.srv.views.Add(-int64(len(views)))
	c.srv.refs.Add(-int64(len(refs)))
	s := c.srv
	s.mu.Lock()
	delete(s.mu.conns, c)
	s.mu.Unlock()
	if c.hello.Load() {
		c.logger().Info("client disconnected", "refs", len(refs), "views", len(views), "builders", len(builders))
	}
}

// reply sends a successful reply to request id with body written by fill.
func (c *conn) reply(id uint64, fill func(b []byte) []byte) error {
	bp := getBuf()
	b := appendHeader(*bp, opReply, id, 0)
	b = putU8(b, codeOK)
	if fill != nil {
		b = fill(b)
	}
	b = finish(b, 0)
	c.srv.bytesOut.Add(uint64(len(b)))
	err := c.out.send(b)
	*bp = b
	putBuf(bp)
	return err
}

// fail sends an error reply to request id.
func (c *conn) fail(id uint64, err error) error {
	bp := getBuf()
	b := finish(appendError(appendHeader(*bp, opReply, id, 0), err), 0)
	c.srv.bytesOut.Add(uint64(len(b)))
	serr := c.out.send(b)
	*bp = b
	putBuf(bp)
	return serr
}

// async runs fn in a goroutine of its own with a context that ends at deadline
// (unix nanoseconds, 0 for none), on a cancel request, or when the connection or
// the server goes. fn returns the error to reply with, or nil if it replied.
func (c *conn) async(id uint64, deadline int64, fn func(ctx context.Context) error) {
	ctx, cancel := context.WithCancelCause(c.ctx)
	var stop context.CancelFunc = func() {}
	if deadline != 0 {
		ctx, stop = context.WithDeadline(ctx, time.Unix(0, deadline))
	}
	c.mu.Lock()
	c.mu.inflight[id] = cancel
	c.mu.Unlock()
	c.reqs.Add(1)
	c.srv.reqs.Add(1)
	go func() {
		defer c.srv.reqs.Done()
		defer c.reqs.Done()
		if err := fn(ctx); err != nil {
			_ = c.fail(id, err)
		}
		stop()
		cancel(nil)
		c.mu.Lock()
		delete(c.mu.inflight, id)
		c.mu.Unlock()
	}()
}

// handle handles one request. An error closes the connection (the client broke
// the protocol or is gone); a failed request is answered with its error.
func (c *conn) handle(h header, body []byte) error {
	r := &reader{b: body}
	s := c.srv
	// Refuse new work while shutting down; releases and cancels still count.
	switch h.op {
	case opRelease, opReleaseView, opCancel, opAbort, opReply:
	default:
		if s.closing() && h.op != opHello {
			return c.fail(h.id, ErrServerClosed)
		}
	}
	switch h.op {
	case opHello:
		var m helloReq
		if err := decodeAll(r, &m); err != nil {
			return err
		}
		return c.handshake(h.id, &m)
	case opPut:
		var m putReq
		if err := decodeAll(r, &m); err != nil {
			return err
		}
		// Inline puts never wait for arena room, so the read loop runs them; a
		// daemon that keeps every object in the arena (inline threshold 0)
		// takes creates only.
		if s.inline == 0 || int64(len(m.data)) > s.inline {
			return fmt.Errorf("%w: put of %d bytes inline; the daemon's inline threshold is %d (use create)", errProtocol, len(m.data), s.inline)
		}
		return c.put(h.id, &m)
	case opCreate:
		var m createReq
		if err := decodeAll(r, &m); err != nil {
			return err
		}
		c.create(h.id, &m)
		return nil
	case opSeal:
		var m sealReq
		if err := decodeAll(r, &m); err != nil {
			return err
		}
		if err := c.seal(&m); err != nil {
			return c.fail(h.id, err)
		}
		return c.reply(h.id, nil)
	case opAbort:
		id := r.id()
		if err := r.done(); err != nil {
			return err
		}
		c.abort(id)
		return nil
	case opGet:
		m, err := decodeIDs(r, true, false)
		if err != nil {
			return err
		}
		if len(m.ids) > maxBatch {
			return fmt.Errorf("%w: get of %d objects in one request (limit %d)", errProtocol, len(m.ids), maxBatch)
		}
		c.get(h.id, m)
		return nil
	case opWait:
		m, err := decodeIDs(r, true, true)
		if err != nil {
			return err
		}
		c.wait(h.id, m)
		return nil
	case opBorrow:
		m, err := decodeIDs(r, false, false)
		if err != nil {
			return err
		}
		if err := c.borrow(m.ids); err != nil {
			return c.fail(h.id, err)
		}
		return c.reply(h.id, nil)
	case opRelease:
		m, err := decodeIDs(r, false, false)
		if err != nil {
			return err
		}
		c.release(m.ids)
		return nil
	case opReleaseView:
		views := decodeViews(r)
		if err := r.done(); err != nil {
			return err
		}
		c.releaseViews(views)
		return nil
	case opCancel:
		if err := r.done(); err != nil {
			return err
		}
		c.mu.Lock()
		cancel := c.mu.inflight[h.id]
		c.mu.Unlock()
		if cancel != nil {
			cancel(errCanceled)
		}
		return nil
	case opStatus:
		if err := r.done(); err != nil {
			return err
		}
		st := s.status()
		return c.replyCBOR(h.id, &st)
	case opMemory:
		if err := r.done(); err != nil {
			return err
		}
		c.async(h.id, 0, func(context.Context) error {
			rep := s.memory()
			return c.replyCBOR(h.id, &rep)
		})
		return nil
	case opKeep, opUnkeep:
		id := r.id()
		if err := r.done(); err != nil {
			return err
		}
		var err error
		if h.op == opKeep {
			err = c.keep(id)
		} else {
			err = s.unkeep(id)
		}
		if err != nil {
			return c.fail(h.id, err)
		}
		return c.reply(h.id, nil)
	case opSync:
		if err := r.done(); err != nil {
			return err
		}
		return c.reply(h.id, nil)
	default: // opReply
		return fmt.Errorf("%w: a client sent a %s", errProtocol, h.op)
	}
}

// decodeAll decodes a whole message body into m.
func decodeAll(r *reader, m interface{ decode(*reader) }) error {
	m.decode(r)
	return r.done()
}

// decodeIDs decodes a whole get, wait, borrow or release body.
func decodeIDs(r *reader, withDeadline, withN bool) (idsReq, error) {
	var m idsReq
	m.decode(r, withDeadline, withN)
	return m, r.done()
}

func (c *conn) handshake(id uint64, m *helloReq) error {
	if c.hello.Load() {
		return fmt.Errorf("%w: a second handshake", errProtocol)
	}
	if m.version != Version {
		_ = c.fail(id, fmt.Errorf("%w: client speaks protocol version %d, this daemon %d; use a client built from the same trove release", errProtocol, m.version, Version))
		return fmt.Errorf("%w: protocol version %d", errProtocol, m.version)
	}
	c.name = m.name
	if c.pid == 0 {
		c.pid = int(m.pid)
	}
	c.hello.Store(true)
	st := c.srv.st
	rep := helloReply{
		version: Version, node: st.Node(), arenaSize: uint64(st.ArenaSize()),
		inline: uint64(c.srv.inline), maxMsg: uint32(c.srv.cfg.MaxMessage), pid: uint32(os.Getpid()),
	}
	bp := getBuf()
	b := finish(rep.encode(putU8(appendHeader(*bp, opReply, id, 1), codeOK)), 0)
	err := c.out.sendFDs(b, []int{st.ArenaFD()})
	*bp = b
	putBuf(bp)
	c.logger().Info("client connected")
	return err
}

// lookup returns the engine refs for ids, which the client must hold. The caller
// holds c.mu.
func (c *conn) lookupLocked(ids []trove.ObjectID) ([]trove.Ref, error) {
	if err := c.holdsLocked(ids); err != nil {
		return nil, err
	}
	refs := make([]trove.Ref, len(ids))
	for i, id := range ids {
		refs[i] = c.mu.refs[id].ref
	}
	return refs, nil
}

// holdsLocked fails unless the client holds a ref to each of ids. The caller
// holds c.mu.
func (c *conn) holdsLocked(ids []trove.ObjectID) error {
	for _, id := range ids {
		if c.mu.refs[id] == nil {
			return fmt.Errorf("object %s: this client holds no ref to it (borrow it first): %w", id, trove.ErrInvalidRef)
		}
	}
	return nil
}

// borrowed returns new engine refs of ids, which the client must hold: for a
// request that outlives the read loop's view of the client's refs.
func (c *conn) borrowed(ids []trove.ObjectID) ([]trove.Ref, error) {
	c.mu.Lock()
	err := c.holdsLocked(ids)
	c.mu.Unlock()
	if err != nil {
		return nil, err
	}
	refs := make([]trove.Ref, 0, len(ids))
	for _, id := range ids {
		r, err := c.srv.st.Borrow(id)
		if err != nil {
			dropRefs(refs)
			return nil, err
		}
		refs = append(refs, r)
	}
	return refs, nil
}

func dropRefs(refs []trove.Ref) {
	for _, r := range refs {
		r.Drop()
	}
}

// adopt records a new client handle to ref's object, taking ref (the caller's
// engine ref) as the server's if it has none yet. If the connection is gone it
// drops ref and reports false.
func (c *conn) adopt(ref trove.Ref) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.mu.dead {
		ref.Drop()
		return false
	}
	c.adoptLocked(ref)
	return true
}

func (c *conn) adoptLocked(ref trove.Ref) {
	if h := c.mu.refs[ref.ID()]; h != nil {
		h.n++
		ref.Drop()
		return
	}
	c.mu.refs[ref.ID()] = &held{ref: ref, n: 1}
	c.srv.refs.Add(1)
}

func (c *conn) put(id uint64, m *putReq) error {
	var contains []trove.Ref
	if len(m.contains) > 0 {
		var err error
		if contains, err = c.borrowed(m.contains); err != nil {
			return c.fail(id, err)
		}
		defer dropRefs(contains)
	}
	// Small objects live in the heap: this never waits for room.
	ref, err := c.srv.st.PutFunc(c.ctx, len(m.data), contains, func(dst []byte) error {
		copy(dst, m.data)
		return nil
	})
	if err != nil {
		return c.fail(id, err)
	}
	if !c.adopt(ref) {
		return errDead
	}
	oid := ref.ID()
	return c.reply(id, func(b []byte) []byte { return putID(b, oid) })
}

func (c *conn) create(id uint64, m *createReq) {
	contains, err := c.borrowed(m.contains)
	if err != nil {
		_ = c.fail(id, err)
		return
	}
	c.async(id, m.deadline, func(ctx context.Context) error {
		defer dropRefs(contains)
		b, err := c.srv.st.CreateContaining(ctx, int(m.size), contains)
		if err != nil {
			return err
		}
		c.mu.Lock()
		if c.mu.dead {
			c.mu.Unlock()
			b.Abort()
			b.Ref().Drop()
			return errDead
		}
		c.mu.builders[b.Ref().ID()] = b
		c.adoptLocked(b.Ref())
		c.mu.Unlock()
		c.srv.builders.Add(1)
		rep := createReply{id: b.Ref().ID(), off: b.ArenaOffset()}
		return c.reply(id, rep.encode)
	})
}

func (c *conn) takeBuilder(id trove.ObjectID) *engine.Builder {
	c.mu.Lock()
	b := c.mu.builders[id]
	delete(c.mu.builders, id)
	c.mu.Unlock()
	if b != nil {
		c.srv.builders.Add(-1)
	}
	return b
}

func (c *conn) seal(m *sealReq) error {
	b := c.takeBuilder(m.id)
	if b == nil {
		return fmt.Errorf("seal %s: no object this client is creating: %w", m.id, trove.ErrSealed)
	}
	if b.ArenaOffset() < 0 {
		if len(m.data) != b.Size() {
			b.Abort()
			return fmt.Errorf("seal %s: %d bytes sent for an object of %d; it was aborted", m.id, len(m.data), b.Size())
		}
		copy(b.Bytes(), m.data)
	} else if len(m.data) != 0 {
		b.Abort()
		return fmt.Errorf("seal %s: bytes sent for an object written in shared memory; it was aborted", m.id)
	}
	return b.Seal()
}

func (c *conn) abort(id trove.ObjectID) {
	if b := c.takeBuilder(id); b != nil {
		b.Abort()
	}
}

// get answers at once if every object is in memory, else in a goroutine.
func (c *conn) get(id uint64, m idsReq) {
	c.mu.Lock()
	refs, err := c.lookupLocked(m.ids)
	c.mu.Unlock()
	if err != nil {
		_ = c.fail(id, err)
		return
	}
	views := make([]*trove.Object, len(refs))
	fast := true
	for i, r := range refs {
		v, err := c.srv.st.TryGet(r)
		if err != nil {
			trove.ReleaseAll(views)
			_ = c.fail(id, err)
			return
		}
		if v == nil {
			fast = false
			break
		}
		views[i] = v
	}
	if fast {
		if err := c.replyViews(id, views); err != nil {
			_ = c.fail(id, err)
		}
		return
	}
	refs, err = c.borrowed(m.ids) // the read loop may drop the client's refs meanwhile
	if err != nil {
		trove.ReleaseAll(views)
		_ = c.fail(id, err)
		return
	}
	c.async(id, m.deadline, func(ctx context.Context) error {
		defer dropRefs(refs)
		for i, r := range refs {
			if views[i] != nil {
				continue
			}
			v, err := c.srv.st.Get(ctx, r)
			if err != nil {
				trove.ReleaseAll(views)
				return fmt.Errorf("get (ref %d of %d): %w", i, len(refs), err)
			}
			views[i] = v
		}
		return c.replyViews(id, views)
	})
}

// replyViews registers views as the client's pins and sends where their bytes
// are. Small objects are copied into the reply and their views released at once;
// objects mapped from a spill file send that file's descriptor.
func (c *conn) replyViews(id uint64, views []*trove.Object) error {
	items := make([]getItem, len(views))
	var files []*os.File
	defer func() {
		for _, f := range files {
			f.Close()
		}
	}()
	for i, v := range views {
		loc, err := c.srv.st.Locate(v)
		if err != nil {
			trove.ReleaseAll(views)
			return err
		}
		it := &items[i]
		it.size = uint64(v.Size())
		switch loc.Place {
		case engine.PlaceHeap:
			it.place, it.data = placeInline, v.Bytes()
		case engine.PlaceArena:
			it.place, it.offset = placeArena, uint64(loc.Offset)
		case engine.PlaceFile:
			f, err := os.Open(loc.Path)
			if err != nil {
				trove.ReleaseAll(views)
				return fmt.Errorf("get %s: open its spill file: %w", v.ID(), err)
			}
			files = append(files, f)
			it.place, it.offset = placeFile, uint64(loc.Offset)
		}
	}
	if len(files) > maxFDs {
		trove.ReleaseAll(views)
		return fmt.Errorf("get: %d objects mapped from spill files in one request (limit %d); get fewer at once", len(files), maxFDs)
	}
	c.mu.Lock()
	if c.mu.dead {
		c.mu.Unlock()
		trove.ReleaseAll(views)
		return errDead
	}
	for i, v := range views {
		if items[i].place == placeInline {
			continue
		}
		c.mu.nextView++
		items[i].view = c.mu.nextView
		c.mu.views[c.mu.nextView] = v
	}
	c.mu.Unlock()
	bp := getBuf()
	b := appendHeader(*bp, opReply, id, len(files))
	b = putU32(putU8(b, codeOK), uint32(len(items)))
	for i := range items {
		b = items[i].encode(b)
	}
	b = finish(b, 0)
	// Inline objects were copied: their pins can go.
	pinned := int64(0)
	for i, v := range views {
		if items[i].place == placeInline {
			v.Release()
		} else {
			pinned++
		}
	}
	c.srv.views.Add(pinned)
	c.srv.bytesOut.Add(uint64(len(b)))
	var err error
	if len(files) > 0 {
		fds := make([]int, len(files))
		for i, f := range files {
			fds[i] = int(f.Fd())
		}
		err = c.out.sendFDs(b, fds)
	} else {
		err = c.out.send(b)
	}
	*bp = b
	putBuf(bp)
	return err
}

func (c *conn) wait(id uint64, m idsReq) {
	if int(m.n) > len(m.ids) {
		_ = c.fail(id, fmt.Errorf("wait: numReturns %d outside [0, %d], the number of refs", m.n, len(m.ids)))
		return
	}
	c.mu.Lock()
	refs, err := c.lookupLocked(m.ids)
	c.mu.Unlock()
	if err != nil {
		_ = c.fail(id, err)
		return
	}
	// Fast path: enough are ready now, in input order.
	var idx []int
	for i, r := range refs {
		if len(idx) == int(m.n) {
			break
		}
		ok, err := c.srv.st.Ready(r)
		if err != nil {
			_ = c.fail(id, fmt.Errorf("wait (ref %d of %d): %w", i, len(refs), err))
			return
		}
		if ok {
			idx = append(idx, i)
		}
	}
	if len(idx) == int(m.n) {
		_ = c.reply(id, func(b []byte) []byte { return encodeWait(b, 0, idx) })
		return
	}
	refs, err = c.borrowed(m.ids)
	if err != nil {
		_ = c.fail(id, err)
		return
	}
	c.async(id, m.deadline, func(ctx context.Context) error {
		defer dropRefs(refs)
		ready, _, err := c.srv.st.Wait(ctx, refs, int(m.n))
		var timedOut uint8
		if err != nil {
			if !errors.Is(err, trove.ErrGetTimeout) {
				return err
			}
			timedOut = 1
		}
		// ready is a subsequence of refs, in order.
		idx := make([]int, 0, len(ready))
		j := 0
		for i, r := range refs {
			if j < len(ready) && ready[j] == r {
				idx = append(idx, i)
				j++
			}
		}
		return c.reply(id, func(b []byte) []byte { return encodeWait(b, timedOut, idx) })
	})
}

// encodeWait writes a wait reply: whether the deadline passed, and the ready
// refs' positions.
func encodeWait(b []byte, timedOut uint8, idx []int) []byte {
	b = putU32(putU8(b, timedOut), uint32(len(idx)))
	for _, i := range idx {
		b = putU32(b, uint32(i))
	}
	return b
}

// borrow gives the client one more handle to each of ids, or none if any fails.
func (c *conn) borrow(ids []trove.ObjectID) error {
	refs := make([]trove.Ref, 0, len(ids))
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, id := range ids {
		if h := c.mu.refs[id]; h != nil {
			h.n++
			refs = append(refs, trove.Ref{})
			continue
		}
		r, err := c.srv.st.Borrow(id)
		if err != nil {
			// Undo: the ones counted on held refs, and the new ones.
			for i, r := range refs {
				if r.IsZero() {
					c.mu.refs[ids[i]].n--
				} else {
					r.Drop()
				}
			}
			return err
		}
		refs = append(refs, r)
	}
	for _, r := range refs {
		if !r.IsZero() {
			c.adoptLocked(r)
		}
	}
	return nil
}

func (c *conn) release(ids []trove.ObjectID) {
	c.mu.Lock()
	var drop []trove.Ref
	unknown := 0
	for _, id := range ids {
		h := c.mu.refs[id]
		if h == nil {
			unknown++
			continue
		}
		if h.n--; h.n == 0 {
			delete(c.mu.refs, id)
			drop = append(drop, h.ref)
		}
	}
	c.mu.Unlock()
	c.srv.refs.Add(-int64(len(drop)))
	dropRefs(drop)
	if unknown > 0 {
		c.logger().Warn("client released refs it does not hold", "count", unknown)
	}
}

func (c *conn) releaseViews(ids []uint64) {
	c.mu.Lock()
	views := make([]*trove.Object, 0, len(ids))
	for _, id := range ids {
		if v := c.mu.views[id]; v != nil {
			views = append(views, v)
			delete(c.mu.views, id)
		}
	}
	c.mu.Unlock()
	trove.ReleaseAll(views)
	c.srv.views.Add(-int64(len(views)))
	if len(views) < len(ids) {
		c.logger().Warn("client released views it does not hold", "count", len(ids)-len(views))
	}
}

func (c *conn) keep(id trove.ObjectID) error {
	refs, err := c.borrowed([]trove.ObjectID{id})
	if err != nil {
		return err
	}
	s := c.srv
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.mu.kept[id]; ok {
		refs[0].Drop()
		return nil
	}
	s.mu.kept[id] = refs[0]
	return nil
}

func (s *Server) unkeep(id trove.ObjectID) error {
	s.mu.Lock()
	r, ok := s.mu.kept[id]
	delete(s.mu.kept, id)
	s.mu.Unlock()
	if !ok {
		return fmt.Errorf("unkeep %s: the daemon keeps no such object: %w", id, trove.ErrUnknownObject)
	}
	r.Drop()
	return nil
}

func (c *conn) replyCBOR(id uint64, v any) error {
	data, err := cbor.Marshal(v)
	if err != nil {
		return c.fail(id, err)
	}
	return c.reply(id, func(b []byte) []byte { return append(b, data...) })
}

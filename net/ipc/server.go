package ipc

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

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
	// FrameTimeout is how long a client may stop in the middle of a message
	// (part of a frame sent, then nothing) before its connection is closed
	// with a logged reason and everything it held is released. A connection
	// idle between messages is never closed. Default DefaultFrameTimeout;
	// negative: no limit.
	FrameTimeout time.Duration
	// Cluster, for a cluster node's daemon, lists the members and the
	// node's cluster counters in Status.
	Cluster Cluster
	// Results, for a cluster node's daemon, makes and keeps the results of
	// remote calls that clients (task workers) write in place
	// (Client.CreateResult); nil refuses them.
	Results ResultStore
	// HTTP is the host:port where the daemon serves /metrics and
	// /debug/pprof/, shown in Status (so that loadgen -profile finds a
	// node's profiles from its socket); "" if it serves none.
	HTTP string
}

// DefaultFrameTimeout is ServerConfig.FrameTimeout's default.
const DefaultFrameTimeout = 10 * time.Second

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

	shutdown chan struct{} // closed when Shutdown begins (Conn.ServerClosing)

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
		layer    map[LayerOp]LayerHandler // Handle
		onClose  map[uint64]func(Conn)    // OnClose
		nextHook uint64
		workers  func() []WorkerInfo // SetWorkers
	}

	accepted, requests, protoErrors, stalled, bytesIn, bytesOut atomic.Uint64
	refs, views, builders                                       atomic.Int64
}

// NewServer returns a server for st. It does not own st: close the store after
// Shutdown.
func NewServer(st *engine.Store, cfg ServerConfig) *Server {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	inline := max(st.Config().InlineThreshold, 0)
	if cfg.FrameTimeout == 0 {
		cfg.FrameTimeout = DefaultFrameTimeout
	}
	if cfg.MaxMessage <= 0 {
		cfg.MaxMessage = max(DefaultMaxMessage, int(inline)+64<<10)
	}
	s := &Server{st: st, cfg: cfg, log: cfg.Logger, started: time.Now(), inline: inline, shutdown: make(chan struct{})}
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
// error, and so is a file that is not a socket), and the socket is made accessible to its owner only (mode 0600).
func Listen(path string) (*net.UnixListener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("ipc: socket directory: %w", err)
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode().Type() != fs.ModeSocket {
			// Never remove what is not a socket: -socket may name a user's file by mistake.
			return nil, fmt.Errorf("ipc: %s exists and is not a socket (%s); remove it, or choose another -socket", path, fi.Mode().Type())
		}
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
	c.mu.refs = make(map[trove.ObjectID]held)
	c.mu.views = make(map[uint64]*trove.Object)
	c.mu.builders = make(map[trove.ObjectID]*engine.Builder)
	c.mu.inflight = make(map[uint64]context.CancelCauseFunc)
	s.mu.conns[c] = struct{}{}
	s.conns.Add(1)
	s.mu.Unlock()
	s.accepted.Add(1)
	c.pid = PeerPID(nc)
	go c.serve()
}

// PeerPID asks the kernel which process is at the other end of a unix socket
// connection (SO_PEERCRED), so that no process's word for it is needed. It
// returns 0 if the kernel does not say.
func PeerPID(nc *net.UnixConn) int {
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
	close(s.shutdown)
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
	StalledFrames  uint64 // connections closed for stopping mid-message (ServerConfig.FrameTimeout)
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
		ProtocolErrors: s.protoErrors.Load(), StalledFrames: s.stalled.Load(),
		BytesIn: s.bytesIn.Load(), BytesOut: s.bytesOut.Load(),
		Refs: s.refs.Load(), Views: s.views.Load(), Builders: s.builders.Load(), Kept: kept,
	}
}

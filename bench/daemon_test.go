package bench

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/trovedb/trove"
	"github.com/trovedb/trove/engine"
	"github.com/trovedb/trove/net/ipc"
)

// The IPC and Redis benchmarks need a trove daemon in another process. The test
// binary is that process too: startDaemon re-executes it with TROVE_BENCH_DAEMON
// set to a socket path, and TestMain then serves a store on that socket instead of
// running tests. The child exits cleanly on SIGTERM or SIGINT, and when its stdin
// (a pipe the parent holds) reaches EOF, so that it dies with the parent even if
// the parent is killed.
const (
	daemonEnv         = "TROVE_BENCH_DAEMON"          // the socket path
	daemonCapacityEnv = "TROVE_BENCH_DAEMON_CAPACITY" // arena bytes
	daemonPrefaultEnv = "TROVE_BENCH_DAEMON_PREFAULT" // "1": PrefaultAll
	echoSize          = 128                           // bytes each way of the echo baseline
)

func TestMain(m *testing.M) {
	if sock := os.Getenv(daemonEnv); sock != "" {
		os.Exit(daemonMain(sock))
	}
	code := m.Run()
	stopSharedDaemon()
	os.Exit(code)
}

// daemonMain is the child: a store, an ipc server on sock, and an echo server on
// echoSocket(sock) (the bare unix-socket round trip the IPC benchmark compares
// with). Returns the exit code.
func daemonMain(sock string) int {
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	capacity, err := strconv.ParseInt(os.Getenv(daemonCapacityEnv), 10, 64)
	if err != nil {
		capacity = 1 << 30
	}
	st, err := engine.Open(engine.Config{
		Capacity:    capacity,
		PrefaultAll: os.Getenv(daemonPrefaultEnv) == "1",
		SpillDirs:   []string{filepath.Join(filepath.Dir(sock), "spill")},
	})
	if err != nil {
		logger.Error("bench daemon: open the store", "err", err)
		return 1
	}
	defer st.Close()
	ln, err := ipc.Listen(sock)
	if err != nil {
		logger.Error("bench daemon: listen", "err", err)
		return 1
	}
	echoLn, err := net.ListenUnix("unix", &net.UnixAddr{Name: echoSocket(sock), Net: "unix"})
	if err != nil {
		ln.Close()
		logger.Error("bench daemon: listen for echo", "err", err)
		return 1
	}
	defer echoLn.Close() // removes the socket file
	go serveEcho(echoLn)
	blobUnix, err := net.ListenUnix("unix", &net.UnixAddr{Name: blobSocket(sock), Net: "unix"})
	if err != nil {
		ln.Close()
		logger.Error("bench daemon: listen for blobs", "err", err)
		return 1
	}
	defer blobUnix.Close()
	blobTCP, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		ln.Close()
		logger.Error("bench daemon: listen for blobs on loopback TCP", "err", err)
		return 1
	}
	defer blobTCP.Close()
	// Written before the store answers, so the parent finds it once it has dialled.
	if err := os.WriteFile(blobTCPFile(sock), []byte(blobTCP.Addr().String()), 0o600); err != nil {
		ln.Close()
		logger.Error("bench daemon: write the blob server's address", "err", err)
		return 1
	}
	blobs := &blobServer{}
	go blobs.serve(blobUnix)
	go blobs.serve(blobTCP)

	srv := ipc.NewServer(st, ipc.ServerConfig{Logger: logger, Version: "bench"})
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	stdinClosed := make(chan struct{})
	go func() {
		io.Copy(io.Discard, os.Stdin) // returns at EOF: the parent is gone or done
		close(stdinClosed)
	}()
	code := 0
	select {
	case <-sig:
	case <-stdinClosed:
	case err := <-served:
		logger.Error("bench daemon: serve", "err", err)
		code = 1
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		logger.Error("bench daemon: shutdown", "err", err)
		code = 1
	}
	return code
}

func echoSocket(sock string) string { return filepath.Join(filepath.Dir(sock), "echo.sock") }

// blobSocket is the unix socket of the daemon's blob server, and blobTCPFile the
// file holding the address of its loopback TCP listener.
func blobSocket(sock string) string  { return filepath.Join(filepath.Dir(sock), "blob.sock") }
func blobTCPFile(sock string) string { return filepath.Join(filepath.Dir(sock), "blob.tcp") }

// maxBlob bounds what the blob server sends for one request.
const maxBlob = 256 << 20

// blobServer answers each request, an 8-byte big-endian length n, with the first n
// bytes of pattern: the bytes of a value moved from the daemon's process to the
// benchmark's with nothing else, the floor under any store that copies them.
type blobServer struct {
	mu    sync.Mutex
	bytes []byte // pattern(len), grown on demand
}

func (s *blobServer) pattern(n int) []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.bytes) < n {
		s.bytes = pattern(n)
	}
	return s.bytes[:n]
}

func (s *blobServer) serve(ln net.Listener) {
	for {
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer conn.Close()
			var req [8]byte
			for {
				if _, err := io.ReadFull(conn, req[:]); err != nil {
					return
				}
				n := binary.BigEndian.Uint64(req[:])
				if n > maxBlob {
					return
				}
				if _, err := conn.Write(s.pattern(int(n))); err != nil {
					return
				}
			}
		}()
	}
}

// blobConn is the benchmark's end of a connection to the blob server.
type blobConn struct {
	conn net.Conn
	buf  []byte // reused: the floor allocates nothing per transfer
}

// dialBlob connects to d's blob server over network "unix" or "tcp".
func (d *daemon) dialBlob(tb testing.TB, network string) *blobConn {
	tb.Helper()
	addr := blobSocket(d.sock)
	if network == "tcp" {
		b, err := os.ReadFile(blobTCPFile(d.sock))
		if err != nil {
			tb.Fatal(err)
		}
		addr = string(b)
	}
	conn, err := net.Dial(network, addr)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { conn.Close() })
	return &blobConn{conn: conn}
}

// fetch asks for n bytes and reads them into c's buffer, which it returns (valid
// until the next fetch).
func (c *blobConn) fetch(n int) ([]byte, error) {
	if cap(c.buf) < n {
		c.buf = make([]byte, n)
	}
	var req [8]byte
	binary.BigEndian.PutUint64(req[:], uint64(n))
	if _, err := c.conn.Write(req[:]); err != nil {
		return nil, err
	}
	_, err := io.ReadFull(c.conn, c.buf[:n])
	return c.buf[:n], err
}

// serveEcho answers every echoSize-byte message with the same bytes.
func serveEcho(ln *net.UnixListener) {
	for {
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer conn.Close()
			buf := make([]byte, echoSize)
			for {
				if _, err := io.ReadFull(conn, buf); err != nil {
					return
				}
				if _, err := conn.Write(buf); err != nil {
					return
				}
			}
		}()
	}
}

// daemon is a running child process serving a trove store.
type daemon struct {
	dir   string // temporary, removed by stop
	sock  string
	cmd   *exec.Cmd
	stdin io.WriteCloser
	done  chan struct{} // closed once the child has been waited for
	err   error         // cmd.Wait's, valid after done

	stopOnce sync.Once
	stopErr  error
}

// launchDaemon starts a child daemon with an arena of capacity bytes (pre-faulted
// if prefault) and waits until it answers on its socket.
func launchDaemon(capacity int64, prefault bool) (*daemon, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	// Not t.TempDir: a unix socket path must fit in 108 bytes.
	dir, err := os.MkdirTemp("", "trove-bench-")
	if err != nil {
		return nil, err
	}
	d := &daemon{dir: dir, sock: filepath.Join(dir, "troved.sock"), done: make(chan struct{})}
	d.cmd = exec.Command(exe, "-test.run=^$", "-test.bench=^$")
	pf := "0"
	if prefault {
		pf = "1"
	}
	d.cmd.Env = append(os.Environ(), daemonEnv+"="+d.sock,
		daemonCapacityEnv+"="+strconv.FormatInt(capacity, 10), daemonPrefaultEnv+"="+pf)
	d.cmd.Stdout = os.Stderr // never mix with the benchmark lines on stdout
	d.cmd.Stderr = os.Stderr
	if d.stdin, err = d.cmd.StdinPipe(); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	if err := d.cmd.Start(); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	go func() {
		d.err = d.cmd.Wait()
		close(d.done)
	}()

	// Wait for the socket; give up at once if the child dies.
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	go func() {
		select {
		case <-d.done:
			cancel()
		case <-ctx.Done():
		}
	}()
	c, err := ipc.DialContext(ctx, d.sock, ipc.DialOptions{Name: "bench"})
	if err != nil {
		select {
		case <-d.done:
			err = fmt.Errorf("bench daemon exited before it answered (%v): %w", d.err, err)
		default:
		}
		return nil, errors.Join(err, d.stop())
	}
	c.Close()
	return d, nil
}

// startDaemon is launchDaemon for a test or benchmark, stopped in its cleanup.
func startDaemon(tb testing.TB, capacity int64, prefault bool) *daemon {
	tb.Helper()
	d, err := launchDaemon(capacity, prefault)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := d.stop(); err != nil {
			tb.Error(err)
		}
	})
	return d
}

// stop ends the child (SIGTERM, then SIGKILL after 10 s), waits for it and removes
// its directory. It reports an unclean exit. Safe to call more than once.
func (d *daemon) stop() error {
	d.stopOnce.Do(func() {
		select {
		case <-d.done:
		default:
			d.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-d.done:
			case <-time.After(10 * time.Second):
				d.cmd.Process.Kill()
				<-d.done
				d.stopErr = fmt.Errorf("bench daemon (pid %d) ignored SIGTERM for 10 s; killed", d.cmd.Process.Pid)
			}
		}
		d.stdin.Close()
		if d.stopErr == nil && d.err != nil {
			d.stopErr = fmt.Errorf("bench daemon (pid %d): %w", d.cmd.Process.Pid, d.err)
		}
		if err := os.RemoveAll(d.dir); err != nil && d.stopErr == nil {
			d.stopErr = err
		}
	})
	return d.stopErr
}

// dial connects a new client to d, closed in tb's cleanup, which also checks that
// the daemon's store holds nothing once the client is gone.
func (d *daemon) dial(tb testing.TB) *ipc.Client {
	tb.Helper()
	c, err := ipc.Dial(d.sock)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := c.Close(); err != nil {
			tb.Error(err)
		}
		d.checkEmpty(tb)
	})
	return c
}

// checkEmpty fails tb if the daemon's store still holds objects a moment after
// the benchmark's clients have closed (the daemon frees a closed client's refs
// asynchronously).
func (d *daemon) checkEmpty(tb testing.TB) {
	tb.Helper()
	c, err := ipc.Dial(d.sock)
	if err != nil {
		tb.Error(err)
		return
	}
	defer c.Close()
	deadline := time.Now().Add(5 * time.Second)
	for {
		s, err := c.Status(context.Background())
		if err != nil {
			tb.Error(err)
			return
		}
		if s.Store.Objects == 0 && s.Store.Used == 0 {
			return
		}
		if time.Now().After(deadline) {
			tb.Errorf("daemon store not empty after the benchmark: %d objects, %d bytes used", s.Store.Objects, s.Store.Used)
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// The benchmarks share one daemon per test process, with a 1 GiB pre-faulted
// arena (as troved would run), started on first use and stopped by TestMain.
var shared struct {
	sync.Mutex
	d *daemon
}

const sharedCapacity = 1 << 30

func benchDaemon(b *testing.B) *daemon {
	b.Helper()
	shared.Lock()
	defer shared.Unlock()
	if shared.d != nil {
		select {
		case <-shared.d.done:
			b.Logf("bench daemon had exited (%v); starting another", shared.d.err)
			shared.d.stop()
			shared.d = nil
		default:
			return shared.d
		}
	}
	d, err := launchDaemon(sharedCapacity, true)
	if err != nil {
		b.Fatal(err)
	}
	shared.d = d
	return d
}

func stopSharedDaemon() {
	shared.Lock()
	defer shared.Unlock()
	if shared.d != nil {
		if err := shared.d.stop(); err != nil {
			fmt.Fprintln(os.Stderr, err)
		}
		shared.d = nil
	}
}

// processGone reports whether pid no longer exists (it was reaped).
func processGone(pid int) bool {
	return errors.Is(syscall.Kill(pid, 0), syscall.ESRCH)
}

// TestDaemonStartStop: stopping the benchmark daemon leaves no process, no
// socket and no directory behind, and the child exits 0 (a clean shutdown).
func TestDaemonStartStop(t *testing.T) {
	d, err := launchDaemon(16<<20, false)
	if err != nil {
		t.Fatal(err)
	}
	pid := d.cmd.Process.Pid
	if _, err := os.Stat(d.sock); err != nil {
		t.Fatalf("socket missing while the daemon runs: %v", err)
	}
	if processGone(pid) {
		t.Fatal("daemon process not running")
	}
	if err := d.stop(); err != nil {
		t.Fatal(err)
	}
	if !d.cmd.ProcessState.Success() {
		t.Errorf("daemon exited with %v", d.cmd.ProcessState)
	}
	if !processGone(pid) {
		t.Errorf("daemon pid %d still exists after stop", pid)
	}
	if _, err := os.Stat(d.dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("daemon directory %s left behind: %v", d.dir, err)
	}
}

// TestDaemonExitsWhenParentGoes: when the child's stdin closes, as it does when
// the benchmark process dies, the child shuts down by itself and removes its
// sockets.
func TestDaemonExitsWhenParentGoes(t *testing.T) {
	d := startDaemon(t, 16<<20, false)
	d.stdin.Close()
	select {
	case <-d.done:
	case <-time.After(10 * time.Second):
		t.Fatal("daemon still running 10 s after its stdin closed")
	}
	if d.err != nil {
		t.Errorf("daemon exited with %v", d.err)
	}
	for _, p := range []string{d.sock, echoSocket(d.sock), blobSocket(d.sock)} {
		if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("socket %s left behind by the exiting daemon: %v", p, err)
		}
	}
}

// TestDaemonRoundTrip: values put through the daemon, inline and in shared
// memory, by Put and by Create+Seal, read back byte-identical, also through a
// second client that borrows them by ID.
func TestDaemonRoundTrip(t *testing.T) {
	d := startDaemon(t, 32<<20, false)
	ctx := context.Background()
	c1, c2 := d.dial(t), d.dial(t)
	for _, size := range []int{0, 1, 100, engine.DefaultInlineThreshold + 1, 1<<20 + 3} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			want := make([]byte, size)
			for i := range want {
				want[i] = byte(i*131 + size)
			}
			ref, err := c1.Put(ctx, want)
			if err != nil {
				t.Fatal(err)
			}
			defer ref.Drop()
			bld, err := c1.Create(ctx, size)
			if err != nil {
				t.Fatal(err)
			}
			copy(bld.Bytes(), want)
			built := bld.Ref()
			if err := bld.Seal(); err != nil {
				t.Fatal(err)
			}
			defer built.Drop()
			borrowed, err := c2.Borrow(ref.ID())
			if err != nil {
				t.Fatal(err)
			}
			defer borrowed.Drop()
			for _, g := range []struct {
				name string
				c    *ipc.Client
				ref  trove.Ref
			}{{"put", c1, ref}, {"create", c1, built}, {"borrowed", c2, borrowed}} {
				obj, err := g.c.Get(ctx, g.ref)
				if err != nil {
					t.Fatalf("%s: %v", g.name, err)
				}
				if got := obj.Bytes(); string(got) != string(want) {
					t.Errorf("%s: read back %d bytes, not the %d put (or different bytes)", g.name, len(got), len(want))
				}
				if _, inArena := g.c.ArenaOffset(obj); inArena != (size > engine.DefaultInlineThreshold) {
					t.Errorf("%s: %d-byte object read from the shared arena: %v", g.name, size, inArena)
				}
				obj.Release()
			}
		})
	}
}

// TestBlobServer: the floor's server sends the bytes asked for, over both
// sockets, request after request.
func TestBlobServer(t *testing.T) {
	d := startDaemon(t, 16<<20, false)
	for _, network := range []string{"tcp", "unix"} {
		c := d.dialBlob(t, network)
		for _, n := range []int{0, 1, 1 << 20, 100} {
			got, err := c.fetch(n)
			if err != nil {
				t.Fatalf("%s: fetch %d: %v", network, n, err)
			}
			if !bytes.Equal(got, pattern(n)) {
				t.Fatalf("%s: fetch %d: got %d bytes, not the pattern", network, n, len(got))
			}
		}
	}
}

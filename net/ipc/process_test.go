package ipc

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/trovedb/trove"
	"github.com/trovedb/trove/engine"
)

// Tests here run the test binary again as another process (TestMain picks the
// role from TROVE_IPC_CHILD): clients that share objects with the test's daemon,
// die mid-write or send garbage, and a daemon that is restarted under a client.

func TestMain(m *testing.M) {
	if role := os.Getenv("TROVE_IPC_CHILD"); role != "" {
		if err := child(role, os.Getenv("TROVE_IPC_SOCKET")); err != nil {
			fmt.Fprintln(os.Stderr, "child:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// child plays a role; it talks to the test on stdout (one line each) and exits
// when its stdin closes, unless killed first.
func child(role, path string) error {
	ctx := context.Background()
	if role == "daemon" {
		return childDaemon(path)
	}
	c, err := DialContext(ctx, path, DialOptions{Name: "child-" + role})
	if err != nil {
		return err
	}
	defer c.Close()
	switch role {
	case "put": // put 1 MiB, say its ID and offset, hold it until stdin closes
		ref, err := c.Put(ctx, pattern(1<<20, 42))
		if err != nil {
			return err
		}
		obj, err := c.Get(ctx, ref)
		if err != nil {
			return err
		}
		off, _ := c.ArenaOffset(obj)
		obj.Release()
		fmt.Printf("%s %d\n", ref.ID(), off)
	case "get": // read the object named in TROVE_IPC_ID several times
		id, err := trove.ParseObjectID(os.Getenv("TROVE_IPC_ID"))
		if err != nil {
			return err
		}
		ref, err := c.Borrow(id)
		if err != nil {
			return err
		}
		var views []*trove.Object
		for range 5 {
			obj, err := c.Get(ctx, ref)
			if err != nil {
				return err
			}
			views = append(views, obj)
		}
		if !bytes.Equal(views[0].Bytes(), pattern(1<<20, 42)) {
			return errors.New("the shared object reads differently")
		}
		off, _ := c.ArenaOffset(views[0])
		maps, err := os.ReadFile("/proc/self/maps")
		if err != nil {
			return err
		}
		// Two mappings of the arena, however many views: the one views read,
		// and the window builders write through.
		n := strings.Count(string(maps), "memfd:ipc-test")
		trove.ReleaseAll(views)
		ref.Drop()
		fmt.Printf("%d %d\n", off, n)
	case "create": // pin one object, start writing another, and wait to be killed
		ref, err := c.Put(ctx, pattern(2<<20, 1))
		if err != nil {
			return err
		}
		obj, err := c.Get(ctx, ref)
		if err != nil {
			return err
		}
		b, err := c.Create(ctx, 4<<20)
		if err != nil {
			return err
		}
		copy(b.Bytes(), pattern(1<<20, 2)) // halfway through
		fmt.Println("writing", obj.ID(), b.Ref().ID())
	default:
		return fmt.Errorf("unknown role %q", role)
	}
	io.Copy(io.Discard, os.Stdin)
	return nil
}

// childDaemon serves a store on path until SIGTERM.
func childDaemon(path string) error {
	st, err := engine.Open(engine.Config{Capacity: 32 << 20, Name: "ipc-test"})
	if err != nil {
		return err
	}
	defer st.Close()
	ln, err := Listen(path)
	if err != nil {
		return err
	}
	srv := NewServer(st, ServerConfig{Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM)
	go func() {
		<-sig
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	}()
	fmt.Println("ready")
	if err := srv.Serve(ln); err != ErrServerClosed {
		return err
	}
	return nil
}

// proc is a child process of the test.
type proc struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	out   *bufio.Reader
}

func startChild(t *testing.T, role, path string, env ...string) *proc {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), append(env, "TROVE_IPC_CHILD="+role, "TROVE_IPC_SOCKET="+path)...)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{cmd: cmd, stdin: stdin, out: bufio.NewReader(stdout)}
	t.Cleanup(func() {
		p.stdin.Close()
		if p.cmd.ProcessState == nil {
			p.cmd.Process.Kill()
			p.cmd.Wait()
		}
	})
	return p
}

// line reads the child's next line, failing the test after 20 s.
func (p *proc) line(t *testing.T) string {
	t.Helper()
	ch := make(chan string, 1)
	go func() {
		s, _ := p.out.ReadString('\n')
		ch <- strings.TrimSpace(s)
	}()
	select {
	case s := <-ch:
		if s == "" {
			t.Fatal("child said nothing (see its stderr)")
		}
		return s
	case <-time.After(20 * time.Second):
		t.Fatal("child did not answer within 20s")
		return ""
	}
}

// finish closes the child's stdin and requires a clean exit.
func (p *proc) finish(t *testing.T) {
	t.Helper()
	p.stdin.Close()
	if err := p.cmd.Wait(); err != nil {
		t.Fatalf("child: %v", err)
	}
}

// Two processes share one object without a copy: the reader sees it at the
// offset the writer wrote it, through its one mapping of the arena.
func TestTwoProcessesShareOneObject(t *testing.T) {
	d := startDaemon(t, engine.Config{Name: "ipc-test"})
	writer := startChild(t, "put", d.path)
	f := strings.Fields(writer.line(t))
	id, off := f[0], f[1]
	reader := startChild(t, "get", d.path, "TROVE_IPC_ID="+id)
	g := strings.Fields(reader.line(t))
	if g[0] != off {
		t.Fatalf("the writer's object is at arena offset %s, the reader read it at %s", off, g[0])
	}
	if g[1] != "2" {
		t.Fatalf("the reader maps the arena %s times for 5 views; want twice (views, write window)", g[1])
	}
	reader.finish(t)
	writer.finish(t)
	requireDrained(t, d)
}

// A client killed while writing an object loses its unsealed object, its pins
// and its refs within a bounded time (10 s here, so that a loaded machine cannot fail it).
func TestKilledClientReleasesEverything(t *testing.T) {
	d := startDaemon(t, engine.Config{})
	p := startChild(t, "create", d.path)
	f := strings.Fields(p.line(t))
	pinned, pending := f[1], f[2]
	watcher := d.dial(t)
	id, _ := trove.ParseObjectID(pending)
	ref, err := watcher.Borrow(id)
	if err != nil {
		t.Fatal(err)
	}
	if st := d.st.Stats(); st.PinnedObjects != 1 || st.PendingObjects != 1 {
		t.Fatalf("before the kill: %d pinned, %d pending objects; want 1 and 1", st.PinnedObjects, st.PendingObjects)
	}
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	p.cmd.Wait()
	// A liveness bound, not a timing claim: generous, so that a loaded
	// machine running -race does not make it fail.
	deadline := time.Now().Add(10 * time.Second)
	for {
		st := d.st.Stats()
		if st.PinnedObjects == 0 && st.PendingObjects == 0 && d.srv.Stats().Clients == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("10s after kill -9: %d pinned, %d pending, %d clients", st.PinnedObjects, st.PendingObjects, d.srv.Stats().Clients)
		}
		time.Sleep(5 * time.Millisecond)
	}
	// The object it was writing was aborted: the watcher's Get says so at once.
	if _, err := watcher.Get(context.Background(), ref); !errors.Is(err, trove.ErrObjectAborted) {
		t.Fatalf("get of the dead client's unsealed object: %v", err)
	}
	if pid, _ := trove.ParseObjectID(pinned); pid.IsZero() {
		t.Fatal("bad ID from the child")
	}
	ref.Drop()
	requireDrained(t, d, watcher)
}

// A client sending garbage loses its connection, with a logged reason; the
// daemon and the other clients carry on.
func TestGarbageClientIsCutOff(t *testing.T) {
	d := startDaemon(t, engine.Config{})
	good := d.dial(t)
	keep, err := good.Put(context.Background(), []byte("still here"))
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name  string
		hello bool // send a valid handshake first
		bytes []byte
	}{
		{"random bytes", false, []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n")},
		{"oversized frame", true, []byte{0xff, 0xff, 0xff, 0x7f, byte(opPut), 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0}},
		{"truncated put", true, finish(append(appendHeader(nil, opPut, 1, 0), 1, 2, 3), 0)},
		{"count beyond the body", true, finish(append(appendHeader(nil, opRelease, 1, 0), 0xff, 0xff, 0xff, 0x0f), 0)},
		{"release before hello", false, finish(append(appendHeader(nil, opRelease, 1, 0), 0, 0, 0, 0), 0)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "-test.run=^TestGarbageHelper$")
			cmd.Env = append(os.Environ(), "TROVE_IPC_GARBAGE="+d.path, fmt.Sprintf("TROVE_IPC_GARBAGE_BYTES=%x", tc.bytes),
				"TROVE_IPC_GARBAGE_HELLO="+strconv.FormatBool(tc.hello))
			out, err := cmd.CombinedOutput()
			if err != nil || !strings.Contains(string(out), "closed by the daemon") {
				t.Fatalf("garbage client: %v\n%s", err, out)
			}
		})
	}
	if n := d.srv.Stats().ProtocolErrors; n != uint64(len(cases)) {
		t.Fatalf("%d protocol errors counted, want %d", n, len(cases))
	}
	obj, err := good.Get(context.Background(), keep)
	if err != nil || string(obj.Bytes()) != "still here" {
		t.Fatalf("the good client after the garbage: %v", err)
	}
	obj.Release()
	keep.Drop()
	requireDrained(t, d, good)
}

// TestGarbageHelper is the garbage-sending process of TestGarbageClientIsCutOff.
func TestGarbageHelper(t *testing.T) {
	path := os.Getenv("TROVE_IPC_GARBAGE")
	if path == "" {
		t.Skip("run by TestGarbageClientIsCutOff")
	}
	var garbage []byte
	fmt.Sscanf(os.Getenv("TROVE_IPC_GARBAGE_BYTES"), "%x", &garbage)
	nc, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if os.Getenv("TROVE_IPC_GARBAGE_HELLO") == "true" {
		nc.Write(finish((&helloReq{version: Version, name: "garbage"}).encode(appendHeader(nil, opHello, 0, 0)), 0))
	}
	nc.Write(garbage)
	nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 4096)
	for {
		if _, err := nc.Read(buf); err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) {
				fmt.Println("closed by the daemon")
				return
			}
			t.Fatalf("the daemon did not close the connection: %v", err)
		}
	}
}

// A daemon restarted under a client: the client's calls fail with a clear
// ErrDisconnected, and dialing again (with retries while the daemon starts)
// works.
func TestDaemonRestart(t *testing.T) {
	path := t.TempDir() + "/troved.sock"
	d1 := startChild(t, "daemon", path)
	if s := d1.line(t); s != "ready" {
		t.Fatalf("daemon said %q", s)
	}
	ctx := context.Background()
	c, err := DialContext(ctx, path, DialOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Put(ctx, pattern(1<<20, 1)); err != nil {
		t.Fatal(err)
	}
	d1.cmd.Process.Signal(syscall.SIGTERM)
	if err := d1.cmd.Wait(); err != nil {
		t.Fatalf("daemon exit after SIGTERM: %v", err)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("socket left behind after SIGTERM: %v", err)
	}
	_, err = c.Put(ctx, []byte("x"))
	if !errors.Is(err, ErrDisconnected) || !strings.Contains(err.Error(), "dial again") {
		t.Fatalf("put after the daemon went: %v", err)
	}
	// Restart it while a new client is already dialing.
	dialed := make(chan *Client, 1)
	go func() {
		dctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		c2, err := DialContext(dctx, path, DialOptions{})
		if err != nil {
			t.Error(err)
		}
		dialed <- c2
	}()
	time.Sleep(50 * time.Millisecond)
	d2 := startChild(t, "daemon", path)
	if s := d2.line(t); s != "ready" {
		t.Fatalf("daemon said %q", s)
	}
	c2 := <-dialed
	if c2 == nil {
		t.FailNow()
	}
	defer c2.Close()
	ref, err := c2.Put(ctx, pattern(1<<20, 2))
	if err != nil {
		t.Fatal(err)
	}
	obj, err := c2.Get(ctx, ref)
	if err != nil || !bytes.Equal(obj.Bytes(), pattern(1<<20, 2)) {
		t.Fatalf("get after the restart: %v", err)
	}
	obj.Release()
	ref.Drop()
	if err := c2.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	st, err := c2.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Daemon.PID != d2.cmd.Process.Pid {
		t.Fatalf("status from pid %d, want %d", st.Daemon.PID, d2.cmd.Process.Pid)
	}
	if st.Store.Objects != 0 || st.Store.Used != 0 || st.Store.PinnedObjects != 0 || st.Server.Refs != 0 || st.Server.Views != 0 {
		t.Fatalf("restarted daemon not drained: %d objects, %d used, %d pinned; server refs %d views %d",
			st.Store.Objects, st.Store.Used, st.Store.PinnedObjects, st.Server.Refs, st.Server.Views)
	}
	c2.Close()
	d2.cmd.Process.Signal(syscall.SIGTERM)
	if err := d2.cmd.Wait(); err != nil {
		t.Fatal(err)
	}
}

package task

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/trovedb/trove"
	"github.com/trovedb/trove/net/ipc"
)

// Tests of worker processes: the test binary run again as a worker
// (TestMain), attached to an ipc server over an in-process node's store, as
// a worker is to troved.

func TestMain(m *testing.M) {
	if sock := os.Getenv("TROVE_TASK_WORKER"); sock != "" {
		if err := workerMain(sock); err != nil {
			fmt.Fprintln(os.Stderr, "worker:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// workerMain is a worker process: it serves this program's functions until
// its stdin closes, then detaches.
func workerMain(sock string) error {
	slots, _ := strconv.Atoi(os.Getenv("TROVE_TASK_SLOTS"))
	c, err := ipc.Dial(sock)
	if err != nil {
		return err
	}
	defer c.Close()
	w, err := Attach(c, WorkerConfig{Slots: slots})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		cancel()
	}()
	return w.Serve(ctx)
}

// The functions the worker processes run (the tests' own process Defines
// them too, as every Ray worker runs the driver's code, but its runtimes
// are WorkersOnly).
var (
	wWhere = Define1("worker.where", func(ctx context.Context, tag string) (string, error) {
		return fmt.Sprintf("%s pid=%d", tag, os.Getpid()), nil
	})
	wSum = Define1("worker.sum", func(ctx context.Context, xs []float64) (float64, error) {
		var s float64
		for _, x := range xs {
			s += x
		}
		return s, nil
	})
	wNested = Define1("worker.nested", func(ctx context.Context, refs []trove.Ref) (int, error) {
		// Nested refs arrive as refs: fetched only now, through the worker's client.
		n := 0
		for _, r := range refs {
			v, err := trove.GetValue[int](ctx, CallerFrom(ctx), r)
			if err != nil {
				return 0, err
			}
			n += v
		}
		return n, nil
	})
	wOuter = Define1("worker.outer", func(ctx context.Context, tag string) (string, error) {
		x := CallerFrom(ctx)
		ref, err := wWhere.Remote(ctx, x, Val(tag))
		if err != nil {
			return "", err
		}
		defer ref.Drop()
		inner, err := trove.GetValue[string](ctx, x, ref)
		return fmt.Sprintf("outer pid=%d, inner %s", os.Getpid(), inner), err
	})
	wBig = Define1("worker.big", func(ctx context.Context, n int) ([]float64, error) {
		xs := make([]float64, n)
		for i := range xs {
			xs[i] = float64(i)
		}
		return xs, nil
	})
	wFail = Define0("worker.fail", func(ctx context.Context) (int, error) {
		return 0, errors.New("the worker's own error")
	})
	wPanic = Define0("worker.panic", func(ctx context.Context) (int, error) {
		panic("the worker panicked")
	})
	wScribble = Define1("worker.scribble", func(ctx context.Context, xs []float64) (int, error) {
		xs[0] = 1 // a read-only argument: faults
		return 0, nil
	})
	// wHold marks its start in dir (a file named after its pid) and waits
	// until dir/release exists; the first run waits for ever (until killed).
	wHold = Define1("worker.hold", func(ctx context.Context, dir string) (string, error) {
		first := !exists(filepath.Join(dir, "first"))
		if first {
			if err := os.WriteFile(filepath.Join(dir, "first"), nil, 0o600); err != nil {
				return "", err
			}
		}
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("started-%d-%d", os.Getpid(), time.Now().UnixNano())), nil, 0o600); err != nil {
			return "", err
		}
		for !exists(filepath.Join(dir, "release")) || first && exists(filepath.Join(dir, "first-hangs")) {
			select {
			case <-ctx.Done():
				return "", ctx.Err()
			case <-time.After(5 * time.Millisecond):
			}
		}
		return fmt.Sprintf("pid=%d", os.Getpid()), nil
	})
)

func exists(p string) bool { _, err := os.Stat(p); return err == nil }

// workerNode is a cluster of k nodes whose runtimes run only workers'
// functions, with an ipc server on the last node's store (its troved).
type workerNode struct {
	*testCluster
	sock string
	srv  *ipc.Server
}

func newWorkerNode(t testing.TB, k int, cpus float64) *workerNode {
	t.Helper()
	tc := newCluster(t, k, func(i int) Config { return Config{CPUs: cpus, WorkersOnly: true} })
	n := tc.nodes[k-1]
	wn := &workerNode{testCluster: tc, sock: filepath.Join(t.TempDir(), "troved.sock")}
	wn.srv = ipc.NewServer(n.Local(), ipc.ServerConfig{Results: n, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err := tc.rts[k-1].ServeWorkers(wn.srv); err != nil {
		t.Fatal(err)
	}
	ln, err := ipc.Listen(wn.sock)
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = wn.srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if err := wn.srv.Shutdown(ctx); err != nil {
			t.Error(err)
		}
	})
	return wn
}

// workerProc is a worker process.
type workerProc struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
}

// startWorker starts a worker process of slots slots and waits (a generous
// bound) until the node has it, and every runtime sees it.
func (wn *workerNode) startWorker(t testing.TB, slots int) *workerProc {
	t.Helper()
	rt := wn.rts[len(wn.rts)-1]
	before := wn.workers(rt)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "TROVE_TASK_WORKER="+wn.sock, fmt.Sprintf("TROVE_TASK_SLOTS=%d", slots))
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &workerProc{cmd: cmd, stdin: stdin}
	t.Cleanup(func() { p.stop(t) })
	deadline := time.Now().Add(20 * time.Second)
	for wn.workers(rt) <= before {
		if time.Now().After(deadline) {
			t.Fatal("the worker process never registered")
		}
		time.Sleep(5 * time.Millisecond)
	}
	for _, o := range wn.rts {
		o.refresh(context.Background())
	}
	return p
}

func (wn *workerNode) workers(rt *Runtime) int {
	rt.hub.mu.Lock()
	defer rt.hub.mu.Unlock()
	return len(rt.hub.workers)
}

// stop detaches the worker cleanly (its stdin closes) and waits for it.
func (p *workerProc) stop(t testing.TB) {
	if p.cmd.ProcessState != nil {
		return
	}
	p.stdin.Close()
	done := make(chan error, 1)
	go func() { done <- p.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("worker pid %d: %v", p.cmd.Process.Pid, err)
		}
	case <-time.After(20 * time.Second):
		t.Errorf("worker pid %d did not stop", p.cmd.Process.Pid)
		_ = p.cmd.Process.Kill()
		<-done
	}
}

// kill kills the worker (kill -9) and waits for it.
func (p *workerProc) kill() {
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	_ = p.cmd.Wait()
}

func ctx30(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// TestWorkerRunsCalls: calls from another node's runtime and from a driver
// attached to the node run in the worker process; top-level ref arguments
// are resolved (a large one zero-copy), nested refs arrive as refs, a
// worker's nested call works, results large and small reach the caller.
func TestWorkerRunsCalls(t *testing.T) {
	wn := newWorkerNode(t, 2, 2)
	w := wn.startWorker(t, 2)
	pid := fmt.Sprintf("pid=%d", w.cmd.Process.Pid)
	ctx := ctx30(t)
	a := wn.rts[0]

	// From another node's runtime.
	ref, err := wWhere.Remote(ctx, a, Val("from-a"))
	if err != nil {
		t.Fatal(err)
	}
	if got := get[string](t, a, ref); got != "from-a "+pid {
		t.Fatalf("where = %q, want it run by the worker (%s)", got, pid)
	}
	ref.Drop()

	// A large ref argument, put on the calling node.
	xs := make([]float64, 64<<10) // 512 KiB: zero-copy in the worker
	for i := range xs {
		xs[i] = 1
	}
	big, err := trove.PutValue(ctx, a, xs)
	if err != nil {
		t.Fatal(err)
	}
	ref, err = wSum.Remote(ctx, a, Ref[[]float64](big))
	if err != nil {
		t.Fatal(err)
	}
	if got := get[float64](t, a, ref); got != float64(len(xs)) {
		t.Fatalf("sum = %v, want %d", got, len(xs))
	}
	ref.Drop()

	// Nested refs.
	var inner []trove.Ref
	for i := 1; i <= 3; i++ {
		r, err := trove.PutValue(ctx, a, i*10)
		if err != nil {
			t.Fatal(err)
		}
		inner = append(inner, r)
	}
	ref, err = wNested.Remote(ctx, a, Val(inner))
	if err != nil {
		t.Fatal(err)
	}
	if got := get[int](t, a, ref); got != 60 {
		t.Fatalf("nested = %d, want 60", got)
	}
	ref.Drop()

	// A large result, written in place in the node's store by the worker.
	ref, err = wBig.Remote(ctx, a, Val(100_000))
	if err != nil {
		t.Fatal(err)
	}
	ys := get[[]float64](t, a, ref)
	if len(ys) != 100_000 || ys[99_999] != 99_999 {
		t.Fatalf("big result of %d values", len(ys))
	}
	ref.Drop()

	// From a driver attached to the node, and a worker's nested call.
	c, err := ipc.Dial(wn.sock)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	drv, err := Attach(c, WorkerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	ref, err = wWhere.Remote(ctx, drv, Val("from-driver"))
	if err != nil {
		t.Fatal(err)
	}
	if got := get[string](t, drv, ref); got != "from-driver "+pid {
		t.Fatalf("where = %q, want it run by the worker (%s)", got, pid)
	}
	ref.Drop()
	bigd, err := trove.PutValue(ctx, drv, xs)
	if err != nil {
		t.Fatal(err)
	}
	ref, err = wSum.Remote(ctx, drv, Ref[[]float64](bigd))
	if err != nil {
		t.Fatal(err)
	}
	if got := get[float64](t, drv, ref); got != float64(len(xs)) {
		t.Fatalf("sum = %v, want %d", got, len(xs))
	}
	ref.Drop()
	bigd.Drop()
	ref, err = wOuter.Remote(ctx, drv, Val("nested"))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := get[string](t, drv, ref), fmt.Sprintf("outer %s, inner nested %s", pid, pid); got != want {
		t.Fatalf("outer = %q, want %q", got, want)
	}
	ref.Drop()
	if err := c.Flush(ctx); err != nil {
		t.Fatal(err)
	}

	big.Drop()
	for _, r := range inner {
		r.Drop()
	}
}

// TestWorkerErrors: an error, a panic and a write into a read-only argument
// in a worker fail Gets with ErrTaskFailed naming the function and the node.
func TestWorkerErrors(t *testing.T) {
	wn := newWorkerNode(t, 2, 2)
	wn.startWorker(t, 2)
	ctx := ctx30(t)
	a := wn.rts[0]
	xs := make([]float64, 64<<10)
	big, err := trove.PutValue(ctx, a, xs)
	if err != nil {
		t.Fatal(err)
	}
	defer big.Drop()
	for _, tc := range []struct {
		fn   string
		call func() (trove.Ref, error)
		want []string
	}{
		{"worker.fail", func() (trove.Ref, error) { return wFail.Remote(ctx, a) }, []string{"the worker's own error"}},
		{"worker.panic", func() (trove.Ref, error) { return wPanic.Remote(ctx, a) }, []string{"panic: the worker panicked"}},
		{"worker.scribble", func() (trove.Ref, error) { return wScribble.Remote(ctx, a, Ref[[]float64](big)) }, []string{"read-only"}},
	} {
		t.Run(tc.fn, func(t *testing.T) {
			ref, err := tc.call()
			if err != nil {
				t.Fatal(err)
			}
			defer ref.Drop()
			_, err = trove.GetValue[int](ctx, a, ref)
			var te *TaskError
			if !errors.Is(err, ErrTaskFailed) || !errors.As(err, &te) {
				t.Fatalf("err = %v, want a *TaskError", err)
			}
			if te.Func != tc.fn || te.Node != "node-b" {
				t.Fatalf("TaskError names %s on %s, want %s on node-b", te.Func, te.Node, tc.fn)
			}
			for _, w := range append(tc.want, "worker pid") {
				if !strings.Contains(err.Error(), w) {
					t.Fatalf("err = %v, want it to say %q", err, w)
				}
			}
		})
	}
}

// TestWorkerKilled: a worker killed (kill -9) in the middle of a call: the
// call runs again on the node's other worker and succeeds; the dead
// worker's holds are released by the ipc server's cleanup.
func TestWorkerKilled(t *testing.T) {
	wn := newWorkerNode(t, 2, 2)
	w1 := wn.startWorker(t, 1)
	w2 := wn.startWorker(t, 1)
	ctx := ctx30(t)
	a := wn.rts[0]
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "first-hangs"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "release"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	ref, err := wHold.Remote(ctx, a, Val(dir))
	if err != nil {
		t.Fatal(err)
	}
	defer ref.Drop()
	// Wait (a generous bound) for the first run to start, in one of them.
	var started int
	for started == 0 {
		ents, _ := os.ReadDir(dir)
		for _, e := range ents {
			var pid int
			var ns int64
			if _, err := fmt.Sscanf(e.Name(), "started-%d-%d", &pid, &ns); err == nil {
				started = pid
			}
		}
		if ctx.Err() != nil {
			t.Fatal("the call never started")
		}
		time.Sleep(5 * time.Millisecond)
	}
	victim, other := w1, w2
	if started == w2.cmd.Process.Pid {
		victim, other = w2, w1
	}
	victim.kill()
	if got, want := get[string](t, a, ref), fmt.Sprintf("pid=%d", other.cmd.Process.Pid); got != want {
		t.Fatalf("result %q, want %q: run again by the other worker", got, want)
	}
	if st := wn.srv.Stats(); st.Builders != 0 {
		t.Fatalf("the ipc server holds %d builders after the worker died", st.Builders)
	}
}

// TestWorkerKilledRetriesExhausted: with MaxRetries(0) a killed worker's
// call fails with ErrWorkerDied, naming the function and node.
func TestWorkerKilledRetriesExhausted(t *testing.T) {
	wn := newWorkerNode(t, 1, 2)
	w := wn.startWorker(t, 1)
	ctx := ctx30(t)
	rt := wn.rts[0]
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "first-hangs"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	ref, err := wHold.Options(MaxRetries(0)).Remote(ctx, rt, Val(dir))
	if err != nil {
		t.Fatal(err)
	}
	defer ref.Drop()
	for !exists(filepath.Join(dir, "first")) {
		if ctx.Err() != nil {
			t.Fatal("the call never started")
		}
		time.Sleep(5 * time.Millisecond)
	}
	w.kill()
	_, err = trove.GetValue[string](ctx, rt, ref)
	var te *TaskError
	if !errors.Is(err, ErrWorkerDied) || !errors.As(err, &te) || te.Func != "worker.hold" || te.Node != "node-a" {
		t.Fatalf("err = %v, want ErrWorkerDied in a TaskError of worker.hold on node-a", err)
	}
}

// TestWorkerSlots: the node's CPUs bound what its workers run at once (the
// rest queue in its executor), and a worker's slots bound what it takes (the
// rest wait for it in the node's dispatch).
func TestWorkerSlots(t *testing.T) {
	for _, tc := range []struct {
		name         string
		cpus         float64
		slots, calls int
		running      int // in the workers at once
		queued       int // in the executor
		waiting      int // started, waiting for a worker's slot
	}{
		{"cpus bound", 2, 4, 4, 2, 2, 0},
		{"slots bound", 4, 1, 3, 1, 0, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wn := newWorkerNode(t, 1, tc.cpus)
			wn.startWorker(t, tc.slots)
			ctx := ctx30(t)
			rt := wn.rts[0]
			dir := t.TempDir()
			var refs []trove.Ref
			for range tc.calls {
				ref, err := wHold.Remote(ctx, rt, Val(dir))
				if err != nil {
					t.Fatal(err)
				}
				refs = append(refs, ref)
			}
			started := func() int {
				ents, _ := os.ReadDir(dir)
				n := 0
				for _, e := range ents {
					if strings.HasPrefix(e.Name(), "started-") {
						n++
					}
				}
				return n
			}
			state := func() (running, queued, waiting int) {
				st := rt.ex.status()
				rt.hub.mu.Lock()
				defer rt.hub.mu.Unlock()
				return st.running, st.queued, len(rt.hub.pending)
			}
			for started() < tc.running || func() bool { _, q, w := state(); return q != tc.queued || w != tc.waiting }() {
				if ctx.Err() != nil {
					r, q, w := state()
					t.Fatalf("started %d, executor running %d queued %d, waiting for a worker %d; want %d started, %d queued, %d waiting",
						started(), r, q, w, tc.running, tc.queued, tc.waiting)
				}
				time.Sleep(5 * time.Millisecond)
			}
			if n := started(); n != tc.running {
				t.Fatalf("%d calls run at once, want %d", n, tc.running)
			}
			// What trove status lists: the worker, its slots, the calls in it.
			if ws := rt.Workers(); len(ws) != 1 || ws[0].Slots != tc.slots || ws[0].Busy != tc.running || ws[0].Functions == 0 || ws[0].PID == 0 {
				t.Fatalf("Workers() = %+v, want one with %d slots, %d busy, its functions and pid", ws, tc.slots, tc.running)
			}
			if err := os.WriteFile(filepath.Join(dir, "release"), nil, 0o600); err != nil {
				t.Fatal(err)
			}
			for _, ref := range refs {
				get[string](t, rt, ref)
				ref.Drop()
			}
			if n := started(); n != tc.calls {
				t.Fatalf("%d runs for %d calls", n, tc.calls)
			}
		})
	}
}

// TestNoWorker: a call of a function no node runs fails at once, saying to
// attach a worker; calls waiting for a worker that detaches are handed back
// (and fail the same way here, no other node running it).
func TestNoWorker(t *testing.T) {
	wn := newWorkerNode(t, 1, 2)
	ctx := ctx30(t)
	rt := wn.rts[0]
	ref, err := wWhere.Remote(ctx, rt, Val("x"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = trove.GetValue[string](ctx, rt, ref)
	ref.Drop()
	if err == nil || !strings.Contains(err.Error(), "attach a worker that Defines it") || !strings.Contains(err.Error(), "worker.where") {
		t.Fatalf("err = %v, want it to name worker.where and say to attach a worker", err)
	}

	w := wn.startWorker(t, 1)
	dir := t.TempDir()
	// Two calls: one runs in the worker's one slot, the other waits for it
	// in the node's dispatch (which is which is the executor's race).
	var refs [2]trove.Ref
	for i := range refs {
		if refs[i], err = wHold.Remote(ctx, rt, Val(dir)); err != nil {
			t.Fatal(err)
		}
		defer refs[i].Drop()
	}
	running := func() bool {
		ents, _ := os.ReadDir(dir)
		for _, e := range ents {
			if strings.HasPrefix(e.Name(), "started-") {
				return true
			}
		}
		return false
	}
	for !running() || func() int { rt.hub.mu.Lock(); defer rt.hub.mu.Unlock(); return len(rt.hub.pending) }() != 1 {
		if ctx.Err() != nil {
			t.Fatal("no call ran, or none waited for the worker")
		}
		time.Sleep(5 * time.Millisecond)
	}
	// The worker detaches: it finishes its call (released now), and the
	// waiting one is handed back to its caller, which has nowhere to run it.
	if err := os.WriteFile(filepath.Join(dir, "release"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	w.stop(t)
	var ran, handedBack int
	for _, ref := range refs {
		got, err := trove.GetValue[string](ctx, rt, ref)
		switch {
		case err == nil && got == fmt.Sprintf("pid=%d", w.cmd.Process.Pid):
			ran++
		case err != nil && strings.Contains(err.Error(), "attach a worker that Defines it"):
			handedBack++
		default:
			t.Errorf("%q, %v: want the worker's result or a call handed back for want of a worker", got, err)
		}
	}
	if ran != 1 || handedBack != 1 {
		t.Fatalf("%d calls ran and %d were handed back, want 1 and 1", ran, handedBack)
	}
}

// TestResultAbortedByDeadWorker: a worker that dies while writing a result
// in place (its create-result made, never sealed) leaves the future pending,
// not aborted: the retry's result is stored and read.
func TestResultAbortedByDeadWorker(t *testing.T) {
	wn := newWorkerNode(t, 1, 2)
	n := wn.nodes[0]
	ctx := ctx30(t)
	for _, owner := range []string{"this node", "held by a client"} {
		t.Run(owner, func(t *testing.T) {
			fut, err := n.NewFuture()
			if err != nil {
				t.Fatal(err)
			}
			defer fut.Drop()
			c, err := ipc.Dial(wn.sock)
			if err != nil {
				t.Fatal(err)
			}
			if owner == "held by a client" {
				r, err := c.Borrow(fut.ID())
				if err != nil {
					t.Fatal(err)
				}
				defer r.Drop()
			}
			b, err := c.CreateResult(ctx, fut.ID(), 200<<10, nil)
			if err != nil {
				t.Fatal(err)
			}
			b.Bytes()[0] = 1
			c.Close() // as a worker's death: the ipc server aborts the builder
			for wn.srv.Stats().Builders != 0 {
				if ctx.Err() != nil {
					t.Fatal("the dead client's builder was never aborted")
				}
				time.Sleep(time.Millisecond)
			}
			if err := n.StoreResult(ctx, fut.ID(), 200<<10, nil, func(dst []byte) error { dst[0] = 7; return nil }); err != nil {
				t.Fatalf("the retry's result: %v", err)
			}
			obj, err := n.Local().PinByID(ctx, fut.ID())
			if err != nil {
				t.Fatal(err)
			}
			if obj.Bytes()[0] != 7 {
				t.Fatalf("result byte %d, want the retry's 7", obj.Bytes()[0])
			}
			obj.Release()
		})
	}
}

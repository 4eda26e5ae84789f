package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/trovedb/trove"
	"github.com/trovedb/trove/dashboard"
	"github.com/trovedb/trove/net/ipc"
	"github.com/trovedb/trove/task"
)

// Remote functions on troved processes, run by worker processes (this test
// binary run again: TestMain calls workerMain) attached to their sockets.

var (
	tWhere = task.Define1("troved-test.where", func(ctx context.Context, tag string) (string, error) {
		return fmt.Sprintf("%s pid=%d", tag, os.Getpid()), nil
	})
	tSum = task.Define1("troved-test.sum", func(ctx context.Context, xs []float64) (float64, error) {
		var s float64
		for _, x := range xs {
			s += x
		}
		return s, nil
	})
	tFail = task.Define0("troved-test.fail", func(ctx context.Context) (int, error) {
		return 0, errors.New("failed in the worker")
	})
	// tHold marks its start in dir (started-PID) and, on its first run, hangs
	// until killed; later runs return at once.
	tHold = task.Define1("troved-test.hold", func(ctx context.Context, dir string) (string, error) {
		first := filepath.Join(dir, "first")
		_, err := os.Stat(first)
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("started-%d", os.Getpid())), nil, 0o600); err != nil {
			return "", err
		}
		if err != nil {
			if err := os.WriteFile(first, nil, 0o600); err != nil {
				return "", err
			}
			<-ctx.Done()
			return "", ctx.Err()
		}
		return fmt.Sprintf("pid=%d", os.Getpid()), nil
	})
)

// workerMain is a worker process: it serves this program's functions on the
// troved at sock until its stdin closes.
func workerMain(sock string) error {
	c, err := ipc.Dial(sock)
	if err != nil {
		return err
	}
	defer c.Close()
	w, err := task.Attach(c, task.WorkerConfig{Slots: 2})
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

type workerProc struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	done  chan error
}

// startWorker starts a worker process on p's socket and waits (a generous
// bound) until p's runtime has it: until a call of tWhere made on p runs.
func startWorker(t *testing.T, p *proc) *workerProc {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "TROVED_TEST_WORKER="+p.sock)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w := &workerProc{cmd: cmd, stdin: stdin, done: make(chan error, 1)}
	go func() { w.done <- cmd.Wait() }()
	t.Cleanup(func() {
		stdin.Close()
		select {
		case <-w.done:
		case <-time.After(20 * time.Second):
			_ = cmd.Process.Kill()
			<-w.done
		}
	})
	return w
}

// waitCall calls tWhere through x until it succeeds (a generous bound: the
// worker registers, the nodes' views refresh) and returns its result.
func waitCall(t *testing.T, x task.Caller, tag string) string {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		ref, err := tWhere.Remote(ctx, x, task.Val(tag))
		var got string
		if err == nil {
			got, err = trove.GetValue[string](ctx, x, ref)
			ref.Drop()
		}
		cancel()
		if err == nil {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("no call of %s ran: %v", tWhere.Name(), err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestWorkersOnTroved: two troved processes; node b offers -cpus 3
// -resources Custom=2 and has worker processes attached, a has none. Calls
// from drivers attached to either run in b's workers (a has no worker of the
// function, so its runtime places them on b); a ref argument is resolved in
// the worker; an error reaches the caller as ErrTaskFailed naming the
// function and node; a worker killed mid-call has its call run again by
// b's other worker; both stores end empty.
func TestWorkersOnTroved(t *testing.T) {
	bin, _ := binaries(t)
	a := startNode(t, bin, "node-a", "", "-cpus", "1")
	b := startNode(t, bin, "node-b", a.addr, "-cpus", "3", "-resources", "Custom=2")

	// b's slots and resources in a's status (gossiped).
	deadline := time.Now().Add(30 * time.Second)
	for {
		st := waitMembers(t, a, "node-a", "node-b")
		var slots int
		var custom float64
		for _, m := range st.Members {
			if m.Name == "node-b" {
				slots = m.Slots
				for _, r := range m.Resources {
					if r.Name == "Custom" {
						custom = r.Total
					}
				}
			}
		}
		if slots == 3 && custom == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a's status shows node-b with %d slots and Custom %v, want 3 and 2", slots, custom)
		}
		time.Sleep(50 * time.Millisecond)
	}

	w1 := startWorker(t, b)
	ca, cb := a.dial(t), b.dial(t)
	da, err := task.Attach(ca, task.WorkerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	db, err := task.Attach(cb, task.WorkerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	pid1 := fmt.Sprintf("pid=%d", w1.cmd.Process.Pid)
	if got := waitCall(t, db, "on-b"); got != "on-b "+pid1 {
		t.Fatalf("a call made on b ran as %q, want in its worker (%s)", got, pid1)
	}
	if got := waitCall(t, da, "from-a"); got != "from-a "+pid1 {
		t.Fatalf("a call made on a ran as %q, want in b's worker (%s)", got, pid1)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	xs := make([]float64, 32<<10) // 256 KiB: in the arena, read in place
	for i := range xs {
		xs[i] = 2
	}
	arg, err := trove.PutValue(ctx, da, xs)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := tSum.Remote(ctx, da, task.Ref[[]float64](arg))
	if err != nil {
		t.Fatal(err)
	}
	if got, err := trove.GetValue[float64](ctx, da, ref); err != nil || got != float64(2*len(xs)) {
		t.Fatalf("sum = %v, %v; want %d", got, err, 2*len(xs))
	}
	ref.Drop()
	arg.Drop()

	ref, err = tFail.Remote(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	_, err = trove.GetValue[int](ctx, db, ref)
	ref.Drop()
	if !errors.Is(err, task.ErrTaskFailed) || !strings.Contains(err.Error(), "troved-test.fail") ||
		!strings.Contains(err.Error(), "node-b") || !strings.Contains(err.Error(), "failed in the worker") {
		t.Fatalf("err = %v, want ErrTaskFailed naming troved-test.fail, node-b and the cause", err)
	}

	// kill -9 of the worker running a call: b's other worker runs it again.
	w2 := startWorker(t, b)
	// Both registered: calls (given to either's free slot) come back from each.
	seen := map[string]bool{}
	for !seen[fmt.Sprintf("pid=%d", w1.cmd.Process.Pid)] || !seen[fmt.Sprintf("pid=%d", w2.cmd.Process.Pid)] {
		got := waitCall(t, db, "both")
		seen[strings.TrimPrefix(got, "both ")] = true
		if ctx.Err() != nil {
			t.Fatalf("calls ran in %v, want both workers (%d, %d)", seen, w1.cmd.Process.Pid, w2.cmd.Process.Pid)
		}
	}
	dir := t.TempDir()
	ref, err = tHold.Remote(ctx, da, task.Val(dir))
	if err != nil {
		t.Fatal(err)
	}
	var started string
	for started == "" {
		ents, _ := os.ReadDir(dir)
		for _, e := range ents {
			if strings.HasPrefix(e.Name(), "started-") {
				started = strings.TrimPrefix(e.Name(), "started-")
			}
		}
		if ctx.Err() != nil {
			t.Fatal("the call never started")
		}
		time.Sleep(5 * time.Millisecond)
	}
	victim, other := w1, w2
	if started == fmt.Sprint(w2.cmd.Process.Pid) {
		victim, other = w2, w1
	}
	// b's status lists both workers, the one running the call busy.
	st, err := cb.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	busy := map[int]int{}
	for _, w := range st.Workers {
		if w.Slots != 2 || w.Functions < 4 || w.Name == "" {
			t.Errorf("b's status: worker %+v, want 2 slots, this program's functions (4 or more) and a name", w)
		}
		busy[w.PID] = w.Busy
	}
	if want := map[int]int{victim.cmd.Process.Pid: 1, other.cmd.Process.Pid: 0}; !maps.Equal(busy, want) {
		t.Errorf("b's status: workers (pid: busy) %v, want %v", busy, want)
	}
	if st, err := ca.Status(ctx); err != nil || st.Workers != nil {
		t.Errorf("a's status lists workers %+v (%v), want none", st.Workers, err)
	}
	if err := victim.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-victim.done
	victim.done <- nil // for the cleanup
	got, err := trove.GetValue[string](ctx, da, ref)
	ref.Drop()
	if want := fmt.Sprintf("pid=%d", other.cmd.Process.Pid); err != nil || got != want {
		t.Fatalf("after the kill: %q, %v; want %q (run again by the other worker)", got, err, want)
	}

	// The dashboard's calls page, from either node's HTTP port, lists the
	// calls b ran: finished ones, and the failure with its error.
	for _, p := range []*proc{a, b} {
		waitCalls(t, p, func(calls []dashboard.Call) error {
			var sum, fail, hold *dashboard.Call
			for i, c := range calls {
				switch c.Function {
				case tSum.Name():
					sum = &calls[i]
				case tFail.Name():
					fail = &calls[i]
				case tHold.Name():
					if c.State == dashboard.CallFinished {
						hold = &calls[i]
					}
				}
			}
			switch {
			case sum == nil || sum.State != dashboard.CallFinished || sum.Executor != "node-b" || sum.Caller != "node-a" || sum.Attempt != 1 || sum.Start.IsZero():
				return fmt.Errorf("the sum call: %+v, want finished on node-b, called from node-a, attempt 1", sum)
			case fail == nil || fail.State != dashboard.CallFailed || fail.Executor != "node-b" || !strings.Contains(fail.Error, "failed in the worker"):
				return fmt.Errorf("the failing call: %+v, want failed on node-b with the worker's error", fail)
			case hold == nil || hold.Executor != "node-b" || hold.Attempt < 2:
				return fmt.Errorf("the call whose worker was killed: %+v, want finished on node-b on a later attempt", hold)
			}
			return nil
		})
	}

	for _, c := range []*ipc.Client{ca, cb} {
		if err := c.Flush(ctx); err != nil {
			t.Fatal(err)
		}
	}
	requireZero(t, a)
	requireZero(t, b)
}

// waitCalls polls p's /api/calls (a generous bound: a node's record of calls
// is asked over the cluster) until check accepts its calls.
func waitCalls(t *testing.T, p *proc, check func([]dashboard.Call) error) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		var got dashboard.CallsJSON
		err := getJSONURL(p.metrics+"/api/calls", &got)
		if err == nil && !got.Enabled {
			err = fmt.Errorf("calls page not enabled: %q", got.Message)
		}
		if err == nil {
			err = check(got.Calls)
		}
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s's /api/calls: %v", p.name, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func getJSONURL(url string, v any) error {
	resp, err := http.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s: %s", url, resp.Status, b)
	}
	return json.Unmarshal(b, v)
}

package bench

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/trovedb/trove"
	"github.com/trovedb/trove/cluster"
	"github.com/trovedb/trove/engine"
	"github.com/trovedb/trove/internal/benchtime"
	"github.com/trovedb/trove/task"
)

// Remote functions (package task) on the shapes of Ray's own benchmarks, each
// against a direct Go call of the same function measured in the same run
// (impl=direct, then impl=task: x_direct is the direct call's time over the
// task's, overhead-ns the task's time less the direct call's), and against
// Ray's published figure for the shape as a constant (x_ray: trove's rate over
// Ray's; the goal is ≥ 10).
//
// Ray's figures are not measured here. They are from Ray's release logs in
// ray-project/ray, release 2.20.0, measured by Ray's release pipeline (the
// microbenchmarks on one m5.16xlarge, 64 vCPU; the single-node scalability
// test on one m5.16xlarge too), read from
//
//	release/release_logs/2.20.0/microbenchmark.json        (commit d6d53738cc24b2750b6014f369c7633055df0b17)
//	release/release_logs/2.20.0/scalability/single_node.json (commit e1c19ab8518aa21b66dadd95f14529cfff2d77a9)
//
// and the shapes from python/ray/_private/ray_perf.py and
// release/benchmarks/single_node/test_single_node.py. perf.md has the figures of
// releases 2.21.0 and 2.22.0 beside them (within 5%).
const (
	raySyncTasksPerSec  = 965.8386012454489  // single_client_tasks_sync: ray.get(small_value.remote()), one at a time
	rayAsyncTasksPerSec = 7993.559119696471  // single_client_tasks_async: ray.get([small_value.remote() for _ in range(1000)])
	rayMultiTasksPerSec = 22358.519928771202 // multi_client_tasks_async: 4 actors, each submitting 10,000 small_value tasks and getting them
	ray10kArgsSeconds   = 17.267912976999995 // 10000_args_time: one task of 10,000 arguments, each a list of 10,000 ints, summed
	ray1MQueuedSeconds  = 190.11494678399998 // 1000000_queued_time: 1M tasks queued behind one blocked task per CPU, then run and got
)

// The functions the benchmarks call. Every node of the in-process cluster runs
// this program, so every node has them, as every Ray worker has the same code.
var (
	// smallValue is Ray's small_value: return b"ok".
	smallValue = task.Define0("bench.small_value", smallValueFn)
	// sumArgs is test_single_node.py's sum_args over 10,000 refs: the sum of
	// every element of every argument.
	sumArgs = task.Define1("bench.sum_args", sumArgsFn)
	// blockTask holds a slot until the current gate opens (Ray's block(), which
	// waits on a semaphore actor).
	blockTask = task.Define0("bench.block", blockFn)
	// noop is test_single_node.py's f(): does nothing.
	noop = task.Define0("bench.noop", noopFn)
)

var okValue = []byte("ok")

func smallValueFn(context.Context) ([]byte, error) { return okValue, nil }

func noopFn(context.Context) (int, error) { return 0, nil }

// sumArgsFn is sumRefs through the runtime executing the call. The refs in
// its argument arrive as live handles of its own (as GetValue's nested refs):
// it drops them when done, as a Ray function's ObjectRefs go out of scope
// when it returns.
func sumArgsFn(ctx context.Context, refs []trove.Ref) (int64, error) {
	defer dropAll(refs)
	return sumRefs(ctx, task.FromContext(ctx), refs)
}

// sumRefs resolves the refs (a zero-copy view of each []int64 value) and sums
// every element.
func sumRefs(ctx context.Context, st trove.Store, refs []trove.Ref) (int64, error) {
	var sum int64
	for _, r := range refs {
		v, obj, err := trove.ViewValue[[]int64](ctx, st, r)
		if err != nil {
			return 0, err
		}
		for _, x := range v {
			sum += x
		}
		obj.Release()
	}
	return sum, nil
}

// gate is what blockTask waits for: the current one is closed to let the
// blocked tasks finish.
var gate atomic.Pointer[chan struct{}]

func blockFn(ctx context.Context) (int, error) {
	g := gate.Load()
	if g == nil {
		return 0, fmt.Errorf("bench.block: no gate set")
	}
	select {
	case <-*g:
		return 0, nil
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

// The direct calls go through func variables, so that the compiler cannot
// inline them away: a direct call costs what calling a Go function value does.
var (
	smallValueDirect = smallValueFn
	noopDirect       = noopFn
	sumRefsDirect    = sumRefs
	sinkBytes        []byte
	sinkInt          int
)

// taskCluster is k cluster nodes in this process, each with a task runtime.
type taskCluster struct {
	nodes []*cluster.Node
	rts   []*task.Runtime
}

// newTaskCluster opens k nodes of one cluster (mutual TLS, certificates made
// for the run), waits until each sees all k, and starts a task runtime with
// cpus slots on each. When the benchmark ends it checks that every node's
// store is back to zero objects, bytes and views (waiting up to 10 s for the
// releases between nodes), then closes everything.
func newTaskCluster(b *testing.B, k int, capacity int64, cpus int) *taskCluster {
	b.Helper()
	root := b.TempDir()
	ca := filepath.Join(root, "ca")
	if err := cluster.CreateCA(ca); err != nil {
		b.Fatal(err)
	}
	c := &taskCluster{}
	for i := range k {
		name := fmt.Sprintf("task-%c", 'a'+i)
		dir := filepath.Join(root, name)
		if err := cluster.CreateNodeCert(ca, dir, name, "127.0.0.1"); err != nil {
			b.Fatal(err)
		}
		cfg := cluster.Config{
			Store:    engine.Config{Capacity: capacity, PrefaultAll: true},
			CertsDir: dir,
			Logger:   slog.New(slog.NewTextHandler(io.Discard, nil)),
		}
		if i > 0 {
			cfg.Join = []string{c.nodes[0].Addr()}
		}
		n, err := cluster.Open(ctx, cfg)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { n.Close() })
		c.nodes = append(c.nodes, n)
	}
	deadline := time.Now().Add(10 * time.Second)
	for _, n := range c.nodes {
		for len(n.Members()) < k {
			if time.Now().After(deadline) {
				b.Fatalf("%s sees %d of %d members after 10 s", n.Name(), len(n.Members()), k)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	for _, n := range c.nodes {
		rt, err := task.Start(n, task.Config{CPUs: float64(cpus)})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { rt.Close() })
		c.rts = append(c.rts, rt)
	}
	b.Cleanup(func() { c.requireEmpty(b) })
	return c
}

// requireEmpty fails b unless every node's store holds no objects, bytes or
// views, waiting up to 10 s for releases in flight between nodes.
func (c *taskCluster) requireEmpty(b *testing.B) {
	deadline := time.Now().Add(10 * time.Second)
	for _, n := range c.nodes {
		for {
			n.Local().WaitIdle()
			s := n.Local().Stats()
			if s.Objects == 0 && s.Used == 0 && s.Views == 0 && s.PinnedObjects == 0 {
				break
			}
			if time.Now().After(deadline) {
				b.Errorf("%s not empty after the benchmark: %d objects, %d bytes used, %d views, %d pinned",
					n.Name(), s.Objects, s.Used, s.Views, s.PinnedObjects)
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// directResult is the direct calls' time per call, from the impl=direct
// sub-benchmark of the same benchmark and -count round, for the impl=task
// one's ratios.
type directResult struct{ ns float64 }

// runDirect runs the impl=direct sub-benchmark: each iteration runs iter,
// which makes calls direct calls of the shape's function (a round of the
// shape, without the task machinery).
func runDirect(b *testing.B, calls int, iter func()) *directResult {
	res := &directResult{}
	b.Run("impl=direct", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			iter()
		}
		res.ns = float64(b.Elapsed().Nanoseconds()) / float64(b.N) / float64(calls)
		b.ReportMetric(1e9/res.ns, "calls/s")
	})
	return res
}

// reportTasks reports a task sub-benchmark's figures: tasks per second (from
// the median round, so that a burst of load on the shared machine does not make
// the figure), the ratio to Ray's rate, and the overhead over a direct call.
func reportTasks(b *testing.B, rounds benchtime.Samples, perRound int, direct *directResult, rayPerSec float64) {
	perTask := float64(rounds.Median().Nanoseconds()) / float64(perRound)
	b.ReportMetric(1e9/perTask, "tasks/s")
	b.ReportMetric(1e9/perTask/rayPerSec, "x_ray")
	b.ReportMetric(perTask, "task-p50-ns")
	if direct != nil && direct.ns > 0 {
		b.ReportMetric(direct.ns/perTask, "x_direct")
		b.ReportMetric(perTask-direct.ns, "overhead-ns")
	}
}

// BenchmarkTaskSync is Ray's single_client_tasks_sync: one call, Get its
// result, drop it, repeat. nodes=1 is Ray's shape (one node); nodes=3 lets the
// scheduler place the calls on any of three nodes of an in-process cluster.
func BenchmarkTaskSync(b *testing.B) {
	for _, k := range []int{1, 3} {
		b.Run(fmt.Sprintf("nodes=%d", k), func(b *testing.B) {
			direct := runDirect(b, 1, func() { sinkBytes, _ = smallValueDirect(ctx) })
			b.Run("impl=task", func(b *testing.B) {
				c := newTaskCluster(b, k, 64<<20, 0)
				rt := c.rts[0]
				call := func() {
					ref, err := smallValue.Remote(ctx, rt)
					if err != nil {
						b.Fatal(err)
					}
					v, err := trove.GetValue[[]byte](ctx, rt, ref)
					if err != nil {
						b.Fatal(err)
					}
					if string(v) != "ok" {
						b.Fatalf("small_value returned %q", v)
					}
					ref.Drop()
				}
				for range 100 { // warm: connections, code paths
					call()
				}
				var rounds benchtime.Samples
				b.ReportAllocs()
				for b.Loop() {
					rounds.Time(call)
				}
				reportTasks(b, rounds, 1, direct, raySyncTasksPerSec)
			})
		})
	}
}

// asyncRound is the number of calls in one round of BenchmarkTaskAsync, as in
// Ray's single_client_tasks_async.
const asyncRound = 1000

// submitAndGet submits n small_value calls from rt, then waits for all of them
// with one GetAll, checks each value and drops the refs.
func submitAndGet(b *testing.B, rt *task.Runtime, n int) {
	refs := make([]trove.Ref, n)
	for i := range refs {
		var err error
		if refs[i], err = smallValue.Remote(ctx, rt); err != nil {
			b.Error(err)
			return
		}
	}
	objs, err := rt.GetAll(ctx, refs)
	if err != nil {
		b.Error(err)
		return
	}
	for _, o := range objs {
		o.Release()
	}
	for _, r := range refs {
		v, err := trove.GetValue[[]byte](ctx, rt, r)
		if err != nil || string(v) != "ok" {
			b.Errorf("small_value: %q, %v", v, err)
			return
		}
		r.Drop()
	}
}

// BenchmarkTaskAsync is Ray's single_client_tasks_async: a round submits 1,000
// calls, then gets them all (one GetAll, which waits for every result, then
// each value is decoded). tasks/s is 1,000 / the median round's time.
func BenchmarkTaskAsync(b *testing.B) {
	for _, k := range []int{1, 3} {
		b.Run(fmt.Sprintf("nodes=%d", k), func(b *testing.B) {
			direct := runDirect(b, asyncRound, func() {
				for range asyncRound {
					sinkBytes, _ = smallValueDirect(ctx)
				}
			})
			b.Run("impl=task", func(b *testing.B) {
				c := newTaskCluster(b, k, 256<<20, 0)
				rt := c.rts[0]
				submitAndGet(b, rt, asyncRound) // warm
				var rounds benchtime.Samples
				b.ReportAllocs()
				for b.Loop() {
					rounds.Time(func() { submitAndGet(b, rt, asyncRound) })
				}
				reportTasks(b, rounds, asyncRound, direct, rayAsyncTasksPerSec)
			})
		})
	}
}

// Ray's multi_client_tasks_async: 4 clients of 10,000 calls each.
const (
	multiClients = 4
	multiCalls   = 10000
)

// BenchmarkTaskMultiClient is Ray's multi_client_tasks_async: four clients
// (goroutines here; actors in Ray), each submitting multiCalls small_value
// calls and then getting them all. nodes=1 is Ray's shape (its four actors
// and their tasks on one machine): all four clients on one node. nodes=3:
// each client on a node of an in-process 3-node cluster (client i on node
// i mod 3), all three on this machine's cores. A round ends when all four
// have; tasks/s is 4 × multiCalls / the median round's time. The direct
// baseline is four goroutines of multiCalls direct calls each.
func BenchmarkTaskMultiClient(b *testing.B) {
	for _, k := range []int{1, 3} {
		b.Run(fmt.Sprintf("nodes=%d", k), func(b *testing.B) {
			benchMultiClient(b, k)
		})
	}
}

func benchMultiClient(b *testing.B, k int) {
	direct := runDirect(b, multiClients*multiCalls, func() {
		var wg sync.WaitGroup
		for range multiClients {
			wg.Go(func() {
				for range multiCalls {
					v, _ := smallValueDirect(ctx)
					if len(v) != 2 {
						panic("small_value")
					}
				}
			})
		}
		wg.Wait()
	})
	b.Run("impl=task", func(b *testing.B) {
		c := newTaskCluster(b, k, 512<<20, 0)
		round := func() {
			var wg sync.WaitGroup
			for i := range multiClients {
				rt := c.rts[i%len(c.rts)]
				wg.Go(func() { submitAndGet(b, rt, multiCalls) })
			}
			wg.Wait()
		}
		round() // warm
		var rounds benchtime.Samples
		b.ReportAllocs()
		for b.Loop() {
			rounds.Time(round)
		}
		reportTasks(b, rounds, multiClients*multiCalls, direct, rayMultiTasksPerSec)
	})
}

// 10,000 arguments of 10,000 elements each, as test_single_node.py's
// test_many_args.
const (
	manyArgs    = 10000
	argElements = 10000
)

// putArgs puts manyArgs values of argElements int64 ones each (80 KB, stored
// out-of-band: the function reads them in place).
func putArgs(b *testing.B, st trove.Store, ones []int64) []trove.Ref {
	refs := make([]trove.Ref, manyArgs)
	for i := range refs {
		var err error
		if refs[i], err = trove.PutValue(ctx, st, ones); err != nil {
			b.Fatal(err)
		}
	}
	return refs
}

func dropAll(refs []trove.Ref) {
	for _, r := range refs {
		r.Drop()
	}
}

// BenchmarkTask10kRefArgs is Ray's "10,000 args to one task"
// (test_single_node.py's test_many_args: sum_args.remote(*args) over 10,000
// lists of 10,000 ints, then ray.get; 17.3 s in Ray 2.20.0). Here the 10,000
// arguments are refs, put first (PutValue of a []int64 of 10,000 ones, 80 KB,
// each its own object), passed to one call as a []trove.Ref, which the
// function resolves itself (a zero-copy view of each) and sums: Go has no
// variadic remote call of 10,000 top-level arguments, and a slice of refs is
// how a Go program hands a function many objects.
//
// Ray's figure is its whole test, arguments made and sent included, so
// total-s here is a round: putting the 10,000 arguments (put-s), the call and
// Get of its result (call-s), and dropping them; x_ray is Ray's 17.3 s /
// total-s. call-s is the figure with the goal (< 1 s). In every round the
// function's body (sumRefs) is also called directly on the same refs, before
// or after the call in turns (direct-call-s, not in total-s); x_direct is its
// time / the call's.
func BenchmarkTask10kRefArgs(b *testing.B) {
	ones := make([]int64, argElements)
	for i := range ones {
		ones[i] = 1
	}
	const want = manyArgs * argElements
	// The arguments are under InlineThreshold (in the heap, not the arena);
	// the arena holds the value of 10,000 refs.
	c := newTaskCluster(b, 1, 256<<20, 0)
	rt := c.rts[0]
	check := func(sum int64, err error) {
		if err != nil || sum != want {
			b.Fatalf("sum_args = %d, %v; want %d", sum, err, want)
		}
	}
	var totals, puts, calls, directs benchtime.Samples
	taskCall := func(refs []trove.Ref) {
		calls.Time(func() {
			ref, err := sumArgs.Remote(ctx, rt, task.Val(refs))
			if err != nil {
				b.Fatal(err)
			}
			check(trove.GetValue[int64](ctx, rt, ref))
			ref.Drop()
		})
	}
	directCall := func(refs []trove.Ref) {
		directs.Time(func() { check(sumRefsDirect(ctx, rt, refs)) })
	}
	round := func(i int) {
		var refs []trove.Ref
		t0 := time.Now()
		puts.Time(func() { refs = putArgs(b, rt, ones) })
		if i%2 == 0 {
			taskCall(refs)
			t1 := time.Now()
			directCall(refs)
			t0 = t0.Add(time.Since(t1)) // the direct call is not in the round's total
		} else {
			t1 := time.Now()
			directCall(refs)
			t0 = t0.Add(time.Since(t1))
			taskCall(refs)
		}
		dropAll(refs)
		totals = append(totals, time.Since(t0))
	}
	round(0) // warm: the heap grown to hold the arguments
	totals, puts, calls, directs = nil, nil, nil, nil
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		round(i)
	}
	b.ReportMetric(totals.Median().Seconds(), "total-s")
	b.ReportMetric(puts.Median().Seconds(), "put-s")
	b.ReportMetric(calls.Median().Seconds(), "call-s")
	b.ReportMetric(directs.Median().Seconds(), "direct-call-s")
	b.ReportMetric(float64(directs.Median())/float64(calls.Median()), "x_direct")
	b.ReportMetric(ray10kArgsSeconds/totals.Median().Seconds(), "x_ray")
}

// queuedSizes are how many calls BenchmarkTaskQueued queues: Ray's test
// queues 1,000,000, and so does the second size (about 3 GB of heap and
// 20-40 s a round on this machine); the first shows whether the time per
// call depends on the queue's length.
var queuedSizes = []int{100_000, 1_000_000}

// queuedCPUs is the node's slots in BenchmarkTaskQueued (this machine's 2
// cores; Ray's node had 64).
const queuedCPUs = 2

// BenchmarkTaskQueued is Ray's "1M tasks queued on one node"
// (test_single_node.py's test_many_queued_tasks, 190 s in Ray 2.20.0): one
// call per slot that blocks until a gate opens, then n calls of a function
// that does nothing (queued: every slot is busy), then the gate opens and
// every result is got, in submission order, and dropped. The direct baseline
// is n direct calls of the function.
func BenchmarkTaskQueued(b *testing.B) {
	for _, n := range queuedSizes {
		b.Run(fmt.Sprintf("queued=%d", n), func(b *testing.B) {
			benchQueued(b, n)
		})
	}
}

func benchQueued(b *testing.B, n int) {
	direct := runDirect(b, n, func() {
		for range n {
			sinkInt, _ = noopDirect(ctx)
		}
	})
	b.Run("impl=task", func(b *testing.B) {
		c := newTaskCluster(b, 1, 256<<20, queuedCPUs)
		rt := c.rts[0]
		round := func(n int) {
			g := make(chan struct{})
			gate.Store(&g)
			var blocked []trove.Ref
			for range queuedCPUs {
				ref, err := blockTask.Remote(ctx, rt)
				if err != nil {
					b.Fatal(err)
				}
				blocked = append(blocked, ref)
			}
			refs := make([]trove.Ref, n)
			for i := range refs {
				var err error
				if refs[i], err = noop.Remote(ctx, rt); err != nil {
					b.Fatal(err)
				}
			}
			close(g)
			for _, r := range append(blocked, refs...) {
				if _, err := trove.GetValue[int](ctx, rt, r); err != nil {
					b.Fatal(err)
				}
				r.Drop()
			}
		}
		round(1000) // warm
		var rounds benchtime.Samples
		b.ReportAllocs()
		for b.Loop() {
			rounds.Time(func() { round(n) })
		}
		perTask := rounds.Median().Seconds() / float64(n)
		b.ReportMetric(perTask*1e9, "task-p50-ns")
		b.ReportMetric(perTask*1e6, "per-1M-s")
		b.ReportMetric(ray1MQueuedSeconds/(perTask*1e6), "x_ray")
		b.ReportMetric(1/perTask, "tasks/s")
		b.ReportMetric(direct.ns/(perTask*1e9), "x_direct")
		b.ReportMetric(perTask*1e9-direct.ns, "overhead-ns")
	})
}

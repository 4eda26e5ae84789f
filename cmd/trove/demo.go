package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math/rand/v2"
	"slices"
	"strings"
	"time"
	"unsafe"

	"github.com/trovedb/trove"
	"github.com/trovedb/trove/engine"
	"github.com/trovedb/trove/internal/localcluster"
	"github.com/trovedb/trove/task"
	"github.com/trovedb/trove/zerocopy"
)

// cmdDemo is `trove demo`: the tutorial, on an in-process cluster of three nodes.
func cmdDemo(ctx context.Context, args []string, out io.Writer) error {
	cmd := newCommand("demo", "demo [-capacity SIZE] [-quick]",
		"Walks through Ray's remote-objects tutorials (put/get, remote calls, Wait, tensors,\n"+
			"passing objects, the read-only fault, batch inference on Parquet shards) on an\n"+
			"in-process cluster of three nodes on 127.0.0.1 (no daemon, no set-up, no certificates:\n"+
			"the nodes run Insecure, fine on a laptop only), then puts a ref on one node and gets it\n"+
			"on another, checking every result; exits 1 if one is wrong. It prints prose for\n"+
			"people: no --json.")
	capacity := sizeFlag(256 << 20)
	cmd.fs.Var(&capacity, "capacity", "each node's shared memory (`SIZE`: 256MiB, 1GiB, or bytes)")
	quick := cmd.fs.Bool("quick", false, "shorten the waits 20 times, the timed transfer to 4 MiB and the shards 100 times (for tests)")
	pos, err := cmd.parse(args, out)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("demo: unexpected argument %q (demo takes only flags)", pos[0])
	}
	if capacity <= 0 {
		return usagef("demo: -capacity %d: want a positive size such as 256MiB", int64(capacity))
	}
	return demo(ctx, out, demoOptions{capacity: int64(capacity), quick: *quick})
}

// sizeFlag is a byte size flag, parsed by trove.ParseBytes as every command's
// sizes are ("1GiB", "512MiB", "4096").
type sizeFlag int64

func (f *sizeFlag) String() string { return trove.HumanBytes(int64(*f)) }

func (f *sizeFlag) Set(s string) error {
	n, err := trove.ParseBytes(s)
	if err != nil {
		return err
	}
	*f = sizeFlag(n)
	return nil
}

type demoOptions struct {
	capacity int64
	quick    bool // scale every sleep down 20×, and the timed transfer to 4 MiB
}

// demo follows the tutorials of ../shared/seeds step by step on node 1 of an
// in-process cluster, with remote calls running on all three nodes, then shows
// what a cluster adds: a ref put on one node and got on another.
func demo(ctx context.Context, out io.Writer, opt demoOptions) (err error) {
	start := time.Now()
	scale := func(d time.Duration) time.Duration {
		if opt.quick {
			return d / 20
		}
		return d
	}
	say := func(format string, args ...any) { fmt.Fprintf(out, format+"\n", args...) }
	section := func(title string) { say("\n## %s", title) }

	// The nodes' log lines (warnings and errors only) come from their goroutines.
	lw := &lockedWriter{w: out}
	out = lw
	c, err := openDemoCluster(ctx, opt.capacity, lw)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := c.Close(); cerr != nil {
			err = errors.Join(err, fmt.Errorf("demo: closing the cluster: %w", cerr))
		}
	}()
	// The walkthrough is driven from node 1: its puts land in node 1's store,
	// its calls run wherever the cluster has free slots.
	rt := c.rts[0]
	st := c.Nodes[0].Local()
	cfg := st.Config()
	say("# trove demo: Ray's remote objects and remote functions, on a cluster of %d nodes in this process", len(c.Nodes))
	say("each node: its own store of %s shared memory (objects over %s kept there, smaller ones inline), on 127.0.0.1",
		trove.HumanBytes(cfg.Capacity), trove.HumanBytes(cfg.InlineThreshold))
	say("the nodes run Insecure (self-signed TLS that checks no one, unauthenticated gossip): fine for a laptop demo,\n" +
		"never for a real cluster, whose nodes get certificates from `trove cert create-ca` / `create-node` (troved -certs-dir)")
	printNodeMembers(out, c.Nodes[0])
	// ray.cluster_resources()
	res, err := rt.ClusterResources(ctx)
	if err != nil {
		return err
	}
	say("ray.cluster_resources() = %v", res)
	say("the walkthrough below is driven from %s (node ID %s); its calls run on all three nodes", c.Nodes[0].Name(), st.Node())

	// --- Single object refs ------------------------------------------------------
	section("Single object refs: put / get")
	y := 1
	objRef, err := trove.PutValue(ctx, rt, y)
	if err != nil {
		return err
	}
	result, err := trove.GetValue[int](ctx, rt, objRef)
	if err != nil {
		return err
	}
	say("obj_ref = %v", objRef)
	say("result=%d", result)
	if result != y {
		return fmt.Errorf("get returned %d, put %d", result, y)
	}
	objRef.Drop()

	// num_list = [23, 42, 93]; obj_ref = ray.put(num_list)
	// calc_ref = my_function.remote(obj_ref); ray.get(calc_ref)
	numList := []int{23, 42, 93}
	listRef, err := trove.PutValue(ctx, rt, numList)
	if err != nil {
		return err
	}
	calcRef, err := myFunction.Remote(ctx, rt, task.Ref[[]int](listRef))
	if err != nil {
		listRef.Drop()
		return err
	}
	total, err := trove.GetValue[int](ctx, rt, calcRef)
	calcRef.Drop()
	listRef.Drop()
	if err != nil {
		return err
	}
	say("num_list = %v -> %v; my_function.remote(obj_ref) -> %v; ray.get(calc_ref) = %d", numList, listRef, calcRef, total)
	if total != sum(numList) {
		return fmt.Errorf("my_function returned %d, want %d", total, sum(numList))
	}

	// --- Multiple object refs ----------------------------------------------------
	section("Multiple object refs: get a list of refs")
	var refs []trove.Ref
	for i := range 3 {
		r, err := trove.PutValue(ctx, rt, i)
		if err != nil {
			return err
		}
		refs = append(refs, r)
	}
	values, err := getValues[int](ctx, rt, refs)
	dropAll(refs)
	if err != nil {
		return err
	}
	say("result=%v", values)
	if !slices.Equal(values, []int{0, 1, 2}) {
		return fmt.Errorf("got %v, want [0 1 2]", values)
	}

	// --- Timing out --------------------------------------------------------------
	section("Timing out: Get of a call still running")
	runFor := scale(4 * time.Second)
	timeout := scale(2 * time.Second)
	slow, err := longRunningFunction.Remote(ctx, rt, task.Val(runFor))
	if err != nil {
		return err
	}
	say("long_running_function.remote() sleeps %v; Get with a %v timeout...", runFor, timeout)
	tctx, cancel := context.WithTimeout(ctx, timeout)
	_, err = rt.Get(tctx, slow)
	cancel()
	if !errors.Is(err, trove.ErrGetTimeout) {
		slow.Drop()
		return fmt.Errorf("Get past its deadline returned %v, want ErrGetTimeout", err)
	}
	say("`get` timed out. (%v; errors.Is(err, context.DeadlineExceeded) = %v)", err, errors.Is(err, context.DeadlineExceeded))
	v, err := trove.GetValue[int](ctx, rt, slow)
	slow.Drop()
	if err != nil {
		return err
	}
	say("without a timeout, Get waits for the value: %d", v)

	// --- Waiting without blocking --------------------------------------------------
	section("Waiting without blocking: Wait on ten calls finishing at random times")
	var calls []trove.Ref
	for range 10 {
		r, err := randomLongRunning.Remote(ctx, rt, task.Val(scale(2*time.Second)))
		if err != nil {
			dropAll(calls)
			return err
		}
		calls = append(calls, r)
	}
	if err := waitExample(ctx, rt, say, calls); err != nil {
		dropAll(calls)
		return err
	}
	dropAll(calls)

	// --- Passing objects -------------------------------------------------------------
	section("Passing objects: by value, by reference, nested")
	if err := passingExample(ctx, rt, st, say); err != nil {
		return err
	}

	// --- Tensors -------------------------------------------------------------------
	section("Example: 100 random tensors of shape ((i+1)*25, 50), put, transformed by remote calls in parallel, checked")
	if err := tensorExample(ctx, rt, say); err != nil {
		return err
	}

	// --- Spilling ------------------------------------------------------------------
	section("Object spilling: putting three times the store's capacity")
	if err := spillExample(ctx, st, say); err != nil {
		return err
	}

	// --- Immutability --------------------------------------------------------------
	section("Objects are immutable: an argument read in place is mapped read-only")
	if err := readOnlyExample(ctx, rt, say); err != nil {
		return err
	}

	// --- Batch inference ---------------------------------------------------------------
	section("Distributed batch inference: a model put once, one call per Parquet shard, Arrow predictions")
	if err := batchInference(ctx, c, say, opt.quick); err != nil {
		return err
	}

	// --- The cluster -----------------------------------------------------------------
	section(fmt.Sprintf("Across the cluster: put on one node, get on another (%d nodes)", len(c.Nodes)))
	if err := clusterExample(ctx, c, say, scale, opt.quick, opt.capacity); err != nil {
		return err
	}

	// --- Stats ---------------------------------------------------------------------
	section("Store statistics on every node (every ref dropped, every view released)")
	if err := c.WaitDrained(ctx); err != nil {
		return err
	}
	for _, n := range c.Nodes {
		s := n.Local().Stats()
		say("%s: objects=%d bytes=%s pinned=%d views=%d arena used=%s of %s (populated %s) puts=%d gets=%d fetches=%d frees=%d",
			n.Name(), s.Objects, trove.HumanBytes(s.ObjectBytes), s.PinnedObjects, s.Views, trove.HumanBytes(s.Used),
			trove.HumanBytes(s.Capacity), trove.HumanBytes(s.Populated), s.Puts, s.Gets, s.Fetches, s.Frees)
	}
	say("members as %s sees them (the used figures are gossiped, so they lag the stores above):", c.Nodes[0].Name())
	printNodeMembers(out, c.Nodes[0])
	say("\nall freed; demo finished in %v", time.Since(start).Round(time.Millisecond))
	return nil
}

// waitExample: ray.wait(object_refs, num_returns=1) until none remain, then
// ray.wait(object_refs, num_returns=len(object_refs)).
func waitExample(ctx context.Context, rt *task.Runtime, say func(string, ...any), calls []trove.Ref) error {
	ready, remaining, err := rt.Wait(ctx, calls, 1)
	if err != nil {
		return err
	}
	say("wait(num_returns=1): ready_refs=%v remaining_refs=%d", ready, len(remaining))
	for len(remaining) > 0 {
		var r []trove.Ref
		r, remaining, err = rt.Wait(ctx, remaining, 1)
		if err != nil {
			return err
		}
		v, err := trove.GetValue[float64](ctx, rt, r[0])
		if err != nil {
			return err
		}
		say("  ready: %v = %.4f (%d still running)", r[0], v, len(remaining))
	}
	ready, remaining, err = rt.Wait(ctx, calls, len(calls))
	if err != nil || len(ready) != len(calls) || len(remaining) != 0 {
		return fmt.Errorf("wait(num_returns=%d): %d ready, %d remaining, %v", len(calls), len(ready), len(remaining), err)
	}
	for i := range ready {
		if ready[i].ID() != calls[i].ID() {
			return fmt.Errorf("wait(num_returns=%d): ready_refs not in input order", len(calls))
		}
	}
	say("wait(num_returns=len(object_refs)): %d ready_refs (in input order), remaining_refs=[]", len(ready))
	return nil
}

// passingExample: echo by value and by reference, then objects nested in others.
func passingExample(ctx context.Context, rt *task.Runtime, st *engine.Store, say func(string, ...any)) error {
	echoed := func(arg task.Arg[any]) error {
		r, err := echo.Remote(ctx, rt, arg)
		if err != nil {
			return err
		}
		defer r.Drop()
		s, err := trove.GetValue[string](ctx, rt, r)
		if err != nil {
			return err
		}
		say("  %s", s)
		return nil
	}
	x := make([]int, 20)
	for i := range x {
		x[i] = i
	}
	objRefX, err := trove.PutValue(ctx, rt, x)
	if err != nil {
		return err
	}
	defer objRefX.Drop()
	say("by value: top-level arguments are resolved before the call (echo.remote(25), echo.remote(obj_ref_x)):")
	for _, arg := range []task.Arg[any]{task.Val[any](25), task.Ref[any](objRefX)} {
		if err := echoed(arg); err != nil {
			return err
		}
	}
	say("by reference: refs inside a value arrive as refs (echo.remote({\"obj\": obj_ref_x}), echo.remote([obj_ref_x])):")
	for _, arg := range []task.Arg[any]{task.Val[any](map[string]trove.Ref{"obj": objRefX}), task.Val[any]([]trove.Ref{objRefX})} {
		if err := echoed(arg); err != nil {
			return err
		}
	}

	// Nested objects: containers keep what they hold alive.
	asDict, err := trove.PutValue(ctx, rt, map[string]trove.Ref{"obj": objRefX})
	if err != nil {
		return err
	}
	asList, err := trove.PutValue(ctx, rt, []trove.Ref{objRefX})
	if err != nil {
		asDict.Drop()
		return err
	}
	objRefX.Drop() // the containers keep x alive
	say("nested: put {\"obj\": ref} and [ref] (object_ref_2 = ray.put([object_ref])), then dropped our own ref to x")
	dict, err := trove.GetValue[map[string]trove.Ref](ctx, rt, asDict)
	if err != nil {
		return err
	}
	inner, err := trove.GetValue[[]int](ctx, rt, dict["obj"])
	dict["obj"].Drop()
	asDict.Drop()
	if err != nil {
		return err
	}
	if !slices.Equal(inner, x) {
		return fmt.Errorf("nested value came back as %v", inner)
	}
	list, err := trove.GetValue[[]trove.Ref](ctx, rt, asList)
	if err != nil {
		return err
	}
	say("  the dict's ref gives %v...; the list holds %v", inner[:5], list)
	dropAll(list)
	asList.Drop()
	// The calls above release their arguments (the values Val stored, their
	// own handles) as they finish, a moment after their results are sealed:
	// wait for them, with a bound generous for a loaded machine.
	deadline := time.Now().Add(localcluster.Settle)
	for st.Stats().Objects != 0 && time.Now().Before(deadline) {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
	if n := st.Stats().Objects; n != 0 {
		return fmt.Errorf("%d objects left %v after dropping the containers and every call's result", n, localcluster.Settle)
	}
	say("  containers dropped: x is freed too (objects in store: 0)")
	return nil
}

func tensorExample(ctx context.Context, rt *task.Runtime, say func(string, ...any)) error {
	rng := rand.New(rand.NewPCG(42, 0)) // torch.manual_seed(42)
	var tensorRefs, transformed []trove.Ref
	defer func() {
		dropAll(tensorRefs)
		dropAll(transformed)
	}()
	originals := make([][]float32, 100)
	for i := range 100 {
		// create_rand_tensor(((i+1)*25, 50)): torch.randn
		data := make([]float32, (i+1)*25*50)
		for j := range data {
			data[j] = float32(rng.NormFloat64())
		}
		t, err := zerocopy.NewTensor([]int{(i + 1) * 25, 50}, data)
		if err != nil {
			return err
		}
		r, err := trove.PutValue(ctx, rt, t)
		if err != nil {
			return err
		}
		originals[i] = data
		tensorRefs = append(tensorRefs, r)
	}
	s := rt.Node().Local().Stats()
	say("tensor_list_obj_ref[:2] = %v, len %d; %d in shared memory, %d inline (small)",
		tensorRefs[:2], len(tensorRefs), s.Objects-s.InlineObjects, s.InlineObjects)

	// val = ray.get(tensor_list_obj_ref[0]): zero-copy, read-only.
	val, obj, err := trove.ViewValue[zerocopy.Tensor](ctx, rt, tensorRefs[0])
	if err != nil {
		return err
	}
	v0, err := zerocopy.TensorValues[float32](val)
	if err != nil {
		obj.Release()
		return err
	}
	inside := within(val.Data(), obj.Bytes())
	say("val.size() = %v, val[0][:4] = %.4f; zero-copy view of the stored bytes: %v", val.Shape(), v0[:4], inside)
	obj.Release()
	if !inside {
		return fmt.Errorf("tensor view is not inside the object's memory")
	}

	// transformed_object_list = [transform_rand_tensor.remote(t) for t in tensor_list_obj_ref]
	t0 := time.Now()
	for _, r := range tensorRefs {
		tr, err := transformRandTensor.Remote(ctx, rt, task.Ref[zerocopy.Tensor](r))
		if err != nil {
			return err
		}
		transformed = append(transformed, tr)
	}
	// transformed_tensor_values = ray.get(transformed_object_list)
	objs, err := rt.GetAll(ctx, transformed)
	if err != nil {
		return err
	}
	took := time.Since(t0)
	for _, o := range objs {
		o.Release()
	}
	say("transformed_object_list[:2] = %v: 100 calls in parallel, all results fetched in %v", transformed[:2], took.Round(time.Millisecond))

	// Each checked, read in place: the original times one integer from 2 to 10.
	var elems int
	factors := map[float32]bool{}
	for i, r := range transformed {
		t, obj, err := trove.ViewValue[zerocopy.Tensor](ctx, rt, r)
		if err != nil {
			return err
		}
		vals, err := zerocopy.TensorValues[float32](t)
		var k float32
		if err == nil {
			k, err = factorOf(vals, originals[i])
		}
		obj.Release()
		if err != nil {
			return fmt.Errorf("transformed tensor %d: %w", i, err)
		}
		factors[k] = true
		elems += len(vals)
	}
	say("all %d transformed tensors (%d elements) checked: each is its original times an integer from 2 to 10 (%d distinct factors drawn)",
		len(transformed), elems, len(factors))
	return nil
}

// factorOf returns k if vals is orig times k, an integer from 2 to 10.
func factorOf(vals, orig []float32) (float32, error) {
	if len(vals) != len(orig) {
		return 0, fmt.Errorf("%d elements, want %d", len(vals), len(orig))
	}
	for k := float32(2); k <= 10; k++ {
		ok := true
		for i, v := range orig {
			if vals[i] != v*k {
				ok = false
				break
			}
		}
		if ok {
			return k, nil
		}
	}
	return 0, fmt.Errorf("not the original times an integer from 2 to 10")
}

// readOnlyExample: a call that writes into its zero-copy argument fails with
// a task error, and the stored object is unchanged.
func readOnlyExample(ctx context.Context, rt *task.Runtime, say func(string, ...any)) error {
	big := make([]byte, 1<<20)
	for i := range big {
		big[i] = "trove"[i%5]
	}
	bigRef, err := trove.PutValue(ctx, rt, big)
	if err != nil {
		return err
	}
	defer bigRef.Drop()
	r, err := writeArg.Remote(ctx, rt, task.Ref[[]byte](bigRef))
	if err != nil {
		return err
	}
	_, err = trove.GetValue[struct{}](ctx, rt, r)
	r.Drop()
	var te *task.TaskError
	var pe *task.PanicError
	if !errors.Is(err, task.ErrTaskFailed) || !errors.As(err, &te) || !errors.As(err, &pe) {
		return fmt.Errorf("a call writing into its 1 MiB argument: %v, want ErrTaskFailed with the fault", err)
	}
	line, _, _ := strings.Cut(pe.Value, "\n")
	say("f(arr) writing arr[4096] of a 1 MiB argument read in place: errors.Is(err, task.ErrTaskFailed) = true:\n  %s failed on %s: %s (the page is mapped read-only; like numpy's \"assignment destination is read-only\")",
		te.Func, te.Node, line)
	got, err := trove.GetValue[[]byte](ctx, rt, bigRef)
	if err != nil {
		return err
	}
	same := bytes.Equal(got, big)
	say("the object is unchanged: %v", same)
	if !same {
		return fmt.Errorf("the object changed after a write into a read-only view")
	}
	return nil
}

// getValues is ray.get(list_of_refs): the values of refs, fetched in parallel
// (GetAll) and decoded in order.
func getValues[T any](ctx context.Context, st trove.Store, refs []trove.Ref) ([]T, error) {
	objs, err := st.GetAll(ctx, refs)
	if err != nil {
		return nil, err
	}
	for _, o := range objs {
		o.Release()
	}
	out := make([]T, len(refs))
	for i, r := range refs {
		if out[i], err = trove.GetValue[T](ctx, st, r); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// within reports whether inner lies inside outer's memory.
func within(inner, outer []byte) bool {
	if len(inner) == 0 || len(outer) == 0 {
		return false
	}
	i, o := uintptr(unsafe.Pointer(unsafe.SliceData(inner))), uintptr(unsafe.Pointer(unsafe.SliceData(outer)))
	return i >= o && i+uintptr(len(inner)) <= o+uintptr(len(outer))
}

func dropAll(refs []trove.Ref) {
	for _, r := range refs {
		r.Drop()
	}
}

func sum(xs []int) int {
	t := 0
	for _, x := range xs {
		t += x
	}
	return t
}

// spillExample puts three times the store's capacity in 16 MiB objects: the store
// spills the least recently used to disk as memory fills (Ray 1.3+ does the same),
// and every Get brings its object back, intact.
func spillExample(ctx context.Context, st *engine.Store, say func(string, ...any)) error {
	const size = 16 << 20
	capacity := st.Config().Capacity
	n := int(3 * capacity / size)
	say("capacity %s; putting %d objects of %s (%s), spilling to %v",
		trove.HumanBytes(capacity), n, trove.HumanBytes(size), trove.HumanBytes(int64(n)*size), st.Config().SpillDirs)
	sums := make([]uint32, n)
	refs := make([]trove.Ref, n)
	for i := range refs {
		b, err := st.Create(ctx, size)
		if err != nil {
			return err
		}
		fillPattern(b.Bytes(), uint64(i))
		sums[i] = crc32.ChecksumIEEE(b.Bytes())
		refs[i] = b.Ref()
		if err := b.Seal(); err != nil {
			return err
		}
		if (i+1)%(n/3) == 0 {
			s := st.Stats()
			say("  put %3d (%s): %s in memory, %d objects (%s) spilled in %d files",
				i+1, trove.HumanBytes(int64(i+1)*size), trove.HumanBytes(s.Used),
				s.SpilledObjects, trove.HumanBytes(s.SpilledBytes), s.SpillFilesWritten)
		}
	}
	for i, r := range refs {
		obj, err := st.Get(ctx, r)
		if err != nil {
			return err
		}
		ok := crc32.ChecksumIEEE(obj.Bytes()) == sums[i]
		obj.Release()
		if !ok {
			return fmt.Errorf("object %d came back different from what was put", i)
		}
	}
	s := st.Stats()
	say("got all %d back intact (checksums match): %d restored from disk at %.0f MB/s, %d mapped from their spill files; spilled at %.0f MB/s",
		n, s.Restores, s.RestoreThroughput/1e6, s.FallbackAllocations, s.SpillThroughput/1e6)
	dropAll(refs)
	st.WaitIdle() // an object dropped while being spilled is freed when its write ends
	s = st.Stats()
	say("refs dropped: %d spill files and %s left on disk", s.SpillFiles, trove.HumanBytes(s.SpillDiskBytes))
	if s.SpillFiles != 0 || s.SpilledObjects != 0 {
		return fmt.Errorf("spill files left after every ref was dropped: %+v", s)
	}
	return nil
}

// fillPattern fills b with bytes that depend on seed.
func fillPattern(b []byte, seed uint64) {
	x := seed*0x9e3779b97f4a7c15 + 1
	for i := 0; i+8 <= len(b); i += 8 {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		binary.LittleEndian.PutUint64(b[i:], x)
	}
}

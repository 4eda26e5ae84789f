package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"math/rand/v2"
	"runtime/debug"
	"slices"
	"time"
	"unsafe"

	"github.com/trovedb/trove"
	"github.com/trovedb/trove/engine"
	"github.com/trovedb/trove/zerocopy"
)

// cmdDemo is `trove demo`: the tutorial, on an in-process cluster of three nodes.
func cmdDemo(ctx context.Context, args []string, out io.Writer) error {
	cmd := newCommand("demo", "demo [-capacity SIZE] [-quick]",
		"Walks through Ray's remote-objects tutorial on an in-process cluster of three nodes on\n"+
			"127.0.0.1 (no daemon, no set-up, no certificates: the nodes run Insecure, fine on a\n"+
			"laptop only), then puts a ref on one node and gets it on another, checking every\n"+
			"result; exits 1 if one is wrong. It prints prose for people: no --json.")
	capacity := sizeFlag(256 << 20)
	cmd.fs.Var(&capacity, "capacity", "each node's shared memory (`SIZE`: 256MiB, 1GiB, or bytes)")
	quick := cmd.fs.Bool("quick", false, "shorten the waits 20 times and the timed transfer to 4 MiB (for tests)")
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

// demo follows Ray's "Remote Objects" tutorial step by step on node 1 of an
// in-process cluster, then shows what a cluster adds: a ref put on one node and
// got on another. Where Ray runs a remote task, the demo runs a goroutine that
// fills a pending object (Create, then Seal): the ref exists before its value,
// as a task's result does.
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
	// The walkthrough runs on node 1's store; the cluster section uses all three.
	st := c.nodes[0].Local()
	cfg := st.Config()
	say("# trove demo: Ray's remote objects, on a cluster of %d nodes in this process", len(c.nodes))
	say("each node: its own store of %s shared memory (objects over %s kept there, smaller ones inline), on 127.0.0.1",
		trove.HumanBytes(cfg.Capacity), trove.HumanBytes(cfg.InlineThreshold))
	say("the nodes run Insecure (self-signed TLS that checks no one, unauthenticated gossip): fine for a laptop demo,\n" +
		"never for a real cluster, whose nodes get certificates from `trove cert create-ca` / `create-node` (troved -certs-dir)")
	printNodeMembers(out, c.nodes[0])
	say("the walkthrough below runs on %s (node ID %s); the cluster section after it uses all three", c.nodes[0].Name(), st.Node())

	// --- Single object refs ------------------------------------------------------
	section("Single object refs: put / get")
	y := 1
	objRef, err := trove.PutValue(ctx, st, y)
	if err != nil {
		return err
	}
	result, err := trove.GetValue[int](ctx, st, objRef)
	if err != nil {
		return err
	}
	say("obj_ref = %v", objRef)
	say("result=%d", result)
	if result != y {
		return fmt.Errorf("get returned %d, put %d", result, y)
	}
	objRef.Drop()

	numList := []int{23, 42, 93}
	listRef, err := trove.PutValue(ctx, st, numList)
	if err != nil {
		return err
	}
	gotList, err := trove.GetValue[[]int](ctx, st, listRef)
	if err != nil {
		return err
	}
	say("num_list = %v -> %v -> %v (sum %d)", numList, listRef, gotList, sum(gotList))
	if !slices.Equal(gotList, numList) {
		return fmt.Errorf("list came back as %v", gotList)
	}
	listRef.Drop()

	// --- Multiple object refs ----------------------------------------------------
	section("Multiple object refs: get a list of refs")
	var refs []trove.Ref
	for i := range 3 {
		r, err := trove.PutValue(ctx, st, i)
		if err != nil {
			return err
		}
		refs = append(refs, r)
	}
	var values []int
	for _, r := range refs {
		v, err := trove.GetValue[int](ctx, st, r)
		if err != nil {
			return err
		}
		values = append(values, v)
	}
	say("result=%v", values)
	if !slices.Equal(values, []int{0, 1, 2}) {
		return fmt.Errorf("got %v, want [0 1 2]", values)
	}
	dropAll(refs)

	// --- Timing out --------------------------------------------------------------
	section("Timing out: Get of a value still being produced")
	// A goroutine stands in for Ray's remote task (tasks come with a later layer):
	// the ref exists at once, the value when the goroutine seals it.
	producer := scale(4 * time.Second)
	timeout := scale(2 * time.Second)
	slow, err := remote(ctx, st, 8, func(dst []byte) {
		time.Sleep(producer)
		binary.LittleEndian.PutUint64(dst, 42)
	})
	if err != nil {
		return err
	}
	say("long_running_function takes %v; Get with a %v timeout...", producer, timeout)
	tctx, cancel := context.WithTimeout(ctx, timeout)
	_, err = st.Get(tctx, slow)
	cancel()
	if !errors.Is(err, trove.ErrGetTimeout) {
		return fmt.Errorf("Get past its deadline returned %v, want ErrGetTimeout", err)
	}
	say("`get` timed out. (%v; errors.Is(err, context.DeadlineExceeded) = %v)", err, errors.Is(err, context.DeadlineExceeded))
	obj, err := st.Get(ctx, slow)
	if err != nil {
		return err
	}
	say("without a timeout, Get waits for the value: %d", binary.LittleEndian.Uint64(obj.Bytes()))
	obj.Release()
	slow.Drop()

	// --- Waiting without blocking --------------------------------------------------
	section("Waiting without blocking: Wait on ten values finishing at random times")
	rng := rand.New(rand.NewPCG(42, 42))
	var tasks []trove.Ref
	for range 10 {
		d := scale(time.Duration(100+rng.IntN(1900)) * time.Millisecond)
		v := rng.Float64()
		r, err := remote(ctx, st, 8, func(dst []byte) {
			time.Sleep(d)
			binary.LittleEndian.PutUint64(dst, math.Float64bits(v))
		})
		if err != nil {
			return err
		}
		tasks = append(tasks, r)
	}
	ready, remaining, err := st.Wait(ctx, tasks, 1)
	if err != nil {
		return err
	}
	say("wait(num_returns=1): ready_refs=%v remaining_refs=%d", ready, len(remaining))
	for len(remaining) > 0 {
		var r []trove.Ref
		r, remaining, err = st.Wait(ctx, remaining, 1)
		if err != nil {
			return err
		}
		obj, err := st.Get(ctx, r[0])
		if err != nil {
			return err
		}
		say("  ready: %v = %.4f (%d still running)", r[0], math.Float64frombits(binary.LittleEndian.Uint64(obj.Bytes())), len(remaining))
		obj.Release()
	}
	ready, remaining, err = st.Wait(ctx, tasks, len(tasks))
	if err != nil || len(ready) != 10 || len(remaining) != 0 {
		return fmt.Errorf("wait(num_returns=10): %d ready, %d remaining, %v", len(ready), len(remaining), err)
	}
	say("wait(num_returns=len(object_refs)): %d ready_refs (in input order), remaining_refs=[]", len(ready))
	dropAll(tasks)

	// --- Passing objects by reference ----------------------------------------------
	section("Passing objects: refs nested in other objects")
	x := make([]int, 20)
	for i := range x {
		x[i] = i
	}
	objRefX, err := trove.PutValue(ctx, st, x)
	if err != nil {
		return err
	}
	asDict, err := trove.PutValue(ctx, st, map[string]trove.Ref{"obj": objRefX})
	if err != nil {
		return err
	}
	asList, err := trove.PutValue(ctx, st, []trove.Ref{objRefX})
	if err != nil {
		return err
	}
	objRefX.Drop() // the containers keep x alive
	say("put x=%v, then {\"obj\": ref} and [ref]; dropped our own ref to x", x[:5])
	dict, err := trove.GetValue[map[string]trove.Ref](ctx, st, asDict)
	if err != nil {
		return err
	}
	inner, err := trove.GetValue[[]int](ctx, st, dict["obj"])
	if err != nil {
		return err
	}
	say("echo({\"obj\": obj_ref_x}) sees a ref: %v; getting it gives %v...", dict["obj"], inner[:5])
	if !slices.Equal(inner, x) {
		return fmt.Errorf("nested value came back as %v", inner)
	}
	dict["obj"].Drop()
	asDict.Drop()
	list, err := trove.GetValue[[]trove.Ref](ctx, st, asList)
	if err != nil {
		return err
	}
	say("echo([obj_ref_x]) sees %v; the object lives while any container holds it", list)
	dropAll(list)
	asList.Drop()
	if n := st.Stats().Objects; n != 0 {
		return fmt.Errorf("%d objects left after dropping the containers", n)
	}
	say("containers dropped: x is freed too (objects in store: 0)")

	// --- Tensors -------------------------------------------------------------------
	section("Example: 100 random tensors of shape ((i+1)*25, 50), put, get, transform, sum")
	if err := tensorExample(ctx, st, say); err != nil {
		return err
	}

	// --- Spilling ------------------------------------------------------------------
	section("Object spilling: putting three times the store's capacity")
	if err := spillExample(ctx, st, say); err != nil {
		return err
	}

	// --- Immutability --------------------------------------------------------------
	section("Objects are immutable: a view is mapped read-only")
	big := make([]byte, 1<<20)
	for i := range big {
		big[i] = "trove"[i%5]
	}
	bigRef, err := st.Put(ctx, big)
	if err != nil {
		return err
	}
	view, err := st.Get(ctx, bigRef)
	if err != nil {
		return err
	}
	old := debug.SetPanicOnFault(true)
	faultErr := func() (err error) {
		defer func() {
			if r := recover(); r != nil {
				err = fmt.Errorf("%v", r)
				if f, ok := r.(interface{ Addr() uintptr }); ok {
					err = fmt.Errorf("fault writing address %#x, which is mapped read-only (%v)", f.Addr(), r)
				}
			}
		}()
		view.Bytes()[4096] = 'X'
		return nil
	}()
	debug.SetPanicOnFault(old)
	if faultErr == nil {
		return fmt.Errorf("writing into a view of a 1 MiB object did not fault")
	}
	say("writing into a view of a %s object: %v", trove.HumanBytes(int64(view.Size())), faultErr)
	say("the object is unchanged: %v (like numpy's \"assignment destination is read-only\")", bytes.Equal(view.Bytes(), big))
	view.Release()
	bigRef.Drop()

	// --- The cluster -----------------------------------------------------------------
	section(fmt.Sprintf("Across the cluster: put on one node, get on another (%d nodes)", len(c.nodes)))
	if err := clusterExample(ctx, c, say, scale, opt.quick, opt.capacity); err != nil {
		return err
	}

	// --- Stats ---------------------------------------------------------------------
	section("Store statistics on every node (every ref dropped, every view released)")
	if err := c.waitDrained(ctx); err != nil {
		return err
	}
	for _, n := range c.nodes {
		s := n.Local().Stats()
		say("%s: objects=%d bytes=%s pinned=%d views=%d arena used=%s of %s (populated %s) puts=%d gets=%d fetches=%d frees=%d",
			n.Name(), s.Objects, trove.HumanBytes(s.ObjectBytes), s.PinnedObjects, s.Views, trove.HumanBytes(s.Used),
			trove.HumanBytes(s.Capacity), trove.HumanBytes(s.Populated), s.Puts, s.Gets, s.Fetches, s.Frees)
		if err := n.Local().Check(); err != nil {
			return fmt.Errorf("%s: %w", n.Name(), err)
		}
	}
	say("members as %s sees them (the used figures are gossiped, so they lag the stores above):", c.nodes[0].Name())
	printNodeMembers(out, c.nodes[0])
	say("\nall freed; demo finished in %v", time.Since(start).Round(time.Millisecond))
	return nil
}

// remote stands in for a Ray remote task: it returns a ref at once, and a goroutine
// fills in the value of size bytes later.
func remote(ctx context.Context, st *engine.Store, size int, f func(dst []byte)) (trove.Ref, error) {
	b, err := st.Create(ctx, size)
	if err != nil {
		return trove.Ref{}, err
	}
	go func() {
		f(b.Bytes())
		_ = b.Seal()
	}()
	return b.Ref(), nil
}

func tensorExample(ctx context.Context, st *engine.Store, say func(string, ...any)) error {
	rng := rand.New(rand.NewPCG(42, 0)) // torch.manual_seed(42)
	createRandTensor := func(rows, cols int) (zerocopy.Tensor, error) {
		data := make([]float32, rows*cols)
		for i := range data {
			data[i] = float32(rng.NormFloat64())
		}
		return zerocopy.NewTensor([]int{rows, cols}, data)
	}
	var tensorRefs []trove.Ref
	var wantSum float64
	for i := range 100 {
		t, err := createRandTensor((i+1)*25, 50)
		if err != nil {
			return err
		}
		r, err := trove.PutValue(ctx, st, t)
		if err != nil {
			return err
		}
		tensorRefs = append(tensorRefs, r)
	}
	s := st.Stats()
	say("tensor_list_obj_ref[:2] = %v, len %d; %d in shared memory, %d inline (small)",
		tensorRefs[:2], len(tensorRefs), s.Objects-s.InlineObjects, s.InlineObjects)

	// val = ray.get(tensor_list_obj_ref[0]): zero-copy, read-only.
	val, obj, err := trove.ViewValue[zerocopy.Tensor](ctx, st, tensorRefs[0])
	if err != nil {
		return err
	}
	v0, err := zerocopy.TensorValues[float32](val)
	if err != nil {
		return err
	}
	inside := uintptr(unsafe.Pointer(&v0[0])) >= uintptr(unsafe.Pointer(&obj.Bytes()[0])) &&
		uintptr(unsafe.Pointer(&v0[0])) < uintptr(unsafe.Pointer(&obj.Bytes()[0]))+uintptr(obj.Size())
	say("val.size() = %v, val[0][:4] = %.4f; zero-copy view of the stored bytes: %v", val.Shape(), v0[:4], inside)
	obj.Release()
	if !inside {
		return fmt.Errorf("tensor view is not inside the object's memory")
	}

	// results = ray.get(tensor_list_obj_ref); transform each; put the results.
	var transformed []trove.Ref
	for _, r := range tensorRefs {
		t, obj, err := trove.ViewValue[zerocopy.Tensor](ctx, st, r)
		if err != nil {
			return err
		}
		in, err := zerocopy.TensorValues[float32](t)
		if err != nil {
			obj.Release()
			return err
		}
		factor := float32(2 + rng.IntN(9)) // torch.mul(tensor, random.randint(2, 10))
		outData := make([]float32, len(in))
		for i, v := range in {
			outData[i] = v * factor
			wantSum += float64(v) * float64(factor)
		}
		obj.Release()
		out, err := zerocopy.NewTensor(t.Shape(), outData)
		if err != nil {
			return err
		}
		tr, err := trove.PutValue(ctx, st, out)
		if err != nil {
			return err
		}
		transformed = append(transformed, tr)
	}
	say("transformed_object_list[:2] = %v", transformed[:2])

	// Sum every transformed tensor, reading them in place.
	var total float64
	var elems int
	objs, err := st.GetAll(ctx, transformed)
	if err != nil {
		return err
	}
	for i, o := range objs {
		o.Release()
		t, obj, err := trove.ViewValue[zerocopy.Tensor](ctx, st, transformed[i])
		if err != nil {
			return err
		}
		vals, err := zerocopy.TensorValues[float32](t)
		if err != nil {
			obj.Release()
			return err
		}
		for _, v := range vals {
			total += float64(v)
		}
		elems += len(vals)
		obj.Release()
	}
	say("sum over %d transformed tensors (%d elements): %.3f (computed while transforming: %.3f)",
		len(transformed), elems, total, wantSum)
	if math.Abs(total-wantSum) > 1e-6*math.Max(1, math.Abs(wantSum))+1e-3 {
		return fmt.Errorf("sum of stored tensors %.6f differs from %.6f", total, wantSum)
	}
	s = st.Stats()
	say("store now holds %d objects, %s (arena %s used)", s.Objects, trove.HumanBytes(s.ObjectBytes), trove.HumanBytes(s.Used))
	dropAll(tensorRefs)
	dropAll(transformed)
	return nil
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

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"strings"
	"time"
	"unsafe"

	"github.com/trovedb/trove"
	"github.com/trovedb/trove/internal/localcluster"
	"github.com/trovedb/trove/task"
	"github.com/trovedb/trove/zerocopy"
)

// unit is the tutorial's second, scaled: its 10 s task and 6 s timeout are
// 2.5 s and 1.5 s here. The test shortens it.
var unit = time.Second / 4

var (
	// @ray.remote
	// def transform_rand_tensor(tensor: torch.tensor) -> torch.tensor:
	//     return torch.mul(tensor, random.randint(2, 10))
	//
	// The argument is read in place when it is larger than the store's inline
	// threshold (100 KiB), so the product goes into a new tensor, as torch.mul
	// returns one.
	transformRandTensor = task.Define1("transform_rand_tensor", func(ctx context.Context, t zerocopy.Tensor) (zerocopy.Tensor, error) {
		in, err := zerocopy.TensorValues[float32](t)
		if err != nil {
			return zerocopy.Tensor{}, err
		}
		k := float32(2 + rand.IntN(9)) // random.randint(2, 10), both ends included
		out := make([]float32, len(in))
		for i, v := range in {
			out[i] = v * k
		}
		return zerocopy.NewTensor(t.Shape(), out)
	})

	// @ray.remote
	// def echo(x):
	//     print(f"current value of argument x: {x}")
	//
	// Ray forwards a task's stdout to the driver as "(echo pid=…) …"; this echo
	// returns its line, and the driver prints it with the node it ran on. x is
	// any value: what PutValue stored, decoded as Go's CBOR decoding of an
	// interface does (refs inside come back as refs).
	echo = task.Define1("echo", func(ctx context.Context, x any) (string, error) {
		defer dropRefsIn(x)
		return fmt.Sprintf("(echo on %s) current value of argument x: %v", task.FromContext(ctx).Node().Name(), x), nil
	})

	// @ray.remote
	// def f(arr):
	//     # arr = arr.copy()  # Adding a copy will fix the error.
	//     arr[0] = 1
	f = task.Define1("f", func(ctx context.Context, arr []float64) (struct{}, error) {
		arr[0] = 1 // arr aliases the store's read-only memory: this faults
		return struct{}{}, nil
	})
	fWithCopy = task.Define1("f_with_copy", func(ctx context.Context, arr []float64) (float64, error) {
		arr = append([]float64(nil), arr...) // arr = arr.copy()
		arr[0] = 1
		return arr[0], nil
	})

	// @ray.remote
	// def long_running_function():
	//     time.sleep(10)
	//     return 42
	longRunningFunction = task.Define0("long_running_function", func(ctx context.Context) (int, error) {
		select {
		case <-time.After(10 * unit):
			return 42, nil
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	})
)

// dropRefsIn drops the refs a decoded any holds at its top level (in a list
// or a map): the function is done with them.
func dropRefsIn(x any) {
	drop := func(v any) {
		if r, ok := v.(trove.Ref); ok {
			r.Drop()
		}
	}
	switch x := x.(type) {
	case []any:
		for _, v := range x {
			drop(v)
		}
	case map[any]any:
		for _, v := range x {
			drop(v)
		}
	}
}

func main() {
	if err := run(context.Background(), os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "tensors:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, w io.Writer) (err error) {
	say := func(format string, args ...any) { fmt.Fprintf(w, format+"\n", args...) }
	c, err := localcluster.Open(ctx, localcluster.Config{Log: os.Stderr})
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, c.Close()) }()
	rts, err := c.StartTasks(nil)
	if err != nil {
		return err
	}
	rt := rts[0]
	if err := tensorSteps(ctx, rt, say); err != nil {
		return err
	}
	if err := passingSteps(ctx, rt, say); err != nil {
		return err
	}
	if err := readOnlySteps(ctx, rt, say); err != nil {
		return err
	}

	// ## Long-Running Tasks
	//
	// obj_ref = long_running_function.remote()
	// try:
	//     ray.get(obj_ref, timeout=6)
	// except GetTimeoutError:
	//     print("`get` timed out")
	slow, err := longRunningFunction.Remote(ctx, rt)
	if err != nil {
		return err
	}
	defer slow.Drop()
	tctx, cancel := context.WithTimeout(ctx, 6*unit)
	_, err = rt.Get(tctx, slow)
	cancel()
	if !errors.Is(err, trove.ErrGetTimeout) {
		return fmt.Errorf("Get of a running call past its deadline: %v, want ErrGetTimeout", err)
	}
	say("`get` timed out")
	v, err := trove.GetValue[int](ctx, rt, slow)
	if err != nil {
		return err
	}
	say("without a timeout, Get waits for it: %d", v)
	slow.Drop()

	if err := c.WaitDrained(ctx); err != nil {
		return err
	}
	say("all refs dropped: every node's store is empty")
	return nil
}

// tensorSteps: create, put, fetch and transform 100 tensors.
func tensorSteps(ctx context.Context, rt *task.Runtime, say func(string, ...any)) error {
	// torch.manual_seed(42)
	// def create_rand_tensor(size: Tuple[int, int]) -> torch.tensor:
	//     return torch.randn(size=(size), dtype=torch.float)
	rng := rand.New(rand.NewPCG(42, 0))
	createRandTensor := func(rows, cols int) ([]float32, zerocopy.Tensor, error) {
		data := make([]float32, rows*cols)
		for i := range data {
			data[i] = float32(rng.NormFloat64())
		}
		t, err := zerocopy.NewTensor([]int{rows, cols}, data)
		return data, t, err
	}

	// # Create a tensor of shape (X, 50)
	// tensor_list_obj_ref = [ray.put(create_rand_tensor(((i+1)*25, 50))) for i in range(0, 100)]
	// tensor_list_obj_ref[:2], len(tensor_list_obj_ref)
	var tensorListObjRef []trove.Ref
	defer func() { dropAll(tensorListObjRef) }()
	originals := make([][]float32, 100)
	for i := range 100 {
		data, t, err := createRandTensor((i+1)*25, 50)
		if err != nil {
			return err
		}
		r, err := trove.PutValue(ctx, rt, t)
		if err != nil {
			return err
		}
		originals[i] = data
		tensorListObjRef = append(tensorListObjRef, r)
	}
	say("tensor_list_obj_ref[:2], len(tensor_list_obj_ref) = %v, %d", tensorListObjRef[:2], len(tensorListObjRef))

	// val = ray.get(tensor_list_obj_ref[0])
	// val.size()  ->  torch.Size([25, 50])
	//
	// ViewValue reads it in place: the tensor's data is the store's memory.
	val, obj, err := trove.ViewValue[zerocopy.Tensor](ctx, rt, tensorListObjRef[0])
	if err != nil {
		return err
	}
	inPlace := within(val.Data(), obj.Bytes())
	say("val.size() = torch.Size(%v), read in place: %v", val.Shape(), inPlace)
	obj.Release()
	if !inPlace {
		return fmt.Errorf("the tensor's data is not inside the object's memory")
	}

	// results = ray.get(tensor_list_obj_ref)
	objs, err := rt.GetAll(ctx, tensorListObjRef)
	if err != nil {
		return err
	}
	var total int
	for _, o := range objs {
		total += o.Size()
		o.Release()
	}
	say("results = ray.get(tensor_list_obj_ref): %d tensors, %s", len(objs), trove.HumanBytes(int64(total)))

	// transformed_object_list = [transform_rand_tensor.remote(t_obj_ref) for t_obj_ref in tensor_list_obj_ref]
	//
	// The calls are made at once and run in parallel, on every node's slots.
	var transformed []trove.Ref
	defer func() { dropAll(transformed) }()
	for _, r := range tensorListObjRef {
		tr, err := transformRandTensor.Remote(ctx, rt, task.Ref[zerocopy.Tensor](r))
		if err != nil {
			return err
		}
		transformed = append(transformed, tr)
	}
	say("transformed_object_list[:2] = %v", transformed[:2])

	// transformed_tensor_values = ray.get(transformed_object_list)
	//
	// Each is checked: the original tensor times one integer from 2 to 10.
	objs, err = rt.GetAll(ctx, transformed)
	if err != nil {
		return err
	}
	for _, o := range objs {
		o.Release()
	}
	factors := map[int]int{}
	for i, r := range transformed {
		t, obj, err := trove.ViewValue[zerocopy.Tensor](ctx, rt, r)
		if err != nil {
			return err
		}
		k, err := factorOf(t, originals[i], (i+1)*25)
		obj.Release()
		if err != nil {
			return fmt.Errorf("transformed tensor %d: %w", i, err)
		}
		factors[k]++
	}
	say("transformed_tensor_values = ray.get(transformed_object_list): %d tensors, each the original times an integer in [2, 10] (%d distinct factors)",
		len(transformed), len(factors))
	return nil
}

// factorOf checks that t, of shape (rows, 50), is orig times an integer k in
// [2, 10], and returns k.
func factorOf(t zerocopy.Tensor, orig []float32, rows int) (int, error) {
	if s := t.Shape(); len(s) != 2 || s[0] != rows || s[1] != 50 {
		return 0, fmt.Errorf("shape %v, want [%d 50]", s, rows)
	}
	vals, err := zerocopy.TensorValues[float32](t)
	if err != nil {
		return 0, err
	}
	for k := 2; k <= 10; k++ {
		ok := true
		for i, v := range orig {
			if vals[i] != v*float32(k) {
				ok = false
				break
			}
		}
		if ok {
			return k, nil
		}
	}
	return 0, fmt.Errorf("not the original times an integer from 2 to 10 (first elements %v, originally %v)", vals[:3], orig[:3])
}

// passingSteps: passing objects by value and by reference.
func passingSteps(ctx context.Context, rt *task.Runtime, say func(string, ...any)) error {
	// x = list(range(10))
	// obj_ref_x = ray.put(x)
	// y = 25
	x := make([]int, 10)
	for i := range x {
		x[i] = i
	}
	objRefX, err := trove.PutValue(ctx, rt, x)
	if err != nil {
		return err
	}
	defer objRefX.Drop()
	y := 25

	// ### Pass by value
	//
	// # send y as value argument
	// echo.remote(y)
	// # send an object ref: echo sees its value
	// echo.remote(obj_ref_x)
	for _, arg := range []task.Arg[any]{task.Val[any](y), task.Ref[any](objRefX)} {
		if err := show(ctx, rt, say, echo, arg); err != nil {
			return err
		}
	}
	objRefX.Drop()

	// ### Pass by reference
	//
	// x = list(range(20))
	// obj_ref_x = ray.put(x)
	// # Echo will not automaticall de-reference it
	// echo.remote({"obj": obj_ref_x})
	// echo.remote([obj_ref_x])
	x = make([]int, 20)
	for i := range x {
		x[i] = i
	}
	objRefX, err = trove.PutValue(ctx, rt, x)
	if err != nil {
		return err
	}
	defer objRefX.Drop()
	for _, arg := range []task.Arg[any]{task.Val[any](map[string]trove.Ref{"obj": objRefX}), task.Val[any]([]trove.Ref{objRefX})} {
		if err := show(ctx, rt, say, echo, arg); err != nil {
			return err
		}
	}
	return nil
}

// readOnlySteps: the seed's "Fixing 'assignment destination is read-only'".
func readOnlySteps(ctx context.Context, rt *task.Runtime, say func(string, ...any)) error {
	// ray.get(f.remote(np.zeros(100)))
	//
	// 128 Ki float64s (1 MiB): larger than the inline threshold, so stored once
	// in shared memory and handed to f in place, mapped read-only.
	arr := make([]float64, 128<<10)
	arrRef, err := trove.PutValue(ctx, rt, arr)
	if err != nil {
		return err
	}
	defer arrRef.Drop()
	r, err := f.Remote(ctx, rt, task.Ref[[]float64](arrRef))
	if err != nil {
		return err
	}
	_, err = trove.GetValue[struct{}](ctx, rt, r)
	r.Drop()
	var te *task.TaskError
	var pe *task.PanicError
	if !errors.Is(err, task.ErrTaskFailed) || !errors.As(err, &te) || !errors.As(err, &pe) {
		return fmt.Errorf("f writing into its read-only argument: %v, want a TaskError with the fault", err)
	}
	// Go reports a write to a read-only page, under debug.SetPanicOnFault (which
	// the runtime sets while a function runs), as a nil-or-invalid address.
	say("except ray.exceptions.RayTaskError as e: task %s failed on %s: %s (a write into memory mapped read-only)",
		te.Func, te.Node, firstLine(pe.Value))

	// # arr = arr.copy()  # Adding a copy will fix the error.
	r, err = fWithCopy.Remote(ctx, rt, task.Ref[[]float64](arrRef))
	if err != nil {
		return err
	}
	v, err := trove.GetValue[float64](ctx, rt, r)
	r.Drop()
	if err != nil {
		return err
	}
	stored, err := trove.GetValue[[]float64](ctx, rt, arrRef)
	if err != nil {
		return err
	}
	if v != 1 || stored[0] != 0 {
		return fmt.Errorf("after f_with_copy: its arr[0] = %v, the stored arr[0] = %v; want 1 and 0", v, stored[0])
	}
	say("with arr = arr.copy(): arr[0] = %v, and the stored array is unchanged (arr[0] = %v)", v, stored[0])
	return nil
}

// show makes a call of fn with arg and prints what the function printed.
func show(ctx context.Context, rt *task.Runtime, say func(string, ...any), fn *task.Func1[any, string], arg task.Arg[any]) error {
	r, err := fn.Remote(ctx, rt, arg)
	if err != nil {
		return err
	}
	defer r.Drop()
	s, err := trove.GetValue[string](ctx, rt, r)
	if err != nil {
		return err
	}
	say("%s", s)
	return nil
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
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

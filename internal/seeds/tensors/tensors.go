package tensors

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"unsafe"

	"github.com/trovedb/trove"
	"github.com/trovedb/trove/internal/seeds"
	"github.com/trovedb/trove/task"
	"github.com/trovedb/trove/zerocopy"
)

var (
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
)

// Tensors creates, puts, fetches and transforms 100 tensors:
//
//	torch.manual_seed(42)
//	def create_rand_tensor(size: Tuple[int, int]) -> torch.tensor:
//	    return torch.randn(size=(size), dtype=torch.float)
//
//	# Create a tensor of shape (X, 50)
//	tensor_list_obj_ref = [ray.put(create_rand_tensor(((i+1)*25, 50))) for i in range(0, 100)]
//	tensor_list_obj_ref[:2], len(tensor_list_obj_ref)
//	val = ray.get(tensor_list_obj_ref[0])
//	val.size()
//	results = ray.get(tensor_list_obj_ref)
//	transformed_object_list = [transform_rand_tensor.remote(t_obj_ref) for t_obj_ref in tensor_list_obj_ref]
//	transformed_object_list[:2]
//	transformed_tensor_values = ray.get(transformed_object_list)
//
// (transform_rand_tensor is seeds.TransformRandTensor.) Every transformed
// tensor is checked: its original times one integer from 2 to 10.
func Tensors(ctx context.Context, d *seeds.Driver) error {
	rng := rand.New(rand.NewPCG(42, 0)) // torch.manual_seed(42)
	createRandTensor := func(rows, cols int) ([]float32, zerocopy.Tensor, error) {
		data := make([]float32, rows*cols)
		for i := range data {
			data[i] = float32(rng.NormFloat64())
		}
		t, err := zerocopy.NewTensor([]int{rows, cols}, data)
		return data, t, err
	}

	var tensorListObjRef, transformed []trove.Ref
	defer func() {
		seeds.DropAll(tensorListObjRef)
		seeds.DropAll(transformed)
	}()
	originals := make([][]float32, 100)
	for i := range 100 {
		data, t, err := createRandTensor((i+1)*25, 50)
		if err != nil {
			return err
		}
		r, err := trove.PutValue(ctx, d.RT, t)
		if err != nil {
			return err
		}
		originals[i] = data
		tensorListObjRef = append(tensorListObjRef, r)
	}
	d.Say("tensor_list_obj_ref[:2], len(tensor_list_obj_ref) = %v, %d", tensorListObjRef[:2], len(tensorListObjRef))

	// val = ray.get(tensor_list_obj_ref[0]); val.size(): ViewValue reads it in
	// place, the tensor's data is the store's memory.
	val, obj, err := trove.ViewValue[zerocopy.Tensor](ctx, d.RT, tensorListObjRef[0])
	if err != nil {
		return err
	}
	v0, err := zerocopy.TensorValues[float32](val)
	inPlace := within(val.Data(), obj.Bytes())
	obj.Release()
	if err != nil {
		return err
	}
	d.Say("val.size() = torch.Size(%v), val[0][:3] = %.4f, read in place: %v", val.Shape(), v0[:3], inPlace)
	if !inPlace {
		return fmt.Errorf("the tensor's data is not inside the object's memory")
	}

	// results = ray.get(tensor_list_obj_ref)
	objs, err := d.RT.GetAll(ctx, tensorListObjRef)
	if err != nil {
		return err
	}
	var total int
	for _, o := range objs {
		total += o.Size()
		o.Release()
	}
	d.Say("results = ray.get(tensor_list_obj_ref): %d tensors, %s", len(objs), trove.HumanBytes(int64(total)))

	// transformed_object_list = [transform_rand_tensor.remote(t_obj_ref) ...]:
	// the calls are made at once and run in parallel, on every node's slots.
	for _, r := range tensorListObjRef {
		tr, err := seeds.TransformRandTensor.Remote(ctx, d.RT, task.Ref[zerocopy.Tensor](r))
		if err != nil {
			return err
		}
		transformed = append(transformed, tr)
	}
	d.Say("transformed_object_list[:2] = %v", transformed[:2])

	// transformed_tensor_values = ray.get(transformed_object_list)
	objs, err = d.RT.GetAll(ctx, transformed)
	if err != nil {
		return err
	}
	for _, o := range objs {
		o.Release()
	}
	factors := map[int]int{}
	elems := 0
	for i, r := range transformed {
		t, obj, err := trove.ViewValue[zerocopy.Tensor](ctx, d.RT, r)
		if err != nil {
			return err
		}
		k, err := factorOf(t, originals[i], (i+1)*25)
		obj.Release()
		if err != nil {
			return fmt.Errorf("transformed tensor %d: %w", i, err)
		}
		factors[k]++
		elems += len(originals[i])
	}
	d.Say("transformed_tensor_values = ray.get(transformed_object_list): %d tensors (%d elements), each the original times an integer in [2, 10] (%d distinct factors)",
		len(transformed), elems, len(factors))
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
	if len(vals) != len(orig) {
		return 0, fmt.Errorf("%d elements, want %d", len(vals), len(orig))
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

// within reports whether inner lies inside outer's memory.
func within(inner, outer []byte) bool {
	if len(inner) == 0 || len(outer) == 0 {
		return false
	}
	i, o := uintptr(unsafe.Pointer(unsafe.SliceData(inner))), uintptr(unsafe.Pointer(unsafe.SliceData(outer)))
	return i >= o && i+uintptr(len(inner)) <= o+uintptr(len(outer))
}

// PassByValue is "Pass by value": top-level arguments are resolved before
// the call, so echo sees values both times.
//
//	x = list(range(10))
//	obj_ref_x = ray.put(x)
//	y = 25
//	# send y as value argument
//	echo.remote(y)
//	# send an object ref: echo sees its value
//	echo.remote(obj_ref_x)
func PassByValue(ctx context.Context, d *seeds.Driver) error {
	objRefX, err := trove.PutValue(ctx, d.RT, rangeInts(10))
	if err != nil {
		return err
	}
	defer objRefX.Drop()
	y := 25
	return echoEach(ctx, d, task.Val[any](y), task.Ref[any](objRefX))
}

// PassByReference is "Pass by reference": refs inside a value arrive as refs.
//
//	x = list(range(20))
//	obj_ref_x = ray.put(x)
//	# Echo will not automatically de-reference it
//	echo.remote({"obj": obj_ref_x})
//	echo.remote([obj_ref_x])
func PassByReference(ctx context.Context, d *seeds.Driver) error {
	objRefX, err := trove.PutValue(ctx, d.RT, rangeInts(20))
	if err != nil {
		return err
	}
	defer objRefX.Drop()
	return echoEach(ctx, d, task.Val[any](map[string]trove.Ref{"obj": objRefX}), task.Val[any]([]trove.Ref{objRefX}))
}

// echoEach calls echo once with each argument, in turn, printing what it
// printed.
func echoEach(ctx context.Context, d *seeds.Driver, args ...task.Arg[any]) error {
	for _, arg := range args {
		if err := seeds.Show(ctx, d, func() (trove.Ref, error) { return seeds.Echo.Remote(ctx, d.RT, arg) }); err != nil {
			return err
		}
	}
	return nil
}

// rangeInts is list(range(n)).
func rangeInts(n int) []int {
	x := make([]int, n)
	for i := range x {
		x[i] = i
	}
	return x
}

// ReadOnly is "Fixing 'assignment destination is read-only'":
//
//	ray.get(f.remote(np.zeros(100)))
//
// fails with a RayTaskError, as f writes into its argument, which Ray maps
// read-only; arr = arr.copy() fixes it. Here the array is 128 Ki float64s
// (1 MiB), larger than the inline threshold, so stored once in shared memory
// and handed to f in place, mapped read-only: the write faults, and Get of
// f's result fails with task.ErrTaskFailed wrapping the fault. The stored
// array is unchanged.
func ReadOnly(ctx context.Context, d *seeds.Driver) error {
	arrRef, err := trove.PutValue(ctx, d.RT, make([]float64, 128<<10))
	if err != nil {
		return err
	}
	defer arrRef.Drop()
	r, err := f.Remote(ctx, d.RT, task.Ref[[]float64](arrRef))
	if err != nil {
		return err
	}
	_, err = trove.GetValue[struct{}](ctx, d.RT, r)
	r.Drop()
	var te *task.TaskError
	var pe *task.PanicError
	if !errors.Is(err, task.ErrTaskFailed) || !errors.As(err, &te) || !errors.As(err, &pe) {
		return fmt.Errorf("f writing into its read-only argument: %v, want a TaskError with the fault", err)
	}
	// Go reports a write to a read-only page, under debug.SetPanicOnFault (which
	// the runtime sets while a function runs), as a nil-or-invalid address.
	line, _, _ := strings.Cut(pe.Value, "\n")
	d.Say("except ray.exceptions.RayTaskError as e: task %s failed on %s: %s (a write into memory mapped read-only)",
		te.Func, te.Node, line)
	d.Say("errors.Is(err, task.ErrTaskFailed) = true")

	// # arr = arr.copy()  # Adding a copy will fix the error.
	r, err = fWithCopy.Remote(ctx, d.RT, task.Ref[[]float64](arrRef))
	if err != nil {
		return err
	}
	v, err := trove.GetValue[float64](ctx, d.RT, r)
	r.Drop()
	if err != nil {
		return err
	}
	stored, err := trove.GetValue[[]float64](ctx, d.RT, arrRef)
	if err != nil {
		return err
	}
	if v != 1 || stored[0] != 0 {
		return fmt.Errorf("after f_with_copy: its arr[0] = %v, the stored arr[0] = %v; want 1 and 0", v, stored[0])
	}
	d.Say("with arr = arr.copy(): arr[0] = %v, and the stored array is unchanged (arr[0] = %v)", v, stored[0])
	return nil
}

// LongRunning is "Long-Running Tasks":
//
//	@ray.remote
//	def long_running_function():
//	    time.sleep(10)
//	    return 42
//
//	obj_ref = long_running_function.remote()
//	try:
//	    ray.get(obj_ref, timeout=6)
//	except GetTimeoutError:
//	    print("`get` timed out")
func LongRunning(ctx context.Context, d *seeds.Driver) error {
	objRef, err := seeds.TimedOutCall(ctx, d, d.Seconds(10), d.Seconds(6))
	if err != nil {
		return err
	}
	defer objRef.Drop()
	d.Say("`get` timed out")
	// Not in the seed: without a timeout, Get waits for the value.
	v, err := trove.GetValue[int](ctx, d.RT, objRef)
	if err != nil {
		return err
	}
	if v != 42 {
		return fmt.Errorf("long_running_function returned %d, want 42", v)
	}
	d.Say("without a timeout, Get waits for it: %d", v)
	return nil
}

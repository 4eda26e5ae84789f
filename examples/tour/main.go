package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"slices"
	"time"

	"github.com/trovedb/trove"
	"github.com/trovedb/trove/internal/localcluster"
	"github.com/trovedb/trove/task"
	"github.com/trovedb/trove/zerocopy"
)

// unit is the tour's second. The test shortens it.
var unit = time.Second / 4

var (
	// @ray.remote
	// def my_function (num_list):
	//     return sum(num_list)
	myFunction = task.Define1("my_function", func(ctx context.Context, numList []int) (int, error) {
		s := 0
		for _, n := range numList {
			s += n
		}
		return s, nil
	})

	// @ray.remote
	// def long_running_function ():
	//     time.sleep(10)
	//     return 42
	//
	// (the Chinese edition's long_running_task is the same function)
	longRunningFunction = task.Define0("long_running_function", func(ctx context.Context) (int, error) {
		select {
		case <-time.After(10 * unit):
			return 42, nil
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	})

	// @ray.remote
	// def transform_rand_tensor(tensor: torch.tensor) -> torch.tensor:
	//     return torch.mul(tensor, random.randint(2, 10))
	transformRandTensor = task.Define1("transform_rand_tensor", func(ctx context.Context, t zerocopy.Tensor) (zerocopy.Tensor, error) {
		in, err := zerocopy.TensorValues[float32](t)
		if err != nil {
			return zerocopy.Tensor{}, err
		}
		k := float32(2 + rand.IntN(9))
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
	// Ray shows a task's stdout on the driver; this echo returns its line and
	// the driver prints it, with the node the call ran on.
	echo = task.Define1("echo", func(ctx context.Context, x any) (string, error) {
		defer dropRefsIn(x)
		return fmt.Sprintf("(echo on %s) current value of argument x: %v", task.FromContext(ctx).Node().Name(), x), nil
	})
)

// dropRefsIn drops the refs a decoded any holds at its top level.
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
		fmt.Fprintln(os.Stderr, "tour:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, w io.Writer) (err error) {
	say := func(format string, args ...any) { fmt.Fprintf(w, format+"\n", args...) }
	wall := func(t0 time.Time) { say("Wall time: %v", time.Since(t0).Round(time.Microsecond)) }

	// ray.init(ignore_reinit_error=True, logging_level=logging.ERROR)
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
	say("# A Guided Tour of Ray Core: Remote Objects")

	// ## Remote Objects example
	//
	// %%time
	// num_list = [ 23, 42, 93 ]
	// obj_ref = ray.put(num_list)
	// obj_ref
	t0 := time.Now()
	numList := []int{23, 42, 93}
	objRef, err := trove.PutValue(ctx, rt, numList)
	if err != nil {
		return err
	}
	defer objRef.Drop()
	say("obj_ref = %v", objRef)
	wall(t0)

	// %%time
	// ray.get(obj_ref)
	t0 = time.Now()
	got, err := trove.GetValue[[]int](ctx, rt, objRef)
	if err != nil {
		return err
	}
	say("ray.get(obj_ref) = %v", got)
	wall(t0)
	if !slices.Equal(got, numList) {
		return fmt.Errorf("got %v, put %v", got, numList)
	}

	// %%time
	// calc_ref = my_function.remote(obj_ref)
	//
	// Composable futures: the call's argument is a ref, resolved before
	// my_function runs; its result is a ref at once.
	t0 = time.Now()
	calcRef, err := myFunction.Remote(ctx, rt, task.Ref[[]int](objRef))
	if err != nil {
		return err
	}
	defer calcRef.Drop()
	say("calc_ref = my_function.remote(obj_ref) = %v", calcRef)
	wall(t0)

	// %%time
	// ray.get(calc_ref)
	t0 = time.Now()
	sum, err := trove.GetValue[int](ctx, rt, calcRef)
	if err != nil {
		return err
	}
	say("ray.get(calc_ref) = %d", sum)
	wall(t0)
	if sum != 23+42+93 {
		return fmt.Errorf("my_function returned %d, want %d", sum, 23+42+93)
	}
	calcRef.Drop()
	objRef.Drop()

	// %%time
	// ray.get([ray.put(i) for i in range(3)])
	t0 = time.Now()
	var refs []trove.Ref
	for i := range 3 {
		r, err := trove.PutValue(ctx, rt, i)
		if err != nil {
			dropAll(refs)
			return err
		}
		refs = append(refs, r)
	}
	values, err := getValues[int](ctx, rt, refs)
	dropAll(refs)
	if err != nil {
		return err
	}
	say("ray.get([ray.put(i) for i in range(3)]) = %v", values)
	wall(t0)
	if !slices.Equal(values, []int{0, 1, 2}) {
		return fmt.Errorf("got %v, want [0 1 2]", values)
	}

	// %%time
	// obj_ref = long_running_function.remote()
	// try:
	//     ray.get(obj_ref, timeout=6)
	// except GetTimeoutError:
	//     print("`get` timed out")
	t0 = time.Now()
	if err := timeout(ctx, rt, say); err != nil {
		return err
	}
	wall(t0)

	// ray.shutdown(): the deferred Close, once the Chinese edition has run too.
	say("\n# A Guided Tour of Ray Core: Remote Objects (中文版)")
	if err := chineseEdition(ctx, rt, say); err != nil {
		return err
	}
	if err := c.WaitDrained(ctx); err != nil {
		return err
	}
	say("all refs dropped: every node's store is empty")
	return nil
}

// timeout is the long-running cell of both editions.
func timeout(ctx context.Context, rt *task.Runtime, say func(string, ...any)) error {
	objRef, err := longRunningFunction.Remote(ctx, rt)
	if err != nil {
		return err
	}
	defer objRef.Drop()
	tctx, cancel := context.WithTimeout(ctx, 6*unit)
	_, err = rt.Get(tctx, objRef)
	cancel()
	if !errors.Is(err, trove.ErrGetTimeout) {
		return fmt.Errorf("Get of a running call past its deadline: %v, want ErrGetTimeout", err)
	}
	say("`get` timed out")
	// Not in the tour: without a timeout, the Get returns the value.
	v, err := trove.GetValue[int](ctx, rt, objRef)
	if err != nil {
		return err
	}
	if v != 42 {
		return fmt.Errorf("long_running_function returned %d, want 42", v)
	}
	say("without a timeout: %d", v)
	return nil
}

func chineseEdition(ctx context.Context, rt *task.Runtime, say func(string, ...any)) error {
	// ## 例1：远程对象 (Example 1: remote objects)
	say("## 例1：远程对象")

	// torch.manual_seed(42)
	// tensor_list_obj_ref = [ray.put(create_rand_tensor(((i+1)*25, 50))) for i in range(100)]
	// print(tensor_list_obj_ref[:2], len(tensor_list_obj_ref))
	rng := rand.New(rand.NewPCG(42, 0))
	var tensorRefs []trove.Ref
	defer func() { dropAll(tensorRefs) }()
	originals := make([][]float32, 100)
	for i := range 100 {
		data := make([]float32, (i+1)*25*50) // create_rand_tensor: torch.randn(size, dtype=torch.float)
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
	say("%v %d", tensorRefs[:2], len(tensorRefs))

	// val = ray.get(tensor_list_obj_ref[0])
	// print(val.size(), val)
	val, err := trove.GetValue[zerocopy.Tensor](ctx, rt, tensorRefs[0])
	if err != nil {
		return err
	}
	v0, err := zerocopy.TensorValues[float32](val)
	if err != nil {
		return err
	}
	say("torch.Size(%v) [%.4f %.4f %.4f ...]", val.Shape(), v0[0], v0[1], v0[2])

	// results = ray.get(tensor_list_obj_ref)
	// print(results[:1], results[:1][0].size())
	objs, err := rt.GetAll(ctx, tensorRefs)
	if err != nil {
		return err
	}
	for _, o := range objs {
		o.Release()
	}
	say("ray.get(tensor_list_obj_ref): %d tensors, the first torch.Size(%v)", len(objs), val.Shape())

	// transformed_object_list = [transform_rand_tensor.remote(t_obj_ref) for t_obj_ref in tensor_list_obj_ref]
	// print(transformed_object_list[:2])
	var transformed []trove.Ref
	defer func() { dropAll(transformed) }()
	for _, r := range tensorRefs {
		tr, err := transformRandTensor.Remote(ctx, rt, task.Ref[zerocopy.Tensor](r))
		if err != nil {
			return err
		}
		transformed = append(transformed, tr)
	}
	say("%v", transformed[:2])

	// # 获取所有变换后的张量 (fetch every transformed tensor)
	// transformed_tensor_values = ray.get(transformed_object_list)
	// print(transformed_tensor_values[:2])
	var firsts []string
	for i, r := range transformed {
		t, obj, err := trove.ViewValue[zerocopy.Tensor](ctx, rt, r)
		if err != nil {
			return err
		}
		vals, err := zerocopy.TensorValues[float32](t)
		if err == nil && (len(vals) != len(originals[i]) || !isMultiple(vals, originals[i])) {
			err = fmt.Errorf("transformed tensor %d is not its original times an integer from 2 to 10", i)
		}
		if err == nil && i < 2 {
			firsts = append(firsts, fmt.Sprintf("torch.Size(%v) [%.4f ...]", t.Shape(), vals[0]))
		}
		obj.Release()
		if err != nil {
			return err
		}
	}
	say("%v (all %d checked: each the original times an integer from 2 to 10)", firsts, len(transformed))
	dropAll(transformed)
	transformed = nil
	dropAll(tensorRefs)
	tensorRefs = nil

	// ### 传递对象 (passing objects)
	//
	// x = list(range(10))
	// obj_ref_x = ray.put(x)
	// y = 25
	say("### 传递对象")
	x := make([]int, 10)
	for i := range x {
		x[i] = i
	}
	objRefX, err := trove.PutValue(ctx, rt, x)
	if err != nil {
		return err
	}
	defer objRefX.Drop()

	// #### 按值传递 (by value)
	// echo.remote(y)
	// echo.remote(obj_ref_x)
	say("#### 按值传递")
	for _, arg := range []task.Arg[any]{task.Val[any](25), task.Ref[any](objRefX)} {
		if err := show(ctx, rt, say, arg); err != nil {
			return err
		}
	}
	objRefX.Drop()

	// #### 按引用传递 (by reference)
	// x = list(range(20))
	// obj_ref_x = ray.put(x)
	// echo.remote({"obj": obj_ref_x})
	// echo.remote([obj_ref_x])
	say("#### 按引用传递")
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
		if err := show(ctx, rt, say, arg); err != nil {
			return err
		}
	}
	objRefX.Drop()

	// ### 长时间运行的任务呢? (what about long-running tasks?)
	say("### 长时间运行的任务呢?")
	return timeout(ctx, rt, say)
}

// isMultiple reports whether vals is orig times one integer from 2 to 10.
func isMultiple(vals, orig []float32) bool {
	for k := float32(2); k <= 10; k++ {
		if equalScaled(vals, orig, k) {
			return true
		}
	}
	return false
}

func equalScaled(vals, orig []float32, k float32) bool {
	for i, v := range orig {
		if vals[i] != v*k {
			return false
		}
	}
	return true
}

// show calls echo with arg and prints what it printed.
func show(ctx context.Context, rt *task.Runtime, say func(string, ...any), arg task.Arg[any]) error {
	r, err := echo.Remote(ctx, rt, arg)
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

func dropAll(refs []trove.Ref) {
	for _, r := range refs {
		r.Drop()
	}
}

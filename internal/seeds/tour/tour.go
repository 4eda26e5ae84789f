package tour

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/trovedb/trove"
	"github.com/trovedb/trove/internal/seeds"
	"github.com/trovedb/trove/internal/seeds/tensors"
	"github.com/trovedb/trove/task"
)

// Title is the English notebook's heading.
var Title = seeds.Heading("# A Guided Tour of Ray Core: Remote Objects")

// Chinese is the Chinese edition (总览 … 长时间运行的任务), step by step: the
// tensor tutorial's cells under the edition's headings.
var Chinese = []seeds.Step{
	seeds.Heading("\n# A Guided Tour of Ray Core: Remote Objects (中文版)"),
	seeds.Heading("## 例1：远程对象"), // Example 1: remote objects
	tensors.Tensors,
	seeds.Heading("### 传递对象"),  // passing objects
	seeds.Heading("#### 按值传递"), // by value
	tensors.PassByValue,
	seeds.Heading("#### 按引用传递"), // by reference
	tensors.PassByReference,
	seeds.Heading("### 长时间运行的任务呢?"), // what about long-running tasks?
	tensors.LongRunning,
}

// wall prints a %%time cell's wall time, since t0.
func wall(d *seeds.Driver, t0 time.Time) {
	d.Say("Wall time: %v", time.Since(t0).Round(time.Microsecond))
}

// RemoteObjects is the "Remote Objects example" cells:
//
//	%%time
//	num_list = [ 23, 42, 93 ]
//	obj_ref = ray.put(num_list)
//	obj_ref
//
//	%%time
//	ray.get(obj_ref)
//
//	@ray.remote
//	def my_function (num_list):
//	    return sum(num_list)
//
//	%%time
//	calc_ref = my_function.remote(obj_ref)
//
//	%%time
//	ray.get(calc_ref)
//
// Composable futures: the call's argument is a ref, resolved before
// my_function (seeds.MyFunction) runs; its result is a ref at once.
func RemoteObjects(ctx context.Context, d *seeds.Driver) error {
	t0 := time.Now()
	numList := []int{23, 42, 93}
	objRef, err := trove.PutValue(ctx, d.RT, numList)
	if err != nil {
		return err
	}
	defer objRef.Drop()
	d.Say("obj_ref = %v", objRef)
	wall(d, t0)

	t0 = time.Now()
	got, err := trove.GetValue[[]int](ctx, d.RT, objRef)
	if err != nil {
		return err
	}
	d.Say("ray.get(obj_ref) = %v", got)
	wall(d, t0)
	if !slices.Equal(got, numList) {
		return fmt.Errorf("got %v, put %v", got, numList)
	}

	t0 = time.Now()
	calcRef, err := seeds.MyFunction.Remote(ctx, d.RT, task.Ref[[]int](objRef))
	if err != nil {
		return err
	}
	defer calcRef.Drop()
	d.Say("calc_ref = my_function.remote(obj_ref) = %v", calcRef)
	wall(d, t0)

	t0 = time.Now()
	sum, err := trove.GetValue[int](ctx, d.RT, calcRef)
	if err != nil {
		return err
	}
	d.Say("ray.get(calc_ref) = %d", sum)
	wall(d, t0)
	if sum != 23+42+93 {
		return fmt.Errorf("my_function returned %d, want %d", sum, 23+42+93)
	}
	return nil
}

// GetList is the cell
//
//	%%time
//	ray.get([ray.put(i) for i in range(3)])
func GetList(ctx context.Context, d *seeds.Driver) error {
	t0 := time.Now()
	values, err := seeds.GetRange(ctx, d, 3)
	if err != nil {
		return err
	}
	d.Say("ray.get([ray.put(i) for i in range(3)]) = %v", values)
	wall(d, t0)
	return nil
}

// LongRunning is the long-running cell, the tensor tutorial's
// (tensors.LongRunning: long_running_function sleeps 10 s and returns 42; a
// Get with a 6 s timeout times out), with its wall time:
//
//	%%time
//	obj_ref = long_running_function.remote()
//	try:
//	    ray.get(obj_ref, timeout=6)
//	except GetTimeoutError:
//	    print("`get` timed out")
func LongRunning(ctx context.Context, d *seeds.Driver) error {
	t0 := time.Now()
	if err := tensors.LongRunning(ctx, d); err != nil {
		return err
	}
	wall(d, t0)
	return nil
}

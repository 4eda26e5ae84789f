package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/trovedb/trove"
	"github.com/trovedb/trove/task"
	"github.com/trovedb/trove/zerocopy"
)

// The demo's remote functions, registered by name in this program as every
// node runs it (batch inference's is batchinfer.MakeModelBatchPredictions).
// Each quotes the Python of the tutorial it stands for.
var (
	// @ray.remote
	// def my_function(num_list):
	//     return sum(num_list)
	myFunction = task.Define1("my_function", func(ctx context.Context, numList []int) (int, error) {
		return sum(numList), nil
	})

	// @ray.remote
	// def long_running_function():
	//     time.sleep(d)
	//     return 42
	longRunningFunction = task.Define1("long_running_function", func(ctx context.Context, d time.Duration) (int, error) {
		if err := sleep(ctx, d); err != nil {
			return 0, err
		}
		return 42, nil
	})

	// A call that takes a random time up to max and returns a uniform draw:
	// the tutorial's duration = 1 + 10 * random, value = random.
	randomLongRunning = task.Define1("random_long_running_function", func(ctx context.Context, max time.Duration) (float64, error) {
		if err := sleep(ctx, max/11+time.Duration(rand.Int64N(int64(max)*10/11+1))); err != nil {
			return 0, err
		}
		return rand.Float64(), nil
	})

	// delayedValue returns v after d: the cluster section's calls on each node.
	delayedValue = task.Define2("delayed_value", func(ctx context.Context, d time.Duration, v uint64) (uint64, error) {
		return v, sleep(ctx, d)
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
	// It returns its line, which the driver prints with the node it ran on
	// (Ray forwards a task's stdout as "(echo pid=…) …").
	echo = task.Define1("echo", func(ctx context.Context, x any) (string, error) {
		defer dropRefsIn(x)
		return fmt.Sprintf("(echo on %s) current value of argument x: %v", task.FromContext(ctx).Node().Name(), x), nil
	})

	// @ray.remote
	// def f(arr):
	//     # arr = arr.copy()  # Adding a copy will fix the error.
	//     arr[0] = 1
	writeArg = task.Define1("f", func(ctx context.Context, arr []byte) (struct{}, error) {
		arr[4096] = 'X' // arr is the store's read-only memory: this faults
		return struct{}{}, nil
	})
)

// sleep is time.sleep(d) in a remote function, ended early by its context.
func sleep(ctx context.Context, d time.Duration) error {
	select {
	case <-time.After(d):
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

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

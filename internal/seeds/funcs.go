package seeds

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/trovedb/trove"
	"github.com/trovedb/trove/task"
	"github.com/trovedb/trove/zerocopy"
)

// The remote functions more than one document calls, registered by name once
// per program: every node runs the same program, as every Ray worker has the
// same code. A document's sleeps are the calls' arguments, in its own
// seconds (Driver.Seconds), where the Python has them as literals.
var (
	// @ray.remote
	// def my_function(num_list):
	//     return sum(num_list)
	MyFunction = task.Define1("my_function", func(ctx context.Context, numList []int) (int, error) {
		s := 0
		for _, n := range numList {
			s += n
		}
		return s, nil
	})

	// @ray.remote
	// def long_running_function():
	//     time.sleep(10)
	//     return 42
	//
	// (the remote-objects walkthrough's and the objects guide's sleep 8 s and
	// return nothing: their cells ignore the 42.)
	LongRunningFunction = task.Define1("long_running_function", func(ctx context.Context, d time.Duration) (int, error) {
		if err := Sleep(ctx, d); err != nil {
			return 0, err
		}
		return 42, nil
	})

	// @ray.remote
	// def long_running_function():
	//     duration = 1 + 10 * ray.random_uniform.remote()
	//     time.sleep(duration)
	//     value = ray.random_uniform.remote()
	//     return value
	//
	// unit is the caller's second.
	RandomLongRunningFunction = task.Define1("random_long_running_function", func(ctx context.Context, unit time.Duration) (float64, error) {
		if err := Sleep(ctx, time.Duration((1+10*rand.Float64())*float64(unit))); err != nil {
			return 0, err
		}
		return rand.Float64(), nil
	})

	// @ray.remote
	// def transform_rand_tensor(tensor: torch.tensor) -> torch.tensor:
	//     return torch.mul(tensor, random.randint(2, 10))
	//
	// The argument is read in place when it is larger than the store's inline
	// threshold (100 KiB), read-only, so the product goes into a new tensor, as
	// torch.mul returns one.
	TransformRandTensor = task.Define1("transform_rand_tensor", func(ctx context.Context, t zerocopy.Tensor) (zerocopy.Tensor, error) {
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
	// x is any value: what PutValue stored, decoded as Go's CBOR decoding of
	// an interface does (refs inside come back as refs, which echo drops when
	// it is done with them).
	Echo = task.Define1("echo", func(ctx context.Context, x any) (string, error) {
		defer dropRefsIn(x)
		return Printed(ctx, "echo", fmt.Sprintf("current value of argument x: %v", x)), nil
	})
)

// Printed is what a remote function prints, prefixed, like Ray's forwarded
// output "(echo pid=…) …", with the function's name and the node it ran on.
// Ray prints a task's stdout on the driver; a trove function runs in the
// process of whichever node has room, so the seeds' functions return what they
// would print, and the driver prints it (Show).
func Printed(ctx context.Context, fn, s string) string {
	return fmt.Sprintf("(%s on %s) %s", fn, task.FromContext(ctx).Node().Name(), s)
}

// Sleep is time.sleep(d) in a remote function: it ends early, with the
// context's error, if the call is cancelled or its node closes.
func Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// dropRefsIn drops the refs a decoded any holds at its top level (in a list
// or a map).
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

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
)

// unit is the seed's second. The test shortens it.
var unit = time.Second / 4

// sleep is time.sleep(d) in a remote function: it ends early, with the
// context's error, if the call is cancelled or its node closes.
func sleep(ctx context.Context, d time.Duration) error {
	select {
	case <-time.After(d):
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Remote functions are registered by name, once per program: every node runs
// the same program, as every Ray worker has the same code.
var (
	// @ray.remote
	// def long_running_function():
	//     time.sleep(8)
	longRunningFunction = task.Define0("long_running_function", func(ctx context.Context) (struct{}, error) {
		return struct{}{}, sleep(ctx, 8*unit)
	})

	// @ray.remote
	// def long_running_function():
	//     duration = 1 + 10 * ray.random_uniform.remote()
	//     time.sleep(duration)
	//     value = ray.random_uniform.remote()
	//     return value
	randomLongRunningFunction = task.Define0("random_long_running_function", func(ctx context.Context) (float64, error) {
		d := time.Duration((1 + 10*rand.Float64()) * float64(unit))
		if err := sleep(ctx, d); err != nil {
			return 0, err
		}
		return rand.Float64(), nil
	})
)

func main() {
	if err := run(context.Background(), os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "remoteobjects:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, w io.Writer) (err error) {
	say := func(format string, args ...any) { fmt.Fprintf(w, format+"\n", args...) }

	// ray.init(num_cpus=4, num_gpus=1, resources={'Custom': 2}, ...)
	//
	// A cluster of three nodes in this process, whose CPUs add up to the seed's
	// four: node-1 declares 2 CPUs and the custom resource, the others 1 CPU
	// each. trove schedules no GPUs of its own; a node with one would declare
	// it as a custom resource ("GPU": 1) and calls would ask for it.
	c, err := localcluster.Open(ctx, localcluster.Config{Log: os.Stderr})
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, c.Close()) }()
	rts, err := c.StartTasks(func(i int) task.Config {
		if i == 0 {
			return task.Config{CPUs: 2, Resources: map[string]float64{"Custom": 2}}
		}
		return task.Config{CPUs: 1}
	})
	if err != nil {
		return err
	}
	rt := rts[0] // the driver: this program's calls are made on node-1

	// ray.cluster_resources()
	res, err := rt.ClusterResources(ctx)
	if err != nil {
		return err
	}
	var memory int64
	for _, n := range c.Nodes {
		memory += n.Local().Config().Capacity
	}
	say("ray.cluster_resources() = %v, object store memory %s on %d nodes", res, trove.HumanBytes(memory), len(c.Nodes))

	// ## Single object refs
	//
	// y = 1
	// obj_ref = ray.put(y)
	// result = ray.get(obj_ref)
	// print(f"{result=}")
	// assert result == y
	y := 1
	objRef, err := trove.PutValue(ctx, rt, y)
	if err != nil {
		return err
	}
	result, err := trove.GetValue[int](ctx, rt, objRef)
	if err != nil {
		return err
	}
	say("result=%d", result)
	if result != y {
		return fmt.Errorf("get returned %d, put %d", result, y)
	}
	objRef.Drop()

	// ## Multiple object refs
	//
	// result = ray.get([ray.put(i) for i in range(3)])
	// print(f"{result=}")
	// assert result == [0, 1, 2]
	var refs []trove.Ref
	defer func() { dropAll(refs) }()
	for i := range 3 {
		r, err := trove.PutValue(ctx, rt, i)
		if err != nil {
			return err
		}
		refs = append(refs, r)
	}
	values, err := getValues[int](ctx, rt, refs)
	if err != nil {
		return err
	}
	say("result=%v", values)
	if !slices.Equal(values, []int{0, 1, 2}) {
		return fmt.Errorf("got %v, want [0 1 2]", values)
	}
	dropAll(refs)
	refs = nil

	// ## Timing out
	//
	// obj_ref = long_running_function.remote()
	// try:
	//     ray.get(obj_ref, timeout=4)
	// except GetTimeoutError:
	//     print("`get` timed out.")
	//
	// A Get's timeout is its context's deadline; the error matches both
	// trove.ErrGetTimeout and context.DeadlineExceeded.
	slow, err := longRunningFunction.Remote(ctx, rt)
	if err != nil {
		return err
	}
	tctx, cancel := context.WithTimeout(ctx, 4*unit)
	_, err = rt.Get(tctx, slow)
	cancel()
	if !errors.Is(err, trove.ErrGetTimeout) {
		slow.Drop()
		return fmt.Errorf("Get of a call still running, past its deadline: %v, want ErrGetTimeout", err)
	}
	say("`get` timed out.")
	// Not in the seed: without a timeout, Get waits for the call to finish.
	if _, err := trove.GetValue[struct{}](ctx, rt, slow); err != nil {
		slow.Drop()
		return err
	}
	slow.Drop()
	say("without a timeout, Get returns when long_running_function does")

	// ## Waiting without blocking
	//
	// object_refs = [long_running_function.remote() for _ in range(10)]
	// ready_refs, remaining_refs = ray.wait(object_refs, num_returns=len(object_refs))
	// print(f"{ready_refs=}")
	// print(f"{remaining_refs=}")
	for range 10 {
		r, err := randomLongRunningFunction.Remote(ctx, rt)
		if err != nil {
			return err
		}
		refs = append(refs, r)
	}
	ready, remaining, err := rt.Wait(ctx, refs, len(refs))
	if err != nil {
		return err
	}
	say("ready_refs=%v", ready)
	say("remaining_refs=%v", remaining)
	if len(ready) != len(refs) || len(remaining) != 0 || !slices.Equal(ids(ready), ids(refs)) {
		return fmt.Errorf("wait(num_returns=%d): %d ready, %d remaining, want all ready in input order", len(refs), len(ready), len(remaining))
	}
	vals, err := getValues[float64](ctx, rt, ready)
	if err != nil {
		return err
	}
	for i, v := range vals {
		if v < 0 || v >= 1 {
			return fmt.Errorf("call %d returned %v, not a uniform draw in [0, 1)", i, v)
		}
	}
	dropAll(refs)
	refs = nil

	// Every ref is dropped: every node's store must be empty.
	if err := c.WaitDrained(ctx); err != nil {
		return err
	}
	say("all refs dropped: every node's store is empty")
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
		o.Release() // GetAll brought every value here; decoding Gets each again, locally
	}
	out := make([]T, len(refs))
	for i, r := range refs {
		if out[i], err = trove.GetValue[T](ctx, st, r); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func ids(refs []trove.Ref) []trove.ObjectID {
	out := make([]trove.ObjectID, len(refs))
	for i, r := range refs {
		out[i] = r.ID()
	}
	return out
}

func dropAll(refs []trove.Ref) {
	for _, r := range refs {
		r.Drop()
	}
}

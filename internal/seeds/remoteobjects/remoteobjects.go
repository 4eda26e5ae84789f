package remoteobjects

import (
	"context"
	"fmt"
	"slices"

	"github.com/trovedb/trove"
	"github.com/trovedb/trove/internal/seeds"
	"github.com/trovedb/trove/task"
)

// Tasks is the seed's ray.init(num_cpus=4, num_gpus=1, resources={'Custom': 2}, ...)
// for seeds.Config.Tasks: node-1 declares 2 CPUs and the custom resource,
// the other two 1 CPU each, so that the cluster's CPUs add up to the seed's
// four. trove schedules no GPUs of its own; a node with one would declare it
// as a custom resource ("GPU": 1) and calls would ask for it.
func Tasks(i int) task.Config {
	if i == 0 {
		return task.Config{CPUs: 2, Resources: map[string]float64{"Custom": 2}}
	}
	return task.Config{CPUs: 1}
}

// ClusterResources is ray.cluster_resources(), with the object store memory
// of every node.
func ClusterResources(ctx context.Context, d *seeds.Driver) error {
	res, err := d.RT.ClusterResources(ctx)
	if err != nil {
		return err
	}
	var memory int64
	for _, n := range d.Cluster.Nodes {
		memory += n.Local().Config().Capacity
	}
	d.Say("ray.cluster_resources() = %v, object store memory %s on %d nodes", res, trove.HumanBytes(memory), len(d.Cluster.Nodes))
	return nil
}

// SingleRef is "Single object refs":
//
//	y = 1
//	obj_ref = ray.put(y)
//	result = ray.get(obj_ref)
//	print(f"{result=}")
//	assert result == y
func SingleRef(ctx context.Context, d *seeds.Driver) error {
	y := 1
	objRef, err := trove.PutValue(ctx, d.RT, y)
	if err != nil {
		return err
	}
	defer objRef.Drop()
	result, err := trove.GetValue[int](ctx, d.RT, objRef)
	if err != nil {
		return err
	}
	d.Say("result=%d", result)
	if result != y {
		return fmt.Errorf("get returned %d, put %d", result, y)
	}
	return nil
}

// MultipleRefs is "Multiple object refs":
//
//	result = ray.get([ray.put(i) for i in range(3)])
//	print(f"{result=}")
//	assert result == [0, 1, 2]
func MultipleRefs(ctx context.Context, d *seeds.Driver) error {
	result, err := seeds.GetRange(ctx, d, 3)
	if err != nil {
		return err
	}
	d.Say("result=%v", result)
	return nil
}

// TimingOut is "Timing out":
//
//	@ray.remote
//	def long_running_function():
//	    time.sleep(8)
//
//	obj_ref = long_running_function.remote()
//	try:
//	    ray.get(obj_ref, timeout=4)
//	except GetTimeoutError:
//	    print("`get` timed out.")
//
// A Get's timeout is its context's deadline; the error matches both
// trove.ErrGetTimeout and context.DeadlineExceeded.
func TimingOut(ctx context.Context, d *seeds.Driver) error {
	objRef, err := seeds.TimedOutCall(ctx, d, d.Seconds(8), d.Seconds(4))
	if err != nil {
		return err
	}
	defer objRef.Drop()
	d.Say("`get` timed out.")
	// Not in the seed: without a timeout, Get waits for the call to finish.
	if _, err := trove.GetValue[int](ctx, d.RT, objRef); err != nil {
		return err
	}
	d.Say("without a timeout, Get returns when long_running_function does")
	return nil
}

// WaitingWithoutBlocking is "Waiting without blocking", on ten calls of
//
//	@ray.remote
//	def long_running_function():
//	    duration = 1 + 10 * ray.random_uniform.remote()
//	    time.sleep(duration)
//	    value = ray.random_uniform.remote()
//	    return value
//
//	object_refs = [long_running_function.remote() for _ in range(10)]
//	ready_refs, remaining_refs = ray.wait(object_refs, num_returns=len(object_refs))
//	print(f"{ready_refs=}")
//	print(f"{remaining_refs=}")
func WaitingWithoutBlocking(ctx context.Context, d *seeds.Driver) error {
	var objectRefs []trove.Ref
	defer func() { seeds.DropAll(objectRefs) }()
	for range 10 {
		r, err := seeds.RandomLongRunningFunction.Remote(ctx, d.RT, task.Val(d.Unit))
		if err != nil {
			return err
		}
		objectRefs = append(objectRefs, r)
	}
	readyRefs, remainingRefs, err := d.RT.Wait(ctx, objectRefs, len(objectRefs))
	if err != nil {
		return err
	}
	d.Say("ready_refs=%v", readyRefs)
	d.Say("remaining_refs=%v", remainingRefs)
	if len(readyRefs) != len(objectRefs) || len(remainingRefs) != 0 || !slices.Equal(seeds.IDs(readyRefs), seeds.IDs(objectRefs)) {
		return fmt.Errorf("wait(num_returns=%d): %d ready, %d remaining, want all ready in input order",
			len(objectRefs), len(readyRefs), len(remainingRefs))
	}
	values, err := seeds.GetValues[float64](ctx, d.RT, readyRefs)
	if err != nil {
		return err
	}
	for i, v := range values {
		if v < 0 || v >= 1 {
			return fmt.Errorf("call %d returned %v, not a uniform draw in [0, 1)", i, v)
		}
	}
	return nil
}

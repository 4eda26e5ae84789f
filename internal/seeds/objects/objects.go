package objects

import (
	"context"
	"fmt"

	"github.com/trovedb/trove"
	"github.com/trovedb/trove/internal/seeds"
	"github.com/trovedb/trove/task"
)

var (
	// @ray.remote
	// def echo(a: int, b: int, c: int):
	//     """This function prints its input values to stdout."""
	//     print(a, b, c)
	//
	// Registered as "echo_abc": a name is unique in a program, and the
	// tutorials' echo(x) is "echo" (seeds.Echo).
	echo = task.Define3("echo_abc", func(ctx context.Context, a, b, c int) (string, error) {
		return seeds.Printed(ctx, "echo", fmt.Sprint(a, b, c)), nil
	})

	// @ray.remote
	// def echo_and_get(x_list):  # List[ObjectRef]
	//     """This function prints its input values to stdout."""
	//     print("args:", x_list)
	//     print("values:", ray.get(x_list))
	//
	// x_list arrives as refs: nested in a list, they are not resolved before the
	// call. The function fetches their values itself, through the runtime of the
	// node it runs on.
	echoAndGet = task.Define1("echo_and_get", func(ctx context.Context, xList []trove.Ref) (string, error) {
		defer seeds.DropAll(xList)
		values, err := seeds.GetValues[int](ctx, task.FromContext(ctx), xList)
		if err != nil {
			return "", err
		}
		return seeds.Printed(ctx, "echo_and_get", fmt.Sprint("args: ", xList, "\nvalues: ", values)), nil
	})

	// Closure capture: see ClosureCapture.
	printRefs = task.Define1("print_via_capture", func(ctx context.Context, refs []trove.Ref) (string, error) {
		defer seeds.DropAll(refs)
		values, err := seeds.GetValues[int](ctx, task.FromContext(ctx), refs)
		if err != nil {
			return "", err
		}
		return seeds.Printed(ctx, "print_via_capture", fmt.Sprint(values)), nil
	})
)

// FetchingObjectData is "Fetching Object Data":
//
//	# Put an object in Ray's object store.
//	y = 1
//	object_ref = ray.put(y)
//
//	# Get the value of one object ref.
//	obj_ref = ray.put(1)
//	assert ray.get(obj_ref) == 1
//
//	# Get the values of multiple object refs in parallel.
//	assert ray.get([ray.put(i) for i in range(3)]) == [0, 1, 2]
func FetchingObjectData(ctx context.Context, d *seeds.Driver) error {
	objRef, err := trove.PutValue(ctx, d.RT, 1)
	if err != nil {
		return err
	}
	defer objRef.Drop()
	d.Say("obj_ref = ray.put(1) -> %v", objRef)
	one, err := trove.GetValue[int](ctx, d.RT, objRef)
	if err != nil {
		return err
	}
	if one != 1 {
		return fmt.Errorf("ray.get(obj_ref) = %d, want 1", one)
	}
	d.Say("ray.get(obj_ref) == 1")

	values, err := seeds.GetRange(ctx, d, 3)
	if err != nil {
		return err
	}
	d.Say("ray.get([ray.put(i) for i in range(3)]) == %v", values)
	return nil
}

// Timeout is the guide's
//
//	# You can also set a timeout to return early from a ``get``
//	# that's blocking for too long.
//	from ray.exceptions import GetTimeoutError
//	# ``GetTimeoutError`` is a subclass of ``TimeoutError``.
//
//	@ray.remote
//	def long_running_function():
//	    time.sleep(8)
//
//	obj_ref = long_running_function.remote()
//	try:
//	    ray.get(obj_ref, timeout=4)
//	except GetTimeoutError:  # You can capture the standard "TimeoutError" instead
//	    print("`get` timed out.")
//
// The error matches trove.ErrGetTimeout and, as TimeoutError is its base in
// Python, context.DeadlineExceeded (seeds.TimedOutCall). The step waits for the call to end before
// it drops its ref, so that nothing is left running.
func Timeout(ctx context.Context, d *seeds.Driver) error {
	objRef, err := seeds.TimedOutCall(ctx, d, d.Seconds(8), d.Seconds(4))
	if err != nil {
		return err
	}
	defer objRef.Drop()
	d.Say("`get` timed out.")
	_, err = trove.GetValue[int](ctx, d.RT, objRef)
	return err
}

// PassingObjectArguments is "Passing Object Arguments":
//
//	# Passing the literal values (1, 2, 3) to `echo`.
//	echo.remote(1, 2, 3)
//	# -> prints "1 2 3"
//
//	# Put the values (1, 2, 3) into Ray's object store.
//	a, b, c = ray.put(1), ray.put(2), ray.put(3)
//
//	# Passing an object as a top-level argument to `echo`. Ray will de-reference top-level
//	# arguments, so `echo` will see the literal values (1, 2, 3) in this case as well.
//	echo.remote(a, b, c)
//	# -> prints "1 2 3"
//
//	# Passing an object as a nested argument to `echo_and_get`. Ray does not
//	# de-reference nested args, so `echo_and_get` sees the references.
//	echo_and_get.remote([a, b, c])
//	# -> prints args: [ObjectRef(...), ObjectRef(...), ObjectRef(...)]
//	#           values: [1, 2, 3]
func PassingObjectArguments(ctx context.Context, d *seeds.Driver) error {
	if err := seeds.Show(ctx, d, func() (trove.Ref, error) {
		return echo.Remote(ctx, d.RT, task.Val(1), task.Val(2), task.Val(3))
	}); err != nil {
		return err
	}
	abc, err := seeds.PutValues(ctx, d.RT, 1, 2, 3)
	if err != nil {
		return err
	}
	defer seeds.DropAll(abc)
	a, b, c := abc[0], abc[1], abc[2]
	if err := seeds.Show(ctx, d, func() (trove.Ref, error) {
		return echo.Remote(ctx, d.RT, task.Ref[int](a), task.Ref[int](b), task.Ref[int](c))
	}); err != nil {
		return err
	}
	return seeds.Show(ctx, d, func() (trove.Ref, error) {
		return echoAndGet.Remote(ctx, d.RT, task.Val([]trove.Ref{a, b, c}))
	})
}

// ClosureCapture is "Closure Capture of Objects":
//
//	a, b, c = ray.put(1), ray.put(2), ray.put(3)
//
//	@ray.remote
//	def print_via_capture():
//	    """This function prints the values of (a, b, c) to stdout."""
//	    print(ray.get([a, b, c]))
//
//	print_via_capture.remote()
//	# -> prints [1, 2, 3]
//
// Go has no equivalent: Ray pickles a Python function together with the
// globals it closes over and ships both to the worker, but a Go closure is
// machine code plus pointers into this process's memory, and cannot be sent
// to another process. A trove function is registered by name in every node's
// program instead (printRefs above), and data reaches it only as arguments.
//
// So the Go way captures on the driver's side: printViaCapture is an ordinary
// Go closure over the refs, which passes them to the registered function as a
// nested argument, by reference (not resolved, fetched by the function). As
// in Ray, the captured refs pin their objects for as long as the closure can
// be called; here that is until the caller drops them.
//
// (A function that read refs from a package-level variable would work in this
// program, whose nodes share one process, and nowhere else: on another node's
// process the variable would be unset.)
func ClosureCapture(ctx context.Context, d *seeds.Driver) error {
	abc, err := seeds.PutValues(ctx, d.RT, 1, 2, 3)
	if err != nil {
		return err
	}
	defer seeds.DropAll(abc)
	a, b, c := abc[0], abc[1], abc[2]
	printViaCapture := func() (trove.Ref, error) {
		return printRefs.Remote(ctx, d.RT, task.Val([]trove.Ref{a, b, c}))
	}
	return seeds.Show(ctx, d, printViaCapture)
}

// Nested is "Nested Objects":
//
//	# Objects can be nested within each other. Ray will keep the inner object
//	# alive via reference counting until all outer object references are deleted.
//	object_ref_2 = ray.put([object_ref])
//
// where object_ref = ray.put(1). The driver drops its own ref to the inner
// object; the cluster's last node then reads the list, and the object inside
// it, through the ref passed by ID, as another process would receive it.
func Nested(ctx context.Context, d *seeds.Driver) error {
	objectRef, err := trove.PutValue(ctx, d.RT, 1)
	if err != nil {
		return err
	}
	objectRef2, err := trove.PutValue(ctx, d.RT, []trove.Ref{objectRef})
	objectRef.Drop() // our own ref: the list keeps the inner object alive
	if err != nil {
		return err
	}
	d.Say("object_ref_2 = ray.put([object_ref]) -> %v; dropped object_ref", objectRef2)
	other := d.Cluster.Nodes[len(d.Cluster.Nodes)-1]
	onOther, err := other.Borrow(objectRef2.ID())
	objectRef2.Drop()
	if err != nil {
		return err
	}
	inner, err := trove.GetValue[[]trove.Ref](ctx, other, onOther)
	onOther.Drop()
	if err != nil {
		return err
	}
	defer seeds.DropAll(inner)
	if len(inner) != 1 {
		return fmt.Errorf("object_ref_2 holds %d refs, want 1", len(inner))
	}
	v, err := trove.GetValue[int](ctx, other, inner[0])
	if err != nil {
		return err
	}
	d.Say("%s: ray.get(ray.get(object_ref_2)[0]) = %d (the inner object lived while the list did)", other.Name(), v)
	if v != 1 {
		return fmt.Errorf("the nested object is %d, want 1", v)
	}
	return nil
}

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"time"

	"github.com/trovedb/trove"
	"github.com/trovedb/trove/internal/localcluster"
	"github.com/trovedb/trove/task"
)

// unit is the guide's second. The test shortens it.
var unit = time.Second / 4

// Ray prints a task's stdout on the driver, prefixed "(echo pid=…)". A trove
// function runs on whichever node has room, in that node's process, so these
// functions return what they would print, and the driver prints it with the
// node the call ran on.
var (
	// @ray.remote
	// def long_running_function():
	//     time.sleep(8)
	longRunningFunction = task.Define0("long_running_function", func(ctx context.Context) (struct{}, error) {
		select {
		case <-time.After(8 * unit):
			return struct{}{}, nil
		case <-ctx.Done():
			return struct{}{}, ctx.Err()
		}
	})

	// @ray.remote
	// def echo(a: int, b: int, c: int):
	//     """This function prints its input values to stdout."""
	//     print(a, b, c)
	echo = task.Define3("echo", func(ctx context.Context, a, b, c int) (string, error) {
		return printed(ctx, "echo", fmt.Sprint(a, b, c)), nil
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
		defer dropAll(xList)
		values, err := getValues[int](ctx, task.FromContext(ctx), xList)
		if err != nil {
			return "", err
		}
		return printed(ctx, "echo_and_get", fmt.Sprint("args: ", xList, "\nvalues: ", values)), nil
	})

	// Closure capture: see captureExample.
	printRefs = task.Define1("print_via_capture", func(ctx context.Context, refs []trove.Ref) (string, error) {
		defer dropAll(refs)
		values, err := getValues[int](ctx, task.FromContext(ctx), refs)
		if err != nil {
			return "", err
		}
		return printed(ctx, "print_via_capture", fmt.Sprint(values)), nil
	})
)

// printed is what a function prints, prefixed like Ray's forwarded output with
// the function's name and the node it ran on.
func printed(ctx context.Context, fn, s string) string {
	return fmt.Sprintf("(%s on %s) %s", fn, task.FromContext(ctx).Node().Name(), s)
}

func main() {
	if err := run(context.Background(), os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "objects:", err)
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

	// # Put an object in Ray's object store.
	// y = 1
	// object_ref = ray.put(y)
	y := 1
	objectRef, err := trove.PutValue(ctx, rt, y)
	if err != nil {
		return err
	}
	defer objectRef.Drop()
	say("object_ref = ray.put(1) -> %v", objectRef)

	// ## Fetching Object Data
	//
	// # Get the value of one object ref.
	// obj_ref = ray.put(1)
	// assert ray.get(obj_ref) == 1
	one, err := trove.GetValue[int](ctx, rt, objectRef)
	if err != nil {
		return err
	}
	if one != 1 {
		return fmt.Errorf("ray.get(obj_ref) = %d, want 1", one)
	}
	say("ray.get(obj_ref) == 1")

	// # Get the values of multiple object refs in parallel.
	// assert ray.get([ray.put(i) for i in range(3)]) == [0, 1, 2]
	abc, err := putInts(ctx, rt, 0, 1, 2)
	if err != nil {
		return err
	}
	values, err := getValues[int](ctx, rt, abc)
	dropAll(abc)
	if err != nil {
		return err
	}
	if !slices.Equal(values, []int{0, 1, 2}) {
		return fmt.Errorf("ray.get of three refs: %v", values)
	}
	say("ray.get([ray.put(i) for i in range(3)]) == %v", values)

	// # You can also set a timeout to return early from a ``get``
	// # that's blocking for too long.
	// obj_ref = long_running_function.remote()
	// try:
	//     ray.get(obj_ref, timeout=4)
	// except GetTimeoutError:
	//     print("`get` timed out.")
	slow, err := longRunningFunction.Remote(ctx, rt)
	if err != nil {
		return err
	}
	defer slow.Drop()
	tctx, cancel := context.WithTimeout(ctx, 4*unit)
	_, err = rt.Get(tctx, slow)
	cancel()
	if !errors.Is(err, trove.ErrGetTimeout) {
		return fmt.Errorf("Get of a running call past its deadline: %v, want ErrGetTimeout", err)
	}
	say("`get` timed out.")

	// ## Passing Object Arguments
	//
	// # Passing the literal values (1, 2, 3) to `echo`.
	// echo.remote(1, 2, 3)
	// # -> prints "1 2 3"
	if err := show(ctx, rt, say, func() (trove.Ref, error) {
		return echo.Remote(ctx, rt, task.Val(1), task.Val(2), task.Val(3))
	}); err != nil {
		return err
	}

	// # Put the values (1, 2, 3) into Ray's object store.
	// a, b, c = ray.put(1), ray.put(2), ray.put(3)
	//
	// # Passing an object as a top-level argument to `echo`. Ray will de-reference top-level
	// # arguments, so `echo` will see the literal values (1, 2, 3) in this case as well.
	// echo.remote(a, b, c)
	// # -> prints "1 2 3"
	abc, err = putInts(ctx, rt, 1, 2, 3)
	if err != nil {
		return err
	}
	defer func() { dropAll(abc) }()
	a, b, cc := abc[0], abc[1], abc[2]
	if err := show(ctx, rt, say, func() (trove.Ref, error) {
		return echo.Remote(ctx, rt, task.Ref[int](a), task.Ref[int](b), task.Ref[int](cc))
	}); err != nil {
		return err
	}

	// # Passing an object as a nested argument to `echo_and_get`. Ray does not
	// # de-reference nested args, so `echo_and_get` sees the references.
	// echo_and_get.remote([a, b, c])
	// # -> prints args: [ObjectRef(...), ObjectRef(...), ObjectRef(...)]
	// #           values: [1, 2, 3]
	if err := show(ctx, rt, say, func() (trove.Ref, error) {
		return echoAndGet.Remote(ctx, rt, task.Val([]trove.Ref{a, b, cc}))
	}); err != nil {
		return err
	}

	// ## Closure Capture of Objects
	if err := captureExample(ctx, rt, say, a, b, cc); err != nil {
		return err
	}
	dropAll(abc)
	abc = nil

	// ## Nested Objects
	//
	// # Objects can be nested within each other. Ray will keep the inner object
	// # alive via reference counting until all outer object references are deleted.
	// object_ref_2 = ray.put([object_ref])
	objectRef2, err := trove.PutValue(ctx, rt, []trove.Ref{objectRef})
	if err != nil {
		return err
	}
	objectRef.Drop() // our own ref: the list keeps the inner object alive
	say("object_ref_2 = ray.put([object_ref]) -> %v; dropped object_ref", objectRef2)
	// Another node reads the list and then the object inside it: the ref passed
	// by ID, as another process would receive it.
	other := c.Nodes[2]
	onOther, err := other.Borrow(objectRef2.ID())
	if err != nil {
		objectRef2.Drop()
		return err
	}
	objectRef2.Drop()
	inner, err := trove.GetValue[[]trove.Ref](ctx, other, onOther)
	onOther.Drop()
	if err != nil {
		return err
	}
	v, err := trove.GetValue[int](ctx, other, inner[0])
	dropAll(inner)
	if err != nil {
		return err
	}
	say("%s: ray.get(ray.get(object_ref_2)[0]) = %d (the inner object lived while the list did)", other.Name(), v)
	if v != 1 {
		return fmt.Errorf("the nested object is %d, want 1", v)
	}

	// The slow call is still running; its result is freed with our ref, once
	// it has finished.
	if _, err := trove.GetValue[struct{}](ctx, rt, slow); err != nil {
		return err
	}
	slow.Drop()
	if err := c.WaitDrained(ctx); err != nil {
		return err
	}
	say("all refs dropped: every node's store is empty")
	return nil
}

// captureExample is the guide's closure capture:
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
func captureExample(ctx context.Context, rt *task.Runtime, say func(string, ...any), a, b, c trove.Ref) error {
	printViaCapture := func() (trove.Ref, error) {
		return printRefs.Remote(ctx, rt, task.Val([]trove.Ref{a, b, c}))
	}
	return show(ctx, rt, say, printViaCapture)
}

// show makes a call and prints what the function printed.
func show(ctx context.Context, rt *task.Runtime, say func(string, ...any), call func() (trove.Ref, error)) error {
	r, err := call()
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

func putInts(ctx context.Context, st trove.Store, vs ...int) ([]trove.Ref, error) {
	var refs []trove.Ref
	for _, v := range vs {
		r, err := trove.PutValue(ctx, st, v)
		if err != nil {
			dropAll(refs)
			return nil, err
		}
		refs = append(refs, r)
	}
	return refs, nil
}

// getValues is ray.get(list_of_refs): the values of refs, fetched in parallel
// (GetAll) and decoded in order.
func getValues[T any](ctx context.Context, st trove.Store, refs []trove.Ref) ([]T, error) {
	objs, err := st.GetAll(ctx, refs)
	if err != nil {
		return nil, err
	}
	for _, o := range objs {
		o.Release() // every value is here now; decoding Gets each again, locally
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

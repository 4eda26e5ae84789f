package task

import (
	"errors"
	"fmt"

	"github.com/trovedb/trove"
)

// ErrTaskFailed matches the error of a Get of a call's result when the
// function returned an error or panicked (trove.ErrTaskFailed: a node that
// borrowed the result sees it too). On the caller's node the error is a
// *TaskError, which names the function and the node and unwraps to the cause.
var ErrTaskFailed = trove.ErrTaskFailed

// TaskError is a call's failure as its result's Gets report it on the
// caller's node, Ray's RayTaskError: the function, the node it ran on, and
// the cause (the function's error, or a panic's value and stack, as text when
// it ran on another node).
type TaskError struct {
	Func string // the function's name (Define)
	Node string // the node it ran on
	Err  error  // the cause
}

func (e *TaskError) Error() string {
	return fmt.Sprintf("task: %s failed on node %s: %v", e.Func, e.Node, e.Err)
}

// Is makes errors.Is(err, ErrTaskFailed) true.
func (e *TaskError) Is(target error) bool { return target == trove.ErrTaskFailed }

// Unwrap returns the cause.
func (e *TaskError) Unwrap() error { return e.Err }

// PanicError is the cause of a TaskError when the function panicked: the
// panic's value and the goroutine's stack. A write into a read-only argument
// (a numeric slice or tensor read in place) is such a panic.
type PanicError struct {
	Value string // fmt.Sprint of the panic's value
	Stack string
}

func (e *PanicError) Error() string {
	return fmt.Sprintf("panic: %s\n%s", e.Value, e.Stack)
}

// remoteCause is a cause that came over the network, as text.
type remoteCause struct {
	msg      string
	panicked bool
}

func (e *remoteCause) Error() string { return e.msg }

// ErrWorkerDied is the cause (wrapped in a *TaskError) of a call that failed
// because the worker processes running it died more than its MaxRetries
// times: exited or were killed before reporting.
var ErrWorkerDied = errors.New("task: the worker process running the call died")

// workerLost is why a call is run again when its worker process died.
type workerLost struct {
	node string // the node the worker was attached to
	msg  string // which worker, as the node said it
}

func (e *workerLost) Error() string {
	return fmt.Sprintf("on node %s: %s", e.node, e.msg)
}

func (e *workerLost) Unwrap() error { return ErrWorkerDied }

package seeds

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/trovedb/trove"
	"github.com/trovedb/trove/internal/localcluster"
	"github.com/trovedb/trove/task"
)

// Driver is what every step is given: Ray's driver, the program that makes
// the calls.
type Driver struct {
	Cluster *localcluster.Cluster
	// RT is the driver's task runtime, on Cluster.Nodes[0]: the steps' puts
	// land in that node's store, their calls run wherever slots are free.
	RT *task.Runtime
	// Out receives what the cells print.
	Out io.Writer
	// Unit is the document's second: its sleeps and timeouts are multiples
	// of it, scaled down so that a program runs in seconds.
	Unit time.Duration
}

// Say prints one line of a cell's output.
func (d *Driver) Say(format string, args ...any) { fmt.Fprintf(d.Out, format+"\n", args...) }

// Seconds is n of the document's seconds.
func (d *Driver) Seconds(n float64) time.Duration { return time.Duration(n * float64(d.Unit)) }

// Step is one section of a seed document.
type Step func(ctx context.Context, d *Driver) error

// Heading is a step that prints a document's heading.
func Heading(s string) Step {
	return func(ctx context.Context, d *Driver) error {
		d.Say("%s", s)
		return nil
	}
}

// Config is what Run starts.
type Config struct {
	// Unit is the document's second (Driver.Unit); it must be positive.
	Unit time.Duration
	// Tasks configures each node's task runtime (localcluster.StartTasks);
	// nil gives every node task.Config's defaults.
	Tasks func(i int) task.Config
	// Log receives the nodes' warnings and errors; nil discards them.
	Log io.Writer
}

// Run is a seed document's program, Ray's ray.init() … ray.shutdown(): it
// opens an in-process cluster of three nodes with a task runtime on each,
// runs steps in order on node-1's, then waits until every node's store is
// empty and says so.
func Run(ctx context.Context, w io.Writer, cfg Config, steps ...Step) (err error) {
	if cfg.Unit <= 0 {
		return fmt.Errorf("seeds: Config.Unit is %v: want the document's second, scaled, such as 250ms", cfg.Unit)
	}
	c, err := localcluster.Open(ctx, localcluster.Config{Log: cfg.Log})
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, c.Close()) }()
	rts, err := c.StartTasks(cfg.Tasks)
	if err != nil {
		return err
	}
	d := &Driver{Cluster: c, RT: rts[0], Out: w, Unit: cfg.Unit}
	for _, step := range steps {
		if err := step(ctx, d); err != nil {
			return err
		}
	}
	if err := c.WaitDrained(ctx); err != nil {
		return err
	}
	d.Say("all refs dropped: every node's store is empty")
	return nil
}

// GetValues is ray.get(list_of_refs): the values of refs, fetched in parallel
// (GetAll) and decoded in order.
func GetValues[T any](ctx context.Context, st trove.Store, refs []trove.Ref) ([]T, error) {
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

// PutValues puts each of vs (ray.put(v) for v in vs); on error it drops the
// refs it made.
func PutValues[T any](ctx context.Context, st trove.Store, vs ...T) ([]trove.Ref, error) {
	refs := make([]trove.Ref, 0, len(vs))
	for _, v := range vs {
		r, err := trove.PutValue(ctx, st, v)
		if err != nil {
			DropAll(refs)
			return nil, err
		}
		refs = append(refs, r)
	}
	return refs, nil
}

// DropAll drops every ref of refs.
func DropAll(refs []trove.Ref) {
	for _, r := range refs {
		r.Drop()
	}
}

// IDs are the refs' object IDs, in order.
func IDs(refs []trove.Ref) []trove.ObjectID {
	out := make([]trove.ObjectID, len(refs))
	for i, r := range refs {
		out[i] = r.ID()
	}
	return out
}

// GetRange is the cell ray.get([ray.put(i) for i in range(n)]), which three
// of the documents have: it puts 0 … n-1, gets them back in parallel, checks
// them and returns them, every ref dropped.
func GetRange(ctx context.Context, d *Driver, n int) ([]int, error) {
	want := make([]int, n)
	for i := range want {
		want[i] = i
	}
	refs, err := PutValues(ctx, d.RT, want...)
	if err != nil {
		return nil, err
	}
	defer DropAll(refs)
	got, err := GetValues[int](ctx, d.RT, refs)
	if err != nil {
		return nil, err
	}
	if !slices.Equal(got, want) {
		return nil, fmt.Errorf("ray.get of %d refs put: %v, want %v", n, got, want)
	}
	return got, nil
}

// TimedOutCall is the documents' long-running cell:
//
//	obj_ref = long_running_function.remote()
//	try:
//	    ray.get(obj_ref, timeout=...)
//	except GetTimeoutError:
//
// a call of LongRunningFunction sleeping run, and a Get of its ref whose
// context ends after timeout, which must fail with trove.ErrGetTimeout (it
// matches context.DeadlineExceeded too, as GetTimeoutError is a TimeoutError).
// It returns the call's ref, the call still running, for the caller to Get or
// Drop; or an error saying what came instead of the timeout.
func TimedOutCall(ctx context.Context, d *Driver, run, timeout time.Duration) (trove.Ref, error) {
	objRef, err := LongRunningFunction.Remote(ctx, d.RT, task.Val(run))
	if err != nil {
		return trove.Ref{}, err
	}
	tctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	obj, err := d.RT.Get(tctx, objRef)
	switch {
	case err == nil:
		obj.Release()
		objRef.Drop()
		return trove.Ref{}, fmt.Errorf("Get of a call sleeping %v returned its value within %v: want trove.ErrGetTimeout", run, timeout)
	case !errors.Is(err, trove.ErrGetTimeout):
		objRef.Drop()
		return trove.Ref{}, fmt.Errorf("Get of a call still running, past its deadline: %w, want trove.ErrGetTimeout", err)
	}
	return objRef, nil
}

// Show makes a call of a function that returns what it would print (see
// Printed), and prints it.
func Show(ctx context.Context, d *Driver, call func() (trove.Ref, error)) error {
	r, err := call()
	if err != nil {
		return err
	}
	defer r.Drop()
	s, err := trove.GetValue[string](ctx, d.RT, r)
	if err != nil {
		return err
	}
	d.Say("%s", s)
	return nil
}

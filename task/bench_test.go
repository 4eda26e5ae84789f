package task

import (
	"context"
	"testing"

	"github.com/trovedb/trove"
	"github.com/trovedb/trove/internal/benchtime"
	"github.com/trovedb/trove/net/ipc"
)

func add(ctx context.Context, a, b int64) (int64, error) { return a + b, nil }

var benchAddFn = Define2("bench.add", add)

// BenchmarkCall is one synchronous call (Remote, then GetValue of its
// result, then Drop) of a function adding two int64 literals, on the
// caller's node ("local") and on another node ("remote"), against a direct
// Go call of the same function in the same iterations. It reports the
// medians of both and the overhead of a call (call-ns - direct-ns).
func BenchmarkCall(b *testing.B) {
	for _, where := range []string{"local", "remote"} {
		b.Run(where, func(b *testing.B) {
			k := 1
			if where == "remote" {
				k = 2
			}
			tc := newCluster(b, k, func(i int) Config {
				if i == 1 {
					return Config{CPUs: 2, Resources: map[string]float64{"remote": 1}}
				}
				return Config{CPUs: 2}
			})
			rt := tc.rts[0]
			fn := benchAddFn
			if where == "remote" {
				fn = fn.Options(Resource("remote", 1))
			}
			benchCalls(b, fn, rt)
		})
	}
}

// BenchmarkWorkerCall is BenchmarkCall's call where a worker process runs
// it: "embedded", the caller's node runs it in process (BenchmarkCall's
// local, again in this run); "worker", a node whose runtime runs only its
// workers' functions dispatches it to a worker process attached to its ipc
// socket (the call's arguments are borrowed and read through the worker's
// client, the result comes back inline in its report); "driver", the same,
// the call made by a program attached to that socket (layerCall, the
// result's Get through the client). Each against a direct Go call of the
// same function in the same iterations.
func BenchmarkWorkerCall(b *testing.B) {
	for _, shape := range []string{"embedded", "worker", "driver"} {
		b.Run(shape, func(b *testing.B) {
			var x Caller
			if shape == "embedded" {
				x = newCluster(b, 1, nil).rts[0]
			} else {
				wn := newWorkerNode(b, 1, 2)
				wn.startWorker(b, 2)
				x = wn.rts[0]
				if shape == "driver" {
					c, err := ipc.Dial(wn.sock)
					if err != nil {
						b.Fatal(err)
					}
					b.Cleanup(func() { c.Close() })
					if x, err = Attach(c, WorkerConfig{}); err != nil {
						b.Fatal(err)
					}
				}
			}
			benchCalls(b, benchAddFn, x)
		})
	}
}

// benchCalls times b.N synchronous calls of fn through x (Remote, GetValue,
// Drop) against a direct call of add in the same iterations, and reports
// the medians of both, the overhead and the calls per second.
func benchCalls(b *testing.B, fn *Func2[int64, int64, int64], x Caller) {
	ctx := context.Background()
	var calls, direct benchtime.Samples
	var sink int64
	b.SetBytes(16)
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		calls.Time(func() {
			r, err := fn.Remote(ctx, x, Val(int64(i)), Val[int64](1))
			if err != nil {
				b.Fatal(err)
			}
			v, err := trove.GetValue[int64](ctx, x, r)
			if err != nil || v != int64(i)+1 {
				b.Fatalf("%d, %v", v, err)
			}
			r.Drop()
		})
		direct.Time(func() {
			v, _ := add(ctx, int64(i), 1)
			sink += v
		})
	}
	b.StopTimer()
	c, d := calls.Median(), direct.Median()
	b.ReportMetric(float64(c.Nanoseconds()), "call-ns")
	b.ReportMetric(float64(d.Nanoseconds()), "direct-ns")
	b.ReportMetric(float64((c - d).Nanoseconds()), "overhead-ns")
	b.ReportMetric(1e9/float64(c.Nanoseconds()), "calls/s")
	_ = sink
}

package bench

import (
	"context"
	"testing"
	"time"

	"github.com/trovedb/trove"
	"github.com/trovedb/trove/internal/benchtime"
	"github.com/trovedb/trove/task"
)

// The batch-inference shape (the seed's model passed by reference to one call
// per shard): a round puts a model of sharedArgBytes on node 0 (the driver),
// makes sharedArgCalls calls that run on nodes 1 and 2 (2 CPUs each, the only
// ones with the resource the calls ask for), each reading the whole model in
// place, gets every result and drops everything. The model should cross the
// network once per node that ran calls (argument prefetch:
// queued calls hold it), not once per call whose node's running calls all
// ended at once. Reported: calls/s (from the median round), pulls/round (the
// model's crossings, from the nodes' Stats), and x_direct against the least
// a cluster must do in the same run: the calls made directly on a local
// slice, plus one memcpy of the model per other node.
const (
	sharedArgBytes = 8 << 20
	sharedArgCalls = 24
)

// readModel is the per-shard call: it reads every element of the model.
var readModel = task.Define1("bench.read_model", readModelFn)

func readModelFn(ctx context.Context, xs []float64) (float64, error) {
	var s float64
	for _, x := range xs {
		s += x
	}
	return s, nil
}

func BenchmarkTaskSharedArg(b *testing.B) {
	model := make([]float64, sharedArgBytes/8)
	for i := range model {
		model[i] = float64(i % 97)
	}
	copies := [2][]float64{make([]float64, len(model)), make([]float64, len(model))}
	direct := runDirect(b, sharedArgCalls, func() {
		for _, c := range copies {
			copy(c, model)
		}
		for range sharedArgCalls {
			sinkFloat, _ = readModelFn(ctx, copies[0])
		}
	})
	b.Run("impl=task", func(b *testing.B) {
		c := newTaskCluster(b, 3, 256<<20, 2)
		rt := c.rts[0]
		// Nodes 1 and 2 run the calls (the resource "infer" is theirs): the
		// model, on node 0, crosses to each.
		for i := 1; i < 3; i++ {
			c.rts[i].Close()
			r, err := task.Start(c.nodes[i], task.Config{CPUs: 2, Resources: map[string]float64{"infer": 2}})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { r.Close() })
			c.rts[i] = r
		}
		fn := readModel.Options(task.Resource("infer", 1))
		pulls := func() int64 {
			var n int64
			for _, node := range c.nodes {
				n += node.Stats().Pulls
			}
			return n
		}
		round := func() {
			m, err := trove.PutValue(ctx, rt, model)
			if err != nil {
				b.Fatal(err)
			}
			refs := make([]trove.Ref, sharedArgCalls)
			for i := range refs {
				if refs[i], err = fn.Remote(ctx, rt, task.Ref[[]float64](m)); err != nil {
					b.Fatal(err)
				}
			}
			m.Drop() // the calls hold it
			objs, err := rt.GetAll(ctx, refs)
			if err != nil {
				b.Fatal(err)
			}
			for _, o := range objs {
				o.Release()
			}
			for _, r := range refs {
				r.Drop()
			}
		}
		// Warm, until every node has run calls (the caller's runtime learns
		// the others' free slots every StatusInterval).
		for deadline := time.Now().Add(10 * time.Second); ; {
			round()
			spread := true
			for _, r := range c.rts[1:] {
				spread = spread && r.Calls(0).Finished > 0
			}
			if spread {
				break
			}
			if time.Now().After(deadline) {
				b.Fatal("the calls ran on one node only after 10 s of rounds")
			}
			time.Sleep(10 * time.Millisecond)
		}
		before := pulls()
		var rounds benchtime.Samples
		b.SetBytes(sharedArgBytes)
		b.ReportAllocs()
		for b.Loop() {
			rounds.Time(round)
		}
		b.ReportMetric(float64(pulls()-before)/float64(b.N), "pulls/round")
		for _, r := range c.rts {
			b.Logf("%s ran %d calls", r.Node().Name(), r.Calls(0).Finished)
		}
		perCall := float64(rounds.Median().Nanoseconds()) / sharedArgCalls
		b.ReportMetric(1e9/perCall, "calls/s")
		b.ReportMetric(direct.ns/perCall, "x_direct")
	})
}

var sinkFloat float64

package batchinference

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/trovedb/trove"
	"github.com/trovedb/trove/internal/batchinfer"
	"github.com/trovedb/trove/internal/localcluster"
	"github.com/trovedb/trove/internal/seeds"
	"github.com/trovedb/trove/task"
)

// Step is the seed's cells on shards of shardRows rows each (one call per
// shard; batchinfer.SeedRows are the seed's).
func Step(shardRows []int) seeds.Step {
	return func(ctx context.Context, d *seeds.Driver) error { return run(ctx, d, shardRows) }
}

func run(ctx context.Context, d *seeds.Driver, shardRows []int) error {
	c, rt := d.Cluster, d.RT

	// # 12 files, one for each remote task.
	// input_files = [
	//     f"/fe41422b01c04169af2a65a83b753e0f_{i:06d}.parquet" for i in range(12)]
	dir, err := os.MkdirTemp("", "trove-batchinference-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	inputFiles, err := batchinfer.WriteShards(dir, 42, shardRows)
	if err != nil {
		return err
	}
	total := 0
	for _, n := range shardRows {
		total += n
	}
	d.Say("input_files: %d Parquet shards of NYC yellow-taxi trips (%d columns, %d rows in all), generated from seed 42 in %s (no network here)",
		len(inputFiles), len(batchinfer.Columns), total, dir)

	// # Get the model
	// model = load_trained_model()
	// # Put the model object into the shared object store.
	// model_ref = ray.put(model)
	model, err := batchinfer.LoadTrainedModel()
	if err != nil {
		return err
	}
	modelRef, err := trove.PutValue(ctx, rt, model)
	if err != nil {
		return err
	}
	defer modelRef.Drop()
	mobj, err := rt.Get(ctx, modelRef)
	if err != nil {
		return err
	}
	modelSize := int64(mobj.Size())
	mobj.Release()
	d.Say("model_ref = ray.put(model): %v, %s (its payload np.arange(10, 100_000, dtype=float) read in place by every call)",
		modelRef, trove.HumanBytes(modelSize))

	pullsBefore := pulls(c)

	// result_refs = []
	// for file in input_files:
	//     result_refs.append(make_model_batch_predictions.remote(model_ref, file))
	//
	// The model goes by reference: put once, resolved on each executing node.
	// Passing the model itself (task.Val(model)) would put a copy per call.
	var resultRefs []trove.Ref
	defer func() { seeds.DropAll(resultRefs) }()
	for _, file := range inputFiles {
		r, err := batchinfer.MakeModelBatchPredictions.Remote(ctx, rt, task.Ref[batchinfer.Model](modelRef), task.Val(file))
		if err != nil {
			return err
		}
		resultRefs = append(resultRefs, r)
	}

	// results = ray.get(result_refs)
	// for r in results:
	//     print(f"Predictions dataframe size: {len(r)} | Total score for tips: {r['score'].sum()}")
	//
	// Each result is an Arrow IPC file, stored as the object's bytes; ViewValue
	// hands back the store's memory and ReadPredictions counts the scores there.
	objs, err := rt.GetAll(ctx, resultRefs)
	if err != nil {
		return err
	}
	for _, o := range objs {
		o.Release()
	}
	ranOn := map[string]int{}
	for i, r := range resultRefs {
		b, obj, err := trove.ViewValue[[]byte](ctx, rt, r)
		if err != nil {
			return err
		}
		p, err := batchinfer.ReadPredictions(b)
		obj.Release()
		if err != nil {
			return fmt.Errorf("shard %d: %w", i, err)
		}
		d.Say("Predictions dataframe size: %d | Total score for tips: %d", p.Rows, p.Tips)
		if err := check(inputFiles[i], p, shardRows[i]); err != nil {
			return fmt.Errorf("shard %d: %w", i, err)
		}
		ranOn[holder(c, r)]++
	}

	// Not in the seed: where the calls ran, and how often the model crossed the
	// network. A node pulls the model the first time a call there needs it and
	// keeps its copy while the model lives, so it crosses once per node that ran
	// calls, never once per call (node-1, the driver, holds the primary).
	var where []string
	others := 0
	for _, n := range c.Nodes {
		if k := ranOn[n.Name()]; k > 0 {
			where = append(where, fmt.Sprintf("%s %d", n.Name(), k))
			if n != c.Nodes[0] {
				others++
			}
		}
	}
	crossed := pulls(c) - pullsBefore
	d.Say("predictions: Arrow record batches in Arrow IPC form, read in place from each object's bytes")
	d.Say("calls per node: %s; the model's %s crossed the network %d times (once to each other node that ran calls: %d), for %d calls",
		strings.Join(where, ", "), trove.HumanBytes(modelSize), crossed, others, len(resultRefs))
	if crossed != int64(others) {
		return fmt.Errorf("the model was pulled %d times for %d other nodes running calls, want once per node", crossed, others)
	}
	if slices.Equal(shardRows, batchinfer.SeedRows) {
		var seed []string
		for i := range batchinfer.SeedRows {
			seed = append(seed, fmt.Sprintf("%d | %d", batchinfer.SeedRows[i], batchinfer.SeedTips[i]))
		}
		d.Say("(generated shards: the seed's real NYC files give size | score %s)", strings.Join(seed, ", "))
	}
	return nil
}

// check compares predictions with the shard read here: one score per row,
// the tips where passenger_count ≥ 2, and the scores read in place.
func check(path string, p batchinfer.Predictions, rows int) error {
	s, err := batchinfer.OpenShard(path)
	if err != nil {
		return err
	}
	defer s.Close()
	counts, err := s.PassengerCounts()
	if err != nil {
		return err
	}
	var tips int64
	for _, c := range counts {
		if c >= 2 {
			tips++
		}
	}
	if p.Rows != int64(rows) || p.Tips != tips || !p.InPlace {
		return fmt.Errorf("predictions %+v, want %d rows, %d tips, read in place", p, rows, tips)
	}
	return nil
}

// pulls is how many objects the cluster's nodes have pulled in chunks from
// other nodes (large objects; small ones travel inline in replies).
func pulls(c *localcluster.Cluster) int64 {
	var n int64
	for _, node := range c.Nodes {
		n += node.Stats().Pulls
	}
	return n
}

// holder is the name of the node that holds ref's result: where the call ran.
func holder(c *localcluster.Cluster, ref trove.Ref) string {
	for _, l := range c.Nodes[0].Locations([]trove.Ref{ref}, nil) {
		if n := c.Node(l.Node); n != nil {
			return n.Name()
		}
	}
	return "unknown"
}

package main

import (
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/trovedb/trove"
	"github.com/trovedb/trove/internal/batchinfer"
	"github.com/trovedb/trove/task"
)

// batchInference is the seed's distributed batch inference (see
// examples/batchinference for it cell by cell): 12 Parquet shards of NYC
// yellow-taxi trips, generated here from a seed (no network: the real files
// give the seed's figures), the fake model put once, one call per shard, and
// the predictions read in place from their Arrow IPC bytes. It prints how many
// times the model crossed the network: once per other node that ran calls.
func batchInference(ctx context.Context, c *demoCluster, say func(string, ...any), quick bool) error {
	rt := c.rts[0]
	rows := batchinfer.SeedRows
	if quick {
		rows = make([]int, len(batchinfer.SeedRows))
		for i, n := range batchinfer.SeedRows {
			rows[i] = n / 100
		}
	}
	dir, err := os.MkdirTemp("", "trove-demo-shards-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	files, err := batchinfer.WriteShards(dir, 42, rows)
	if err != nil {
		return err
	}
	total := 0
	for _, n := range rows {
		total += n
	}
	say("input_files: %d Parquet shards, %d trips with the TLC yellow-taxi schema (%d columns), generated from seed 42 (no network here)",
		len(files), total, len(batchinfer.Columns))

	model, err := batchinfer.LoadTrainedModel()
	if err != nil {
		return err
	}
	modelRef, err := trove.PutValue(ctx, rt, model) // model_ref = ray.put(model)
	if err != nil {
		return err
	}
	defer modelRef.Drop()
	pullsBefore := demoPulls(c)
	var results []trove.Ref
	defer func() { dropAll(results) }()
	for _, f := range files { // make_model_batch_predictions.remote(model_ref, file)
		r, err := batchinfer.MakeModelBatchPredictions.Remote(ctx, rt, task.Ref[batchinfer.Model](modelRef), task.Val(f))
		if err != nil {
			return err
		}
		results = append(results, r)
	}
	objs, err := rt.GetAll(ctx, results) // results = ray.get(result_refs)
	if err != nil {
		return err
	}
	for _, o := range objs {
		o.Release()
	}
	ranOn := map[string]int{}
	for i, r := range results {
		b, obj, err := trove.ViewValue[[]byte](ctx, rt, r)
		if err != nil {
			return err
		}
		p, err := batchinfer.ReadPredictions(b)
		obj.Release()
		if err != nil {
			return fmt.Errorf("shard %d: %w", i, err)
		}
		if p.Rows != int64(rows[i]) || !p.InPlace {
			return fmt.Errorf("shard %d: predictions %+v, want %d rows read in place", i, p, rows[i])
		}
		say("  Predictions dataframe size: %d | Total score for tips: %d", p.Rows, p.Tips)
		for _, l := range c.Nodes[0].Locations([]trove.Ref{r}, nil) {
			if n := c.Node(l.Node); n != nil {
				ranOn[n.Name()]++
				break
			}
		}
	}
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
	crossed := demoPulls(c) - pullsBefore
	say("predictions: Arrow record batches in Arrow IPC form, read in place from each object's bytes; calls per node: %s", strings.Join(where, ", "))
	say("the model (%s of weights) crossed the network %d times for %d calls: once to each other node that ran calls (%d)",
		trove.HumanBytes(int64(model.Payload.NumBytes())), crossed, len(results), others)
	if crossed != int64(others) {
		return fmt.Errorf("the model was pulled %d times for %d other nodes running calls, want once per node", crossed, others)
	}
	if !quick {
		say("(generated trips: the seed's real NYC files give %d | %d for the first shard, and so on)", batchinfer.SeedRows[0], batchinfer.SeedTips[0])
	}
	return nil
}

// demoPulls is how many objects the nodes have pulled in chunks from others.
func demoPulls(c *demoCluster) int64 {
	var n int64
	for _, node := range c.Nodes {
		n += node.Stats().Pulls
	}
	return n
}

package batchinfer

import (
	"context"

	"github.com/trovedb/trove/task"
)

// MakeModelBatchPredictions is the seed's remote function:
//
//	@ray.remote
//	def make_model_batch_predictions(model, shard_path, verbose=False):
//	    df = pq.read_table(shard_path).to_pandas()
//	    result = model(df)
//	    return result
//
// Passed as task.Ref[Model](modelRef), the model is resolved before the call:
// its bytes are brought to the executing node once (a node keeps its copy
// while the model lives, so later calls there find it) and its payload is read
// in place. The result is the predictions' Arrow IPC file, stored as a
// top-level []byte, so the driver reads it with trove.ViewValue in the store's
// memory. The shard path must name a file every node can read: here the nodes
// share one machine; in the seed the shards are on shared storage (S3).
var MakeModelBatchPredictions = task.Define2("make_model_batch_predictions",
	func(ctx context.Context, model Model, shardPath string) ([]byte, error) {
		return model.Predict(shardPath)
	})

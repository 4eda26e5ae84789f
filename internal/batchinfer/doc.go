// Package batchinfer is the batch inference of the seed's "Distributed Batch
// Inference" cells, in Go: NYC yellow-taxi trip records in Parquet shards, a
// fake model that predicts a tip when passenger_count ≥ 2 and carries a
// payload of weights (the seed's np.arange(10, 100_000, dtype=float)), and
// predictions returned as an Arrow record batch in Arrow IPC file form, which
// a driver reads in place from a store's view of the object.
//
// It owns three formats and their checks:
//
//   - Shards: Parquet files with the TLC's 19-column yellow-taxi schema
//     (Trip), written and read with github.com/parquet-go/parquet-go.
//     WriteShards generates them deterministically from a seed: there is no
//     network here, so the seed's 12 monthly files cannot be downloaded. The
//     generated shards have the row counts of the seed's output, but their
//     passenger counts are drawn at random, so the tip totals differ from the
//     seed's; the real files give the seed's figures.
//   - The model: a Model value (its payload a zerocopy.Tensor, read in place),
//     stored once with trove.PutValue and passed to every call by ref.
//   - Predictions: an Arrow IPC file (github.com/apache/arrow-go/v18/arrow/ipc)
//     holding one record batch of one non-nullable boolean column, "score".
//     ReadPredictions checks every part of it and reads the bitmap where it
//     lies; bad bytes are an error, never a panic.
//
// Parquet and Arrow are large (perf.md, DEPENDENCIES.md): only the programs
// that run batch inference import this package, never troved.
package batchinfer

// Package batchinference is the seed's "Distributed Batch Inference": a fake
// model put once, one remote call per Parquet shard of NYC yellow-taxi trips,
// and the predictions returned as Arrow record batches (Arrow IPC) that the
// driver reads in place. Each cell quotes the Python it stands for.
// examples/batchinference runs it; `trove demo` walks through it too.
//
// There is no network here, so the seed's 12 monthly TLC files cannot be
// downloaded: the step generates 12 shards with the TLC's schema and the row
// counts it is given (the seed's: internal/batchinfer.SeedRows),
// deterministically from a seed, into a temporary directory. Their passenger
// counts are drawn at random, so the tip totals differ from the seed's; the
// real files give the seed's figures, which the step prints beside its own.
package batchinference

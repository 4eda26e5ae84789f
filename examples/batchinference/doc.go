// Command batchinference runs the seed's "Distributed Batch Inference" cells
// on an in-process trove cluster of three nodes: a fake model put once, one
// remote call per Parquet shard of NYC yellow-taxi trips, and the predictions
// returned as Arrow record batches (Arrow IPC) that the driver reads in place.
// The cells, each beside the Python it stands for, are in
// internal/seeds/batchinference.
//
// There is no network here, so the seed's 12 monthly TLC files cannot be
// downloaded: the program generates 12 shards with the TLC's schema and the
// seed's row counts, deterministically from a seed, into a temporary
// directory. Their passenger counts are drawn at random, so the tip totals
// differ from the seed's; the real files give the seed's figures, which the
// program prints beside its own.
package main

// Package bench holds trove's throughput and latency comparisons, run with
// `go test -bench . ./bench/` (or `make bench`, which repeats them and summarises
// with benchstat).
//
// Every benchmark that makes a performance claim measures its baseline in the same
// run, on the same machine, and reports the ratio with b.ReportMetric:
//
//   - Put of 1 MiB–256 MiB against a warm memcpy of the same size (x_memcpy: the
//     store's throughput as a fraction of memcpy's).
//   - Get of a 256 MiB object against Get of a 1 KiB one (x_1KiB: zero copy means
//     the size does not matter).
//   - Small-object Put against the bare heap copy a map-backed store would do.
//   - Get with 1M live objects against Get with 1k (x_1k).
//
// Figures and the commands that reproduce them are in perf.md. Benchmarks check
// that the store is empty when they end, as tests do.
package bench

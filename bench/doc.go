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
//   - The node-to-node transport (quic_bench_test.go): Pull of 1 MiB–256 MiB
//     into another node's arena, side by side with a raw quic-go and a TCP+TLS
//     1.3 transfer of the same bytes (x_raw-quic, x_tcp-tls), the choice of
//     chunk size and stream count, and a 1 KiB request/response against raw
//     quic-go from 1 and 32 goroutines (x_request, x_request_p50).
//
// Figures and the commands that reproduce them are in perf.md. Benchmarks check
// that the store is empty when they end, as tests do.
package bench

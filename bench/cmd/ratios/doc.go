// Command ratios prints the ratio of medians between a benchmark and its baseline
// in `go test -bench -count N` output: for every benchmark whose name has the
// sub-benchmark element -vs (say impl=trove), the one whose name has -base (say
// impl=redis) in that place instead, and the median of each over its runs.
//
//	go run ./bench/cmd/ratios -base impl=redis -vs impl=trove bench/out/redis.txt
//
// The ratio is base/vs of the unit's medians (ns/op by default), so above 1 the
// -vs benchmark is faster. This is the figure perf.md quotes where a benchmark's
// own x_ metric pairs each run with the baseline's last run only (go test runs
// all N runs of one sub-benchmark before the next). It owns no state: it reads
// the files (or stdin) and prints one line per pair, in input order.
package main

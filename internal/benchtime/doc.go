// Package benchtime holds what benchmarks that pair an operation with its
// baseline share: the times of one side, one per iteration, and their median.
// Benchmarks report the ratio of the two sides' medians, so that a burst of
// load striking a few iterations does not make the figure (perf.md says
// which rows are made so). It is for benchmarks only.
package benchtime

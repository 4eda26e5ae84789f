package benchtime

import (
	"slices"
	"time"
)

// Samples are the times of one side of a benchmark, one per iteration.
type Samples []time.Duration

// Time runs f and records how long it took.
func (s *Samples) Time(f func()) {
	start := time.Now()
	f()
	*s = append(*s, time.Since(start))
}

// Median returns the median of the samples (0 for none).
func (s Samples) Median() time.Duration {
	c := slices.Clone(s)
	slices.Sort(c)
	if len(c) == 0 {
		return 0
	}
	if len(c)%2 == 0 {
		return (c[len(c)/2-1] + c[len(c)/2]) / 2
	}
	return c[len(c)/2]
}

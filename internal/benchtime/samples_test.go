package benchtime

import (
	"testing"
	"time"
)

func TestMedian(t *testing.T) {
	for _, tc := range []struct {
		in   Samples
		want time.Duration
	}{
		{nil, 0},
		{Samples{5}, 5},
		{Samples{9, 1, 5}, 5},
		{Samples{4, 1, 9, 2}, 3},
	} {
		if got := tc.in.Median(); got != tc.want {
			t.Errorf("Median(%v) = %v, want %v", tc.in, got, tc.want)
		}
	}
	s := Samples{3, 1, 2}
	s.Median()
	if s[0] != 3 || s[1] != 1 {
		t.Errorf("Median reordered its samples: %v", s)
	}
}

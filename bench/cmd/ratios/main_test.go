package main

import (
	"strings"
	"testing"
)

const sample = `goos: linux
BenchmarkGet/size=1MiB/impl=redis-2   	 10	 1000 ns/op	 600.0 MB/s
BenchmarkGet/size=1MiB/impl=redis-2   	 10	 3000 ns/op	 600.0 MB/s
BenchmarkGet/size=1MiB/impl=redis-2   	 10	 2000 ns/op	 600.0 MB/s
BenchmarkGet/size=1MiB/impl=trove-2   	 10	  100 ns/op	 5.0 x_redis
BenchmarkGet/size=1MiB/impl=trove-2   	 10	  300 ns/op	 5.0 x_redis
BenchmarkGet/size=1MiB/impl=unix-2    	 10	  500 ns/op
BenchmarkGet/size=1MiB/impl=unix-2    	 10	  700 ns/op
BenchmarkLonely/impl=trove-2          	 10	  100 ns/op
PASS
`

func TestPairs(t *testing.T) {
	runs, order, err := parse(strings.NewReader(sample), "ns/op")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		base, vs string
		want     []string
	}{
		// Medians: redis 2000 (odd count), trove 200 (mean of the middle two).
		{"impl=redis", "impl=trove", []string{"BenchmarkGet/size=1MiB/impl=trove\timpl=redis 2µs (n=3)\timpl=trove 200ns (n=2)\timpl=redis/impl=trove 10x"}},
		{"impl=unix", "impl=trove", []string{"BenchmarkGet/size=1MiB/impl=trove\timpl=unix 600ns (n=2)\timpl=trove 200ns (n=2)\timpl=unix/impl=trove 3x"}},
		{"impl=redis", "impl=unix", []string{"BenchmarkGet/size=1MiB/impl=unix\timpl=redis 2µs (n=3)\timpl=unix 600ns (n=2)\timpl=redis/impl=unix 3.33x"}},
		{"impl=none", "impl=trove", nil}, // no baseline: no line, BenchmarkLonely included
	} {
		got := pairs(runs, order, tc.base, tc.vs, "ns/op")
		if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
			t.Errorf("-base %s -vs %s:\n got %q\nwant %q", tc.base, tc.vs, got, tc.want)
		}
	}
}

func TestParseOtherUnit(t *testing.T) {
	runs, _, err := parse(strings.NewReader(sample), "MB/s")
	if err != nil {
		t.Fatal(err)
	}
	if v := runs["BenchmarkGet/size=1MiB/impl=redis"]; len(v) != 3 || v[0] != 600 {
		t.Fatalf("MB/s values %v", v)
	}
	if _, ok := runs["BenchmarkGet/size=1MiB/impl=trove"]; ok {
		t.Fatal("a benchmark without the unit has values")
	}
}

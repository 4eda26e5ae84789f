package main

import (
	"io"
	"strings"
	"testing"
)

func TestParseBytes(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
		ok   bool
	}{
		{"256MiB", 256 << 20, true}, {"8MiB", 8 << 20, true}, {"1GiB", 1 << 30, true},
		{"4KiB", 4096, true}, {"4096", 4096, true}, {"12B", 12, true},
		{"", 0, false}, {"0MiB", 0, false}, {"-1", 0, false}, {"MiB", 0, false}, {"1.5GiB", 0, false},
	} {
		got, err := parseBytes(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("parseBytes(%q) = %d, %v; want %d, ok=%v", tc.in, got, err, tc.want, tc.ok)
		}
	}
}

func TestRunSmallSweep(t *testing.T) {
	var out strings.Builder
	err := run([]string{"-n", "2,4", "-size", "16MiB", "-chunk", "1MiB", "-variants", "swarm,single", "-fail-n", "4", "-stagger", "0", "-owner-n", "0", "-out", "", "-plot", ""}, &out)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"swarm", "single", "N=4", "memberlist traffic per node"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	if err := run([]string{"-variants", "nope"}, io.Discard); err == nil || !strings.Contains(err.Error(), "no variant") {
		t.Errorf("unknown variant: %v, want an error naming it", err)
	}
}

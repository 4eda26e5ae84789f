package main

import (
	"io"
	"testing"
)

// Tests that need no namespaces: flags, the pattern and its check, medians.

func TestParseNodeValues(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want map[int]string
		ok   bool
	}{
		{"", map[int]string{}, true},
		{"1:0.05", map[int]string{1: "0.05"}, true},
		{"0:50mbit,3:1gbit", map[int]string{0: "50mbit", 3: "1gbit"}, true},
		{"4:0.1", nil, false}, // only nodes 0-3
		{"-1:0.1", nil, false},
		{"1", nil, false},
		{"1:", nil, false},
		{"x:0.1", nil, false},
	} {
		got, err := parseNodeValues(tc.in, 4)
		if (err == nil) != tc.ok {
			t.Errorf("parseNodeValues(%q): %v, want ok=%v", tc.in, err, tc.ok)
			continue
		}
		if len(got) != len(tc.want) {
			t.Errorf("parseNodeValues(%q) = %v, want %v", tc.in, got, tc.want)
		}
		for k, v := range tc.want {
			if got[k] != v {
				t.Errorf("parseNodeValues(%q)[%d] = %q, want %q", tc.in, k, got[k], v)
			}
		}
	}
}

func TestBadFlagsExitTwo(t *testing.T) {
	for _, args := range [][]string{nil, {"-x"}, {"broadcast", "-size", "lots"}, {"broadcast", "-nope"}, {"bench", "-size", "0"}} {
		if got := run(args, io.Discard, io.Discard); got != 2 {
			t.Errorf("run(%q) = %d, want 2", args, got)
		}
	}
}

func TestFillAndFirstDiff(t *testing.T) {
	for _, size := range []int{0, 1, 7, 8, 9, 4<<20 + 3} {
		a, b := make([]byte, size), make([]byte, size)
		fill(a, 42)
		fill(b, 42)
		if d := firstDiff(a, b); d != -1 {
			t.Fatalf("size %d: the same pattern differs at %d", size, d)
		}
		if size == 0 {
			continue
		}
		at := size / 2
		b[at] ^= 1
		if d := firstDiff(a, b); d != at {
			t.Fatalf("size %d: one flipped byte at %d found at %d", size, at, d)
		}
		fill(b, 43)
		if d := firstDiff(a, b); d < 0 || d > 8 {
			t.Fatalf("size %d: another seed's pattern first differs at %d, want in the first word", size, d)
		}
	}
	if d := firstDiff(make([]byte, 4), make([]byte, 5)); d != 4 {
		t.Fatalf("lengths 4 and 5: first difference at %d, want 4", d)
	}
}

func TestMedian(t *testing.T) {
	runs := func(s ...float64) []Run {
		var r []Run
		for _, v := range s {
			r = append(r, Run{Seconds: v})
		}
		return r
	}
	sec := func(r Run) float64 { return r.Seconds }
	for _, tc := range []struct {
		in   []Run
		want float64
	}{{runs(3), 3}, {runs(5, 1, 3), 3}, {runs(4, 1, 3, 2), 2.5}} {
		if got := median(tc.in, sec); got != tc.want {
			t.Errorf("median(%v) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

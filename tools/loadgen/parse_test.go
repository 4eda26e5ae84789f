package main

import (
	"reflect"
	"testing"
)

func TestSignedBytesFlag(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
	}{{"-1", -1}, {"0", 0}, {"64KiB", 64 << 10}, {"-2KiB", -2048}} {
		var f signedBytesFlag
		if err := f.Set(tc.in); err != nil || int64(f) != tc.want {
			t.Errorf("Set(%q) = %d, %v; want %d", tc.in, f, err, tc.want)
		}
	}
}

func TestParseSizes(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []sizeWeight
		err  bool
	}{
		{in: "1KiB:70,1MiB:25,16MiB:5", want: []sizeWeight{{1 << 10, 70}, {1 << 20, 25}, {16 << 20, 5}}},
		{in: "4KiB", want: []sizeWeight{{4 << 10, 1}}},
		{in: "1MiB:1, 64:3 ", want: []sizeWeight{{64, 3}, {1 << 20, 1}}}, // sorted, spaces
		{in: "1KiB:2,1024:3", want: []sizeWeight{{1024, 5}}},             // one size twice: weights add
		{in: "1KiB:0,2KiB:1", want: []sizeWeight{{2048, 1}}},             // weight 0 leaves a size out
		{in: "32", want: []sizeWeight{{headerSize, 1}}},                  // exactly the header
		{in: "31", err: true},              // smaller than the header
		{in: "", err: true},                // nothing
		{in: "1KiB:0", err: true},          // no positive weight
		{in: "1KiB:-3", err: true},         // negative weight
		{in: "1KiB:x", err: true},          // bad weight
		{in: "1QiB:3", err: true},          // bad unit
		{in: ":3", err: true},              // no size
		{in: "8GiB", err: true},            // too large
		{in: "1KiB:70,oops", err: true},    // one bad entry
		{in: "1KiB:70,,2KiB:1", err: true}, // an empty item
		{in: "1KiB:70,", err: true},        // a trailing comma
		{in: " , ", err: true},             // only empty items
	} {
		got, err := parseSizes(tc.in)
		if tc.err {
			if err == nil {
				t.Errorf("parseSizes(%q) = %v, want an error", tc.in, got)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("parseSizes(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
}

func TestParseMix(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want [numOps]int
		err  bool
	}{
		{in: "put:40,get:50,wait:10", want: [numOps]int{40, 50, 10}},
		{in: "PUT:1,Get:2", want: [numOps]int{1, 2, 0}},
		{in: "put", want: [numOps]int{1, 0, 0}},
		{in: "wait:5, put:5", want: [numOps]int{5, 0, 5}},
		{in: "get:50,wait:10", err: true}, // no puts
		{in: "put:0,get:1", err: true},    // no puts
		{in: "put:1,delete:1", err: true}, // unknown op
		{in: "put:1,put:2", err: true},    // twice
		{in: "put:-1", err: true},
		{in: "put:1,get:x", err: true},
		{in: "put:1,,get:1", err: true},
		{in: "", err: true},
	} {
		got, err := parseMix(tc.in)
		if tc.err {
			if err == nil {
				t.Errorf("parseMix(%q) = %v, want an error", tc.in, got)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("parseMix(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
}

func TestListFlag(t *testing.T) {
	var l listFlag
	for _, v := range []string{"/a.sock", "/b.sock, /c.sock", ","} {
		if err := l.Set(v); err != nil {
			t.Fatal(err)
		}
	}
	if want := (listFlag{"/a.sock", "/b.sock", "/c.sock"}); !reflect.DeepEqual(l, want) {
		t.Errorf("listFlag = %q, want %q", l, want)
	}
}

func TestParseOptionsRefusesUnboundedRuns(t *testing.T) {
	for _, args := range [][]string{
		{"-embedded", "-duration", "0"},
		{"-embedded", "-duration", "0", "-ops", "0"},
		{"-embedded", "-ops", "-5"},
		{"-embedded", "-concurrency", "0"},
		{"-embedded", "-sizes", "1KiB:0"},
		{"-embedded", "-mix", "get:1"},
		{"-embedded", "-working-set", "0"},
		{"-embedded", "-op-timeout", "0s"},
		{"-embedded", "stray"},
		{"-embedded", "-working-set", "10"},                                          // 10 bytes: less than one object
		{"-embedded", "-working-set", "15MiB", "-sizes", "1MiB,16MiB"},               // less than one 16 MiB object
		{"-embedded", "-working-set", "8MiB", "-sizes", "1MiB", "-concurrency", "9"}, // less than 1 MiB per worker
		{"-embedded", "-sizes", "1KiB,,4KiB"},
	} {
		if _, err := parseOptions(args, discard{}, discard{}); err == nil {
			t.Errorf("parseOptions(%q) accepted it", args)
		}
	}
	o, err := parseOptions([]string{"-embedded", "-working-set", "8MiB", "-sizes", "1MiB", "-concurrency", "8"}, discard{}, discard{})
	if err != nil || o.load.WorkingSet != 8<<20 {
		t.Errorf("a working set of exactly one object per worker: %+v, %v", o, err)
	}
	o, err = parseOptions([]string{"-embedded", "-duration", "0", "-ops", "10"}, discard{}, discard{})
	if err != nil || o.load.Ops != 10 || o.load.Duration != 0 || len(o.sockets) != 0 {
		t.Errorf("ops-only run: %+v, %v", o, err)
	}
	o, err = parseOptions([]string{"-socket", "/x.sock,/y.sock", "-socket", "/z.sock", "-embedded"}, discard{}, discard{})
	if err != nil || !reflect.DeepEqual([]string(o.sockets), []string{"/x.sock", "/y.sock", "/z.sock"}) {
		t.Errorf("sockets: %+v, %v", o, err)
	}
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

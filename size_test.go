package trove

import "testing"

func TestParseBytes(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
		err  bool
	}{
		{in: "0", want: 0},
		{in: "4096", want: 4096},
		{in: "17B", want: 17},
		{in: "1KiB", want: 1 << 10},
		{in: "1kib", want: 1 << 10},
		{in: "1K", want: 1 << 10},
		{in: "1KB", want: 1000},
		{in: "1.5MiB", want: 3 << 19},
		{in: " 16 MiB ", want: 16 << 20},
		{in: "2GiB", want: 2 << 30},
		{in: "2G", want: 2 << 30},
		{in: "3GB", want: 3e9},
		{in: "1TiB", want: 1 << 40},
		{in: "", err: true},
		{in: "MiB", err: true},
		{in: "12XB", err: true},
		{in: "1.2.3KiB", err: true},
		{in: "0.5B", err: true},
		{in: "-1KiB", err: true},
		{in: "99999999999TiB", err: true},
	} {
		got, err := ParseBytes(tc.in)
		if tc.err {
			if err == nil {
				t.Errorf("ParseBytes(%q) = %d, want an error", tc.in, got)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("ParseBytes(%q) = %d, %v; want %d", tc.in, got, err, tc.want)
		}
	}
}

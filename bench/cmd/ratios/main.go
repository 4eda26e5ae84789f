package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

func main() {
	base := flag.String("base", "", "the baseline's sub-benchmark element, e.g. impl=redis")
	vs := flag.String("vs", "", "the compared sub-benchmark element, e.g. impl=trove")
	unit := flag.String("unit", "ns/op", "the unit whose medians are compared (time-like: ratio is base/vs)")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: ratios -base elem -vs elem [-unit ns/op] [file ...]\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	if *base == "" || *vs == "" {
		flag.Usage()
		os.Exit(2)
	}
	var in []io.Reader
	for _, name := range flag.Args() {
		f, err := os.Open(name)
		if err != nil {
			fmt.Fprintln(os.Stderr, "ratios:", err)
			os.Exit(1)
		}
		defer f.Close()
		in = append(in, f)
	}
	if len(in) == 0 {
		in = append(in, os.Stdin)
	}
	runs, order, err := parse(io.MultiReader(in...), *unit)
	if err != nil {
		fmt.Fprintln(os.Stderr, "ratios:", err)
		os.Exit(1)
	}
	lines := pairs(runs, order, *base, *vs, *unit)
	if len(lines) == 0 {
		fmt.Fprintf(os.Stderr, "ratios: no benchmark has both %q and %q in %s\n", *base, *vs, *unit)
		os.Exit(1)
	}
	for _, l := range lines {
		fmt.Println(l)
	}
}

// procs is the -GOMAXPROCS suffix go test adds to a benchmark's name.
var procs = regexp.MustCompile(`-\d+$`)

// parse returns each benchmark's values in unit, by name without the GOMAXPROCS
// suffix, and the names in the order first seen.
func parse(r io.Reader, unit string) (map[string][]float64, []string, error) {
	runs := map[string][]float64{}
	var order []string
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") {
			continue
		}
		if _, err := strconv.Atoi(f[1]); err != nil {
			continue // not a result line
		}
		name := procs.ReplaceAllString(f[0], "")
		for i := 2; i+1 < len(f); i += 2 {
			if f[i+1] != unit {
				continue
			}
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				return nil, nil, fmt.Errorf("%s: value %q of %s is not a number", name, f[i], unit)
			}
			if _, ok := runs[name]; !ok {
				order = append(order, name)
			}
			runs[name] = append(runs[name], v)
		}
	}
	return runs, order, sc.Err()
}

// format writes a median of ns/op as a duration, and any other unit's as a number.
func format(v float64, unit string) string {
	if unit == "ns/op" {
		return time.Duration(v).Round(time.Duration(max(1, v/1000))).String()
	}
	return strconv.FormatFloat(v, 'g', 4, 64) + " " + unit
}

func median(v []float64) float64 {
	s := slices.Sorted(slices.Values(v))
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// pairs formats, for each name with the element vs, the medians of it and of the
// name with base in its place, and their ratio base/vs.
func pairs(runs map[string][]float64, order []string, base, vs, unit string) []string {
	var out []string
	for _, name := range order {
		elems := strings.Split(name, "/")
		i := slices.Index(elems, vs)
		if i < 0 {
			continue
		}
		elems[i] = base
		b, ok := runs[strings.Join(elems, "/")]
		if !ok {
			continue
		}
		mb, mv := median(b), median(runs[name])
		out = append(out, fmt.Sprintf("%s\t%s %s (n=%d)\t%s %s (n=%d)\t%s/%s %.3gx",
			name, base, format(mb, unit), len(b), vs, format(mv, unit), len(runs[name]), base, vs, mb/mv))
	}
	return out
}

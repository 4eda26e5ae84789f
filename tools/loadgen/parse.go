package main

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"

	"github.com/trovedb/trove"
)

// sizeWeight is one entry of the object size distribution.
type sizeWeight struct {
	Size   int64 `json:"size"`
	Weight int   `json:"weight"`
}

// parseSizes parses "1KiB:70,1MiB:25,16MiB:5": object sizes with integer weights.
// A size without a weight ("4KiB") has weight 1. Every size must hold at least the
// payload header; repeated sizes add up their weights. An empty item ("1KiB,,4KiB",
// or a trailing comma) is an error: it is a typo more often than not.
func parseSizes(s string) ([]sizeWeight, error) {
	var out []sizeWeight
	index := map[int64]int{}
	if strings.TrimSpace(s) == "" {
		return nil, fmt.Errorf("-sizes is empty: give SIZE:WEIGHT items separated by commas, such as %s", defaultSizes)
	}
	for i, item := range strings.Split(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			return nil, fmt.Errorf("-sizes %q: item %d is empty; give SIZE:WEIGHT items separated by commas, such as %s", s, i+1, defaultSizes)
		}
		sz, w, err := splitWeight(item)
		if err != nil {
			return nil, fmt.Errorf("-sizes %q: %w", s, err)
		}
		n, err := trove.ParseBytes(sz)
		if err != nil {
			return nil, fmt.Errorf("-sizes: %w", err)
		}
		if n < headerSize {
			return nil, fmt.Errorf("-sizes: object size %s is smaller than the %d-byte payload header", sz, headerSize)
		}
		if n > math.MaxInt32*2 {
			return nil, fmt.Errorf("-sizes: object size %s is over loadgen's limit of 4 GiB", sz)
		}
		if w == 0 {
			continue
		}
		if i, ok := index[n]; ok {
			out[i].Weight += w
			continue
		}
		index[n] = len(out)
		out = append(out, sizeWeight{Size: n, Weight: w})
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("-sizes %q: no size with a positive weight", s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Size < out[j].Size })
	return out, nil
}

// opKind is an operation of the mix.
type opKind int

const (
	opPut opKind = iota
	opGet
	opWait
	numOps
)

var opNames = [numOps]string{"put", "get", "wait"}

func (k opKind) String() string { return opNames[k] }

// parseMix parses "put:40,get:50,wait:10" into weights per op kind. Kinds left out
// get weight 0; at least one put weight must be positive (gets and waits need
// objects to read).
func parseMix(s string) ([numOps]int, error) {
	var mix [numOps]int
	seen := [numOps]bool{}
	for i, item := range strings.Split(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			return mix, fmt.Errorf("-mix %q: item %d is empty; give OP:WEIGHT items separated by commas, such as %s", s, i+1, defaultMix)
		}
		name, w, err := splitWeight(item)
		if err != nil {
			return mix, fmt.Errorf("-mix %q: %w", s, err)
		}
		k := opKind(-1)
		for i, n := range opNames {
			if strings.EqualFold(name, n) {
				k = opKind(i)
			}
		}
		if k < 0 {
			return mix, fmt.Errorf("-mix %q: unknown op %q (want put, get, wait)", s, name)
		}
		if seen[k] {
			return mix, fmt.Errorf("-mix %q: op %s given twice", s, name)
		}
		seen[k] = true
		mix[k] = w
	}
	if mix[opPut] <= 0 {
		return mix, fmt.Errorf("-mix %q: put needs a positive weight (gets and waits read what was put)", s)
	}
	return mix, nil
}

// splitWeight splits "x:w" into x and the weight w (a non-negative integer); "x"
// alone has weight 1.
func splitWeight(item string) (string, int, error) {
	name, ws, ok := strings.Cut(item, ":")
	name = strings.TrimSpace(name)
	if name == "" {
		return "", 0, fmt.Errorf("empty entry in %q", item)
	}
	if !ok {
		return name, 1, nil
	}
	w, err := strconv.Atoi(strings.TrimSpace(ws))
	if err != nil || w < 0 {
		return "", 0, fmt.Errorf("weight %q of %s is not a non-negative integer", ws, name)
	}
	return name, w, nil
}

// listFlag is a repeatable flag whose values may also be comma-separated.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }

func (l *listFlag) Set(v string) error {
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			*l = append(*l, s)
		}
	}
	return nil
}

// bytesFlag is a flag holding a byte size.
type bytesFlag int64

func (b *bytesFlag) String() string { return trove.HumanBytes(int64(*b)) }

func (b *bytesFlag) Set(v string) error {
	n, err := trove.ParseBytes(v)
	if err != nil {
		return err
	}
	*b = bytesFlag(n)
	return nil
}

// signedBytesFlag is a byte size that may also be negative ("-1"), for settings
// where a negative value means "off".
type signedBytesFlag int64

func (b *signedBytesFlag) String() string { return strconv.FormatInt(int64(*b), 10) }

func (b *signedBytesFlag) Set(v string) error {
	neg := strings.HasPrefix(strings.TrimSpace(v), "-")
	n, err := trove.ParseBytes(strings.TrimPrefix(strings.TrimSpace(v), "-"))
	if err != nil {
		return err
	}
	if neg {
		n = -n
	}
	*b = signedBytesFlag(n)
	return nil
}

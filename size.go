package trove

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode"
)

// byteUnits maps a lower-cased unit suffix to its multiplier. Binary suffixes (KiB,
// and the bare K) are powers of 1024; decimal ones (KB) powers of 1000.
var byteUnits = map[string]float64{
	"": 1, "b": 1,
	"k": 1 << 10, "ki": 1 << 10, "kib": 1 << 10, "kb": 1e3,
	"m": 1 << 20, "mi": 1 << 20, "mib": 1 << 20, "mb": 1e6,
	"g": 1 << 30, "gi": 1 << 30, "gib": 1 << 30, "gb": 1e9,
	"t": 1 << 40, "ti": 1 << 40, "tib": 1 << 40, "tb": 1e12,
}

// ParseBytes parses a byte size, the inverse of HumanBytes: "4096", "1KiB", "1.5 MiB", "2G", "10MB". Units are
// case-insensitive; K, M, G, T and KiB... are binary, KB, MB... decimal.
func ParseBytes(s string) (int64, error) {
	t := strings.TrimSpace(s)
	i := strings.IndexFunc(t, func(r rune) bool { return !(unicode.IsDigit(r) || r == '.') })
	num, unit := t, ""
	if i >= 0 {
		num, unit = t[:i], strings.ToLower(strings.TrimSpace(t[i:]))
	}
	if num == "" {
		return 0, fmt.Errorf("byte size %q: no number (want e.g. 4096, 64KiB, 1.5MiB, 2GiB)", s)
	}
	mult, ok := byteUnits[unit]
	if !ok {
		return 0, fmt.Errorf("byte size %q: unknown unit %q (want B, KiB, MiB, GiB, TiB, or KB, MB, GB, TB)", s, t[i:])
	}
	f, err := strconv.ParseFloat(num, 64)
	if err != nil {
		return 0, fmt.Errorf("byte size %q: bad number %q", s, num)
	}
	v := f * mult
	if v >= math.MaxInt64 {
		return 0, fmt.Errorf("byte size %q: too large", s)
	}
	if v != math.Trunc(v) {
		return 0, fmt.Errorf("byte size %q is not a whole number of bytes", s)
	}
	return int64(v), nil
}

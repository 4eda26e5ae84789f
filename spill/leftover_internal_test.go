package spill

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
)

// TestSpillFileToken: only names trove gives are taken for spill files.
func TestSpillFileToken(t *testing.T) {
	tests := []struct {
		name  string
		token string
		pid   int
	}{
		{"trove-42-0a1b2c3d-7.spill", "trove-42-0a1b2c3d", 42},
		{"trove-42-0a1b2c3d-18446744073709551615.spill", "trove-42-0a1b2c3d", 42},
		{"trove-42-0a1b2c3d-0.spill", "", 0},  // file numbers start at 1
		{"trove-42-0a1b2c3d-07.spill", "", 0}, // not how a number prints
		{"trove-42-0a1b2c3d-7.lock", "", 0},   // not a spill file
		{"trove-42-0A1B2C3D-7.spill", "", 0},  // upper-case hex: not ours
		{"trove-42-0a1b2c-7.spill", "", 0},    // short random part
		{"trove-042-0a1b2c3d-7.spill", "", 0}, // not how a PID prints
		{"trove-0-0a1b2c3d-7.spill", "", 0},
		{"trove--0a1b2c3d-7.spill", "", 0},
		{"trove-42-0a1b2c3d.spill", "", 0},
		{"x-trove-42-0a1b2c3d-7.spill", "", 0},
		{"trove-42-0a1b2c3d-7.spill.tmp", "", 0},
	}
	for _, tt := range tests {
		token, pid, ok := spillFileToken(tt.name)
		if ok != (tt.token != "") || token != tt.token && ok || pid != tt.pid && ok {
			t.Errorf("spillFileToken(%q) = %q, %d, %v; want %q, %d", tt.name, token, pid, ok, tt.token, tt.pid)
		}
	}
}

// FuzzSpillFileToken: a directory entry's name is untrusted; whatever it is, a
// name taken for a spill file is exactly one trove would give: its token, a
// file number from 1, and the suffix.
func FuzzSpillFileToken(f *testing.F) {
	f.Add("trove-42-0a1b2c3d-7.spill")
	f.Add("trove-1-00000000-1.spill")
	f.Add("trove-42-0a1b2c3d.lock")
	f.Add("trove--0a1b2c3d--1.spill")
	f.Add("trove-42-0a1b2c3d-007.spill")
	f.Fuzz(func(t *testing.T, name string) {
		token, pid, ok := spillFileToken(name)
		if !ok {
			return
		}
		p, ok := parseToken(token)
		if !ok || p != pid || pid <= 0 {
			t.Fatalf("%q: token %q, pid %d: the token does not parse back", name, token, pid)
		}
		num := strings.TrimSuffix(strings.TrimPrefix(name, token+"-"), spillSuffix)
		n, err := strconv.ParseUint(num, 10, 64)
		if err != nil || n == 0 || fmt.Sprintf("%s-%d%s", token, n, spillSuffix) != name {
			t.Fatalf("%q taken for a spill file of %q, but trove would not name one so", name, token)
		}
		if want := fmt.Sprintf("trove-%d-%s", pid, token[len(token)-8:]); token != want {
			t.Fatalf("%q: token %q, want %q", name, token, want)
		}
	})
}

package swarm

import (
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestLintPure: package swarm is a pure scheduler. Its non-test files import
// only these standard packages: no I/O, no clock beyond time's types (the
// caller passes now), no goroutines' sync, no packages of ours. Tests may
// import anything.
func TestLintPure(t *testing.T) {
	allowed := map[string]bool{"encoding/binary": true, "errors": true, "fmt": true, "math/bits": true, "time": true}
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range f.Imports {
			p, _ := strconv.Unquote(imp.Path.Value)
			if !allowed[p] {
				t.Errorf("%s imports %q; swarm may import only %v", name, p, allowed)
			}
		}
	}
}

// TestNoClockReads: the scheduler never reads the clock nor starts goroutines.
func TestNoClockReads(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		src, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		for _, bad := range []string{"time.Now(", "time.Since(", "time.Until(", "time.Sleep(", "time.After", "time.NewTimer", "time.Tick", "go func"} {
			if strings.Contains(string(src), bad) {
				t.Errorf("%s contains %q: the caller passes now; the scheduler has no goroutines or timers", name, bad)
			}
		}
	}
}

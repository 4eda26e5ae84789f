package eviction

import (
	"go/parser"
	"go/token"
	"path/filepath"
	"strings"
	"testing"
)

// TestLintPure: package eviction is a pure data structure. Its non-test files
// import nothing at all: not our packages (the root lint_test.go checks the
// layering too) and not the standard library's I/O, time or sync, so a
// policy or an I/O path cannot creep in unnoticed. Tests may import anything.
func TestLintPure(t *testing.T) {
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
			t.Errorf("%s imports %s: package eviction must import nothing (it is a pure data structure; the engine does I/O and policy)",
				name, imp.Path.Value)
		}
	}
}

package trove_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// Project-specific lint checks, run by `make lint` and CI. They need nothing but Go.

const module = "github.com/trovedb/trove"

// layering says which of our packages each package may import, and whether it may
// touch the network. docs/design.md's table of packages is the source of this.
var layering = map[string]struct {
	allowed []string // our packages it may import; nil means any
	noNet   bool
}{
	"alloc":              {allowed: []string{}, noNet: true},
	"arena":              {allowed: []string{}, noNet: true},
	"zerocopy":           {allowed: []string{}, noNet: true},
	"eviction":           {allowed: []string{}, noNet: true},
	"swarm":              {allowed: []string{}, noNet: true},
	"spill":              {allowed: []string{"", "zerocopy"}, noNet: true},
	"spill/errorfs":      {allowed: []string{"spill"}, noNet: true},
	"internal/bpfcount":  {allowed: []string{}, noNet: true},
	"internal/benchtime": {allowed: []string{}, noNet: true},
	"internal/version":   {allowed: []string{}, noNet: true},
	".":                  {allowed: []string{"zerocopy"}, noNet: true},
	"engine":             {allowed: []string{"", "alloc", "arena", "zerocopy", "eviction", "spill"}, noNet: true},
	// net/ipc serves the engine to local processes; it knows nothing below it.
	"net/ipc": {allowed: []string{"", "engine"}},
	// net/quic carries bytes between nodes; it knows nothing of the engine or
	// ownership (the cluster's Handler does).
	"net/quic": {allowed: []string{""}},
	// cluster builds the cluster on the engine and the transport (and the
	// swarm scheduler for its pulls).
	"cluster": {allowed: []string{"", "engine", "net/quic", "swarm"}},
	// task runs remote functions on the cluster; only cmd/, tools/,
	// examples/, bench/ and the internal packages behind the examples import
	// it (no package above has a rule naming it).
	"task": {allowed: []string{"", "engine", "cluster", "net/ipc", "net/quic"}},
	// the benchmarks and tools use what a user would: the store and its clients.
	"tools/loadgen": {allowed: []string{"", "engine", "net/ipc", "cluster"}},
	// the namespace cluster drives troved processes through their sockets;
	// its network package knows nothing of trove.
	"tools/netcluster":       {allowed: []string{"", "net/ipc", "tools/netcluster/netns"}},
	"tools/netcluster/netns": {allowed: []string{}},
	// the broadcast model drives the pure scheduler, nothing with I/O.
	"tools/swarmsim/sim": {allowed: []string{"swarm"}, noNet: true},
	"tools/swarmsim":     {allowed: []string{"swarm", "tools/swarmsim/sim"}, noNet: true},
	// the metamorphic test drives the in-process store as a user does.
	"fuzz": {allowed: []string{"", "engine", "zerocopy"}, noNet: true},
	// the examples' and the demo's in-process cluster, and their batch inference
	// (Parquet and Arrow, which only those programs link).
	"internal/localcluster": {allowed: []string{"", "engine", "cluster", "task"}},
	"internal/batchinfer":   {allowed: []string{"zerocopy", "task"}, noNet: true},
	// the seed documents' steps, which examples/ and the demo run: the
	// cluster only through localcluster and what a user of task/ would call;
	// a document's package reaches another's only where its cells are that
	// one's (the tour's Chinese edition is the tensor tutorial).
	"internal/seeds":                {allowed: []string{"", "zerocopy", "task", "internal/localcluster"}, noNet: true},
	"internal/seeds/remoteobjects":  {allowed: []string{"", "task", "internal/seeds"}, noNet: true},
	"internal/seeds/tensors":        {allowed: []string{"", "zerocopy", "task", "internal/seeds"}, noNet: true},
	"internal/seeds/tour":           {allowed: []string{"", "task", "internal/seeds", "internal/seeds/tensors"}, noNet: true},
	"internal/seeds/objects":        {allowed: []string{"", "task", "internal/seeds"}, noNet: true},
	"internal/seeds/batchinference": {allowed: []string{"", "task", "internal/seeds", "internal/localcluster", "internal/batchinfer"}, noNet: true},
	"internal/seeds/seedtest":       {allowed: []string{}, noNet: true},
	// the dashboard reads the store and the cluster (and asks other nodes
	// through the cluster's layer ops); it knows nothing of ipc or task.
	"dashboard": {allowed: []string{"", "engine", "cluster", "net/quic"}},
}

type pkgFiles struct {
	dir   string
	files map[string]*ast.File // by base name, test files excluded
}

func loadPackages(t *testing.T) map[string]*pkgFiles {
	t.Helper()
	fset := token.NewFileSet()
	pkgs := map[string]*pkgFiles{}
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && path != "." && (strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.ParseComments)
		if err != nil {
			return err
		}
		dir := filepath.Dir(path)
		if pkgs[dir] == nil {
			pkgs[dir] = &pkgFiles{dir: dir, files: map[string]*ast.File{}}
		}
		pkgs[dir].files[filepath.Base(path)] = f
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return pkgs
}

func TestLintLayering(t *testing.T) {
	for dir, p := range loadPackages(t) {
		rule, ok := layering[dir]
		if !ok {
			continue
		}
		for name, f := range p.files {
			for _, imp := range f.Imports {
				path, _ := strconv.Unquote(imp.Path.Value)
				if rule.noNet && (path == "net" || strings.HasPrefix(path, "net/") || strings.HasPrefix(path, module+"/net")) {
					t.Errorf("%s/%s imports %s: package %s must not speak to the network", dir, name, path, dir)
				}
				if rule.allowed == nil || !strings.HasPrefix(path, module) {
					continue
				}
				ours := strings.TrimPrefix(strings.TrimPrefix(path, module), "/")
				allowedHere := false
				for _, a := range rule.allowed {
					allowedHere = allowedHere || a == ours
				}
				if !allowedHere {
					t.Errorf("%s/%s imports %s: package %s may import only %q of ours", dir, name, path, dir, rule.allowed)
				}
			}
		}
	}
}

func TestLintDocGo(t *testing.T) {
	for dir, p := range loadPackages(t) {
		doc, ok := p.files["doc.go"]
		if !ok {
			t.Errorf("%s: no doc.go saying what the package owns and its invariants", dir)
			continue
		}
		if doc.Doc == nil || len(doc.Doc.Text()) < 80 {
			t.Errorf("%s/doc.go: the package comment is missing or too short to say what the package owns", dir)
		}
	}
}

// TestLintLibrariesDoNotExit: a library never ends the process (badger's y.Check is
// the counter-example in STYLE.md).
func TestLintLibrariesDoNotExit(t *testing.T) {
	for dir, p := range loadPackages(t) {
		for name, f := range p.files {
			if f.Name.Name == "main" {
				continue
			}
			ast.Inspect(f, func(n ast.Node) bool {
				sel, ok := n.(*ast.SelectorExpr)
				if !ok {
					return true
				}
				x, ok := sel.X.(*ast.Ident)
				if !ok {
					return true
				}
				switch {
				case x.Name == "os" && sel.Sel.Name == "Exit",
					x.Name == "log" && strings.HasPrefix(sel.Sel.Name, "Fatal"):
					t.Errorf("%s/%s calls %s.%s: a library returns errors instead", dir, name, x.Name, sel.Sel.Name)
				}
				return true
			})
		}
	}
}

// TestLintNoEmbeddedMutex: no exported type embeds a sync.Mutex (its Lock would
// become part of the API).
func TestLintNoEmbeddedMutex(t *testing.T) {
	for dir, p := range loadPackages(t) {
		for name, f := range p.files {
			for _, d := range f.Decls {
				g, ok := d.(*ast.GenDecl)
				if !ok || g.Tok != token.TYPE {
					continue
				}
				for _, s := range g.Specs {
					ts := s.(*ast.TypeSpec)
					st, ok := ts.Type.(*ast.StructType)
					if !ok || !ts.Name.IsExported() {
						continue
					}
					for _, fld := range st.Fields.List {
						if sel, ok := fld.Type.(*ast.SelectorExpr); ok && len(fld.Names) == 0 &&
							(sel.Sel.Name == "Mutex" || sel.Sel.Name == "RWMutex") {
							t.Errorf("%s/%s: exported type %s embeds sync.%s", dir, name, ts.Name.Name, sel.Sel.Name)
						}
					}
				}
			}
		}
	}
}

// TestLintTrovedLean: the node daemon links no Parquet or Arrow code. Those
// libraries are for the programs that run batch inference (internal/batchinfer:
// arrow-go's pqarrow alone would add ~33 MB); troved stays a store.
func TestLintTrovedLean(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "./cmd/troved").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps ./cmd/troved: %v\n%s", err, out)
	}
	for _, pkg := range strings.Fields(string(out)) {
		if strings.Contains(pkg, "parquet") || strings.Contains(pkg, "arrow-go") || strings.Contains(pkg, "apache/arrow") ||
			pkg == module+"/internal/batchinfer" {
			t.Errorf("cmd/troved depends on %s: keep Parquet and Arrow out of the daemon (see DEPENDENCIES.md)", pkg)
		}
		if strings.Contains(pkg, "chromedp") {
			t.Errorf("cmd/troved depends on %s: chromedp is for the dashboard's browser test only", pkg)
		}
	}
}

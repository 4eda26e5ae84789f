package fuzz

import (
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/trovedb/trove"
	"github.com/trovedb/trove/engine"
)

var (
	flagScript  = flag.String("script", "", "TestReplay: replay this script file instead of testdata/*.txt")
	flagSeeds   = flag.Int("seeds", 0, "TestMetamorphic: seeds per configuration (default 2, 1 with -short)")
	flagSeed    = flag.Uint64("seed", 1, "TestMetamorphic: the first seed")
	flagOps     = flag.Int("ops", 0, "TestMetamorphic: ops per script (default: the configuration's)")
	flagConfig  = flag.String("config", "", "TestMetamorphic: run only this configuration")
	flagThreads = flag.Int("threads", 0, "TestMetamorphic: threads per script (default: 1, 4, 3, 2, 1, ... by seed)")
)

func init() {
	flag.BoolVar(&SpillDuringReclaim, "spill-during-reclaim", true,
		"generate Spill ops where a reclaim may spill at the same time (see SpillDuringReclaim)")
}

// runScript runs s and, if it fails, writes the annotated script to a file and
// fails the test with the command that replays it.
func runScript(t *testing.T, s *Script) {
	t.Helper()
	st, err := Run(s, t.TempDir())
	report(t, s, st, err)
}

// runScriptOn is runScript on a store that outlives the script.
func runScriptOn(t *testing.T, s *Script, store *engine.Store, dir string) {
	t.Helper()
	st, err := RunOn(store, s, dir)
	report(t, s, st, err)
}

func report(t *testing.T, s *Script, st engine.Stats, err error) {
	t.Helper()
	if err == nil {
		var put int64
		for _, op := range s.Ops {
			put += int64(op.Size)
		}
		t.Logf("%d ops: %d puts (%s of raw objects), %d gets; %d objects spilled in %d files, %d restored, %d mapped from their spill file; %d waits for room",
			len(s.Ops), st.Puts, trove.HumanBytes(put), st.Gets, st.Spills, st.SpillFilesWritten, st.Restores, st.FallbackAllocations, st.FullWaits)
		return
	}
	var f *Failure
	if !errors.As(err, &f) {
		t.Fatal(err)
	}
	name := strings.NewReplacer("/", "-", "=", "").Replace(t.Name())
	path := filepath.Join(os.TempDir(), "trove-fuzz-"+name+".txt")
	if werr := os.WriteFile(path, []byte(f.Annotated()), 0o644); werr != nil {
		path = fmt.Sprintf("(not written: %v)", werr)
	}
	t.Fatalf("%v\n\nreplay: go test ./fuzz -run TestReplay -script %s\n\n%s", f, path, f.Annotated())
}

// TestMetamorphic runs generated scripts on every configuration: seeds from
// -seed on, with 1 to 4 threads. By default it is CI-sized (two scripts per
// configuration, one thread and four: a few seconds under -race);
// FuzzMetamorphic and -seeds explore further.
func TestMetamorphic(t *testing.T) {
	seeds := *flagSeeds
	if seeds == 0 {
		seeds = 2
		if testing.Short() {
			seeds = 1
		}
	}
	for _, cfg := range ConfigNames() {
		if *flagConfig != "" && cfg != *flagConfig {
			continue
		}
		for seed := *flagSeed; seed < *flagSeed+uint64(seeds); seed++ {
			threads := [...]int{1, 4, 3, 2}[(seed-1)%4] // one thread checks after every op
			if *flagThreads > 0 {
				threads = *flagThreads
			}
			t.Run(fmt.Sprintf("%s/seed=%d/threads=%d", cfg, seed, threads), func(t *testing.T) {
				s, err := Generate(SeedSource(seed), cfg, threads, *flagOps)
				if err != nil {
					t.Fatal(err)
				}
				runScript(t, s)
			})
		}
	}
}

// TestReplay replays the script -script names, or every script in testdata/.
func TestReplay(t *testing.T) {
	paths := []string{*flagScript}
	if *flagScript == "" {
		var err error
		if paths, err = filepath.Glob("testdata/*.txt"); err != nil || len(paths) == 0 {
			t.Fatalf("no scripts in testdata/ (%v)", err)
		}
	}
	for _, path := range paths {
		t.Run(filepath.Base(path), func(t *testing.T) {
			text, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			s, err := Parse(string(text))
			if err != nil {
				t.Fatal(err)
			}
			if *flagReduce {
				_, err := Run(s, t.TempDir())
				var f *Failure
				if !errors.As(err, &f) {
					t.Fatalf("-reduce: the script does not fail (%v)", err)
				}
				s = reduce(t, s, f)
				_, err = Run(s, t.TempDir())
				errors.As(err, &f)
				t.Fatalf("reduced to %d ops:\n%s", len(s.Ops), f.Annotated())
			}
			runScript(t, s)
		})
	}
}

// FuzzMetamorphic reads a script from the fuzzer's bytes: the first picks the
// configuration, the second the threads, the rest every choice the generator
// makes, until they run out.
func FuzzMetamorphic(f *testing.F) {
	rng := rand.New(rand.NewPCG(7, 7))
	for i := range 6 {
		b := make([]byte, 64+rng.IntN(600))
		for j := range b {
			b[j] = byte(rng.Uint32())
		}
		b[0], b[1] = byte(i), byte(i/3)
		f.Add(b)
	}
	// One store per configuration for every input, as each run ends with its
	// store empty (or fails): opening a store per input would spend most of the
	// time faulting in fresh memory.
	names := ConfigNames()
	type store struct {
		st  *engine.Store
		dir string
	}
	stores := map[string]store{}
	for _, n := range names {
		dir := f.TempDir()
		st, err := OpenStore(n, dir)
		if err != nil {
			f.Fatal(err)
		}
		f.Cleanup(func() { st.Close() })
		stores[n] = store{st, dir}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) < 2 {
			return
		}
		cfg := names[int(data[0])%len(names)]
		s, err := Generate(BytesSource(data[2:]), cfg, 1+int(data[1])%4, 200)
		if err != nil {
			t.Fatal(err)
		}
		runScriptOn(t, s, stores[cfg].st, stores[cfg].dir)
	})
}

// TestScriptRoundTrip: a generated script prints as text that parses back to the
// same ops, so a printed failure replays what failed.
func TestScriptRoundTrip(t *testing.T) {
	for _, cfg := range ConfigNames() {
		s, err := Generate(SeedSource(99), cfg, 3, 300)
		if err != nil {
			t.Fatal(err)
		}
		back, err := Parse(s.String())
		if err != nil {
			t.Fatal(err)
		}
		if back.String() != s.String() {
			t.Fatalf("%s: the script does not survive printing and parsing", cfg)
		}
		if _, err := NewPlan(back); err != nil {
			t.Fatal(err)
		}
	}
}

var flagReduce = flag.Bool("reduce", false, "TestReplay: shrink the failing -script to the fewest ops that still fail at the same kind of op, and print it")

// reduce removes ops from a failing script, halves then smaller pieces, with
// every later op that uses what they made, while what remains is valid and
// fails at an op of the same kind.
func reduce(t *testing.T, s *Script, f *Failure) *Script {
	kind := func(f *Failure) Kind {
		if f.Op < len(f.Script.Ops) {
			return f.Script.Ops[f.Op].Kind
		}
		return 0
	}
	want := kind(f)
	for chunk := len(s.Ops) / 2; chunk >= 1; chunk /= 2 {
		for i := 0; i+chunk <= len(s.Ops); {
			try := &Script{Config: s.Config, Threads: s.Threads, Ops: without(s.Ops, i, i+chunk)}
			if _, err := NewPlan(try); err == nil {
				_, err := Run(try, t.TempDir())
				var g *Failure
				if errors.As(err, &g) && kind(g) == want {
					s, f = try, g
					continue
				}
			}
			i += chunk
		}
	}
	return s
}

// without returns ops less ops[from:to] and the later ops that use a name one
// of the removed ops made.
func without(ops []Op, from, to int) []Op {
	gone := map[string]bool{}
	var out []Op
	for i := range ops {
		op := &ops[i]
		made, used := opNames(op)
		drop := i >= from && i < to
		for _, n := range used {
			drop = drop || gone[n]
		}
		if drop {
			for _, n := range made {
				gone[n] = true
			}
			continue
		}
		out = append(out, *op)
	}
	return out
}

// opNames returns the names an op makes and those it uses.
func opNames(op *Op) (made, used []string) {
	o := func(n int) string { return fmt.Sprintf("o%d", n) }
	h := func(n int) string { return fmt.Sprintf("h%d", n) }
	v := func(n int) string { return fmt.Sprintf("v%d", n) }
	hs := func(ns []int) []string {
		var out []string
		for _, n := range ns {
			out = append(out, h(n))
		}
		return out
	}
	switch op.Kind {
	case KindPut, KindCreate:
		return []string{o(op.Obj), h(op.Handle)}, nil
	case KindPutValue:
		return []string{o(op.Obj), h(op.Handle)}, hs(op.Handles)
	case KindSeal, KindAbort:
		return nil, []string{o(op.Obj)}
	case KindGet:
		if op.Mode == GetHold {
			return []string{v(op.View)}, []string{h(op.Handle)}
		}
		return nil, []string{h(op.Handle)}
	case KindGetValue:
		return hs(op.New), []string{h(op.Handle)}
	case KindGetAll, KindWait, KindSpill:
		return nil, hs(op.Handles)
	case KindRelease:
		return nil, []string{v(op.View)}
	case KindDrop:
		return nil, []string{h(op.Handle)}
	case KindBorrow:
		return []string{h(op.Handle)}, []string{o(op.Obj)}
	}
	return nil, nil
}

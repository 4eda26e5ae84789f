package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/trovedb/trove"
	"github.com/trovedb/trove/engine"
)

// smallLoad is a short run sized for a small store: every object in the arena
// (the test stores use InlineThreshold -1) and a working set three times the
// capacity, so that the store spills and restores.
func smallLoad(capacity int64, ops int64) loadConfig {
	return loadConfig{
		Sizes:       []sizeWeight{{4 << 10, 40}, {64 << 10, 40}, {512 << 10, 20}},
		Mix:         [numOps]int{40, 50, 10},
		Concurrency: 4,
		Ops:         ops,
		Duration:    time.Minute, // a bound only: -ops ends the run
		WorkingSet:  3 * capacity,
		OpTimeout:   30 * time.Second,
		WaitRefs:    3,
		Seed:        1,
	}
}

func openSmallStore(t *testing.T, capacity int64) *engine.Store {
	t.Helper()
	st, err := engine.Open(engine.Config{
		Capacity:        capacity,
		InlineThreshold: -1,
		SpillDirs:       []string{t.TempDir()},
		MinSpillSize:    capacity / 8,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// checkDrained checks that st holds nothing: the run dropped every ref and
// released every view.
func checkDrained(t *testing.T, st *engine.Store) {
	t.Helper()
	st.WaitIdle()
	s := st.Stats()
	if s.Used != 0 || s.PinnedObjects != 0 || s.Objects != 0 || s.Views != 0 {
		t.Errorf("store not drained after the run: Objects %d, Used %d, PinnedObjects %d, Views %d",
			s.Objects, s.Used, s.PinnedObjects, s.Views)
	}
}

// checkReport checks that a run had no errors, did exactly ops ops, and exercised
// every op kind; and that its JSON has the percentiles.
func checkReport(t *testing.T, rep *Report, ops int64) {
	t.Helper()
	if rep.Failed() {
		t.Errorf("errors: %+v", rep.Errors)
	}
	if rep.Ops.Total.Count != ops {
		t.Errorf("%d ops done, want %d", rep.Ops.Total.Count, ops)
	}
	if rep.StoppedBy != "ops" {
		t.Errorf("stopped by %q, want ops", rep.StoppedBy)
	}
	var buf bytes.Buffer
	if err := rep.writeJSON(&buf); err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(buf.Bytes(), &got); err != nil {
		t.Fatalf("JSON report does not parse: %v\n%s", err, buf.Bytes())
	}
	opsJSON, _ := got["ops"].(map[string]any)
	for _, k := range []string{"put", "get", "wait", "total"} {
		o, _ := opsJSON[k].(map[string]any)
		if n, _ := o["count"].(float64); n <= 0 {
			t.Errorf("JSON ops.%s.count = %v: op kind not exercised", k, o["count"])
		}
		lat, _ := o["latency_ns"].(map[string]any)
		for _, p := range []string{"p50", "p90", "p99", "p99_9", "max"} {
			if v, ok := lat[p].(float64); !ok || v <= 0 {
				t.Errorf("JSON ops.%s.latency_ns.%s = %v, want a positive number", k, p, lat[p])
			}
		}
	}
	if k := rep.Ops.Put.Bytes; k <= 0 {
		t.Errorf("put bytes %d", k)
	}
	var table bytes.Buffer
	if err := rep.writeTable(&table); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"p99.9", "put", "get", "wait", "total", "errors: 0"} {
		if !strings.Contains(table.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, table.String())
		}
	}
}

func runLoad(t *testing.T, cfg loadConfig, targets ...target) *Report {
	t.Helper()
	var errOut bytes.Buffer
	r, err := newRunner(cfg, targets, &errOut)
	if err != nil {
		t.Fatal(err)
	}
	r.run(t.Context(), nil)
	stoppedBy := "duration"
	if r.opsReached.Load() {
		stoppedBy = "ops"
	}
	rep := r.report(time.Since(r.start), stoppedBy)
	if errOut.Len() > 0 {
		t.Logf("loadgen errors:\n%s", errOut.String())
	}
	return rep
}

func TestEmbeddedRun(t *testing.T) {
	const capacity = 8 << 20
	st := openSmallStore(t, capacity)
	rep := runLoad(t, smallLoad(capacity, 2000), target{Name: "embedded", Store: st})
	checkReport(t, rep, 2000)
	checkDrained(t, st)
	if s := st.Stats(); s.Spills == 0 || s.Restores == 0 {
		t.Errorf("the working set was 3x the capacity but the store spilled %d and restored %d objects", s.Spills, s.Restores)
	}
}

// Two targets: workers alternate between them and each ref stays with its store.
func TestEmbeddedRunTwoStores(t *testing.T) {
	const capacity = 8 << 20
	a, b := openSmallStore(t, capacity), openSmallStore(t, capacity)
	cfg := smallLoad(capacity, 600)
	cfg.WorkingSet = capacity
	rep := runLoad(t, cfg, target{Name: "a", Store: a}, target{Name: "b", Store: b})
	checkReport(t, rep, 600)
	checkDrained(t, a)
	checkDrained(t, b)
	if a.Stats().Puts == 0 || b.Stats().Puts == 0 {
		t.Errorf("puts: a %d, b %d; want both used", a.Stats().Puts, b.Stats().Puts)
	}
}

// corruptingStore damages one byte of every n-th view it hands out.
type corruptingStore struct {
	trove.Store
	n, gets atomic.Int64
}

func (c *corruptingStore) Get(ctx context.Context, ref trove.Ref) (*trove.Object, error) {
	obj, err := c.Store.Get(ctx, ref)
	if err != nil || c.gets.Add(1)%c.n.Load() != 0 {
		return obj, err
	}
	b := append([]byte(nil), obj.Bytes()...)
	obj.Release()
	b[len(b)/2] ^= 0x10
	return trove.NewObject(ref.ID(), b, nil, nil), nil
}

func TestMismatchIsAnError(t *testing.T) {
	const capacity = 8 << 20
	st := openSmallStore(t, capacity)
	bad := &corruptingStore{Store: st}
	bad.n.Store(5)
	rep := runLoad(t, smallLoad(capacity, 300), target{Name: "corrupting", Store: bad})
	if !rep.Failed() || rep.Errors.Verify == 0 || rep.Errors.Verify != rep.Ops.Get.Errors {
		t.Fatalf("damaged views went unnoticed: %+v", rep.Errors)
	}
	if len(rep.Errors.Samples) == 0 || !strings.Contains(rep.Errors.Samples[0], "MISMATCH") ||
		!strings.Contains(rep.Errors.Samples[0], "object ") || !strings.Contains(rep.Errors.Samples[0], "offset") {
		t.Errorf("mismatch messages do not name the object and offset: %q", rep.Errors.Samples)
	}
	checkDrained(t, st)
}

// realMain end to end on an embedded store: exit status, JSON on stdout and in
// -json-out, the store drained.
func TestMainEmbeddedJSON(t *testing.T) {
	dir := t.TempDir()
	jsonFile := filepath.Join(dir, "report.json")
	var stdout, stderr bytes.Buffer
	code := realMain([]string{
		"-embedded", "-capacity", "8MiB", "-inline-threshold", "-1", "-spill-dir", dir,
		"-sizes", "4KiB:40,64KiB:40,512KiB:20", "-working-set", "24MiB",
		"-ops", "500", "-duration", "5m", "-concurrency", "3", "-json", "-json-out", jsonFile, "-quiet",
	}, &stdout, &stderr, nil)
	if code != exitOK {
		t.Fatalf("exit status %d; stderr:\n%s\nstdout:\n%s", code, stderr.String(), stdout.String())
	}
	fromFile, err := os.ReadFile(jsonFile)
	if err != nil {
		t.Fatal(err)
	}
	for name, b := range map[string][]byte{"stdout": stdout.Bytes(), "-json-out": fromFile} {
		var rep Report
		if err := json.Unmarshal(b, &rep); err != nil {
			t.Fatalf("%s: JSON does not parse: %v\n%s", name, err, b)
		}
		if rep.Ops.Total.Count != 500 || rep.Errors.Total != 0 || rep.Ops.Get.Latency.P999 <= 0 {
			t.Errorf("%s: %d ops, %d errors, get p99.9 %d", name, rep.Ops.Total.Count, rep.Errors.Total, rep.Ops.Get.Latency.P999)
		}
		if len(rep.Stores) != 1 || rep.Stores[0].Drained == nil || !*rep.Stores[0].Drained || rep.Stores[0].Settled != nil {
			t.Errorf("%s: stores %+v, want the embedded store drained", name, rep.Stores)
		}
		var v map[string]any
		if err := json.Unmarshal(b, &v); err != nil {
			t.Fatal(err)
		}
		checkKeys(t, v, "")
		for _, k := range []string{"targets", "config", "stopped_by", "elapsed_seconds", "ops", "errors", "stores"} {
			if _, ok := v[k]; !ok {
				t.Errorf("%s: no key %q", name, k)
			}
		}
	}
}

// The first interrupt stops the run early; the report is still printed.
func TestMainInterrupt(t *testing.T) {
	sig := make(chan os.Signal, 1)
	sig <- os.Interrupt
	var stdout, stderr bytes.Buffer
	code := realMain([]string{
		"-embedded", "-capacity", "8MiB", "-spill-dir", t.TempDir(), "-sizes", "1KiB",
		"-duration", "10m", "-quiet",
	}, &stdout, &stderr, sig)
	if code != exitOK {
		t.Fatalf("exit status %d; stderr:\n%s", code, stderr.String())
	}
	if !strings.Contains(stdout.String(), "stopped by interrupt") || !strings.Contains(stdout.String(), "p99.9") {
		t.Errorf("report:\n%s", stdout.String())
	}
}

func TestMainUsage(t *testing.T) {
	for _, args := range [][]string{
		{"-embedded", "-duration", "0"},
		{"-embedded", "-sizes", "12"},
		{"-nope"},
	} {
		var stdout, stderr bytes.Buffer
		if code := realMain(args, &stdout, &stderr, nil); code != exitUsage {
			t.Errorf("realMain(%q) = %d, want %d", args, code, exitUsage)
		}
		if stderr.Len() == 0 {
			t.Errorf("realMain(%q) said nothing on stderr", args)
		}
	}
}

// The plain status lines, for a stderr that is not a terminal.
func TestStatusLines(t *testing.T) {
	var stdout, stderr bytes.Buffer
	code := realMain([]string{
		"-embedded", "-capacity", "8MiB", "-spill-dir", t.TempDir(), "-sizes", "1KiB",
		"-ops", "3000", "-status-every", "1ms",
	}, &stdout, &stderr, nil)
	if code != exitOK {
		t.Fatalf("exit status %d; stderr:\n%s", code, stderr.String())
	}
	// Whether a line was printed depends on timing: check only the form of those that were.
	for _, line := range strings.Split(strings.TrimSpace(stderr.String()), "\n") {
		if line != "" && !strings.HasPrefix(line, "loadgen: ") {
			t.Errorf("stray stderr line %q", line)
		}
	}
}

// TestMainErrors: each failure to start is one line on stderr that says what
// is wrong and what to do, once; exit status 2 for bad flags, 1 for a store
// that cannot be reached, at once unless -dial-timeout asks to wait.
func TestMainErrors(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "none.sock")
	stale := filepath.Join(dir, "stale.sock")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: stale, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ln.SetUnlinkOnClose(false)
	ln.Close() // the socket file stays, with nobody listening: a daemon killed with SIGKILL
	tests := []struct {
		args []string
		code int
		want []string
		once []string
	}{
		{[]string{"-socket", missing}, exitFail,
			[]string{"no daemon at -socket " + missing + ": the socket does not exist; start troved", "give -dial-timeout to wait", "or use -embedded"},
			[]string{missing, "start troved"}},
		{[]string{"-socket", stale}, exitFail,
			[]string{"no daemon at -socket " + stale + ": nothing listens on the socket (a daemon that exited left it behind); start troved"},
			[]string{stale, "start troved"}},
		{[]string{"-socket", stale, "-dial-timeout", "200ms"}, exitFail,
			[]string{"no daemon at -socket " + stale + " after -dial-timeout 200ms: nothing listens on the socket"},
			[]string{stale, "start troved", "-dial-timeout"}},
		{[]string{"-embedded", "-working-set", "10"}, exitUsage,
			[]string{"-working-set 10 B is smaller than one object of the largest -sizes (16.0 MiB) per worker: -concurrency 8 needs at least 128.0 MiB"}, nil},
		{[]string{"-embedded", "-sizes", "1KiB,,4KiB"}, exitUsage, []string{`-sizes "1KiB,,4KiB": item 2 is empty`}, nil},
		{[]string{"-embedded", "-sizes", "1KiB,"}, exitUsage, []string{`-sizes "1KiB,": item 2 is empty`}, nil},
		{[]string{"-embedded", "-mix", "put:1,"}, exitUsage, []string{`-mix "put:1,": item 2 is empty`}, nil},
		{[]string{"-nope"}, exitUsage, []string{"flag provided but not defined: -nope (loadgen -h lists the flags)"}, nil},
		{[]string{"-cluster", "-embedded"}, exitUsage, []string{"-cluster with -embedded", "use -embedded-cluster N"}, nil},
		{[]string{"-cluster", "-socket", missing}, exitUsage, []string{"-cluster needs the sockets of at least 2 nodes of one cluster", "got 1"}, nil},
		{[]string{"-embedded-cluster", "1"}, exitUsage, []string{"-embedded-cluster 1: need at least 2 nodes"}, nil},
		{[]string{"-embedded-cluster", "3", "-socket", missing}, exitUsage, []string{"-embedded-cluster runs on its own nodes"}, nil},
	}
	for _, tc := range tests {
		args := append(tc.args, "-ops", "10", "-quiet", "-capacity", "8MiB", "-spill-dir", dir)
		var stdout, stderr bytes.Buffer
		code := realMain(args, &stdout, &stderr, nil)
		msg, ok := strings.CutPrefix(strings.TrimSuffix(stderr.String(), "\n"), "loadgen: ")
		if code != tc.code || !ok || strings.Contains(msg, "\n") || stdout.Len() != 0 {
			t.Errorf("loadgen %q: exit %d, stderr %q, stdout %q; want exit %d and one line \"loadgen: ...\"", tc.args, code, stderr.String(), stdout.String(), tc.code)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(msg, w) {
				t.Errorf("loadgen %q: %q lacks %q", tc.args, msg, w)
			}
		}
		for _, w := range tc.once {
			if n := strings.Count(msg, w); n != 1 {
				t.Errorf("loadgen %q: %q says %q %d times, want once", tc.args, msg, w, n)
			}
		}
	}
	var stdout, stderr bytes.Buffer
	if code := realMain([]string{"-h"}, &stdout, &stderr, nil); code != exitOK || stderr.Len() != 0 ||
		!regexp.MustCompile(`^usage: loadgen [^\n]*\n\n[A-Z](.+\n)+\nA SIZE (.+\n)+\nflags:\n  -`).MatchString(stdout.String()) {
		t.Errorf("-h: exit %d, stderr %q, help on stdout:\n%s", code, stderr.String(), stdout.String())
	}
}

var snakeKey = regexp.MustCompile(`^[a-z][a-z0-9]*(_[a-z0-9]+)*$`)

// checkKeys fails t for every key of the JSON value v, at any depth, that is
// not snake_case.
func checkKeys(t *testing.T, v any, path string) {
	t.Helper()
	switch v := v.(type) {
	case map[string]any:
		for k, e := range v {
			if !snakeKey.MatchString(k) {
				t.Errorf("JSON key %q at %q is not snake_case", k, path)
			}
			checkKeys(t, e, path+k+".")
		}
	case []any:
		for _, e := range v {
			checkKeys(t, e, path+"[].")
		}
	}
}

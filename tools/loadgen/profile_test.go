package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/pprof/profile"

	"github.com/trovedb/trove/net/ipc"
)

// cpuProfile is a small CPU profile for the merge and top tests: main.b
// calls main.a (which inlines main.leaf) and main.c.
func cpuProfile(values ...int64) *profile.Profile {
	fn := map[string]*profile.Function{}
	for i, name := range []string{"main.a", "main.b", "main.c", "main.leaf"} {
		fn[name] = &profile.Function{ID: uint64(i + 1), Name: name}
	}
	locA := &profile.Location{ID: 1, Line: []profile.Line{{Function: fn["main.leaf"]}, {Function: fn["main.a"]}}} // leaf inlined in a
	locB := &profile.Location{ID: 2, Line: []profile.Line{{Function: fn["main.b"]}}}
	locC := &profile.Location{ID: 3, Line: []profile.Line{{Function: fn["main.c"]}}}
	p := &profile.Profile{
		SampleType: []*profile.ValueType{{Type: "samples", Unit: "count"}, {Type: "cpu", Unit: "nanoseconds"}},
		PeriodType: &profile.ValueType{Type: "cpu", Unit: "nanoseconds"},
		Period:     10_000_000,
		Function:   []*profile.Function{fn["main.a"], fn["main.b"], fn["main.c"], fn["main.leaf"]},
		Location:   []*profile.Location{locA, locB, locC},
	}
	stacks := [][]*profile.Location{{locA, locB}, {locB}, {locC, locB}}
	for i, v := range values {
		p.Sample = append(p.Sample, &profile.Sample{Location: stacks[i%len(stacks)], Value: []int64{1, v}})
	}
	return p
}

// The top functions count flat CPU at the innermost frame (an inlined one
// included) and cum once per function on each stack, as go tool pprof does.
func TestTopFunctions(t *testing.T) {
	p := cpuProfile(6e9, 3e9, 1e9) // b->a(leaf) 6 s, b 3 s, b->c 1 s
	flat, cum := topFunctions(p, 10)
	wantFlat := []ProfileFunc{
		{Function: "main.leaf", FlatSecs: 6, FlatPct: 60, CumSecs: 6, CumPct: 60},
		{Function: "main.b", FlatSecs: 3, FlatPct: 30, CumSecs: 10, CumPct: 100},
		{Function: "main.c", FlatSecs: 1, FlatPct: 10, CumSecs: 1, CumPct: 10},
	}
	if fmt.Sprint(flat) != fmt.Sprint(wantFlat) {
		t.Errorf("top flat:\n%v\nwant\n%v", flat, wantFlat)
	}
	wantCum := []string{"main.b", "main.a", "main.leaf", "main.c"}
	var got []string
	for _, f := range cum {
		got = append(got, f.Function)
	}
	if strings.Join(got, " ") != strings.Join(wantCum, " ") || cum[1].CumSecs != 6 || cum[1].FlatSecs != 0 {
		t.Errorf("top cum: %v, want %v with main.a 6 s cum, 0 flat", cum, wantCum)
	}
	if flat, _ := topFunctions(p, 2); len(flat) != 2 {
		t.Errorf("top 2: %d rows", len(flat))
	}
}

// A profile whose sample types differ from the first node's is not merged:
// its node's row says so.
func TestSameShape(t *testing.T) {
	a, b := cpuProfile(1), cpuProfile(1)
	if err := sameShape(a, b); err != nil {
		t.Errorf("two CPU profiles: %v", err)
	}
	b.SampleType = []*profile.ValueType{{Type: "alloc_space", Unit: "bytes"}}
	b.Sample[0].Value = []int64{1}
	if err := sameShape(a, b); err == nil || !strings.Contains(err.Error(), "alloc_space/bytes") {
		t.Errorf("a heap profile against a CPU one: %v, want an error naming its sample types", err)
	}
}

// checkProfileFile checks -profile's file: it parses, every sample is
// labelled with one of nodes and every node has samples, and go tool pprof
// reads it.
func checkProfileFile(t *testing.T, path string, pr *ProfileReport, nodes []string) {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	p, err := profile.ParseData(raw)
	if err != nil {
		t.Fatalf("-profile %s does not parse: %v", path, err)
	}
	count := map[string]int{}
	for _, s := range p.Sample {
		if len(s.Label["node"]) != 1 {
			t.Fatalf("a sample labelled %v: want one node label", s.Label)
		}
		count[s.Label["node"][0]]++
	}
	for _, n := range nodes {
		if count[n] == 0 {
			t.Errorf("no samples labelled node=%s: %v", n, count)
		}
	}
	if len(count) != len(nodes) {
		t.Errorf("samples labelled %v, want only %v", count, nodes)
	}
	if pr == nil || pr.File != path || len(pr.Nodes) != len(nodes) || len(pr.TopFlat) == 0 || len(pr.TopCum) == 0 || pr.CPUSeconds <= 0 {
		t.Fatalf("profile report: %+v", pr)
	}
	for i, n := range pr.Nodes {
		if n.Node != nodes[i] || n.Error != "" || n.Samples == 0 || n.CPUSeconds <= 0 {
			t.Errorf("profile report's node %d: %+v, want %s's samples", i, n, nodes[i])
		}
	}
	gobin, err := exec.LookPath("go")
	if err != nil {
		return // parsed above; no go tool here to read it with
	}
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, gobin, "tool", "pprof", "-top", path).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "flat%") {
		t.Fatalf("go tool pprof -top %s: %v\n%s", path, err, out)
	}
	out, err = exec.CommandContext(ctx, gobin, "tool", "pprof", "-tags", path).CombinedOutput()
	if err != nil {
		t.Fatalf("go tool pprof -tags %s: %v\n%s", path, err, out)
	}
	for _, n := range nodes {
		if !strings.Contains(string(out), ": "+n+"\n") {
			t.Errorf("go tool pprof -tags does not list node %s:\n%s", n, out)
		}
	}
}

// -embedded-cluster with -profile: the nodes' cluster counters over the run
// (300 ops, whatever time they take: a count, not a duration, so that every
// node gets and serves on a loaded machine too)
// agree (every byte one node received another served), the crossing and
// local gets are reported apart, and the profile is one of loadgen's
// process, labelled so, that go tool pprof opens. Every node ends empty.
func TestMainEmbeddedClusterProfile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cpu.pb.gz")
	var stdout, stderr bytes.Buffer
	code := realMain([]string{
		"-embedded-cluster", "3", "-capacity", "32MiB", "-sizes", "4KiB:40,200KiB:40,512KiB:20", "-working-set", "24MiB",
		"-mix", "put:50,get:50", "-concurrency", "6", "-ops", "300", "-duration", "5m", "-profile", path, "-profile-seconds", "1s",
		"-json", "-quiet",
	}, &stdout, &stderr, nil)
	if code != exitOK {
		t.Fatalf("exit status %d; stderr:\n%s\nstdout:\n%s", code, stderr.String(), stdout.String())
	}
	var rep Report
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		t.Fatalf("JSON does not parse: %v\n%s", err, stdout.Bytes())
	}
	checkNodeRows(t, &rep, []string{"node-1", "node-2", "node-3"})
	checkTransfers(t, &rep, []string{"node-1", "node-2", "node-3"}, true)
	checkProfileFile(t, path, rep.Profile, []string{inProcessNode})
	if !strings.Contains(rep.Profile.Note, "loadgen's own process") {
		t.Errorf("profile note %q: want it to say the profile is of loadgen's process", rep.Profile.Note)
	}
	for _, s := range rep.Stores {
		if s.Drained == nil || !*s.Drained || s.Objects != 0 || s.Used != 0 || s.PinnedObjects != 0 {
			t.Errorf("store %s after the run: %+v, want empty", s.Target, s)
		}
	}
	var table bytes.Buffer
	if err := rep.writeTable(&table); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"profile: " + path, "top functions by flat CPU", "top functions by cum CPU", "  loadgen: "} {
		if !strings.Contains(table.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, table.String())
		}
	}
}

// The flags of -profile and -local-gets: bad ones are usage errors.
func TestProfileUsage(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-embedded-cluster", "2", "-ops", "10", "-duration", "0", "-profile", "x"}, "-profile-seconds"},
		{[]string{"-embedded-cluster", "2", "-profile-seconds", "2s"}, "without -profile"},
		{[]string{"-embedded-cluster", "2", "-profile", "x", "-profile-seconds", "500ms"}, "at least 1s"},
		{[]string{"-embedded-cluster", "2", "-local-gets", "101"}, "0 to 100"},
	} {
		var stdout, stderr bytes.Buffer
		if code := realMain(tc.args, &stdout, &stderr, nil); code != exitUsage || !strings.Contains(stderr.String(), tc.want) {
			t.Errorf("realMain(%q) = %d, stderr %q; want %d and %q", tc.args, code, stderr.String(), exitUsage, tc.want)
		}
	}
}

// troved, built once per test run for the daemon tests.
var trovedBin = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "loadgen-test-troved-")
	if err != nil {
		return "", err
	}
	trovedDir = dir
	bin := filepath.Join(dir, "troved")
	out, err := exec.Command("go", "build", "-o", bin, "github.com/trovedb/trove/cmd/troved").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build troved: %v\n%s", err, out)
	}
	return bin, nil
})

var trovedDir string // removed by TestMain

func TestMain(m *testing.M) {
	code := m.Run()
	if trovedDir != "" {
		os.RemoveAll(trovedDir)
	}
	os.Exit(code)
}

var (
	trovedListening = regexp.MustCompile(`^troved: listening on unix://(\S+) \(metrics http://(\S+)/metrics\)$`)
	trovedCluster   = regexp.MustCompile(`^troved: cluster node (\S+) on (\S+)$`)
)

// startTroved runs a troved cluster node named name (Insecure, on
// 127.0.0.1, its HTTP on a free port), joining join unless it is empty,
// and returns its socket and cluster address once it has said both. It is
// stopped (SIGTERM, then killed) at the end of the test.
func startTroved(t *testing.T, bin, name, join string) (sock, addr string) {
	t.Helper()
	dir := t.TempDir()
	sock = filepath.Join(dir, "s.sock")
	args := []string{"-socket", sock, "-http", "127.0.0.1:0", "-capacity", "32MiB", "-spill-dir", filepath.Join(dir, "spill"),
		"-listen", "127.0.0.1:0", "-name", name, "-insecure", "-gossip-interval", "20ms", "-log-level", "warn"}
	if join != "" {
		args = append(args, "-join", join)
	}
	cmd := exec.Command(bin, args...)
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "TROVE_") {
			env = append(env, kv)
		}
	}
	cmd.Env = env
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	lines := make(chan string, 4)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
		cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case <-exited:
		case <-time.After(20 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
			t.Errorf("troved %s did not stop within 20s of SIGINT\n%s", name, stderr.String())
		}
	})
	deadline := time.After(30 * time.Second)
	for addr == "" {
		select {
		case line, ok := <-lines:
			if !ok {
				<-exited
				t.Fatalf("troved %s exited before saying where it listens\n%s", name, stderr.String())
			}
			if m := trovedCluster.FindStringSubmatch(line); m != nil {
				addr = m[2]
			} else if trovedListening.FindStringSubmatch(line) == nil {
				t.Fatalf("troved %s printed %q", name, line)
			}
		case <-deadline:
			t.Fatalf("troved %s said nothing within 30s\n%s", name, stderr.String())
		}
	}
	go func() {
		for range lines {
		}
	}()
	return sock, addr
}

// -cluster -profile against three troved daemons: loadgen finds each one's
// pprof from its status, profiles them all during the run, and the merged
// file has samples of every node, labelled by its name; the transfer
// counters come from their statuses and agree.
func TestMainClusterDaemonsProfile(t *testing.T) {
	if testing.Short() {
		t.Skip("builds troved and runs a cluster of daemons")
	}
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("go is not on PATH: cannot build troved")
	}
	bin, err := trovedBin()
	if err != nil {
		t.Fatal(err)
	}
	names := []string{"pa", "pb", "pc"}
	var socks []string
	var first string
	for _, name := range names {
		sock, addr := startTroved(t, bin, name, first)
		if first == "" {
			first = addr
		}
		socks = append(socks, sock)
	}
	waitAlive(t, socks, len(names))

	path := filepath.Join(t.TempDir(), "cluster.pb.gz")
	var stdout, stderr bytes.Buffer
	code := realMain([]string{
		"-cluster", "-socket", strings.Join(socks, ","), "-sizes", "4KiB:40,200KiB:40,512KiB:20", "-working-set", "24MiB",
		"-mix", "put:50,get:50", "-concurrency", "6", "-ops", "300", "-duration", "5m", "-profile", path, "-profile-seconds", "2s",
		"-json", "-quiet",
	}, &stdout, &stderr, nil)
	if code != exitOK {
		t.Fatalf("exit status %d; stderr:\n%s\nstdout:\n%s", code, stderr.String(), stdout.String())
	}
	var rep Report
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		t.Fatalf("JSON does not parse: %v\n%s", err, stdout.Bytes())
	}
	checkNodeRows(t, &rep, socks)
	checkTransfers(t, &rep, names, true)
	checkProfileFile(t, path, rep.Profile, names)
	for _, s := range rep.Stores {
		if s.Drained == nil || !*s.Drained || s.Settled == nil || !*s.Settled || s.Objects != 0 || s.Used != 0 {
			t.Errorf("daemon %s after the run: %+v, want it empty", s.Target, s)
		}
	}
}

// waitAlive waits (a generous bound) until every daemon's status lists n
// members alive.
func waitAlive(t *testing.T, socks []string, n int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for _, sock := range socks {
		c, err := ipc.DialContext(t.Context(), sock, ipc.DialOptions{Name: "loadgen test"})
		if err != nil {
			t.Fatal(err)
		}
		for {
			st, err := c.Status(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			alive := 0
			for _, m := range st.Members {
				if m.State == "alive" {
					alive++
				}
			}
			if alive == n {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s sees %d of %d members alive after 30s: %+v", sock, alive, n, st.Members)
			}
			time.Sleep(20 * time.Millisecond)
		}
		c.Close()
	}
}

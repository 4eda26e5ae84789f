package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/trovedb/trove"
	"github.com/trovedb/trove/engine"
	"github.com/trovedb/trove/internal/version"
	"github.com/trovedb/trove/net/ipc"
	"github.com/trovedb/trove/spill/errorfs"
)

// result is what one run of the trove process would show.
type result struct {
	code           int
	stdout, stderr string
}

func runTrove(t *testing.T, stdin string, args ...string) result {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := runMain(context.Background(), args, strings.NewReader(stdin), &stdout, &stderr)
	return result{code, stdout.String(), stderr.String()}
}

var snakeKey = regexp.MustCompile(`^[a-z][a-z0-9]*(_[a-z0-9]+)*$`)

// checkKeys fails t for every key of the JSON value v (at any depth) that is
// not snake_case, and returns the keys seen, as dotted paths.
func checkKeys(t *testing.T, v any, path string, seen map[string]bool) {
	t.Helper()
	switch v := v.(type) {
	case map[string]any:
		for k, e := range v {
			if !snakeKey.MatchString(k) {
				t.Errorf("key %q at %q is not snake_case", k, path)
			}
			seen[path+k] = true
			checkKeys(t, e, path+k+".", seen)
		}
	case []any:
		for _, e := range v {
			checkKeys(t, e, path+"[].", seen)
		}
	}
}

// staleSocket makes a unix socket that nothing listens on, as a daemon killed
// with SIGKILL leaves behind.
func staleSocket(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "stale.sock")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ln.SetUnlinkOnClose(false)
	ln.Close()
	return path
}

// TestJSONOutputs: every --json output decodes, every key at every depth is
// snake_case, and the keys and values a script reads are there.
func TestJSONOutputs(t *testing.T) {
	sock, st := startDaemon(t)
	dir := t.TempDir()
	in := filepath.Join(dir, "in.bin")
	data := bytes.Repeat([]byte("trove"), 60_000) // 300 kB: in shared memory
	if err := os.WriteFile(in, data, 0o600); err != nil {
		t.Fatal(err)
	}
	put := runTrove(t, "", "put", in, "--json", "-socket", sock)
	var p putJSON
	if err := json.Unmarshal([]byte(put.stdout), &p); put.code != exitOK || err != nil {
		t.Fatalf("put --json: exit %d, %v\n%s%s", put.code, err, put.stdout, put.stderr)
	}
	id := p.ID
	// put's own ref is released when its connection's cleanup runs, after it
	// exited: wait for it, so that the figures below are the kept object's only.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		var s statusJSON
		if err := json.Unmarshal([]byte(mustTrove(t, "status", "--json", "-socket", sock)), &s); err != nil {
			t.Fatal(err)
		}
		if s.Server.Refs == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the daemon still holds %d refs for clients 10s after trove put exited", s.Server.Refs)
		}
	}

	tests := []struct {
		name  string
		args  []string
		keys  []string                             // must be present (dotted paths)
		check func(t *testing.T, v map[string]any) // values
	}{
		{"status", []string{"status", "--json"}, []string{"daemon.pid", "daemon.socket", "daemon.node", "daemon.started", "daemon.uptime_seconds",
			"store.objects", "store.capacity", "store.used", "store.in_memory_bytes", "store.spill_seconds", "store.spill_bytes_per_sec",
			"store.fallback_allocations", "server.kept", "server.protocol_errors", "clients.[].pid", "clients.[].name", "clients.[].connected"},
			func(t *testing.T, v map[string]any) {
				store, daemon, server := v["store"].(map[string]any), v["daemon"].(map[string]any), v["server"].(map[string]any)
				if store["objects"] != float64(1) || store["capacity"] != float64(64<<20) || server["kept"] != float64(1) ||
					daemon["socket"] != sock || daemon["pid"] != float64(os.Getpid()) || daemon["node"] != st.Node().String() {
					t.Errorf("status: %v", v)
				}
				if _, err := time.Parse(time.RFC3339, daemon["started"].(string)); err != nil {
					t.Errorf("daemon.started: %v", err)
				}
			}},
		{"memory", []string{"memory", "--json"}, []string{"rows.[].id", "rows.[].pid", "rows.[].owner", "rows.[].kind",
			"rows.[].count", "rows.[].size", "rows.[].where", "totals.objects", "totals.rows", "totals.bytes", "totals.in_memory", "totals.spilled", "totals.pinned"},
			func(t *testing.T, v map[string]any) {
				rows := v["rows"].([]any)
				r := rows[0].(map[string]any)
				if len(rows) != 1 || r["id"] != id || r["kind"] != "kept" || r["where"] != "memory" || r["size"] != float64(len(data)) ||
					!strings.HasSuffix(r["owner"].(string), " troved") {
					t.Errorf("memory rows: %v", rows)
				}
			}},
		{"get", []string{"get", id, "-o", filepath.Join(dir, "out.bin"), "--json"}, []string{"id", "size", "file"}, func(t *testing.T, v map[string]any) {
			if v["id"] != id || v["size"] != float64(len(data)) || v["file"] != filepath.Join(dir, "out.bin") {
				t.Errorf("get: %v", v)
			}
		}},
		{"drop", []string{"drop", id, "--json"}, []string{"id", "dropped"}, func(t *testing.T, v map[string]any) {
			if v["id"] != id || v["dropped"] != true {
				t.Errorf("drop: %v", v)
			}
		}},
		{"put stdin", []string{"put", "-", "--json"}, []string{"id", "size"}, func(t *testing.T, v map[string]any) {
			if v["size"] != float64(0) || len(v["id"].(string)) != 32 {
				t.Errorf("put of empty stdin: %v", v)
			}
			runTrove(t, "", "drop", v["id"].(string), "-socket", sock)
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := runTrove(t, "", append(tc.args, "-socket", sock)...)
			if r.code != exitOK || r.stderr != "" {
				t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
			}
			var v map[string]any
			if err := json.Unmarshal([]byte(r.stdout), &v); err != nil {
				t.Fatalf("not JSON: %v\n%s", err, r.stdout)
			}
			seen := map[string]bool{}
			checkKeys(t, v, "", seen)
			for _, k := range tc.keys {
				if !seen[k] {
					t.Errorf("no key %s in\n%s", k, r.stdout)
				}
			}
			tc.check(t, v)
		})
	}
	waitDrained(t, st)
}

// TestStoreJSONCoversStats: status --json carries every field of engine.Stats,
// each once: a field added to Stats and not to storeJSON fails here.
func TestStoreJSONCoversStats(t *testing.T) {
	var s engine.Stats
	rv := reflect.ValueOf(&s).Elem()
	for i := range rv.NumField() {
		f := rv.Field(i)
		switch f.Kind() {
		case reflect.Int64:
			if f.Type() == reflect.TypeFor[time.Duration]() {
				f.SetInt(int64(time.Duration(i+1) * time.Second)) // seconds in JSON
			} else {
				f.SetInt(int64(i + 1))
			}
		case reflect.Uint64:
			f.SetUint(uint64(i + 1))
		case reflect.Float64:
			f.SetFloat(float64(i + 1))
		default:
			t.Fatalf("engine.Stats.%s is a %s: teach this test and storeJSON about it", rv.Type().Field(i).Name, f.Kind())
		}
	}
	b, err := json.Marshal(newStoreJSON(s))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]float64
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	var got []int
	for k, v := range m {
		if !snakeKey.MatchString(k) {
			t.Errorf("key %q is not snake_case", k)
		}
		got = append(got, int(v))
	}
	slices.Sort(got)
	want := make([]int, rv.NumField())
	for i := range want {
		want[i] = i + 1
	}
	if !slices.Equal(got, want) {
		t.Errorf("storeJSON's values %v, want each of engine.Stats's %d fields once: %v\n%s", got, len(want), want, b)
	}
}

// TestCommandErrors: each failure says what went wrong and what to do, once;
// the exit status is 1 for a failure and 2 for bad usage; with --json the
// error is a JSON object on stdout too.
func TestCommandErrors(t *testing.T) {
	sock, st := startDaemon(t)
	missing := filepath.Join(t.TempDir(), "none.sock")
	stale := staleSocket(t)
	unknown := trove.NewObjectID(trove.NewNodeID(), 7).String()
	tests := []struct {
		args []string
		code int
		kind string
		want []string // substrings of the message
		once []string // substrings that must appear exactly once
		is   error
	}{
		{[]string{"status", "-socket", missing}, exitFail, "no_daemon",
			[]string{"no daemon at " + missing + ": the socket does not exist; start troved, or point -socket (or $TROVE_SOCKET)"}, []string{"start troved"}, nil},
		{[]string{"status", "-socket", stale}, exitFail, "no_daemon",
			[]string{"no daemon at " + stale + ": nothing listens on the socket", "start troved"}, []string{"start troved", stale}, nil},
		{[]string{"get", unknown, "-socket", missing}, exitFail, "no_daemon", []string{"no daemon at " + missing}, nil, nil},
		{[]string{"put", "-socket", stale, os.Args[0]}, exitFail, "no_daemon", []string{"no daemon at " + stale}, nil, nil},
		{[]string{"get", unknown, "-socket", sock}, exitFail, "unknown_object",
			[]string{"get " + unknown + ": the daemon at " + sock + " has no such object (never put there, or dropped since)"},
			[]string{unknown, "no such object"}, trove.ErrUnknownObject},
		{[]string{"drop", unknown, "-socket", sock}, exitFail, "unknown_object",
			[]string{"drop " + unknown + ": the daemon at " + sock + " keeps no such object (dropped already, or not stored by trove put)"},
			[]string{unknown, "no such object"}, trove.ErrUnknownObject},
		{[]string{"put", filepath.Join(t.TempDir(), "nope"), "-socket", sock}, exitFail, "file", []string{"no such file"}, nil, os.ErrNotExist},
		{[]string{"get", "xyz", "-socket", sock}, exitUsage, "usage", []string{"32 hex digits"}, nil, nil},
		{[]string{"drop", strings.Repeat("zz", 16), "-socket", sock}, exitUsage, "usage", []string{"32 hex digits"}, nil, nil},
		{[]string{"get", "-socket", sock}, exitUsage, "usage", []string{"want one object ID"}, nil, nil},
		{[]string{"get", unknown, "-socket", sock, "--json"}, exitUsage, "usage", []string{"needs -o FILE"}, nil, nil},
		{[]string{"memory", "-sort", "colour", "-socket", sock}, exitUsage, "usage", []string{"want owner, size or id"}, nil, nil},
		{[]string{"memory", "-limit", "-1", "-socket", sock}, exitUsage, "usage", []string{"-limit -1"}, nil, nil},
		{[]string{"status", "extra", "-socket", sock}, exitUsage, "usage", []string{`unexpected argument "extra"`}, nil, nil},
		{[]string{"status", "-colour", "-socket", sock}, exitUsage, "usage", []string{"flag provided but not defined: -colour", "trove status -h"}, nil, nil},
		{[]string{"put", "-timeout", "-1s", "-", "-socket", sock}, exitUsage, "usage", []string{"-timeout -1s"}, nil, nil},
		{[]string{"frobnicate"}, exitUsage, "usage", []string{`unknown command "frobnicate"`}, nil, nil},
		{nil, exitUsage, "usage", []string{"no command given"}, nil, nil},
	}
	for _, tc := range tests {
		for _, asJSON := range []bool{false, true} {
			args := tc.args
			if slices.Contains(args, "--json") != asJSON {
				if !asJSON || len(args) == 0 {
					continue
				}
				args = append(slices.Clone(args), "--json")
				if args[0] == "get" {
					args = append(args, "-o", filepath.Join(t.TempDir(), "out"))
				}
			}
			name := "trove " + strings.Join(args, " ")
			r := runTrove(t, "", args...)
			if r.code != tc.code {
				t.Errorf("%s: exit %d, want %d\nstderr: %s", name, r.code, tc.code, r.stderr)
			}
			msg, ok := strings.CutPrefix(strings.TrimSuffix(r.stderr, "\n"), "trove: ")
			if !ok || strings.Contains(msg, "\n") {
				t.Errorf("%s: stderr %q, want one line \"trove: ...\"", name, r.stderr)
			}
			for _, w := range tc.want {
				if !strings.Contains(msg, w) {
					t.Errorf("%s: message %q lacks %q", name, msg, w)
				}
			}
			for _, w := range tc.once {
				if n := strings.Count(msg, w); n != 1 {
					t.Errorf("%s: message %q says %q %d times, want once", name, msg, w, n)
				}
			}
			if !asJSON {
				if r.stdout != "" && tc.args != nil {
					t.Errorf("%s: stdout %q, want nothing", name, r.stdout)
				}
				continue
			}
			var e errorJSON
			dec := json.NewDecoder(strings.NewReader(r.stdout))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&e); err != nil {
				t.Errorf("%s: stdout is not the JSON error: %v\n%s", name, err, r.stdout)
				continue
			}
			if e.Error != msg || e.Kind != tc.kind || e.ExitCode != tc.code || e.Command != args[0] {
				t.Errorf("%s: JSON error %+v, want message %q, kind %s, exit code %d", name, e, msg, tc.kind, tc.code)
			}
		}
		if tc.is != nil {
			if err := run(context.Background(), tc.args, &bytes.Buffer{}); !errors.Is(err, tc.is) {
				t.Errorf("trove %s: error %v is not %v", strings.Join(tc.args, " "), err, tc.is)
			}
		}
	}
	// A stale socket is reported at once, not after ipc.DialContext's retries
	// until the dial timeout ran out.
	if err := run(context.Background(), []string{"status", "-socket", stale}, &bytes.Buffer{}); errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("stale socket: %v: the dial waited for its deadline", err)
	}
	if out := mustTrove(t, "memory", "-socket", sock); !strings.Contains(out, "no objects") {
		t.Errorf("memory of an empty store: %q", out)
	}
	waitDrained(t, st)
}

// TestHelp: each command's -h has the same shape, on stdout, exit 0.
func TestHelp(t *testing.T) {
	for _, cmd := range []string{"status", "memory", "put", "get", "drop", "demo"} {
		r := runTrove(t, "", cmd, "-h")
		if r.code != exitOK || r.stderr != "" {
			t.Errorf("%s -h: exit %d, stderr %q", cmd, r.code, r.stderr)
		}
		if !regexp.MustCompile(`^usage: trove ` + cmd + `[^\n]*\n\n[A-Z][^\n]*(\n[^\n]+)*\.\n\nflags:\n  -`).MatchString(r.stdout) {
			t.Errorf("%s -h is not \"usage: trove %s ...\", a sentence, then the flags:\n%s", cmd, cmd, r.stdout)
		}
	}
	if r := runTrove(t, "", "help"); r.code != exitOK || !strings.Contains(r.stdout, "Exit status: 0 done, 1 failed, 2 bad flags or arguments") {
		t.Errorf("trove help: exit %d:\n%s", r.code, r.stdout)
	}
}

// TestPutOutOfDisk: a put that needs the store to spill, with no disk space in
// the spill directory, fails with ErrOutOfDisk and names the daemon's flag.
func TestPutOutOfDisk(t *testing.T) {
	spillDir := t.TempDir()
	efs := errorfs.New()
	efs.SetAvailable(spillDir, 0)
	sock, st := startDaemonWith(t, engine.Config{Capacity: 64 << 20, SpillDirs: []string{spillDir}, SpillFS: efs, MinSpillSize: 1 << 20})
	dir := t.TempDir()
	file := filepath.Join(dir, "20m.bin")
	if err := os.WriteFile(file, bytes.Repeat([]byte{7}, 20<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for range 3 {
		r := runTrove(t, "", "put", file, "-socket", sock)
		if r.code != exitOK {
			t.Fatalf("put: exit %d: %s", r.code, r.stderr)
		}
		ids = append(ids, strings.TrimSpace(r.stdout))
	}
	// The engine reports ErrOutOfDisk when its last spill attempt failed for
	// want of disk; an attempt cut short by the put's own deadline does not
	// count as one (it once made this fail as store_full on a loaded machine).
	r := runTrove(t, "", "put", file, "-timeout", "2s", "--json", "-socket", sock)
	var e errorJSON
	if err := json.Unmarshal([]byte(r.stdout), &e); err != nil || r.code != exitFail || e.ExitCode != exitFail {
		t.Fatalf("put into a full store with a full disk: exit %d, %+v (%v); want exit 1 and the JSON error\nstderr: %s", r.code, e, err, r.stderr)
	}
	if e.Kind != "out_of_disk" {
		t.Fatalf("put into a full store with a full disk: kind %s, want out_of_disk: %s", e.Kind, e.Error)
	}
	if !strings.Contains(e.Error, "(the daemon's spill directories are troved's -spill-dir)") {
		t.Errorf("out of disk: %q does not name troved's -spill-dir", e.Error)
	}
	for _, id := range ids {
		mustTrove(t, "drop", id, "-socket", sock)
	}
	waitDrained(t, st)
}

// TestGetTimeout: a get of an object still being written gives up at -timeout
// and says so, as a timeout.
func TestGetTimeout(t *testing.T) {
	sock, st := startDaemon(t)
	c, err := ipc.DialContext(context.Background(), sock, ipc.DialOptions{Name: "writer"})
	if err != nil {
		t.Fatal(err)
	}
	b, err := c.Create(context.Background(), 1000)
	if err != nil {
		t.Fatal(err)
	}
	id := b.Ref().ID().String()
	r := runTrove(t, "", "get", id, "-timeout", "200ms", "-o", filepath.Join(t.TempDir(), "out"), "--json", "-socket", sock)
	var e errorJSON
	if err := json.Unmarshal([]byte(r.stdout), &e); err != nil || r.code != exitFail || e.Kind != "timeout" ||
		e.Error != "get "+id+": the object is still being written: not sealed within -timeout 200ms; wait longer with a larger -timeout" {
		t.Errorf("get of a pending object: exit %d, %+v (%v)", r.code, e, err)
	}
	b.Abort()
	b.Ref().Drop()
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	waitDrained(t, st)
}

// A cluster node's status shows its HTTP address and every cluster counter
// and gauge it reports, by name, in the table and in --json.
func TestStatusClusterStats(t *testing.T) {
	now := time.Now()
	st := ipc.Status{
		Daemon:  ipc.DaemonInfo{PID: 1, Socket: "/s.sock", Node: "00000000000000aa", Started: now, HTTP: "127.0.0.1:9464"},
		Members: []ipc.MemberInfo{{Name: "a", ID: "00000000000000aa", State: "alive", Self: true, Updated: now}},
		ClusterStats: []ipc.ClusterStat{
			{Name: "members_alive", Value: 2}, {Name: "remote_gets", Value: 5, Counter: true},
			{Name: "pulls", Value: 3, Counter: true}, {Name: "bytes_in", Value: 3 << 20, Counter: true},
			{Name: "new_counter", Value: 9, Counter: true}, {Name: "owned_borrowed", Value: 4},
		},
	}
	var b bytes.Buffer
	printStatus(&b, st, now)
	for _, want := range []string{
		"http       http://127.0.0.1:9464/metrics, /debug/pprof/",
		"cluster    1 member; now: members_alive 2, owned_borrowed 4",
		"transfers  since start: remote_gets 5, pulls 3, bytes_in 3145728 (3.0 MiB), new_counter 9",
	} {
		if !strings.Contains(b.String(), want+"\n") {
			t.Errorf("status lacks %q:\n%s", want, b.String())
		}
	}
	out, err := json.Marshal(newStatusJSON(st, now))
	if err != nil {
		t.Fatal(err)
	}
	var v struct {
		Daemon  struct{ HTTP string }
		Cluster map[string]int64
	}
	if err := json.Unmarshal(out, &v); err != nil {
		t.Fatal(err)
	}
	want := map[string]int64{"members_alive": 2, "remote_gets": 5, "pulls": 3, "bytes_in": 3 << 20, "new_counter": 9, "owned_borrowed": 4}
	if v.Daemon.HTTP != "127.0.0.1:9464" || !reflect.DeepEqual(v.Cluster, want) {
		t.Errorf("status --json: http %q, cluster %v; want %v\n%s", v.Daemon.HTTP, v.Cluster, want, out)
	}
	// A single-node daemon's has neither.
	out, _ = json.Marshal(newStatusJSON(ipc.Status{}, now))
	if bytes.Contains(out, []byte(`"cluster"`)) || bytes.Contains(out, []byte(`"http"`)) {
		t.Errorf("single-node status --json has cluster or http keys: %s", out)
	}
}

// A cluster node's status lists the worker processes attached to it (pid,
// name, functions, slots, busy) in the table and in --json; a daemon with
// none has neither the line nor the key.
func TestStatusWorkers(t *testing.T) {
	now := time.Now()
	st := ipc.Status{
		Daemon: ipc.DaemonInfo{PID: 1, Socket: "/s.sock", Node: "00000000000000aa", Started: now},
		Workers: []ipc.WorkerInfo{
			{ConnID: 3, PID: 4242, Name: "trainer", Functions: 5, Slots: 2, Busy: 1},
			{ConnID: 7, PID: 4343, Name: "prep", Functions: 1, Slots: 4, Busy: 0},
		},
	}
	var b bytes.Buffer
	printStatus(&b, st, now)
	lines := strings.Split(b.String(), "\n")
	for _, want := range []string{
		"workers   2 attached (processes running remote functions), 1 of 6 slots busy",
		"  WORKER PID  NAME     FUNCTIONS  SLOTS  BUSY",
		"  4242        trainer  5          2      1",
		"  4343        prep     1          4      0",
	} {
		if !slices.Contains(lines, want) {
			t.Errorf("status lacks the line %q:\n%s", want, b.String())
		}
	}
	out, err := json.Marshal(newStatusJSON(st, now))
	if err != nil {
		t.Fatal(err)
	}
	var v struct {
		Workers []workerJSON `json:"workers"`
	}
	if err := json.Unmarshal(out, &v); err != nil {
		t.Fatal(err)
	}
	want := []workerJSON{{ConnID: 3, PID: 4242, Name: "trainer", Functions: 5, Slots: 2, Busy: 1}, {ConnID: 7, PID: 4343, Name: "prep", Functions: 1, Slots: 4}}
	if !reflect.DeepEqual(v.Workers, want) || !bytes.Contains(out, []byte(`"workers":[{"conn_id":3,"pid":4242,"name":"trainer","functions":5,"slots":2,"busy":1}`)) {
		t.Errorf("status --json workers %+v, want %+v\n%s", v.Workers, want, out)
	}
	b.Reset()
	st.Workers = nil
	printStatus(&b, st, now)
	if out, _ := json.Marshal(newStatusJSON(st, now)); strings.Contains(b.String(), "workers") || bytes.Contains(out, []byte(`"workers"`)) {
		t.Errorf("status without workers mentions them:\n%s\n%s", b.String(), out)
	}
}

// TestVersionCommand: trove version prints the binary's version and takes no
// arguments (the stamped build is TestVersionFlags in cmd/troved).
func TestVersionCommand(t *testing.T) {
	var out bytes.Buffer
	if err := run(context.Background(), []string{"version"}, &out); err != nil {
		t.Fatalf("trove version: %v", err)
	}
	if got, want := out.String(), "trove "+version.String()+"\n"; got != want {
		t.Errorf("trove version printed %q, want %q", got, want)
	}
	var ue *usageError
	if err := run(context.Background(), []string{"version", "extra"}, io.Discard); !errors.As(err, &ue) {
		t.Errorf("trove version extra: %v, want a usage error", err)
	}
}

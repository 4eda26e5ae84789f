package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/trovedb/trove"
	"github.com/trovedb/trove/engine"
	"github.com/trovedb/trove/net/ipc"
)

// startDaemon serves a 64 MiB store on a socket in a temporary directory, in
// process. Cleanup shuts the server down, checks that the store was left
// drained, and closes it.
func startDaemon(t *testing.T) (string, *engine.Store) {
	t.Helper()
	return startDaemonWith(t, engine.Config{Capacity: 64 << 20, SpillDirs: []string{t.TempDir()}})
}

// startDaemonWith is startDaemon with the store's configuration.
func startDaemonWith(t *testing.T, cfg engine.Config) (string, *engine.Store) {
	t.Helper()
	st, err := engine.Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(t.TempDir(), "d.sock")
	ln, err := ipc.Listen(sock)
	if err != nil {
		st.Close()
		t.Fatal(err)
	}
	var logs syncLog
	srv := ipc.NewServer(st, ipc.ServerConfig{Logger: slog.New(slog.NewTextHandler(&logs, nil)), Version: "test"})
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		if err := <-served; !errors.Is(err, ipc.ErrServerClosed) {
			t.Errorf("serve: %v", err)
		}
		if s := st.Stats(); s.Objects != 0 || s.Used != 0 || s.PinnedObjects != 0 {
			t.Errorf("store not drained at the end: %d objects, %d bytes used, %d pinned", s.Objects, s.Used, s.PinnedObjects)
		}
		if err := st.Check(); err != nil {
			t.Error(err)
		}
		if err := st.Close(); err != nil {
			t.Error(err)
		}
		if t.Failed() {
			t.Logf("daemon log:\n%s", logs.String())
		}
	})
	return sock, st
}

// syncLog collects the server's log for a failed test.
type syncLog struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *syncLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *syncLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// runCmd runs one command in process and returns its output.
func runCmd(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	err := run(context.Background(), args, &out)
	return out.String(), err
}

func mustTrove(t *testing.T, args ...string) string {
	t.Helper()
	out, err := runCmd(t, args...)
	if err != nil {
		t.Fatalf("trove %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// waitDrained polls until the store holds nothing: releases from clients are
// asynchronous, and a closed client's are processed after it is gone.
func waitDrained(t *testing.T, st *engine.Store) {
	t.Helper()
	var s engine.Stats
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if s = st.Stats(); s.Objects == 0 && s.Used == 0 && s.PinnedObjects == 0 {
			return
		}
	}
	t.Fatalf("store not drained: %d objects, %d bytes used, %d pinned", s.Objects, s.Used, s.PinnedObjects)
}

func memoryRow(rep memoryJSON, id, kind string) *memoryRowJSON {
	for i, r := range rep.Rows {
		if r.ID == id && r.Kind == kind {
			return &rep.Rows[i]
		}
	}
	return nil
}

// TestPutGetStatusMemoryDrop walks an object through the commands: put a
// 3 MiB file, get it back, see it in status and memory (kept by the daemon,
// pinned by another client's view), drop it, and see it freed.
func TestPutGetStatusMemoryDrop(t *testing.T) {
	sock, st := startDaemon(t)
	dir := t.TempDir()
	data := make([]byte, 3<<20)
	rng := rand.NewChaCha8([32]byte{1})
	rng.Read(data)
	in := filepath.Join(dir, "in.bin")
	if err := os.WriteFile(in, data, 0o600); err != nil {
		t.Fatal(err)
	}

	id := strings.TrimSpace(mustTrove(t, "put", in, "-socket", sock))
	oid, err := trove.ParseObjectID(id)
	if err != nil {
		t.Fatalf("put printed %q, not an object ID: %v", id, err)
	}

	// get to stdout, and to a file with the flag after the ID.
	if got := mustTrove(t, "get", id, "-socket", sock); got != string(data) {
		t.Fatalf("get returned %d bytes that differ from the %d put", len(got), len(data))
	}
	outFile := filepath.Join(dir, "out.bin")
	if msg := mustTrove(t, "get", "-socket", sock, id, "-o", outFile); !strings.Contains(msg, "3.0 MiB written to "+outFile) {
		t.Errorf("get -o printed %q", msg)
	}
	if got, err := os.ReadFile(outFile); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("get -o: file differs from what was put (err %v)", err)
	}

	// status, text and JSON.
	text := mustTrove(t, "status", "-socket", sock)
	for _, re := range []string{`(?m)^capacity\s+64\.0 MiB$`, `(?m)^objects\s+1, 3\.0 MiB: 1 in shared memory`, `(?m)^kept\s+1 object \(`,
		`(?m)^socket\s+` + regexp.QuoteMeta(sock) + `$`, `(?m)^daemon\s+pid \d+, version test`, `(?m)^used\s+3\.0 MiB \(4\.7%\)`,
		`(?m)^daemon\s+pid \d+, version test, node ` + st.Node().String() + `, up `, `(?m)^  \d+\s+trove status\s+0\s+0\s+0\s+.*\(this command\)$`} {
		if !regexp.MustCompile(re).MatchString(text) {
			t.Errorf("status lacks %s:\n%s", re, text)
		}
	}
	var status statusJSON
	if err := json.Unmarshal([]byte(mustTrove(t, "status", "--json", "-socket", sock)), &status); err != nil {
		t.Fatalf("status --json: %v", err)
	}
	if status.Store.Objects != 1 || status.Store.Capacity != 64<<20 || status.Server.Kept != 1 || status.Daemon.Socket != sock || status.Daemon.PID != os.Getpid() ||
		status.Daemon.Node != st.Node().String() || status.Store.InMemoryBytes != 3<<20 || !slices.ContainsFunc(status.Clients, func(c clientJSON) bool { return c.Name == "trove status" && c.PID == os.Getpid() }) {
		t.Errorf("status --json: %+v", status)
	}

	// memory: kept by the daemon.
	text = mustTrove(t, "memory", "-socket", sock)
	if !regexp.MustCompile(`(?m)^` + id + `\s+3\.0 MiB\s+\d+ troved\s+kept\s+1\s+memory$`).MatchString(text) {
		t.Errorf("memory lacks the kept row of %s:\n%s", id, text)
	}
	if !strings.Contains(text, "total: 1 object, 3.0 MiB: 3.0 MiB in memory, 0 B spilled, 0 B pinned (1 row)") {
		t.Errorf("memory's totals:\n%s", text)
	}

	// Another client reads it: its view pins the object.
	c, err := ipc.DialContext(context.Background(), sock, ipc.DialOptions{Name: "reader"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ref, err := c.Borrow(oid)
	if err != nil {
		t.Fatal(err)
	}
	obj, err := c.Get(context.Background(), ref)
	if err != nil {
		t.Fatal(err)
	}
	text = mustTrove(t, "memory", "-socket", sock)
	for _, kind := range []string{"pinned by view", "local ref"} {
		if !regexp.MustCompile(`(?m)^` + id + `\s+3\.0 MiB\s+\d+ reader\s+` + kind + `\s+1\s+memory$`).MatchString(text) {
			t.Errorf("memory lacks a %q row for the reader:\n%s", kind, text)
		}
	}
	if !strings.Contains(text, "3.0 MiB pinned (3 rows)") {
		t.Errorf("memory's totals with a view:\n%s", text)
	}
	var rep memoryJSON
	if err := json.Unmarshal([]byte(mustTrove(t, "memory", "--json", "-limit", "1", "-socket", sock)), &rep); err != nil { // -limit is the table's
		t.Fatalf("memory --json: %v", err)
	}
	if r := memoryRow(rep, id, "pinned_by_view"); r == nil || !strings.HasSuffix(r.Owner, " reader") || r.Count != 1 || r.Where != "memory" || r.Size != 3<<20 {
		t.Errorf("memory --json has no pinned row for the reader: %+v", rep)
	}
	if memoryRow(rep, id, "kept") == nil || memoryRow(rep, id, "local_ref") == nil || rep.Totals.Objects != 1 || rep.Totals.Pinned != 3<<20 ||
		rep.Totals.InMemory != 3<<20 || rep.Totals.Rows != 3 || len(rep.Rows) != 3 {
		t.Errorf("memory --json: %+v", rep)
	}
	if text := mustTrove(t, "memory", "-limit", "1", "-sort", "size", "-socket", sock); !strings.Contains(text, "... 2 more rows not shown (of 3)") {
		t.Errorf("memory -limit 1:\n%s", text)
	}
	obj.Release()
	ref.Drop()
	if err := c.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if s := st.Stats(); s.PinnedObjects != 0 || s.Objects != 1 {
		t.Errorf("after the reader let go: %d pinned, %d objects; want 0 and 1 (still kept)", s.PinnedObjects, s.Objects)
	}

	// drop: the daemon lets go, and nothing else holds it.
	if msg := mustTrove(t, "drop", id, "-socket", sock); msg != "dropped "+id+"\n" {
		t.Errorf("drop printed %q", msg)
	}
	waitDrained(t, st)
	if _, err := runCmd(t, "drop", id, "-socket", sock); err == nil || !strings.Contains(err.Error(), "keeps no such object") {
		t.Errorf("second drop: %v", err)
	}
	if _, err := runCmd(t, "get", id, "-socket", sock); err == nil || !strings.Contains(err.Error(), "has no such object") {
		t.Errorf("get after drop: %v", err)
	}
}

// TestPutStdinJSON puts a small object from stdin, which travels inline.
func TestPutStdinJSON(t *testing.T) {
	sock, st := startDaemon(t)
	t.Setenv("TROVE_SOCKET", sock) // honoured as -socket's default
	var out bytes.Buffer
	if err := runIO(context.Background(), []string{"put", "--json", "-"}, strings.NewReader("hello, trove"), &out); err != nil {
		t.Fatal(err)
	}
	var put struct {
		ID   string
		Size int64
	}
	if err := json.Unmarshal(out.Bytes(), &put); err != nil || put.Size != 12 || len(put.ID) != 32 {
		t.Fatalf("put --json printed %q (%v)", out.String(), err)
	}
	if got := mustTrove(t, "get", put.ID); got != "hello, trove" {
		t.Errorf("get returned %q", got)
	}
	var st2 statusJSON
	if err := json.Unmarshal([]byte(mustTrove(t, "status", "-json")), &st2); err != nil || st2.Store.InlineObjects != 1 {
		t.Errorf("status -json: inline objects %d (%v)", st2.Store.InlineObjects, err)
	}
	var drop struct {
		ID      string
		Dropped bool
	}
	if err := json.Unmarshal([]byte(mustTrove(t, "drop", put.ID, "--json")), &drop); err != nil || !drop.Dropped || drop.ID != put.ID {
		t.Errorf("drop --json: %+v (%v)", drop, err)
	}
	waitDrained(t, st)
}

func TestParseInterspersed(t *testing.T) {
	cmd, df := newDaemonCommand("x", "x", "x")
	o := cmd.fs.String("o", "", "")
	pos, err := cmd.parse([]string{"a", "-o", "f", "b", "--json", "--", "-c", "d"}, io.Discard)
	if err != nil || strings.Join(pos, " ") != "a b -c d" || *o != "f" || !df.json {
		t.Fatalf("pos %q, -o %q, json %v, err %v", pos, *o, df.json, err)
	}
}

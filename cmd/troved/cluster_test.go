package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/trovedb/trove"
	"github.com/trovedb/trove/cluster"
	"github.com/trovedb/trove/net/ipc"
	"github.com/trovedb/trove/net/quic"
)

// The multi-process cluster tests: troved binaries on 127.0.0.1, killed
// with SIGKILL where the test is about a crash.

var (
	binOnce sync.Once
	binDir  string
	binErr  error
)

// releaseFlags are the link flags of the shipped binaries (the Makefile's
// RELEASE_FLAGS: no symbol table or DWARF). The Makefile also passes
// -trimpath, which the tests leave out so that their builds share the build
// cache; it changes the size by a few kilobytes.
// The tests' builds also stamp testStamp in as the version, as make dist does
// with git describe (TestVersionFlags).
var releaseFlags = []string{"-ldflags=-s -w -X github.com/trovedb/trove/internal/version.stamp=" + testStamp}

const testStamp = "v0.0.0-test-stamp"

// maxTrovedBytes bounds the shipped troved's size (issue 11: the daemon stays
// lean; Parquet and Arrow live in packages it does not import, which
// TestLintTrovedLean checks).
const maxTrovedBytes = 20 << 20

// binaries builds troved and trove once per test run, as they ship
// (releaseFlags), into a directory TestMain removes, and returns their paths.
func binaries(t *testing.T) (troved, troveCLI string) {
	t.Helper()
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go is not on PATH: cannot build troved")
	}
	if testing.Short() {
		t.Skip("builds the binaries and runs a cluster of processes")
	}
	binOnce.Do(func() {
		if binDir, binErr = os.MkdirTemp("", "troved-test-bin-"); binErr != nil {
			return
		}
		for _, b := range []struct{ out, pkg string }{{"troved", "."}, {"trove", "../trove"}} {
			out, err := exec.Command(gobin, append(append([]string{"build"}, releaseFlags...), "-o", filepath.Join(binDir, b.out), b.pkg)...).CombinedOutput()
			if err != nil {
				binErr = fmt.Errorf("go build %s: %v\n%s", b.pkg, err, out)
				return
			}
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return filepath.Join(binDir, "troved"), filepath.Join(binDir, "trove")
}

// TestTrovedSize: the daemon as shipped stays under maxTrovedBytes.
func TestTrovedSize(t *testing.T) {
	troved, _ := binaries(t)
	fi, err := os.Stat(troved)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Size() > maxTrovedBytes {
		t.Fatalf("troved built with %v is %s, more than %s: find what grew with `go list -deps ./cmd/troved` and keep heavy packages out of the daemon",
			releaseFlags, trove.HumanBytes(fi.Size()), trove.HumanBytes(maxTrovedBytes))
	}
	t.Logf("troved built with %v: %s", releaseFlags, trove.HumanBytes(fi.Size()))
}

func TestMain(m *testing.M) {
	if sock := os.Getenv("TROVED_TEST_WORKER"); sock != "" {
		if err := workerMain(sock); err != nil {
			fmt.Fprintln(os.Stderr, "worker:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

var clusterLine = regexp.MustCompile(`^troved: cluster node (\S+) on (\S+)$`)

// proc is one troved process.
type proc struct {
	name    string
	cmd     *exec.Cmd
	sock    string
	addr    string // cluster address
	metrics string // http://host:port
	stderr  *syncBuffer
	exited  chan struct{} // closed once it has exited, with its status in exitErr
	exitErr error
}

// fastMembership are troved's flags for failure detection in a few seconds:
// fast, but not so fast that a node slowed by -race on a loaded machine is
// declared dead while alive (50 ms probe timeouts did that; cluster tests use
// the same 400/300 ms).
var fastMembership = []string{"-probe-interval", "400ms", "-probe-timeout", "300ms", "-suspicion-mult", "3",
	"-gossip-interval", "20ms", "-request-timeout", "2s"}

// startNode runs troved as a cluster node named name (with -insecure unless
// args give -certs-dir), joining join if not empty, and waits for its two
// lines on stdout. It is killed at the end of the test if still running.
func startNode(t *testing.T, bin, name string, join string, args ...string) *proc {
	t.Helper()
	p, lines := launch(t, bin, name, join, args...)
	for _, want := range []string{"listening", "cluster"} {
		select {
		case line, ok := <-lines:
			if !ok {
				<-p.exited
				t.Fatalf("%s exited before its %s line: %v\n%s", name, want, p.exitErr, p.stderr.String())
			}
			if m := listeningLine.FindStringSubmatch(line); want == "listening" && m != nil {
				p.metrics = m[2]
				continue
			}
			if m := clusterLine.FindStringSubmatch(line); want == "cluster" && m != nil && m[1] == name {
				p.addr = m[2]
				continue
			}
			t.Fatalf("%s printed %q, want its %s line", name, line, want)
		case <-time.After(20 * time.Second):
			t.Fatalf("%s printed no %s line within 20s\n%s", name, want, p.stderr.String())
		}
	}
	return p
}

// launch starts troved and returns its stdout lines (closed at exit).
func launch(t *testing.T, bin, name, join string, args ...string) (*proc, <-chan string) {
	t.Helper()
	dir := t.TempDir()
	p := &proc{name: name, sock: filepath.Join(dir, "s.sock"), stderr: newSyncBuffer(), exited: make(chan struct{})}
	full := []string{"-socket", p.sock, "-http", "127.0.0.1:0", "-capacity", "64MiB", "-spill-dir", filepath.Join(dir, "spill"),
		"-listen", "127.0.0.1:0", "-name", name}
	if !slicesContains(args, "-certs-dir") {
		full = append(full, "-insecure")
	}
	if join != "" {
		full = append(full, "-join", join)
	}
	full = append(full, fastMembership...)
	p.cmd = exec.Command(bin, append(full, args...)...)
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "TROVE_") {
			env = append(env, kv)
		}
	}
	p.cmd.Env = env
	p.cmd.Stderr = p.stderr
	out, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 4)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
		io.Copy(io.Discard, out)
		p.exitErr = p.cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-p.exited:
		default:
			p.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-p.exited:
			case <-time.After(20 * time.Second):
				p.cmd.Process.Kill()
				<-p.exited
			}
		}
		if t.Failed() {
			t.Logf("%s's log:\n%s", p.name, p.stderr.String())
		}
	})
	return p, lines
}

func slicesContains(s []string, v string) bool {
	for _, e := range s {
		if e == v {
			return true
		}
	}
	return false
}

// kill9 kills p with SIGKILL and waits for it to be gone.
func (p *proc) kill9(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-p.exited
}

// statusID is p's node ID as its status says.
func (p *proc) statusID(t *testing.T) string {
	t.Helper()
	c := p.dial(t)
	defer c.Close()
	st, err := c.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return st.Daemon.Node
}

func (p *proc) dial(t *testing.T) *ipc.Client {
	t.Helper()
	c, err := ipc.Dial(p.sock)
	if err != nil {
		t.Fatalf("dial %s: %v", p.name, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// waitMembers waits (a generous bound) until p's status lists want alive
// members by name and no others alive.
func waitMembers(t *testing.T, p *proc, want ...string) ipc.Status {
	t.Helper()
	c := p.dial(t)
	defer c.Close()
	deadline := time.Now().Add(30 * time.Second)
	for {
		st, err := c.Status(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		var alive []string
		for _, m := range st.Members {
			if m.State == "alive" {
				alive = append(alive, m.Name)
			}
		}
		if strings.Join(sortStrings(alive), ",") == strings.Join(sortStrings(want), ",") {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s sees %v alive, want %v: %+v", p.name, alive, want, st.Members)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func sortStrings(s []string) []string {
	s = append([]string(nil), s...)
	for i := range s {
		for j := i + 1; j < len(s); j++ {
			if s[j] < s[i] {
				s[i], s[j] = s[j], s[i]
			}
		}
	}
	return s
}

// requireZero waits (a generous bound: releases are batched across nodes)
// until p's store holds no objects, bytes, pins or views.
func requireZero(t *testing.T, p *proc) {
	t.Helper()
	c := p.dial(t)
	defer c.Close()
	deadline := time.Now().Add(30 * time.Second)
	for {
		st, err := c.Status(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		s := st.Store
		if s.Objects == 0 && s.ObjectBytes == 0 && s.Used == 0 && s.PinnedObjects == 0 && s.Views == 0 && st.Server.Refs == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not at zero after every ref was dropped: objects=%d bytes=%d used=%d pinned=%d views=%d client refs=%d",
				p.name, s.Objects, s.ObjectBytes, s.Used, s.PinnedObjects, s.Views, st.Server.Refs)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// metric reads one value from p's /metrics.
func (p *proc) metric(t *testing.T, name string) float64 {
	t.Helper()
	for _, line := range strings.Split(scrape(t, p.metrics+"/metrics"), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatal(err)
			}
			return f
		}
	}
	t.Fatalf("%s has no metric %s", p.name, name)
	return 0
}

func pattern(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = seed + byte(i*7) + byte(i>>12)
	}
	return b
}

func getBytes(t *testing.T, ctx context.Context, c *ipc.Client, ref trove.Ref) []byte {
	t.Helper()
	obj, err := c.Get(ctx, ref)
	if err != nil {
		t.Fatalf("get %s: %v", ref.ID(), err)
	}
	defer obj.Release()
	return bytes.Clone(obj.Bytes())
}

type box struct {
	Name  string
	Inner []trove.Ref
}

// TestClusterProcesses runs three troved nodes, passes refs between their
// clients (small: inline; large: pulled; nested), then kills a holder with
// SIGKILL in the middle of a pull (it finishes from the owner) and the owner
// (a borrower's Get of what it never fetched fails with ErrOwnerDied). The
// survivor ends at zero.
func TestClusterProcesses(t *testing.T) {
	troved, troveCLI := binaries(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	a := startNode(t, troved, "node-a", "")
	b := startNode(t, troved, "node-b", a.addr)
	c := startNode(t, troved, "node-c", a.addr)
	for _, p := range []*proc{a, b, c} {
		waitMembers(t, p, "node-a", "node-b", "node-c")
	}
	ca, cb, cc := a.dial(t), b.dial(t), c.dial(t)

	// Small and large objects put on A, borrowed by ID and got on B.
	small, large := pattern(1000, 1), pattern(24<<20+1, 2)
	rs, err := ca.Put(ctx, small)
	if err != nil {
		t.Fatal(err)
	}
	rl, err := ca.Put(ctx, large)
	if err != nil {
		t.Fatal(err)
	}
	bs, err := cb.Borrow(rs.ID())
	if err != nil {
		t.Fatal(err)
	}
	bl, err := cb.Borrow(rl.ID())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(getBytes(t, ctx, cb, bs), small) || !bytes.Equal(getBytes(t, ctx, cb, bl), large) {
		t.Fatal("bytes got on B differ from those put on A")
	}
	if got := b.metric(t, "trove_cluster_remote_inline_total"); got != 1 {
		t.Errorf("B's inline remote gets: %v, want 1", got)
	}
	if got := b.metric(t, "trove_cluster_pulls_total"); got != 1 {
		t.Errorf("B's pulls: %v, want 1", got)
	}

	// trove status lists the members; trove memory -cluster every node's
	// objects: A's primaries, B's copies.
	cli := func(p *proc, args ...string) []byte {
		t.Helper()
		out, err := exec.Command(troveCLI, append(args, "-socket", p.sock)...).Output()
		if err != nil {
			t.Fatalf("trove %v on %s: %v\n%s", args, p.name, err, out)
		}
		return out
	}
	status := string(cli(c, "status"))
	for _, want := range []string{"cluster    3 members", "NAME", "node-a", "node-b", "node-c  " + c.statusID(t), "alive", "(this node)"} {
		if !strings.Contains(status, want) {
			t.Errorf("trove status on C lacks %q:\n%s", want, status)
		}
	}
	// B's status shows its transfers (one inline get, one pull, the bytes
	// of both in) and where its metrics and pprof are.
	bstatus := string(cli(b, "status"))
	for _, want := range []string{"transfers", "remote_inline 1", "pulls 1", "http://" + strings.TrimPrefix(b.metrics, "http://")} {
		if !strings.Contains(bstatus, want) {
			t.Errorf("trove status on B lacks %q:\n%s", want, bstatus)
		}
	}
	var bjs struct {
		Daemon  struct{ HTTP string }
		Cluster map[string]int64
	}
	if err := json.Unmarshal(cli(b, "status", "--json"), &bjs); err != nil {
		t.Fatal(err)
	}
	if c := bjs.Cluster; c["remote_inline"] != 1 || c["pulls"] != 1 || c["bytes_in"] < int64(len(small)+len(large)) || c["members_alive"] != 3 ||
		"http://"+bjs.Daemon.HTTP != b.metrics {
		t.Errorf("trove status --json on B: http %q (metrics on %s), cluster %v", bjs.Daemon.HTTP, b.metrics, c)
	}
	var mem struct {
		Nodes []struct {
			Name    string `json:"name"`
			Objects int    `json:"objects"`
			Listed  []struct {
				ID   string `json:"id"`
				Size int64  `json:"size"`
				Copy bool   `json:"copy"`
			} `json:"listed"`
		} `json:"nodes"`
	}
	if err := json.Unmarshal(cli(c, "memory", "-cluster", "--json"), &mem); err != nil {
		t.Fatal(err)
	}
	if len(mem.Nodes) != 3 || mem.Nodes[0].Name != "node-a" || mem.Nodes[1].Name != "node-b" || mem.Nodes[2].Name != "node-c" {
		t.Fatalf("trove memory -cluster: %+v", mem)
	}
	if na := mem.Nodes[0]; na.Objects != 2 || len(na.Listed) != 2 || na.Listed[0].ID != rl.ID().String() || na.Listed[0].Copy || na.Listed[1].ID != rs.ID().String() {
		t.Errorf("node-a's objects: %+v", na)
	}
	if nb := mem.Nodes[1]; nb.Objects != 2 || len(nb.Listed) != 2 || !nb.Listed[0].Copy || nb.Listed[0].Size != int64(len(large)) {
		t.Errorf("node-b's objects: %+v", nb)
	}
	if nc := mem.Nodes[2]; nc.Objects != 0 {
		t.Errorf("node-c's objects: %+v", nc)
	}
	if table := string(cli(a, "memory", "-cluster")); !strings.Contains(table, "NODE") || !strings.Contains(table, "copy") || !strings.Contains(table, "this node") {
		t.Errorf("trove memory -cluster's table:\n%s", table)
	}

	// The dashboard on C (its HTTP port) shows what trove status --json and
	// trove memory -cluster show: the members, their states and capacities,
	// each node's objects, and B's copies of A's objects, largest first.
	var cjs struct {
		Members []struct {
			Name, State string
			Capacity    int64
		}
	}
	if err := json.Unmarshal(cli(c, "status", "--json"), &cjs); err != nil {
		t.Fatal(err)
	}
	var dn struct {
		Nodes []struct {
			Name, State       string
			Capacity, Objects int64
		}
	}
	if err := json.Unmarshal([]byte(scrape(t, c.metrics+"/api/nodes")), &dn); err != nil {
		t.Fatal(err)
	}
	if len(dn.Nodes) != len(cjs.Members) || len(dn.Nodes) != 3 {
		t.Fatalf("dashboard /api/nodes on C: %+v; trove status: %+v", dn.Nodes, cjs.Members)
	}
	for i, n := range dn.Nodes {
		m := cjs.Members[i]
		if n.Name != m.Name || n.State != m.State || n.Capacity != m.Capacity || n.Objects != int64(mem.Nodes[i].Objects) {
			t.Errorf("dashboard node %+v; trove status %+v, trove memory lists %d objects", n, m, mem.Nodes[i].Objects)
		}
	}
	var dobj struct {
		Rows []struct{ ID, Node, Role, Owner string }
	}
	if err := json.Unmarshal([]byte(scrape(t, c.metrics+"/api/objects?node=node-b&kind=copy")), &dobj); err != nil {
		t.Fatal(err)
	}
	if len(dobj.Rows) != 2 || dobj.Rows[0].ID != rl.ID().String() || dobj.Rows[1].ID != rs.ID().String() || dobj.Rows[0].Owner != "node-a" {
		t.Errorf("dashboard: node-b's copies %+v, want A's large object %s, then its small one %s", dobj.Rows, rl.ID(), rs.ID())
	}
	if page := scrape(t, c.metrics+"/"); !strings.Contains(page, "<title>trove dashboard</title>") {
		t.Errorf("troved serves no dashboard at /:\n%s", page)
	}

	// Nested refs: a value on B holding A's small object; C reads it and
	// its inner objects after B's ref to the outer is gone.
	outer, err := trove.PutValue(ctx, cb, box{Name: "x", Inner: []trove.Ref{bs}})
	if err != nil {
		t.Fatal(err)
	}
	co, err := cc.Borrow(outer.ID())
	if err != nil {
		t.Fatal(err)
	}
	outer.Drop()
	v, err := trove.GetValue[box](ctx, cc, co)
	if err != nil {
		t.Fatal(err)
	}
	co.Drop()
	if v.Name != "x" || len(v.Inner) != 1 || !bytes.Equal(getBytes(t, ctx, cc, v.Inner[0]), small) {
		t.Fatalf("the nested value read on C: %+v", v)
	}
	v.Inner[0].Drop()
	bs.Drop()

	// SIGKILL of a holder mid-pull: C pulls the large object, B (which holds
	// a copy, so the owner names it first) dies once it has served some of it.
	deadline := time.Now().Add(20 * time.Second)
	for a.metric(t, "trove_cluster_owned_borrowed_objects") < 1 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	cl, err := cc.Borrow(rl.ID())
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan []byte, 1)
	go func() {
		obj, err := cc.Get(ctx, cl)
		if err != nil {
			t.Errorf("C's Get while the holder died: %v", err)
			got <- nil
			return
		}
		got <- bytes.Clone(obj.Bytes())
		obj.Release()
	}()
	served := 0.0
	for served == 0 && time.Now().Before(deadline) {
		served = b.metric(t, "trove_cluster_bytes_out_total")
	}
	b.kill9(t)
	runtime.KeepAlive(bl) // B held its copy until it died
	if served == 0 || served >= float64(len(large)) {
		t.Logf("B had served %v of %d bytes when killed: the kill was not mid-pull this run", served, len(large))
	}
	if g := <-got; !bytes.Equal(g, large) {
		t.Fatal("the large object C got after its holder died differs")
	}
	cl.Drop()
	waitMembers(t, a, "node-a", "node-c")

	// SIGKILL of the owner: C borrows an object A never sealed and one it
	// never fetched; both Gets fail with ErrOwnerDied.
	pend, err := ca.Create(ctx, 4<<20)
	if err != nil {
		t.Fatal(err)
	}
	cp, err := cc.Borrow(pend.Ref().ID())
	if err != nil {
		t.Fatal(err)
	}
	cl2, err := cc.Borrow(rl.ID())
	if err != nil {
		t.Fatal(err)
	}
	waiting := make(chan error, 1)
	go func() {
		_, err := cc.Get(ctx, cp)
		waiting <- err
	}()
	if ready, _, err := cc.Wait(ctx, []trove.Ref{cp}, 0); err != nil || len(ready) != 0 {
		t.Fatalf("Wait on the pending object: %v %v", ready, err)
	}
	a.kill9(t)
	if err := <-waiting; !errors.Is(err, trove.ErrOwnerDied) || !strings.Contains(err.Error(), "node-a") {
		t.Fatalf("C's Get of the pending object after its owner was killed: %v, want ErrOwnerDied naming node-a", err)
	}
	if _, err := cc.Get(ctx, cl2); !errors.Is(err, trove.ErrOwnerDied) {
		t.Fatalf("C's Get of an object it never held after its owner was killed: %v, want ErrOwnerDied", err)
	}
	if ctx.Err() != nil {
		t.Fatal("the test's deadline passed: a Get waited for it rather than failing")
	}
	cp.Drop()
	cl2.Drop()
	runtime.KeepAlive(rs) // A held them until it died
	runtime.KeepAlive(rl)
	if err := cc.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	waitMembers(t, c, "node-c")
	requireZero(t, c)
}

// TestClusterCerts runs two nodes with credentials made by `trove cert`, gets
// an object across them, and shows that a node whose certificate another CA
// signed cannot join: troved fails at start, and the members never list it.
func TestClusterCerts(t *testing.T) {
	troved, trove := binaries(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	root := t.TempDir()
	cert := func(args ...string) {
		t.Helper()
		out, err := exec.Command(trove, append([]string{"cert"}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("trove cert %v: %v\n%s", args, err, out)
		}
	}
	cert("create-ca", "-dir", filepath.Join(root, "ca"))
	cert("create-ca", "-dir", filepath.Join(root, "other-ca"))
	for _, n := range []string{"node-a", "node-b"} {
		cert("create-node", "-ca-dir", filepath.Join(root, "ca"), "-dir", filepath.Join(root, n), "-name", n, "-host", "127.0.0.1")
	}
	cert("create-node", "-ca-dir", filepath.Join(root, "other-ca"), "-dir", filepath.Join(root, "node-x"), "-name", "node-x", "-host", "127.0.0.1")

	a := startNode(t, troved, "node-a", "", "-certs-dir", filepath.Join(root, "node-a"))
	b := startNode(t, troved, "node-b", a.addr, "-certs-dir", filepath.Join(root, "node-b"))
	waitMembers(t, a, "node-a", "node-b")
	ca, cb := a.dial(t), b.dial(t)
	want := pattern(3<<20, 9)
	r, err := ca.Put(ctx, want)
	if err != nil {
		t.Fatal(err)
	}
	br, err := cb.Borrow(r.ID())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(getBytes(t, ctx, cb, br), want) {
		t.Fatal("bytes differ across nodes with certificates")
	}
	br.Drop()
	r.Drop()

	x, lines := launch(t, troved, "node-x", a.addr, "-certs-dir", filepath.Join(root, "node-x"))
	for line := range lines {
		if clusterLine.MatchString(line) {
			t.Fatalf("a node of another CA came up: %q", line)
		}
	}
	<-x.exited
	var ee *exec.ExitError
	if !errors.As(x.exitErr, &ee) || ee.ExitCode() != 1 || !strings.Contains(x.stderr.String(), "join") {
		t.Fatalf("troved with another CA's certificate: %v, want exit status 1 saying it could not join\n%s", x.exitErr, x.stderr.String())
	}
	for _, p := range []*proc{a, b} {
		st := waitMembers(t, p, "node-a", "node-b")
		for _, m := range st.Members {
			if m.Name == "node-x" {
				t.Fatalf("%s lists the outsider: %+v", p.name, m)
			}
		}
		requireZero(t, p)
	}
}

// TestClusterSharedCerts runs two nodes from one -certs-dir holding every
// node's credentials (the Kubernetes Secret's layout: ca.crt, NAME.crt,
// NAME.key), each picking its own by -name; a node with no pair there fails
// at start with exit status 2, naming what to make.
func TestClusterSharedCerts(t *testing.T) {
	troved, _ := binaries(t)
	root := t.TempDir()
	caDir, shared := filepath.Join(root, "ca"), filepath.Join(root, "secret")
	if err := cluster.CreateCA(caDir); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(shared, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"node-a", "node-b"} {
		d := filepath.Join(root, n)
		if err := cluster.CreateNodeCert(caDir, d, n, "127.0.0.1"); err != nil {
			t.Fatal(err)
		}
		copyFile(t, filepath.Join(d, quic.CAFile), filepath.Join(shared, quic.CAFile))
		copyFile(t, filepath.Join(d, quic.CertFile), filepath.Join(shared, n+".crt"))
		copyFile(t, filepath.Join(d, quic.KeyFile), filepath.Join(shared, n+".key"))
	}
	a := startNode(t, troved, "node-a", "", "-certs-dir", shared)
	b := startNode(t, troved, "node-b", a.addr, "-certs-dir", shared)
	waitMembers(t, a, "node-a", "node-b")
	waitMembers(t, b, "node-a", "node-b")
	requireZero(t, a)
	requireZero(t, b)

	c, lines := launch(t, troved, "node-c", a.addr, "-certs-dir", shared)
	for range lines {
	}
	<-c.exited
	var ee *exec.ExitError
	if !errors.As(c.exitErr, &ee) || ee.ExitCode() != 2 || !strings.Contains(c.stderr.String(), "trove cert create-node -name node-c") {
		t.Fatalf("troved with no credentials of its name: %v, want exit status 2 saying what to make\n%s", c.exitErr, c.stderr.String())
	}
}

package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/trovedb/trove/net/ipc"
)

// syncBuffer is a bytes.Buffer safe for the daemon's goroutines, with a channel
// closed once the first line has been written.
type syncBuffer struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	line    chan struct{}
	gotLine bool
}

func newSyncBuffer() *syncBuffer { return &syncBuffer{line: make(chan struct{})} }

// awaitListening waits (10 s at most) for the daemon run writes to stdout,
// whose result done carries, to print its first line, and fails the test
// with its stderr if it returns or stays silent instead.
func awaitListening(t *testing.T, stdout, stderr *syncBuffer, done <-chan error) {
	t.Helper()
	select {
	case <-stdout.line:
	case err := <-done:
		t.Fatalf("run returned before listening: %v\n%s", err, stderr.String())
	case <-time.After(10 * time.Second):
		t.Fatalf("no listening line after 10s\n%s", stderr.String())
	}
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	n, err := b.buf.Write(p)
	if !b.gotLine && bytes.IndexByte(b.buf.Bytes(), '\n') >= 0 {
		b.gotLine = true
		close(b.line)
	}
	return n, err
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

var listeningLine = regexp.MustCompile(`^troved: listening on unix://(\S+) \(metrics (http://\S+)/metrics\)$`)

func scrape(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s\n%s", url, resp.Status, body)
	}
	return string(body)
}

// TestDaemon runs the daemon in process, uses it as a client would, scrapes it,
// and shuts it down the way SIGTERM does (main cancels run's context).
func TestDaemon(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "d.sock")
	stdout, stderr := newSyncBuffer(), newSyncBuffer()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	args := []string{"-socket", sock, "-http", "127.0.0.1:0", "-capacity", "64MiB", "-spill-dir", filepath.Join(dir, "spill"), "-shutdown-grace", "2s"}
	go func() { done <- run(ctx, args, envOf(nil), stdout, stderr) }()
	defer func() {
		if t.Failed() {
			t.Logf("daemon's stderr:\n%s", stderr.String())
		}
	}()

	awaitListening(t, stdout, stderr, done)
	m := listeningLine.FindStringSubmatch(strings.TrimSpace(stdout.String()))
	if m == nil || m[1] != sock {
		t.Fatalf("stdout %q: want the listening line for %s", stdout.String(), sock)
	}
	base := m[2]

	fi, err := os.Stat(sock)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != 0o600 {
		t.Errorf("socket mode %v, want a socket with mode 0600", fi.Mode())
	}

	c, err := ipc.Dial(sock)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	data := bytes.Repeat([]byte("trove"), 100_000) // 500 kB: in shared memory, not inline
	ref, err := c.Put(ctx, data)
	if err != nil {
		t.Fatal(err)
	}
	obj, err := c.Get(ctx, ref)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(obj.Bytes(), data) {
		t.Fatal("the object read back differs")
	}

	metrics := scrape(t, base+"/metrics")
	for _, want := range []string{
		"trove_objects 1\n", "trove_clients 1\n", "trove_puts_total 1\n", "trove_pinned_objects 1\n",
		"trove_capacity_bytes 6.7108864e+07\n", "# HELP trove_used_bytes ", "# TYPE trove_gets_total counter\n",
		"trove_build_info{", "go_goroutines ", "process_resident_memory_bytes ",
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if t.Failed() {
		t.Logf("/metrics:\n%s", metrics)
	}
	if pprof := scrape(t, base+"/debug/pprof/"); !strings.Contains(pprof, "goroutine") {
		t.Errorf("/debug/pprof/ does not list profiles:\n%s", pprof)
	}

	// Dropped and released, the object is gone: nothing used, nothing pinned.
	obj.Release()
	ref.Drop()
	if err := c.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	metrics = scrape(t, base+"/metrics")
	for _, want := range []string{"trove_objects 0\n", "trove_used_bytes 0\n", "trove_pinned_objects 0\n", "trove_client_refs 0\n"} {
		if !strings.Contains(metrics, want) {
			t.Errorf("after drop and release, /metrics lacks %q", want)
		}
	}

	// Shut down with the client still holding a ref and a view: the daemon
	// releases them and the client learns it is disconnected.
	if ref, err = c.Put(ctx, data); err != nil {
		t.Fatal(err)
	}
	if obj, err = c.Get(ctx, ref); err != nil {
		t.Fatal(err)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run after cancel: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("run did not return within 10s of cancel")
	}
	if _, err := os.Stat(sock); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket still there after shutdown (stat: %v)", err)
	}
	for _, want := range []string{"shutting down", "socket server stopped", "http server stopped", "store closed"} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("the log lacks %q", want)
		}
	}
	if err := c.Ping(context.Background()); !errors.Is(err, ipc.ErrDisconnected) {
		t.Errorf("a call after shutdown: %v, want ipc.ErrDisconnected", err)
	}
	// The view stays mapped (reading it does not fault), but the daemon no longer
	// pins it: its bytes may have been reused, or poisoned by invariant builds.
	_ = obj.Bytes()[len(data)-1]
	obj.Release()
	ref.Drop()
}

// TestSIGTERM builds troved, runs it, and stops it with a real SIGTERM.
func TestSIGTERM(t *testing.T) {
	bin, _ := binaries(t) // built once per test run
	dir := t.TempDir()

	sock := filepath.Join(dir, "t.sock")
	cmd := exec.Command(bin, "-socket", sock, "-http", "127.0.0.1:0", "-capacity", "32MiB", "-spill-dir", filepath.Join(dir, "spill"))
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "TROVE_") {
			env = append(env, kv)
		}
	}
	cmd.Env = env
	stderr := newSyncBuffer()
	cmd.Stderr = stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// exited is closed once troved has exited, with its status in exitErr.
	exited := make(chan struct{})
	var exitErr error
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		if sc.Scan() {
			lines <- sc.Text()
		}
		io.Copy(io.Discard, out) // until exit, so Wait does not race the pipe
		exitErr = cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		select {
		case <-exited:
		default:
			cmd.Process.Kill()
			<-exited
		}
	})

	select {
	case line := <-lines:
		if m := listeningLine.FindStringSubmatch(line); m == nil || m[1] != sock {
			t.Fatalf("first line %q: want the listening line for %s", line, sock)
		}
	case <-exited:
		t.Fatalf("troved exited before listening: %v\n%s", exitErr, stderr.String())
	case <-time.After(10 * time.Second):
		t.Fatalf("troved printed no listening line within 10s\n%s", stderr.String())
	}
	c, err := ipc.Dial(sock)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-exited:
		if exitErr != nil {
			t.Fatalf("troved after SIGTERM: %v, want exit status 0\n%s", exitErr, stderr.String())
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("troved still running 5s after SIGTERM\n%s", stderr.String())
	}
	if _, err := os.Stat(sock); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket still there after SIGTERM (stat: %v)", err)
	}
	for _, want := range []string{"reason=\"received SIGTERM\"", "store closed"} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("the log lacks %q:\n%s", want, stderr.String())
		}
	}
}

// TestSecondDaemon: a second troved on a socket already served says so, with
// the first one's pid, rather than reporting the -http port both want; and it
// leaves the first one serving.
func TestSecondDaemon(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "d.sock")
	stdout, stderr := newSyncBuffer(), newSyncBuffer()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"-socket", sock, "-http", "127.0.0.1:0", "-capacity", "16MiB", "-spill-dir", filepath.Join(dir, "spill")},
			envOf(nil), stdout, stderr)
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("the first daemon: %v", err)
		}
	}()
	awaitListening(t, stdout, stderr, done)
	m := listeningLine.FindStringSubmatch(strings.TrimSpace(stdout.String()))
	if m == nil {
		t.Fatalf("stdout %q", stdout.String())
	}
	httpAddr := strings.TrimPrefix(m[2], "http://")

	err := run(context.Background(), []string{"-socket", sock, "-http", httpAddr, "-capacity", "16MiB"}, envOf(nil), io.Discard, io.Discard)
	want := fmt.Sprintf("a daemon (pid %d) is already listening on %s: stop it, or give this one another -socket", os.Getpid(), sock)
	if err == nil || !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "-http") || exitStatus(err) != exitFail {
		t.Fatalf("second daemon: %v (exit %d); want exit 1 and %q, not the -http clash", err, exitStatus(err), want)
	}
	c, err := ipc.Dial(sock)
	if err != nil {
		t.Fatalf("the first daemon no longer serves: %v", err)
	}
	c.Close()
}

// TestStartErrors: settings that cannot work fail at start, naming the knob
// the user has, with exit status 2 for a bad setting and 1 for a failure.
func TestStartErrors(t *testing.T) {
	dir := t.TempDir()
	file := writeFile(t, "plain", "not a directory")
	missing := filepath.Join(dir, "no", "such")
	conf := writeFile(t, "troved.json", fmt.Sprintf(`{"spill-dir": [%q]}`, missing))
	tests := []struct {
		name string
		args []string
		env  map[string]string
		tmp  string // $TMPDIR, if set
		code int
		want []string
		not  string
	}{
		{name: "spill dir cannot be made", args: []string{"-spill-dir", missing}, code: exitFail,
			want: []string{"spill directory " + missing + " (from flag -spill-dir): mkdir " + missing + ": no such file or directory",
				`create it, or choose another with -spill-dir, $TROVE_SPILL_DIR or "spill-dir" in the -config file`}, not: "Config.Dirs"},
		{name: "spill dir from the environment", env: map[string]string{"TROVE_SPILL_DIR": missing}, code: exitFail,
			want: []string{"(from $TROVE_SPILL_DIR)", "choose another with -spill-dir"}, not: "Config.Dirs"},
		{name: "spill dir from the config file", args: []string{"-config", conf}, code: exitFail,
			want: []string{"(from config file " + conf + ")", "choose another with -spill-dir"}, not: "Config.Dirs"},
		{name: "spill dir is a file", args: []string{"-spill-dir", file}, code: exitFail,
			want: []string{"spill directory " + file + " (from flag -spill-dir) is not a directory: choose another with -spill-dir"}},
		{name: "no temp dir for the default", tmp: missing, code: exitFail,
			want: []string{"no spill directory given, and none could be made under the OS temp dir: mkdir " + missing, "choose one with -spill-dir", "(or set TMPDIR)"},
			not:  "Config.Dirs"},
		{name: "bad setting", args: []string{"-capacity", "lots"}, code: exitUsage, want: []string{`capacity "lots" (from flag -capacity)`}},
		{name: "unknown flag", args: []string{"-capacty", "1GiB"}, code: exitUsage, want: []string{"flag provided but not defined: -capacty"}},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.tmp != "" {
				t.Setenv("TMPDIR", tc.tmp)
			}
			args := append([]string{"-socket", filepath.Join(dir, fmt.Sprintf("s%d.sock", i)), "-http", "off", "-capacity", "16MiB"}, tc.args...)
			err := run(context.Background(), args, envOf(tc.env), io.Discard, io.Discard)
			if code := exitStatus(err); err == nil || code != tc.code {
				t.Fatalf("error %v, exit %d; want exit %d", err, code, tc.code)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			if tc.not != "" && strings.Contains(err.Error(), tc.not) {
				t.Errorf("error %q names %s, which the user cannot set", err, tc.not)
			}
			if _, err := os.Stat(args[1]); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("a failed start left its socket behind (stat: %v)", err)
			}
		})
	}
	if exitStatus(nil) != exitOK || exitStatus(flag.ErrHelp) != exitOK {
		t.Error("a clean exit or -h is not exit status 0")
	}
}

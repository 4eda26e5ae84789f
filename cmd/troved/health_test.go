package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestProbeAnswers: /healthz always answers 200; /readyz answers 200 only
// while the socket is served and, for a cluster node, the node is up.
func TestProbeAnswers(t *testing.T) {
	upNode := func() (int, bool) { return 3, false }
	closedNode := func() (int, bool) { return 0, true }
	for _, tc := range []struct {
		name      string
		serving   bool
		node      func() (int, bool)
		join      []string
		wantReady int
		wantBody  string
	}{
		{"starting", false, nil, nil, http.StatusServiceUnavailable, "not ready: the socket /s.sock is not served"},
		{"single node serving", true, nil, nil, http.StatusOK, "ready: store open, socket /s.sock served\n"},
		{"cluster node up", true, upNode, []string{"troved-peers:7100"}, http.StatusOK, "joined through [troved-peers:7100], 3 members alive"},
		{"cluster node that started the cluster", true, upNode, nil, http.StatusOK, "started a cluster (no -join)"},
		{"cluster node closed", true, closedNode, nil, http.StatusServiceUnavailable, "not ready: the cluster node has closed"},
		{"shutting down", false, upNode, nil, http.StatusServiceUnavailable, "(starting, or shutting down)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := &health{socket: "/s.sock", node: tc.node, joining: tc.join}
			h.serving.Store(tc.serving)
			mux := http.NewServeMux()
			mux.HandleFunc("GET /healthz", h.healthz)
			mux.HandleFunc("GET /readyz", h.readyz)

			rec := httptest.NewRecorder()
			mux.ServeHTTP(rec, httptest.NewRequest("GET", "/healthz", nil))
			if rec.Code != http.StatusOK {
				t.Errorf("/healthz: %d, want 200 whatever the store's state", rec.Code)
			}
			rec = httptest.NewRecorder()
			mux.ServeHTTP(rec, httptest.NewRequest("GET", "/readyz", nil))
			if rec.Code != tc.wantReady || !strings.Contains(rec.Body.String(), tc.wantBody) {
				t.Errorf("/readyz: %d %q, want %d containing %q", rec.Code, rec.Body.String(), tc.wantReady, tc.wantBody)
			}
		})
	}
}

// TestProbesServed: a running daemon answers both probes with 200 on its
// HTTP port, and neither after shutdown.
func TestProbesServed(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "p.sock")
	stdout, stderr := newSyncBuffer(), newSyncBuffer()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	args := []string{"-socket", sock, "-http", "127.0.0.1:0", "-capacity", "16MiB", "-spill-dir", filepath.Join(dir, "spill")}
	go func() { done <- run(ctx, args, envOf(nil), stdout, stderr) }()
	awaitListening(t, stdout, stderr, done)
	m := listeningLine.FindStringSubmatch(strings.TrimSpace(stdout.String()))
	if m == nil {
		t.Fatalf("stdout %q: no listening line", stdout.String())
	}
	if body := scrape(t, m[2]+"/healthz"); !strings.HasPrefix(body, "ok") {
		t.Errorf("/healthz: %q", body)
	}
	if body := scrape(t, m[2]+"/readyz"); !strings.Contains(body, "ready: store open, socket "+sock+" served") {
		t.Errorf("/readyz: %q", body)
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
	if resp, err := http.Get(m[2] + "/readyz"); err == nil {
		resp.Body.Close()
		t.Errorf("/readyz after shutdown: %s, want no answer", resp.Status)
	}
}

// TestVersionFlags: troved -version and trove version print the version
// the build stamped in (make dist's -X), and exit 0; in process, without a
// stamp, troved -version prints the build info's version.
func TestVersionFlags(t *testing.T) {
	var out strings.Builder
	if err := run(context.Background(), []string{"-version"}, envOf(nil), &out, io.Discard); err != nil {
		t.Fatalf("run -version: %v", err)
	}
	if got := out.String(); !strings.HasPrefix(got, "troved ") || got != "troved "+buildVersion()+"\n" {
		t.Errorf("run -version printed %q, want %q", got, "troved "+buildVersion()+"\n")
	}

	troved, troveCLI := binaries(t)
	for _, c := range []struct {
		bin  string
		args []string
		want string
	}{
		{troved, []string{"-version"}, "troved " + testStamp + "\n"},
		{troveCLI, []string{"version"}, "trove " + testStamp + "\n"},
		{troveCLI, []string{"--version"}, "trove " + testStamp + "\n"},
	} {
		got, err := exec.Command(c.bin, c.args...).Output()
		if err != nil {
			t.Errorf("%s %v: %v", filepath.Base(c.bin), c.args, err)
			continue
		}
		if string(got) != c.want {
			t.Errorf("%s %v printed %q, want %q", filepath.Base(c.bin), c.args, got, c.want)
		}
	}
}

// TestJoinByName: -join takes a DNS name, as a Kubernetes headless Service
// gives (one name, an address per pod), and a name that lists the joining
// node itself: "localhost" resolves to 127.0.0.1 (this node, and the seed)
// and ::1 (nothing listens there). memberlist resolves the name and
// pushes and pulls with every address that answers.
func TestJoinByName(t *testing.T) {
	bin, _ := binaries(t)
	seed := startNode(t, bin, "seed", "")
	_, port, err := net.SplitHostPort(seed.addr)
	if err != nil {
		t.Fatal(err)
	}
	// A first node whose name lists only itself starts a cluster of one, as
	// the first pod of a DaemonSet does (publishNotReadyAddresses: true).
	selfPort := freeUDPPort(t)
	alone := startNode(t, bin, "alone", "localhost:"+selfPort, "-listen", "127.0.0.1:"+selfPort)
	// A node joining the seed through a name.
	joiner := startNode(t, bin, "joiner", "localhost:"+port)
	for _, p := range []*proc{alone, joiner} {
		if body := scrape(t, p.metrics+"/readyz"); !strings.Contains(body, "ready:") || !strings.Contains(body, "joined through [localhost:") {
			t.Errorf("%s /readyz: %q", p.name, body)
		}
	}
	waitMembers(t, joiner, "seed", "joiner")
	waitMembers(t, seed, "seed", "joiner")
	waitMembers(t, alone, "alone")
}

// freeUDPPort is a UDP port on 127.0.0.1 that nothing used a moment ago.
func freeUDPPort(t *testing.T) string {
	t.Helper()
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return strconv.Itoa(c.LocalAddr().(*net.UDPAddr).Port)
}

package ipc

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/trovedb/trove/engine"
)

// daemon is an in-process server on a socket in a temp dir.
type daemon struct {
	st   *engine.Store
	srv  *Server
	path string
	done chan error
}

func startDaemon(t testing.TB, cfg engine.Config) *daemon {
	t.Helper()
	return startDaemonWith(t, cfg, ServerConfig{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
}

// startDaemonWith is startDaemon with the server's configuration.
func startDaemonWith(t testing.TB, cfg engine.Config, scfg ServerConfig) *daemon {
	t.Helper()
	if cfg.Capacity == 0 {
		cfg.Capacity = 64 << 20
	}
	st, err := engine.Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	d := &daemon{st: st, path: filepath.Join(t.TempDir(), "troved.sock"), done: make(chan error, 1)}
	ln, err := Listen(d.path)
	if err != nil {
		t.Fatal(err)
	}
	d.srv = NewServer(st, scfg)
	go func() { d.done <- d.srv.Serve(ln) }()
	t.Cleanup(func() { d.stop(t) })
	return d
}

func (d *daemon) stop(t testing.TB) {
	if d.srv == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := d.srv.Shutdown(ctx); err != nil {
		t.Error(err)
	}
	if err := <-d.done; err != ErrServerClosed {
		t.Errorf("Serve returned %v, want ErrServerClosed", err)
	}
	if err := d.st.Check(); err != nil {
		t.Error(err)
	}
	if err := d.st.Close(); err != nil {
		t.Error(err)
	}
	d.srv = nil
}

func (d *daemon) dial(t testing.TB) *Client {
	t.Helper()
	c, err := Dial(d.path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// requireDrained fails unless, within a few seconds, the store holds nothing and
// the server holds nothing for any client. Releases travel asynchronously, so
// it polls; flushing the clients first makes the first look succeed.
func requireDrained(t testing.TB, d *daemon, clients ...*Client) {
	t.Helper()
	for _, c := range clients {
		if err := c.Flush(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	var st engine.Stats
	var ss ServerStats
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); {
		d.st.WaitIdle()
		st, ss = d.st.Stats(), d.srv.Stats()
		if st.Objects == 0 && st.Used == 0 && st.Views == 0 && st.PinnedObjects == 0 && ss.Refs == 0 && ss.Views == 0 && ss.Builders == 0 {
			if err := d.st.Check(); err != nil {
				t.Fatal(err)
			}
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("not drained: objects=%d used=%d views=%d pinned=%d; server refs=%d views=%d builders=%d",
		st.Objects, st.Used, st.Views, st.PinnedObjects, ss.Refs, ss.Views, ss.Builders)
}

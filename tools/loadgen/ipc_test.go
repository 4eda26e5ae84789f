package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/trovedb/trove/engine"
	"github.com/trovedb/trove/net/ipc"
)

// A short run against an in-process daemon: no errors, loadgen's connection holds
// nothing at the end, and after Shutdown the store is empty.
func TestDaemonRun(t *testing.T) {
	const capacity = 8 << 20
	st, err := engine.Open(engine.Config{Capacity: capacity, SpillDirs: []string{t.TempDir()}, MinSpillSize: capacity / 8})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	sock := filepath.Join(t.TempDir(), "s.sock")
	ln, err := ipc.Listen(sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := ipc.NewServer(st, ipc.ServerConfig{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()

	var stdout, stderr bytes.Buffer
	code := realMain([]string{
		"-socket", sock, "-sizes", "4KiB:40,64KiB:30,512KiB:30", "-working-set", "24MiB",
		"-ops", "1500", "-concurrency", "4", "-json", "-quiet",
	}, &stdout, &stderr, nil)
	if code != exitOK {
		t.Errorf("exit status %d; stderr:\n%s\nstdout:\n%s", code, stderr.String(), stdout.String())
	}
	var rep Report
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		t.Fatalf("JSON does not parse: %v\n%s", err, stdout.Bytes())
	}
	if rep.Errors.Total != 0 || rep.Ops.Total.Count != 1500 {
		t.Errorf("%d ops, errors %+v", rep.Ops.Total.Count, rep.Errors)
	}
	for _, k := range []*OpReport{&rep.Ops.Put, &rep.Ops.Get, &rep.Ops.Wait} {
		if k.Count == 0 || k.Latency.P99 <= 0 {
			t.Errorf("an op kind was not exercised: %+v", rep.Ops)
		}
	}
	if len(rep.Stores) != 1 || rep.Stores[0].Drained == nil || !*rep.Stores[0].Drained {
		t.Errorf("stores %+v: want loadgen's connection to hold nothing at the end", rep.Stores)
	}

	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Errorf("Shutdown: %v", err)
	}
	if err := <-served; err != nil && !errors.Is(err, ipc.ErrServerClosed) {
		t.Errorf("Serve: %v", err)
	}
	checkDrained(t, st)
}

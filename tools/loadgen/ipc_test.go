package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
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
		"-ops", "1500", "-duration", "5m", "-concurrency", "4", "-json", "-quiet", // -ops ends it; -duration only bounds it
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
	// No other client: once the daemon's figures settle, its store is empty.
	// They are read until they do, so the report is not a snapshot of the
	// daemon still freeing what loadgen dropped.
	if len(rep.Stores) != 1 || rep.Stores[0].Drained == nil || !*rep.Stores[0].Drained || rep.Stores[0].Settled == nil || !*rep.Stores[0].Settled ||
		rep.Stores[0].Objects != 0 || rep.Stores[0].Used != 0 || rep.Stores[0].PinnedObjects != 0 {
		t.Errorf("stores %+v: want loadgen's connection to hold nothing at the end, and the settled figures of an empty store", rep.Stores)
	}
	var table bytes.Buffer
	if err := rep.writeTable(&table); err != nil {
		t.Fatal(err)
	}
	if want := "store " + sock + ": 0 objects, 0 B of 8.0 MiB used"; !strings.Contains(table.String(), want) || !strings.Contains(table.String(), "; loadgen holds nothing there\n") {
		t.Errorf("table lacks %q and \"loadgen holds nothing there\":\n%s", want, table.String())
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

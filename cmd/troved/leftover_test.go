package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/trovedb/trove"
	"github.com/trovedb/trove/net/ipc"
)

// TestRestartAfterKill kills a daemon that has spilled (SIGKILL: its store never
// closes), starts another on the same -spill-dir, and checks that the new one
// removes the dead one's spill files and logs how many bytes came back.
func TestRestartAfterKill(t *testing.T) {
	bin, _ := binaries(t) // built once per test run
	dir := t.TempDir()
	spillDir := filepath.Join(dir, "spill")
	sock := filepath.Join(dir, "k.sock")
	cmd := exec.Command(bin, "-socket", sock, "-http", "off", "-capacity", "32MiB", "-spill-dir", spillDir)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "TROVE_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	stderr := newSyncBuffer()
	cmd.Stderr = stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	listening := make(chan bool, 1)
	go func() { listening <- bufio.NewScanner(out).Scan() }()
	select {
	case ok := <-listening:
		if !ok {
			t.Fatalf("troved exited before listening\n%s", stderr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("troved printed no listening line within 10s\n%s", stderr.String())
	}

	// 48 MiB into 32 MiB: at least 16 MiB goes to spill files.
	ctx := context.Background()
	c, err := ipc.Dial(sock)
	if err != nil {
		t.Fatal(err)
	}
	data := bytes.Repeat([]byte{7}, 1<<20)
	var refs []trove.Ref
	for range 48 {
		r, err := c.Put(ctx, data)
		if err != nil {
			t.Fatal(err)
		}
		refs = append(refs, r)
	}
	var spilled int64
	for deadline := time.Now().Add(10 * time.Second); spilled < 16<<20 && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		spilled = spillBytes(t, spillDir)
	}
	if spilled < 16<<20 {
		t.Fatalf("%d bytes in spill files after putting 48 MiB into 32 MiB, want ≥ 16 MiB", spilled)
	}
	runtime.KeepAlive(refs) // no drop reaches the daemon before it is killed
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	c.Close()
	os.Remove(sock)
	spilled = spillBytes(t, spillDir) // as the kill left them

	sock2 := filepath.Join(dir, "k2.sock")
	stdout2, stderr2 := newSyncBuffer(), newSyncBuffer()
	rctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- run(rctx, []string{"-socket", sock2, "-http", "off", "-capacity", "32MiB", "-spill-dir", spillDir}, envOf(nil), stdout2, stderr2)
	}()
	awaitListening(t, stdout2, stderr2, done)
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("run: %v\n%s", err, stderr2.String())
	}
	log := stderr2.String()
	if !strings.Contains(log, "removed spill files left by stores that did not close") ||
		!strings.Contains(log, fmt.Sprintf("bytes=%d ", spilled)) || !strings.Contains(log, "kept_unproven=0") {
		t.Errorf("the restarted daemon's log does not say it removed %d bytes of spill files:\n%s", spilled, log)
	}
	if left := spillBytes(t, spillDir); left != 0 {
		t.Errorf("%d bytes of spill files left after the restart", left)
	}
}

// spillBytes sums the sizes of the spill files in dir.
func spillBytes(t *testing.T, dir string) int64 {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), ".spill") {
			fi, err := e.Info()
			if err != nil {
				continue // removed meanwhile
			}
			n += fi.Size()
		}
	}
	return n
}

package ipc

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Listen replaces a socket left by a dead daemon, refuses one a live daemon
// serves, and never removes a file that is not a socket.
func TestListenExistingPath(t *testing.T) {
	dir := t.TempDir()

	file := filepath.Join(dir, "notes.txt")
	if err := os.WriteFile(file, []byte("keep me"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Listen(file); err == nil || !strings.Contains(err.Error(), "is not a socket") {
		t.Fatalf("Listen on a regular file: %v, want an error saying it is not a socket", err)
	}
	if b, err := os.ReadFile(file); err != nil || string(b) != "keep me" {
		t.Fatalf("the file Listen refused was changed: %q, %v", b, err)
	}

	stale := filepath.Join(dir, "stale.sock")
	old, err := net.ListenUnix("unix", &net.UnixAddr{Name: stale, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	old.SetUnlinkOnClose(false)
	old.Close() // the socket file stays, with nobody listening
	if err := Probe(stale, 0); !errors.Is(err, ErrNoDaemon) {
		t.Fatalf("Probe of a stale socket: %v, want ErrNoDaemon", err)
	}
	ln, err := Listen(stale)
	if err != nil {
		t.Fatalf("Listen over a stale socket: %v", err)
	}
	defer ln.Close()
	if err := Probe(stale, 0); err != nil {
		t.Fatalf("Probe of a listening socket: %v", err)
	}
	if _, err := Listen(stale); err == nil || !strings.Contains(err.Error(), "already listening") {
		t.Fatalf("Listen on a served socket: %v, want an error saying a daemon is already listening", err)
	}
	if err := Probe(filepath.Join(dir, "none.sock"), 0); !errors.Is(err, ErrNoDaemon) || !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Probe of a missing socket: %v, want ErrNoDaemon and ErrNotExist", err)
	}
}

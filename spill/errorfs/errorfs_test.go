package errorfs_test

import (
	"bytes"
	"errors"
	"io"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/trovedb/trove/spill"
	"github.com/trovedb/trove/spill/errorfs"
)

func create(t *testing.T, efs *errorfs.FS, path string) spill.File {
	t.Helper()
	f, err := efs.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func TestWriteFaults(t *testing.T) {
	dir := t.TempDir()
	efs := errorfs.New()
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	second := efs.Inject(errorfs.Fault{Kind: errorfs.WriteErr, Path: a, Nth: 2})
	full := efs.Inject(errorfs.Fault{Kind: errorfs.NoSpace, Budget: 10})
	fa, fb := create(t, efs, a), create(t, efs, b)

	// a's first write passes the WriteErr fault and takes 6 of the 10 bytes.
	if n, err := fa.WriteV([][]byte{[]byte("abc"), []byte("def")}); n != 6 || err != nil {
		t.Fatalf("first write: %d, %v", n, err)
	}
	// Its second fires WriteErr (default EIO) and writes nothing.
	if n, err := fa.WriteV([][]byte{[]byte("x")}); n != 0 || !errors.Is(err, syscall.EIO) {
		t.Fatalf("second write: %d, %v; want 0, EIO", n, err)
	}
	// b shares the budget: 4 bytes fit, then ENOSPC; then nothing fits.
	if n, err := fb.WriteV([][]byte{[]byte("123456")}); n != 4 || !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("write across the budget: %d, %v; want 4, ENOSPC", n, err)
	}
	if n, err := fb.WriteV([][]byte{[]byte("7")}); n != 0 || !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("write past the budget: %d, %v; want 0, ENOSPC", n, err)
	}
	if second.Seen() != 2 || second.Fired() != 1 || full.Fired() != 3 {
		t.Errorf("WriteErr seen %d fired %d, NoSpace fired %d; want 2, 1, 3", second.Seen(), second.Fired(), full.Fired())
	}
	// Gone, the fault fires no more.
	efs.RemoveFault(full)
	if n, err := fb.WriteV([][]byte{[]byte("789")}); n != 3 || err != nil {
		t.Fatalf("write after RemoveFault: %d, %v", n, err)
	}
	got := make([]byte, 7)
	if n, err := fb.ReadAt(got, 0); n != 7 || err != nil || string(got) != "1234789" {
		t.Fatalf("b holds %q (%d, %v), want the prefix that fitted and the last write", got[:n], n, err)
	}

	efs.Inject(errorfs.Fault{Kind: errorfs.CreateErr, Path: "c", Err: syscall.EACCES})
	if _, err := efs.Create(filepath.Join(dir, "c")); !errors.Is(err, syscall.EACCES) {
		t.Errorf("Create under a CreateErr fault: %v", err)
	}
	efs.Inject(errorfs.Fault{Kind: errorfs.ShortWrite})
	if n, err := create(t, efs, filepath.Join(dir, "d")).WriteV([][]byte{[]byte("abcd")}); n != 2 || err != nil {
		t.Errorf("ShortWrite: %d, %v; want 2, nil", n, err)
	}
}

func TestReadFaults(t *testing.T) {
	dir := t.TempDir()
	efs := errorfs.New()
	f := create(t, efs, filepath.Join(dir, "f"))
	data := []byte("0123456789")
	if _, err := f.WriteV([][]byte{data}); err != nil {
		t.Fatal(err)
	}
	efs.Inject(errorfs.Fault{Kind: errorfs.ShortRead, Nth: 1})
	efs.Inject(errorfs.Fault{Kind: errorfs.FlipByte, Nth: 2, At: 13})
	p := make([]byte, 10)
	if n, err := f.ReadAt(p, 0); n != 5 || err != io.EOF {
		t.Errorf("ShortRead: %d, %v; want 5, EOF", n, err)
	}
	if n, err := f.ReadAt(p, 0); n != 10 || err != nil || p[3] != '3'^0xff {
		t.Errorf("FlipByte: %d, %v, %q; want byte 3 inverted", n, err, p)
	}
	// The faults damaged the reads, not the file.
	if n, err := f.ReadAt(p, 0); n != 10 || err != nil || !bytes.Equal(p, data) {
		t.Errorf("third read: %d, %v, %q; want the file intact", n, err, p)
	}
}

func TestStall(t *testing.T) {
	efs := errorfs.New()
	f := create(t, efs, filepath.Join(t.TempDir(), "f"))
	stall := efs.Inject(errorfs.Fault{Kind: errorfs.StallWrite, Nth: 1, Gate: make(chan struct{})})
	done := make(chan error)
	go func() {
		_, err := f.WriteV([][]byte{[]byte("x")})
		done <- err
	}()
	<-stall.Entered()
	select {
	case err := <-done:
		t.Fatalf("the stalled write returned before its gate opened: %v", err)
	default:
	}
	close(stall.Gate)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestSetAvailable(t *testing.T) {
	dir := t.TempDir()
	efs := errorfs.New()
	efs.SetAvailable(dir+"/", 0)
	if n, err := efs.Available(dir); n != 0 || err != nil {
		t.Errorf("Available after SetAvailable(0): %d, %v", n, err)
	}
	efs.SetAvailable(dir, -1)
	if n, err := efs.Available(dir); n <= 0 || err != nil {
		t.Errorf("Available of the real file system: %d, %v", n, err)
	}
}

package bpfcount

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// open returns a Counter watching this process, or skips t with the reason this
// machine cannot count.
func open(t *testing.T) *Counter {
	t.Helper()
	c, err := Open()
	if errors.Is(err, ErrUnavailable) {
		t.Skipf("cannot count with eBPF here: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Error(err)
		}
	})
	if err := c.Watch(os.Getpid()); err != nil {
		t.Fatal(err)
	}
	return c
}

// TestCountsWhatMoves: each kind of system call adds the bytes it moved to the
// counter of its direction, and touching fresh anonymous pages adds a user fault
// per page. The bounds are lower ones: the Go runtime makes calls of its own
// (getrandom, a write to a pipe to wake the poller) that may land in between.
func TestCountsWhatMoves(t *testing.T) {
	c := open(t)
	const n = 1 << 20
	buf := make([]byte, n)
	file := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(file, buf, 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		op    func() error
		field func(Counts) uint64
		min   uint64
	}{
		{"socketpair write+read", func() error { return socketRoundTrip(buf) }, func(c Counts) uint64 { return c.BytesOut }, n},
		{"socketpair write+read", func() error { return socketRoundTrip(buf) }, func(c Counts) uint64 { return c.BytesIn }, n},
		{"pread", func() error { return preadFile(file, buf) }, func(c Counts) uint64 { return c.BytesIn }, n},
		{"sendfile", func() error { return sendfileFile(file, n) }, func(c Counts) uint64 { return c.BytesKernel }, n},
		{"touch fresh pages", func() error { return touchFresh(n) }, func(c Counts) uint64 { return c.FaultsUser }, n / uint64(os.Getpagesize())},
	}
	for _, tt := range tests {
		before, err := c.Read(os.Getpid())
		if err != nil {
			t.Fatal(err)
		}
		if err := tt.op(); err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		after, err := c.Read(os.Getpid())
		if err != nil {
			t.Fatal(err)
		}
		d := after.Sub(before)
		if got := tt.field(d); got < tt.min {
			t.Errorf("%s: counted %d, want at least %d (%v)", tt.name, got, tt.min, d)
		}
		t.Logf("%s: %v", tt.name, d)
	}
}

func socketRoundTrip(buf []byte) error {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fds[0])
	defer unix.Close(fds[1])
	// Small pieces, so the socket's buffer never fills between write and read.
	const piece = 16 << 10
	for off := 0; off < len(buf); off += piece {
		if _, err := unix.Write(fds[0], buf[off:off+piece]); err != nil {
			return err
		}
		for got := 0; got < piece; {
			m, err := unix.Read(fds[1], buf[off+got:off+piece])
			if err != nil {
				return err
			}
			got += m
		}
	}
	return nil
}

func preadFile(path string, buf []byte) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	for off := 0; off < len(buf); {
		m, err := f.ReadAt(buf[off:], int64(off))
		if err != nil {
			return err
		}
		off += m
	}
	return nil
}

func sendfileFile(path string, n int) error {
	src, err := os.Open(path)
	if err != nil {
		return err
	}
	defer src.Close()
	dst, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	defer dst.Close()
	var off int64
	for off < int64(n) {
		if _, err := unix.Sendfile(int(dst.Fd()), int(src.Fd()), &off, n-int(off)); err != nil {
			return err
		}
	}
	return nil
}

func touchFresh(n int) error {
	m, err := unix.Mmap(-1, 0, n, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return err
	}
	// One fault per 4 KiB page: no transparent huge page may back the region.
	if err := unix.Madvise(m, unix.MADV_NOHUGEPAGE); err != nil {
		unix.Munmap(m)
		return err
	}
	for i := 0; i < n; i += os.Getpagesize() {
		m[i] = 1
	}
	return unix.Munmap(m)
}

// TestUnwatched: a process never watched has no counts to read, and Watch
// refuses what is not a process ID.
func TestUnwatched(t *testing.T) {
	c := open(t)
	if _, err := c.Read(os.Getpid() + 1<<20); err == nil {
		t.Error("Read of an unwatched process returned counts")
	}
	for _, pid := range []int{0, -1, 1 << 32} {
		if err := c.Watch(pid); err == nil {
			t.Errorf("Watch(%d) accepted", pid)
		}
	}
}

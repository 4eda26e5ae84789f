package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/trovedb/trove/internal/bpfcount"
)

// Zero copy, counted in the kernel rather than inferred from timings: an eBPF
// program (internal/bpfcount) adds up the bytes that the system calls of the
// client and of the daemon move, and their page faults, while one Get of a 64 MiB
// object runs. trove's client maps the daemon's shared memory, so the Get moves
// a request and a reply (a few hundred bytes) and reading the value maps its
// pages; Redis's GET moves the value through a socket, out of the server and into
// the client.

const kernelObjectSize = 64 << 20

// quietFor is how long the counts of the processes must stay still before they
// are read: the daemon may still be inside the sendmsg of its reply when the
// client has it, and the client's releaser sends a view's release up to
// releaseDelay after Release.
const quietFor = 50 * time.Millisecond

// kernelCounter returns an eBPF counter watching this process and pids, closed in
// tb's cleanup, or skips tb with the reason the kernel cannot count here.
func kernelCounter(tb testing.TB, pids ...int) *bpfcount.Counter {
	tb.Helper()
	kc, err := bpfcount.Open()
	if errors.Is(err, bpfcount.ErrUnavailable) {
		tb.Skipf("cannot count system calls and page faults with eBPF here: %v", err)
	}
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := kc.Close(); err != nil {
			tb.Error(err)
		}
	})
	if err := kc.Watch(append([]int{os.Getpid()}, pids...)...); err != nil {
		tb.Fatal(err)
	}
	return kc
}

// measure runs op and returns what the kernel did for each of pids meanwhile,
// in the order of pids, once their counts have been still for quietFor (bounded
// by 10 s, for a loaded machine).
func measure(tb testing.TB, kc *bpfcount.Counter, pids []int, op func()) []bpfcount.Counts {
	tb.Helper()
	quiet := func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := kc.WaitQuiet(ctx, quietFor, pids...); err != nil {
			tb.Fatal(err)
		}
	}
	read := func() []bpfcount.Counts {
		out := make([]bpfcount.Counts, len(pids))
		for i, pid := range pids {
			var err error
			if out[i], err = kc.Read(pid); err != nil {
				tb.Fatal(err)
			}
		}
		return out
	}
	quiet()
	before := read()
	op()
	quiet()
	after := read()
	for i := range after {
		after[i] = after[i].Sub(before[i])
	}
	return after
}

// faultWindow is how many bytes of a shared file mapping one read fault maps:
// the kernel's fault-around (mm/memory.c do_fault_around), fault_around_bytes in
// debugfs, 64 KiB unless changed. hugeShmem reports whether shmem may use
// transparent huge pages, which would map 2 MiB per fault instead.
func faultWindow() (window int64, source string, hugeShmem bool) {
	window, source = 64<<10, "the kernel's default fault_around_bytes"
	if b, err := os.ReadFile("/sys/kernel/debug/fault_around_bytes"); err == nil {
		if n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64); err == nil && n > 0 {
			window, source = n, "/sys/kernel/debug/fault_around_bytes"
		}
	}
	if b, err := os.ReadFile("/sys/kernel/mm/transparent_hugepage/shmem_enabled"); err == nil {
		for _, mode := range []string{"[always]", "[within_size]", "[force]"} {
			hugeShmem = hugeShmem || strings.Contains(string(b), mode)
		}
	}
	return window, source, hugeShmem
}

// TestZeroCopyInKernel: a Get of a 64 MiB object through the daemon, and reading
// every byte of it, makes the client's and the daemon's system calls move less
// than 64 KiB (a request and its reply, and the view's release), and maps the
// object's pages with about one page fault per fault-around window (64 KiB). As a
// control that the counter sees copies, 64 MiB through a unix socket counts at
// least 64 MiB each way.
func TestZeroCopyInKernel(t *testing.T) {
	const size = kernelObjectSize
	d := startDaemon(t, 2*size, false)
	daemonPID := d.cmd.Process.Pid
	kc := kernelCounter(t, daemonPID)
	pids := []int{os.Getpid(), daemonPID}

	writer := d.dial(t)
	src := fastPattern(size)
	ref, err := writer.Put(ctx, src)
	if err != nil {
		t.Fatal(err)
	}
	defer ref.Drop()
	// A second client, dialled before counting: its mapping of the arena has
	// never touched the object's pages, as for a reader in another process.
	reader := d.dial(t)
	borrowed, err := reader.Borrow(ref.ID())
	if err != nil {
		t.Fatal(err)
	}
	defer borrowed.Drop()

	var same bool
	var offset int64
	counts := measure(t, kc, pids, func() {
		obj, err := reader.Get(ctx, borrowed)
		if err != nil {
			t.Fatal(err)
		}
		var inArena bool
		if offset, inArena = reader.ArenaOffset(obj); !inArena {
			t.Errorf("the %s object was not read from the shared arena", sizeName(size))
		}
		same = bytes.Equal(obj.Bytes(), src) // reads every byte
		obj.Release()
	})
	if !same {
		t.Fatal("the object read back differs from the bytes put")
	}
	client, daemon := counts[0], counts[1]
	t.Logf("Get of %s at arena offset %d + reading every byte: client %v", sizeName(size), offset, client)
	t.Logf("daemon %v", daemon)

	const maxBytes = 64 << 10
	if moved := client.Bytes() + daemon.Bytes(); moved >= maxBytes {
		t.Errorf("the Get's system calls moved %d bytes (client %d, daemon %d), want < %d: is the value being copied?",
			moved, client.Bytes(), daemon.Bytes(), maxBytes)
	}
	// The daemon read a request and wrote a reply: its process is the one counted.
	if daemon.BytesIn == 0 || daemon.BytesOut == 0 {
		t.Errorf("the daemon (pid %d) moved %d bytes in and %d out: its request and reply were not counted", daemonPID, daemon.BytesIn, daemon.BytesOut)
	}

	// Faults: the object's pages, shared with the daemon, are resident; the
	// client's first read of each fault-around window maps the whole window.
	// Allow 128 more (1/8 of a window per window) for the windows the object's
	// ends fall in and for the Go runtime's own faults meanwhile (its heap, the
	// race detector's shadow): 1,025–1,039 were seen for 1,024 windows. A fault
	// per 4 KiB page (16,384) or a copy would be far outside.
	window, source, hugeShmem := faultWindow()
	faults := client.Faults()
	lo, hi := uint64(size/window), uint64(size/window+128)
	why := fmt.Sprintf("one per %d-byte fault-around window, from %s", window, source)
	if hugeShmem {
		lo, why = size/(2<<20), "shmem may use 2 MiB pages here: between one per 2 MiB and one per window"
	}
	if faults < lo || faults > hi {
		t.Errorf("reading the %s view took %d page faults, want %d..%d (%s)", sizeName(size), faults, lo, hi, why)
	}
	if daemon.Faults() > 64 {
		t.Errorf("the daemon took %d page faults serving a Get: it touched the object's pages?", daemon.Faults())
	}

	// Control: the same bytes copied through a unix socket count as copied.
	copied := measure(t, kc, pids[:1], func() {
		if err := socketCopy(src); err != nil {
			t.Fatal(err)
		}
	})[0]
	t.Logf("control, %s through a unix socket within this process: %v", sizeName(size), copied)
	if copied.BytesOut < size || copied.BytesIn < size {
		t.Errorf("copying %d bytes through a socket counted %d out and %d in, want at least %d each: the counter misses copies",
			size, copied.BytesOut, copied.BytesIn, size)
	}
}

// fastPattern is pattern(n) made by doubling copies: with the race detector on,
// a byte loop over 64 MiB takes seconds.
func fastPattern(n int) []byte {
	p := make([]byte, n)
	done := copy(p, pattern(min(n, 64<<10)))
	for done < n {
		done += copy(p[done:], p[:done])
	}
	return p
}

// socketCopy sends buf through a unix stream socket pair, from one goroutine to
// another, which reads it 1 MiB at a time.
func socketCopy(buf []byte) error {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	a := os.NewFile(uintptr(fds[0]), "socketpair-a")
	b := os.NewFile(uintptr(fds[1]), "socketpair-b")
	defer a.Close()
	defer b.Close()
	sent := make(chan error, 1)
	go func() {
		_, err := a.Write(buf)
		sent <- err
	}()
	into := make([]byte, 1<<20)
	for left := len(buf); left > 0 && err == nil; {
		var n int
		n, err = io.ReadFull(b, into[:min(left, len(into))])
		left -= n
	}
	return errors.Join(err, <-sent)
}

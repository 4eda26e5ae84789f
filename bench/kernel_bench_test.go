package bench

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
	"unsafe"

	"github.com/redis/go-redis/v9"
	"golang.org/x/sys/unix"

	"github.com/trovedb/trove/internal/bpfcount"
)

// BenchmarkKernelGet counts, with eBPF, what one Get of a 64 MiB value and a
// read of every byte of it cost the kernel: sys-B/op is the bytes that the
// system calls of the client and of the server moved (the benchmark process, and
// the trove daemon or redis-server), faults/op their page faults. Each runs in
// the same process, in this order:
//
//   - impl=unixsocket: the value sent through a unix socket pair (the floor for
//     any store that copies through a socket);
//   - impl=redis: GET from a redis-server this benchmark starts on a unix socket
//     (skipped when redis-server is not installed; REDIS_SERVER names it);
//   - impl=trove/mapping=cold: Get through the daemon, the client's page-table
//     entries for the object dropped before each Get (MADV_DONTNEED, untimed), as
//     for a reader that maps the object for the first time;
//   - impl=trove/mapping=warm: the same, the pages mapped by the Get before.
//
// The trove rows report x_redis_sysB, Redis's sys-B/op over trove's, and
// x_unix_sysB, the socket copy's over trove's.
func BenchmarkKernelGet(b *testing.B) {
	const size = kernelObjectSize
	d := benchDaemon(b)
	kc := kernelCounter(b, d.cmd.Process.Pid)
	src := fastPattern(size)
	want := sumBytes(src)

	// perOp runs the loop, reports what the kernel did per op for pids, and
	// returns sys-B/op.
	perOp := func(b *testing.B, pids []int, op func()) float64 {
		b.SetBytes(size)
		settle(b)
		c := measure(b, kc, pids, func() {
			for b.Loop() {
				op()
			}
		})
		var sum bpfcount.Counts
		for i, pc := range c {
			sum = sum.Add(pc)
			b.Logf("pid %d, %d ops: %v", pids[i], b.N, pc)
		}
		b.ReportMetric(float64(sum.Faults())/float64(b.N), "faults/op")
		sysB := float64(sum.Bytes()) / float64(b.N)
		b.ReportMetric(sysB, "sys-B/op")
		return sysB
	}
	var unixB, redisB float64 // sys-B/op of the baselines
	ratios := func(b *testing.B, troveB float64) {
		troveB = max(troveB, 1)
		if unixB > 0 {
			b.ReportMetric(unixB/troveB, "x_unix_sysB")
		}
		if redisB > 0 {
			b.ReportMetric(redisB/troveB, "x_redis_sysB")
		}
	}

	b.Run("impl=unixsocket", func(b *testing.B) {
		unixB = perOp(b, []int{os.Getpid()}, func() {
			if err := socketCopy(src); err != nil {
				b.Fatal(err)
			}
		})
	})

	b.Run("impl=redis", func(b *testing.B) {
		rdb, pid := startRedis(b)
		key := fmt.Sprintf("trove-bench:%d:kernel", os.Getpid())
		if err := rdb.Set(ctx, key, src, 0).Err(); err != nil {
			b.Fatal(err)
		}
		if err := kc.Watch(pid); err != nil {
			b.Fatal(err)
		}
		redisB = perOp(b, []int{os.Getpid(), pid}, func() {
			v, err := rdb.Get(ctx, key).Bytes()
			if err != nil {
				b.Fatal(err)
			}
			if s := sumBytes(v); s != want {
				b.Fatalf("GET returned %d bytes summing to %d, want %d bytes summing to %d", len(v), s, size, want)
			}
		})
	})

	cl := d.dial(b)
	ref, err := cl.Put(ctx, src)
	if err != nil {
		b.Fatal(err)
	}
	defer ref.Drop()
	get := func(b *testing.B) {
		obj, err := cl.Get(ctx, ref)
		if err != nil {
			b.Fatal(err)
		}
		if s := sumBytes(obj.Bytes()); s != want {
			b.Fatalf("Get returned %d bytes summing to %d, want %d bytes summing to %d", len(obj.Bytes()), s, size, want)
		}
		obj.Release()
	}
	// The object's bytes in the client's mapping of the arena. They stay mapped
	// after Release, and hold the object while ref lives; only their page-table
	// entries are dropped, never read.
	obj, err := cl.Get(ctx, ref)
	if err != nil {
		b.Fatal(err)
	}
	region := obj.Bytes()
	if uintptr(unsafe.Pointer(unsafe.SliceData(region)))%uintptr(os.Getpagesize()) != 0 {
		obj.Release()
		b.Fatalf("the %s object is not page-aligned in the arena; MADV_DONTNEED needs an aligned start", sizeName(size))
	}
	obj.Release()
	pids := []int{os.Getpid(), d.cmd.Process.Pid}
	for _, mapping := range []string{"cold", "warm"} {
		b.Run("impl=trove/mapping="+mapping, func(b *testing.B) {
			get(b) // the first Get maps the arena's pages of the object
			ratios(b, perOp(b, pids, func() {
				if mapping == "cold" {
					b.StopTimer()
					if err := unix.Madvise(region, unix.MADV_DONTNEED); err != nil {
						b.Fatal(err)
					}
					b.StartTimer()
				}
				get(b)
			}))
		})
	}
}

// startRedis starts a throwaway redis-server listening on a unix socket in a
// temporary directory (no TCP port, no persistence), stopped in b's cleanup, and
// returns a client of it and its process ID. It skips b where redis-server is
// not installed.
func startRedis(b *testing.B) (*redis.Client, int) {
	b.Helper()
	bin := os.Getenv("REDIS_SERVER")
	if bin == "" {
		var err error
		if bin, err = exec.LookPath("redis-server"); err != nil {
			b.Skip("no redis-server to compare with: install it (apt-get install redis-server) or set REDIS_SERVER")
		}
	}
	dir, err := os.MkdirTemp("", "trove-redis-") // a socket path must fit in 108 bytes
	if err != nil {
		b.Fatal(err)
	}
	sock := filepath.Join(dir, "redis.sock")
	cmd := exec.Command(bin, "--port", "0", "--unixsocket", sock, "--dir", dir,
		"--save", "", "--appendonly", "no", "--daemonize", "no", "--logfile", filepath.Join(dir, "redis.log"))
	if err := cmd.Start(); err != nil {
		os.RemoveAll(dir)
		b.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	b.Cleanup(func() {
		cmd.Process.Signal(unix.SIGTERM)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		os.RemoveAll(dir)
	})
	rdb := redis.NewClient(&redis.Options{
		Network:         "unix",
		Addr:            sock,
		PoolSize:        1,
		ReadTimeout:     30 * time.Second, // 64 MiB values
		WriteTimeout:    30 * time.Second,
		DisableIdentity: true,
	})
	b.Cleanup(func() { rdb.Close() })
	// Wait for it to answer, at most 10 s; give up at once if it exits.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		err := rdb.Ping(ctx).Err()
		if err == nil {
			return rdb, cmd.Process.Pid
		}
		select {
		case exit := <-done:
			log, _ := os.ReadFile(filepath.Join(dir, "redis.log"))
			b.Fatalf("redis-server exited before it answered (%v); its log:\n%s", exit, log)
		case <-ctx.Done():
			b.Fatalf("redis-server on %s did not answer PING within 10 s: %v", sock, errors.Join(err, ctx.Err()))
		case <-time.After(20 * time.Millisecond):
		}
	}
}

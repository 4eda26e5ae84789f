package bench

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/trovedb/trove"
	"github.com/trovedb/trove/net/ipc"
)

// trove against Redis, the store a user would pick instead, and trove's client in
// another process against trove in-process. The benchmark process is the client
// in every case: Redis is a redis-server on loopback TCP ($TROVE_REDIS_ADDR,
// started by `make bench-redis`); trove is a daemon child process (see
// daemon_test.go) reached through net/ipc over a unix socket, objects over 100 KiB
// in shared memory, smaller ones inline in the messages.
//
// Ratios are measured in the same run, as in store_bench_test.go: the baseline
// sub-benchmark runs first and the trove one reports baseline time / trove time
// (x_redis > 1: trove is faster than Redis). With -count N, go test runs each
// sub-benchmark N times in a row, so every ratio uses the baseline's last run;
// the ratio of the two benchstat medians is the steadier figure to quote.

const redisAddrEnv = "TROVE_REDIS_ADDR"

// redisClient returns a go-redis client with a pool of poolSize connections, or
// skips b if there is no Redis to talk to.
func redisClient(b *testing.B, poolSize int) *redis.Client {
	b.Helper()
	addr := os.Getenv(redisAddrEnv)
	if addr == "" {
		b.Skipf("no Redis to compare with: %s is unset; run `make bench-redis`, which starts a redis-server and sets it", redisAddrEnv)
	}
	rdb := redis.NewClient(&redis.Options{
		Addr:            addr,
		PoolSize:        poolSize,
		MinIdleConns:    poolSize,
		ReadTimeout:     30 * time.Second, // 64 MiB values
		WriteTimeout:    30 * time.Second,
		DisableIdentity: true,
	})
	pctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := rdb.Ping(pctx).Err(); err != nil {
		rdb.Close()
		b.Skipf("no Redis to compare with: %s=%s does not answer PING (%v); run `make bench-redis`", redisAddrEnv, addr, err)
	}
	b.Cleanup(func() { rdb.Close() })
	return rdb
}

// redisSet stores value under a key unique to this process and deletes it in b's
// cleanup.
func redisSet(b *testing.B, rdb *redis.Client, name string, value []byte) string {
	b.Helper()
	key := fmt.Sprintf("trove-bench:%d:%s", os.Getpid(), name)
	if err := rdb.Set(ctx, key, value, 0).Err(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { rdb.Del(context.Background(), key) })
	return key
}

func pattern(n int) []byte {
	p := make([]byte, n)
	for i := range p {
		p[i] = byte(i*7 + 3)
	}
	return p
}

// sumBytes reads every byte of p (as little-endian 64-bit words, four chains at a
// time): the cheapest honest "use the value" after a Get.
func sumBytes(p []byte) uint64 {
	var s0, s1, s2, s3 uint64
	for len(p) >= 32 {
		s0 += binary.LittleEndian.Uint64(p)
		s1 += binary.LittleEndian.Uint64(p[8:])
		s2 += binary.LittleEndian.Uint64(p[16:])
		s3 += binary.LittleEndian.Uint64(p[24:])
		p = p[32:]
	}
	for _, c := range p {
		s0 += uint64(c)
	}
	return s0 + s1 + s2 + s3
}

var sink uint64

// settle starts a measurement: allocations reported, and no garbage left by the
// one before (a Redis GET of 64 MiB leaves 64 MiB per call) to be collected
// during it.
func settle(b *testing.B) {
	runtime.GC()
	b.ReportAllocs()
}

// getSized gets ref through c, checks the view holds size bytes, and releases it.
func getSized(c trove.Store, ref trove.Ref, size int) error {
	obj, err := c.Get(ctx, ref)
	if err != nil {
		return err
	}
	if n := len(obj.Bytes()); n != size {
		err = fmt.Errorf("Get returned %d bytes", n)
	}
	obj.Release()
	return err
}

func nsPerOp(b *testing.B) float64 { return float64(b.Elapsed().Nanoseconds()) / float64(b.N) }

// BenchmarkRedisGetLarge gets a 1 MiB and a 64 MiB value from another process.
// Redis GET necessarily copies the value through the socket into the client's
// heap; trove's Get maps the daemon's shared memory and copies nothing. So there
// are two comparisons: op=get+sum, where each then reads every byte of the value
// once, as a user would (the fair one), and op=get, what each Get costs alone
// (trove touches no byte: its figure is a latency, with gets/s, and no MB/s, as
// no bytes move). The floor under any store that copies is impl=tcp and
// impl=unix: the same bytes sent by the daemon's process and read into a reused
// buffer over loopback TCP and a unix socket, with no protocol around them.
// x_redis is Redis's time over trove's for the same op, against Redis's last run
// (quote the ratio of the medians instead: see perf.md).
func BenchmarkRedisGetLarge(b *testing.B) {
	rdb := redisClient(b, 1)
	d := benchDaemon(b)
	c := d.dial(b)
	floors := map[string]*blobConn{"tcp": d.dialBlob(b, "tcp"), "unix": d.dialBlob(b, "unix")}
	for _, size := range []int{1 << 20, 64 << 20} {
		src := pattern(size)
		want := sumBytes(src)
		key := redisSet(b, rdb, "large-"+sizeName(size), src)
		ref, err := c.Put(ctx, src)
		if err != nil {
			b.Fatal(err)
		}
		src = nil
		for _, op := range []string{"get", "get+sum"} {
			read := op == "get+sum"
			check := func(v []byte, what string) {
				if len(v) != size {
					b.Fatalf("%s returned %d bytes, want %d", what, len(v), size)
				}
				if read {
					if s := sumBytes(v); s != want {
						b.Fatalf("%s: sum %d, want %d", what, s, want)
					}
				}
			}
			var redisNs float64
			b.Run(fmt.Sprintf("size=%s/op=%s/impl=redis", sizeName(size), op), func(b *testing.B) {
				b.SetBytes(int64(size))
				settle(b)
				for b.Loop() {
					v, err := rdb.Get(ctx, key).Bytes()
					if err != nil {
						b.Fatal(err)
					}
					check(v, "GET")
				}
				redisNs = nsPerOp(b)
			})
			for _, network := range []string{"tcp", "unix"} {
				b.Run(fmt.Sprintf("size=%s/op=%s/impl=%s", sizeName(size), op, network), func(b *testing.B) {
					fc := floors[network]
					if _, err := fc.fetch(size); err != nil { // size the buffer, fault it in
						b.Fatal(err)
					}
					b.SetBytes(int64(size))
					settle(b)
					for b.Loop() {
						v, err := fc.fetch(size)
						if err != nil {
							b.Fatal(err)
						}
						check(v, network+" read")
					}
				})
			}
			b.Run(fmt.Sprintf("size=%s/op=%s/impl=trove", sizeName(size), op), func(b *testing.B) {
				getRelease(b, c, ref) // map the arena and fault its pages in before timing
				if read {
					b.SetBytes(int64(size)) // the sum reads every byte; a bare Get moves none
				}
				settle(b)
				for b.Loop() {
					obj, err := c.Get(ctx, ref)
					if err != nil {
						b.Fatal(err)
					}
					check(obj.Bytes(), "Get")
					obj.Release()
				}
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "gets/s")
				if redisNs > 0 {
					b.ReportMetric(redisNs/nsPerOp(b), "x_redis")
				}
			})
		}
		ref.Drop()
	}
}

func getRelease(b *testing.B, c *ipc.Client, ref trove.Ref) {
	obj, err := c.Get(ctx, ref)
	if err != nil {
		b.Fatal(err)
	}
	sink += sumBytes(obj.Bytes())
	obj.Release()
}

// runConcurrently makes b.N calls of op spread over conc goroutines (op gets its
// goroutine's index) and times them all.
func runConcurrently(b *testing.B, conc int, op func(g int) error) {
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, conc)
	b.ResetTimer()
	for g := range conc {
		wg.Go(func() {
			for next.Add(1) <= int64(b.N) {
				if err := op(g); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
}

// BenchmarkRedisSmallOps is many clients of 100-byte objects: conc goroutines
// issuing Gets (op=get), or Puts (op=put), back to back. Redis: go-redis with a
// pool of conc connections, each goroutine on its own key; GET, or SET
// overwriting the key. trove: ONE ipc client (one connection) shared by the conc
// goroutines, each on its own object; Get+Release, or Put then Drop (a Put makes
// a new object, so dropping it is what keeps the store from growing, where SET
// overwrites in place). Reports ops/s and x_redis (trove ops/s over Redis's).
func BenchmarkRedisSmallOps(b *testing.B) {
	const size = 100
	val := pattern(size)
	for _, conc := range []int{1, 8, 32} {
		rdb := redisClient(b, conc)
		c := benchDaemon(b).dial(b)
		keys := make([]string, conc)
		refs := make([]trove.Ref, conc)
		for g := range conc {
			keys[g] = redisSet(b, rdb, fmt.Sprintf("small-%d-%d", conc, g), val)
			var err error
			if refs[g], err = c.Put(ctx, val); err != nil {
				b.Fatal(err)
			}
		}
		ops := map[string]struct{ redis, trove func(g int) error }{
			"get": {
				redis: func(g int) error {
					v, err := rdb.Get(ctx, keys[g]).Bytes()
					if err == nil && len(v) != size {
						err = fmt.Errorf("GET returned %d bytes", len(v))
					}
					return err
				},
				trove: func(g int) error { return getSized(c, refs[g], size) },
			},
			"put": {
				redis: func(g int) error { return rdb.Set(ctx, keys[g], val, 0).Err() },
				trove: func(g int) error {
					ref, err := c.Put(ctx, val)
					if err != nil {
						return err
					}
					ref.Drop()
					return nil
				},
			},
		}
		for _, op := range []string{"get", "put"} {
			var redisNs float64
			b.Run(fmt.Sprintf("conc=%d/op=%s/impl=redis", conc, op), func(b *testing.B) {
				b.SetBytes(size)
				settle(b)
				runConcurrently(b, conc, ops[op].redis)
				redisNs = nsPerOp(b)
				b.ReportMetric(1e9/redisNs, "ops/s")
			})
			b.Run(fmt.Sprintf("conc=%d/op=%s/impl=trove", conc, op), func(b *testing.B) {
				b.SetBytes(size)
				settle(b)
				runConcurrently(b, conc, ops[op].trove)
				ns := nsPerOp(b)
				b.ReportMetric(1e9/ns, "ops/s")
				if redisNs > 0 {
					b.ReportMetric(redisNs/ns, "x_redis")
				}
			})
		}
		for _, r := range refs {
			r.Drop()
		}
	}
}

// latencies times each of b.N calls of op alone and reports the median and 99th
// percentile (p50-ns, p99-ns), which it returns.
func latencies(b *testing.B, op func() error) (p50, p99 float64) {
	d := make([]time.Duration, b.N)
	b.ResetTimer()
	for i := range d {
		t0 := time.Now()
		if err := op(); err != nil {
			b.Fatal(err)
		}
		d[i] = time.Since(t0)
	}
	b.StopTimer()
	slices.Sort(d)
	p50 = float64(d[len(d)/2])
	p99 = float64(d[min(len(d)-1, len(d)*99/100)])
	b.ReportMetric(p50, "p50-ns")
	b.ReportMetric(p99, "p99-ns")
	return p50, p99
}

// BenchmarkIPCRoundTrip is the latency of one Get of a small (100-byte, inline)
// object from the daemon, one call at a time: request out, reply with the bytes
// back. Baselines in the same run: impl=echo, a bare 128-byte write and read
// over a unix socket to an echo loop inside the daemon process (the floor for any
// request/reply between two Go processes here); impl=echo-mux, the same with the
// reply read by a reader goroutine and handed to the caller over a channel, as a
// client that multiplexes one connection between goroutines must (the ipc client
// does); and impl=redis, GET of 100 bytes from Redis over loopback TCP (skipped
// without Redis). trove reports x_echo and x_echomux (those medians over trove's:
// the fraction of the bare round trip trove achieves) and x_redis (Redis's median
// over trove's).
func BenchmarkIPCRoundTrip(b *testing.B) {
	const size = 100
	val := pattern(size)
	d := benchDaemon(b)
	var echoP50, echoMuxP50, redisP50 float64
	b.Run("impl=echo", func(b *testing.B) {
		conn, err := net.Dial("unix", echoSocket(d.sock))
		if err != nil {
			b.Fatal(err)
		}
		defer conn.Close()
		msg, reply := make([]byte, echoSize), make([]byte, echoSize)
		settle(b)
		echoP50, _ = latencies(b, func() error {
			if _, err := conn.Write(msg); err != nil {
				return err
			}
			_, err := io.ReadFull(conn, reply)
			return err
		})
	})
	b.Run("impl=echo-mux", func(b *testing.B) {
		conn, err := net.Dial("unix", echoSocket(d.sock))
		if err != nil {
			b.Fatal(err)
		}
		defer conn.Close()
		replies := make(chan error)
		go func() {
			reply := make([]byte, echoSize)
			for {
				_, err := io.ReadFull(conn, reply)
				replies <- err
				if err != nil {
					return
				}
			}
		}()
		msg := make([]byte, echoSize)
		settle(b)
		echoMuxP50, _ = latencies(b, func() error {
			if _, err := conn.Write(msg); err != nil {
				return err
			}
			return <-replies
		})
		conn.Close()
		<-replies
	})
	b.Run("impl=redis", func(b *testing.B) {
		rdb := redisClient(b, 1)
		key := redisSet(b, rdb, "roundtrip", val)
		settle(b)
		redisP50, _ = latencies(b, func() error {
			v, err := rdb.Get(ctx, key).Bytes()
			if err == nil && len(v) != size {
				err = fmt.Errorf("GET returned %d bytes", len(v))
			}
			return err
		})
	})
	b.Run("impl=trove", func(b *testing.B) {
		c := d.dial(b)
		ref, err := c.Put(ctx, val)
		if err != nil {
			b.Fatal(err)
		}
		defer ref.Drop()
		settle(b)
		p50, _ := latencies(b, func() error { return getSized(c, ref, size) })
		if echoP50 > 0 {
			b.ReportMetric(echoP50/p50, "x_echo")
		}
		if echoMuxP50 > 0 {
			b.ReportMetric(echoMuxP50/p50, "x_echomux")
		}
		if redisP50 > 0 {
			b.ReportMetric(redisP50/p50, "x_redis")
		}
	})
}

// BenchmarkIPCPutLarge puts 64 MiB from another process (impl=ipc: Client.Put,
// which copies the caller's slice into the daemon's shared memory; impl=ipc-create:
// Create, copy into Bytes(), Seal, the in-place way) against Put into a store in
// the benchmark's own process (impl=inprocess), both arenas warm and pre-faulted.
// Each object is dropped at once. x_inprocess is in-process time over IPC time.
func BenchmarkIPCPutLarge(b *testing.B) {
	const size = 64 << 20
	src := pattern(size)
	d := benchDaemon(b)
	st := openStore(b, sharedCapacity, true)
	var inNs float64
	b.Run("size=64MiB/impl=inprocess", func(b *testing.B) {
		b.SetBytes(size)
		settle(b)
		for b.Loop() {
			ref, err := st.Put(ctx, src)
			if err != nil {
				b.Fatal(err)
			}
			ref.Drop()
		}
		inNs = nsPerOp(b)
	})
	c := d.dial(b)
	for _, impl := range []string{"ipc", "ipc-create"} {
		b.Run("size=64MiB/impl="+impl, func(b *testing.B) {
			put := func() (trove.Ref, error) {
				if impl == "ipc" {
					return c.Put(ctx, src)
				}
				bld, err := c.Create(ctx, size)
				if err != nil {
					return trove.Ref{}, err
				}
				copy(bld.Bytes(), src)
				ref := bld.Ref()
				return ref, bld.Seal()
			}
			ref, err := put() // warm: the client maps the arena
			if err != nil {
				b.Fatal(err)
			}
			ref.Drop()
			b.SetBytes(size)
			settle(b)
			for b.Loop() {
				ref, err := put()
				if err != nil {
					b.Fatal(err)
				}
				ref.Drop()
			}
			if inNs > 0 {
				b.ReportMetric(inNs/nsPerOp(b), "x_inprocess")
			}
		})
	}
}

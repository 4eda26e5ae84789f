package ipc

import (
	"context"
	"fmt"
	"testing"

	"github.com/trovedb/trove"

	"github.com/trovedb/trove/engine"
)

// In-process figures (client and daemon in one process, talking over the
// socket); bench/ has the cross-process comparisons with their baselines.

func BenchmarkPing(b *testing.B) {
	d := startDaemon(b, engine.Config{})
	c := d.dial(b)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if err := c.Ping(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkGet: a small object travels inline in the reply; a large one is read
// in place (zero copy: the same cost whatever its size, so it reports gets/s and
// no MB/s: no bytes move).
func BenchmarkGet(b *testing.B) {
	for _, size := range []int{100, 1 << 20} {
		b.Run(fmt.Sprintf("size=%s", trove.HumanBytes(int64(size))), func(b *testing.B) {
			d := startDaemon(b, engine.Config{})
			c := d.dial(b)
			ctx := context.Background()
			ref, err := c.Put(ctx, make([]byte, size))
			if err != nil {
				b.Fatal(err)
			}
			if size <= engine.DefaultInlineThreshold {
				b.SetBytes(int64(size)) // copied through the socket
			}
			b.ReportAllocs()
			for b.Loop() {
				o, err := c.Get(ctx, ref)
				if err != nil {
					b.Fatal(err)
				}
				o.Release()
			}
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "gets/s")
			ref.Drop()
			requireDrained(b, d, c)
		})
	}
}

// BenchmarkPutDropParallel: 100-byte Put and Drop from 32 goroutines sharing
// one client.
func BenchmarkPutDropParallel(b *testing.B) {
	d := startDaemon(b, engine.Config{})
	c := d.dial(b)
	ctx := context.Background()
	data := make([]byte, 100)
	b.SetParallelism(16)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			r, err := c.Put(ctx, data)
			if err != nil {
				b.Error(err)
				return
			}
			r.Drop()
		}
	})
	b.StopTimer()
	requireDrained(b, d, c)
}

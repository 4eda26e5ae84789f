package ipc

import (
	"context"
	"testing"

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

func BenchmarkGetInline(b *testing.B) {
	d := startDaemon(b, engine.Config{})
	c := d.dial(b)
	ctx := context.Background()
	ref, err := c.Put(ctx, make([]byte, 100))
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(100)
	b.ReportAllocs()
	for b.Loop() {
		o, err := c.Get(ctx, ref)
		if err != nil {
			b.Fatal(err)
		}
		o.Release()
	}
	b.StopTimer()
	ref.Drop()
	requireDrained(b, d, c)
}

func BenchmarkGetShared(b *testing.B) {
	d := startDaemon(b, engine.Config{})
	c := d.dial(b)
	ctx := context.Background()
	ref, err := c.Put(ctx, make([]byte, 1<<20))
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(1 << 20)
	b.ReportAllocs()
	for b.Loop() {
		o, err := c.Get(ctx, ref)
		if err != nil {
			b.Fatal(err)
		}
		o.Release()
	}
	b.StopTimer()
	ref.Drop()
	requireDrained(b, d, c)
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

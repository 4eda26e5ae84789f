package swarm

import (
	"fmt"
	"testing"
	"time"
)

// BenchmarkNextDone is the scheduler's cost per chunk: a 256 MiB object in
// 1 MiB chunks pulled from H holders (one full, the rest partial with every
// other chunk), each chunk asked by Next and reported by Done. The baseline
// is the time to copy the chunk's 1 MiB (memcpy), reported as a ratio: the
// scheduler's share of moving a chunk.
func BenchmarkNextDone(b *testing.B) {
	const chunk = 1 << 20
	src, dst := make([]byte, chunk), make([]byte, chunk)
	for _, h := range []int{1, 16, 256} {
		b.Run(fmt.Sprintf("holders=%d", h), func(b *testing.B) {
			const size = 256 << 20
			n := size / chunk
			partial := NewBitmap(n)
			for c := 0; c < n; c += 2 {
				partial.Set(Chunk(c))
			}
			b.ReportAllocs()
			var chunks int
			var sched time.Duration
			for b.Loop() {
				start := time.Now()
				s := New(size, Config{ChunkSize: chunk})
				s.SetHolder("origin", FullBitmap(n))
				for i := 1; i < h; i++ {
					s.SetHolder(PeerID(fmt.Sprintf("peer%d", i)), partial)
				}
				var batch []Assignment
				for !s.Complete() {
					batch = batch[:0]
					for {
						a, ok := s.Next(t0)
						if !ok {
							break
						}
						batch = append(batch, a)
					}
					for _, a := range batch {
						s.Done(a)
					}
				}
				chunks += n
				sched += time.Since(start)
			}
			b.StopTimer()
			copy(dst, src) // fault both in first
			copyStart := time.Now()
			const copies = 64
			for range copies {
				copy(dst, src)
			}
			perCopy := time.Since(copyStart) / copies
			perChunk := sched / time.Duration(max(chunks, 1))
			b.ReportMetric(float64(perChunk.Nanoseconds()), "ns/chunk")
			b.ReportMetric(float64(perChunk)/float64(perCopy), "x-memcpy-1MiB")
		})
	}
}

package spill

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// The benchmarks move benchBytes per operation and compare it with the plain
// sequential file I/O a spiller could at best match, measured in the same run,
// in the same directory, interleaved with the spiller's own operations:
//
//	x_rawwrite = spill throughput / raw write throughput (os.File.Write, 8 MiB chunks, close, remove)
//	x_rawread  = restore throughput / raw read throughput (os.File.Read, 8 MiB chunks)
//
// Both sides go through the page cache (the files are deleted before writeback
// has to finish, and reads hit cached pages), so they measure the software path:
// syscalls, copies, checksums. The ratios compare the best iteration of each
// side: on the VMs we run on, the file system stalls a write of 256 MiB for up to
// a second at random (journal commits, writeback of other files), which would
// otherwise decide the ratio. ns/op and MB/s are the usual means. Set
// TROVE_BENCH_DIR to measure another disk.
const (
	benchBytes = 256 << 20
	rawChunk   = 8 << 20
)

func benchDir(b *testing.B) string {
	root := os.Getenv("TROVE_BENCH_DIR")
	if root == "" {
		return b.TempDir()
	}
	dir, err := os.MkdirTemp(root, "trove-spill-bench-*")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// benchData returns benchBytes of warm memory (standing in for the arena) cut
// into objects of size bytes.
func benchData(size int) ([]byte, []Object) {
	src := make([]byte, benchBytes)
	for i := range src {
		src[i] = byte(i*31 + i>>20)
	}
	objs := make([]Object, benchBytes/size)
	for i := range objs {
		objs[i] = Object{ID: ID{0: byte(i), 1: byte(i >> 8), 15: 1}, Data: src[i*size : (i+1)*size]}
	}
	return src, objs
}

// best keeps the shortest of n durations.
type best struct {
	d time.Duration
	n int
}

func (b *best) add(d time.Duration) {
	if b.n == 0 || d < b.d {
		b.d = d
	}
	b.n++
}

func sizeName(n int) string { return fmt.Sprintf("%dMiB", n>>20) }

// rawWrite writes src to a new file in dir in rawChunk writes, closes and removes it.
func rawWrite(b *testing.B, dir string, src []byte) time.Duration {
	start := time.Now()
	f, err := os.Create(filepath.Join(dir, "raw"))
	if err != nil {
		b.Fatal(err)
	}
	for off := 0; off < len(src); off += rawChunk {
		if _, err := f.Write(src[off:min(off+rawChunk, len(src))]); err != nil {
			b.Fatal(err)
		}
	}
	if err := f.Close(); err != nil {
		b.Fatal(err)
	}
	if err := os.Remove(f.Name()); err != nil {
		b.Fatal(err)
	}
	return time.Since(start)
}

// rawRead reads the file path into dst in rawChunk reads.
func rawRead(b *testing.B, path string, dst []byte) time.Duration {
	start := time.Now()
	f, err := os.Open(path)
	if err != nil {
		b.Fatal(err)
	}
	for off := 0; off < len(dst); off += rawChunk {
		if _, err := io.ReadFull(f, dst[off:min(off+rawChunk, len(dst))]); err != nil {
			b.Fatal(err)
		}
	}
	if err := f.Close(); err != nil {
		b.Fatal(err)
	}
	return time.Since(start)
}

// BenchmarkSpill spills benchBytes as one batch (one fused file) and deletes it.
// batches=4 splits it into four batches written by four workers at once.
func BenchmarkSpill(b *testing.B) {
	for _, bc := range []struct {
		size, batches int
	}{{16 << 20, 1}, {1 << 20, 1}, {1 << 20, 4}} {
		name := "size=" + sizeName(bc.size)
		if bc.batches > 1 {
			name += fmt.Sprintf("/batches=%d", bc.batches)
		}
		b.Run(name, func(b *testing.B) {
			dir := benchDir(b)
			src, objs := benchData(bc.size)
			s, err := New(Config{Dirs: []string{dir}, Workers: max(bc.batches, DefaultWorkers)})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			per := len(objs) / bc.batches

			spill := func() time.Duration {
				start := time.Now()
				results := make(chan []Location, bc.batches)
				for k := range bc.batches {
					if err := s.Spill(objs[k*per:(k+1)*per], func(locs []Location, err error) {
						if err != nil {
							b.Error(err)
						}
						results <- locs
					}); err != nil {
						b.Fatal(err)
					}
				}
				for range bc.batches {
					for _, loc := range <-results {
						if err := s.Delete(loc); err != nil {
							b.Fatal(err)
						}
					}
				}
				return time.Since(start)
			}

			b.SetBytes(benchBytes)
			b.ReportAllocs()
			var raw, spilled best
			for b.Loop() {
				// Alternate the order, so that neither side always runs in the
				// other's writeback.
				if raw.n%2 == 0 {
					b.StopTimer()
					raw.add(rawWrite(b, dir, src))
					b.StartTimer()
				}
				spilled.add(spill())
				if raw.n%2 == 1 {
					b.StopTimer()
					raw.add(rawWrite(b, dir, src))
					b.StartTimer()
				}
			}
			b.ReportMetric(raw.d.Seconds()/spilled.d.Seconds(), "x_rawwrite")
			b.ReportMetric(benchBytes/raw.d.Seconds()/1e6, "raw_MB/s")
		})
	}
}

// BenchmarkRestore reads benchBytes of spilled objects back: seq with Restore,
// one object after another on one goroutine; many with one RestoreMany.
func BenchmarkRestore(b *testing.B) {
	for _, size := range []int{16 << 20, 1 << 20} {
		for _, mode := range []string{"seq", "many"} {
			b.Run(fmt.Sprintf("size=%s/%s", sizeName(size), mode), func(b *testing.B) {
				dir := benchDir(b)
				src, objs := benchData(size)
				s, err := New(Config{Dirs: []string{dir}})
				if err != nil {
					b.Fatal(err)
				}
				defer s.Close()
				locs, err := s.SpillSync(context.Background(), objs)
				if err != nil {
					b.Fatal(err)
				}
				raw := filepath.Join(dir, "raw")
				if err := os.WriteFile(raw, src, 0o600); err != nil {
					b.Fatal(err)
				}
				dst := make([]byte, benchBytes)
				for i := range dst {
					dst[i] = 1 // fault it in: restores go to warm arena memory
				}
				reqs := make([]RestoreRequest, len(objs))
				for i, o := range objs {
					reqs[i] = RestoreRequest{ID: o.ID, Loc: locs[i], Dst: dst[i*size : (i+1)*size]}
				}
				restore := func() time.Duration {
					start := time.Now()
					if mode == "many" {
						for i, err := range s.RestoreMany(reqs) {
							if err != nil {
								b.Fatalf("request %d: %v", i, err)
							}
						}
					} else {
						for _, r := range reqs {
							if err := s.Restore(r.ID, r.Loc, r.Dst); err != nil {
								b.Fatal(err)
							}
						}
					}
					return time.Since(start)
				}

				b.SetBytes(benchBytes)
				b.ReportAllocs()
				var rawd, restored best
				for b.Loop() {
					b.StopTimer()
					rawd.add(rawRead(b, raw, dst))
					b.StartTimer()
					restored.add(restore())
				}
				b.ReportMetric(rawd.d.Seconds()/restored.d.Seconds(), "x_rawread")
				b.ReportMetric(benchBytes/rawd.d.Seconds()/1e6, "raw_MB/s")
			})
		}
	}
}

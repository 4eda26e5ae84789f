package spill

import (
	"context"
	"fmt"
	"github.com/trovedb/trove/internal/benchtime"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
)

// The benchmarks move benchBytes per operation and time, in every iteration,
// the plain file I/O a spiller could at best match beside the spiller's own
// operation: in the same process and directory, with the same bytes, in turns
// (the baseline's time is not in ns/op). They report the median time of each
// side and the ratio of the medians, so that a stall of the file system (on
// the VMs we run on, ext4 stalls a 256 MiB write for up to seconds at random:
// journal commits, other processes' writeback) or a preemption by another
// process, which strikes one side of one iteration, moves neither:
//
//	x_rawwrite    = median raw write time / median spill time
//	                (raw: os.File.Write of the bytes in 8 MiB chunks, close, remove)
//	x_rawread     = median raw read time / median restore time
//	                (raw: os.File.ReadAt of a file of the bytes, 8 MiB chunks, one goroutine)
//	x_rawread_par = the same against the read in 1 MiB ranges claimed by GOMAXPROCS
//	                goroutines, the shape of a parallel restore without its checks
//
// Ratios above 1 mean the spiller was faster. Both sides go through the page
// cache (spill files are deleted before writeback has to finish, and reads hit
// cached pages), so they measure the software path: syscalls, copies,
// checksums. Set TROVE_BENCH_DIR to measure another disk.
const (
	benchBytes = 256 << 20
	rawChunk   = 8 << 20
	rawRange   = 1 << 20 // the parallel raw read's unit, a range of restore's size
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

func sizeName(n int) string { return fmt.Sprintf("%dMiB", n>>20) }

// untimed runs a baseline with the benchmark's timer stopped, recording its time.
func untimed(b *testing.B, s *benchtime.Samples, f func()) {
	b.StopTimer()
	s.Time(f)
	b.StartTimer()
}

// reportRatio reports the median of op and base's median over op's.
func reportRatio(b *testing.B, name string, base, op benchtime.Samples) {
	b.ReportMetric(base.Median().Seconds()/op.Median().Seconds(), name)
}

// rawWrite writes src to a new file in dir in rawChunk writes, closes and removes it.
func rawWrite(b *testing.B, dir string, src []byte) {
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
}

// rawRead reads f into dst in rawChunk reads on one goroutine.
func rawRead(b *testing.B, f *os.File, dst []byte) {
	for off := 0; off < len(dst); off += rawChunk {
		if _, err := f.ReadAt(dst[off:min(off+rawChunk, len(dst))], int64(off)); err != nil {
			b.Fatal(err)
		}
	}
}

// rawReadParallel reads f into dst in rawRange ranges, which GOMAXPROCS
// goroutines claim in turn: the shape of a parallel restore, without its checks.
func rawReadParallel(b *testing.B, f *os.File, dst []byte) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			for {
				off := int(next.Add(rawRange) - rawRange)
				if off >= len(dst) {
					return
				}
				if _, err := f.ReadAt(dst[off:min(off+rawRange, len(dst))], int64(off)); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
}

// BenchmarkSpill spills benchBytes as one batch (one fused file) and deletes it;
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
			results := make(chan []Location, bc.batches)
			spill := func() {
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
			}
			var raw, spilled benchtime.Samples
			b.SetBytes(benchBytes)
			b.ReportAllocs()
			for b.Loop() {
				// Alternate the order, so that neither side always runs in the
				// other's writeback.
				if len(raw)%2 == 0 {
					untimed(b, &raw, func() { rawWrite(b, dir, src) })
				}
				spilled.Time(spill)
				if len(raw) < len(spilled) {
					untimed(b, &raw, func() { rawWrite(b, dir, src) })
				}
			}
			reportRatio(b, "x_rawwrite", raw, spilled)
			b.ReportMetric(benchBytes/raw.Median().Seconds()/1e6, "raw_MB/s")
			b.ReportMetric(benchBytes/spilled.Median().Seconds()/1e6, "med_MB/s")
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
				f, err := os.Open(raw)
				if err != nil {
					b.Fatal(err)
				}
				defer f.Close()
				dst := make([]byte, benchBytes)
				for i := range dst {
					dst[i] = 1 // fault it in: restores go to warm arena memory
				}
				reqs := make([]RestoreRequest, len(objs))
				for i, o := range objs {
					reqs[i] = RestoreRequest{ID: o.ID, Loc: locs[i], Dst: dst[i*size : (i+1)*size]}
				}
				restore := func() {
					if mode == "many" {
						for i, err := range s.RestoreMany(reqs) {
							if err != nil {
								b.Fatalf("request %d: %v", i, err)
							}
						}
						return
					}
					for _, r := range reqs {
						if err := s.Restore(r.ID, r.Loc, r.Dst); err != nil {
							b.Fatal(err)
						}
					}
				}
				var raw1, rawPar, restored benchtime.Samples
				b.SetBytes(benchBytes)
				b.ReportAllocs()
				for b.Loop() {
					untimed(b, &raw1, func() { rawRead(b, f, dst) })
					untimed(b, &rawPar, func() { rawReadParallel(b, f, dst) })
					restored.Time(restore)
				}
				reportRatio(b, "x_rawread", raw1, restored)
				reportRatio(b, "x_rawread_par", rawPar, restored)
				b.ReportMetric(benchBytes/raw1.Median().Seconds()/1e6, "raw_MB/s")
				b.ReportMetric(benchBytes/rawPar.Median().Seconds()/1e6, "rawpar_MB/s")
				b.ReportMetric(benchBytes/restored.Median().Seconds()/1e6, "med_MB/s")
			})
		}
	}
}

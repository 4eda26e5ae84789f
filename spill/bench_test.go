package spill

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
)

// The benchmarks move benchBytes per operation. Each has baselines beside it,
// as sub-benchmarks run in the same process, in the same directory, with the
// same bytes, so that -count interleaves them with the spiller's own runs and
// benchstat's medians give the ratios perf.md quotes:
//
//	BenchmarkSpill/size=S/op=rawwrite  os.File.Write of the bytes in 8 MiB chunks, close, remove
//	BenchmarkSpill/size=S/op=spill     one batch (or four), then Delete of every object
//	BenchmarkRestore/op=rawread        os.File.ReadAt of a file of the bytes, 8 MiB chunks, one goroutine
//	BenchmarkRestore/op=rawread-par    the same read in 1 MiB ranges claimed by GOMAXPROCS goroutines
//	BenchmarkRestore/size=S/seq        Restore of each object in turn, on one goroutine
//	BenchmarkRestore/size=S/many       one RestoreMany of all of them
//
// Both sides go through the page cache (spill files are deleted before writeback
// has to finish, and reads hit cached pages), so they measure the software path:
// syscalls, copies, checksums. Set TROVE_BENCH_DIR to measure another disk.
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
// op=rawwrite is the baseline.
func BenchmarkSpill(b *testing.B) {
	for _, bc := range []struct {
		size, batches int
	}{{16 << 20, 1}, {1 << 20, 1}, {1 << 20, 4}} {
		name := "size=" + sizeName(bc.size)
		if bc.batches > 1 {
			name += fmt.Sprintf("/batches=%d", bc.batches)
		}
		dir := benchDir(b)
		src, objs := benchData(bc.size)
		b.Run(name+"/op=rawwrite", func(b *testing.B) {
			b.SetBytes(benchBytes)
			b.ReportAllocs()
			for b.Loop() {
				rawWrite(b, dir, src)
			}
		})
		b.Run(name+"/op=spill", func(b *testing.B) {
			s, err := New(Config{Dirs: []string{dir}, Workers: max(bc.batches, DefaultWorkers)})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			per := len(objs) / bc.batches
			results := make(chan []Location, bc.batches)
			b.SetBytes(benchBytes)
			b.ReportAllocs()
			for b.Loop() {
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
		})
	}
}

// BenchmarkRestore reads benchBytes of spilled objects back: seq with Restore,
// one object after another on one goroutine; many with one RestoreMany. The
// baselines read a file of the same bytes in the same directory.
func BenchmarkRestore(b *testing.B) {
	dir := benchDir(b)
	src, _ := benchData(1 << 20)
	raw := filepath.Join(dir, "raw")
	if err := os.WriteFile(raw, src, 0o600); err != nil {
		b.Fatal(err)
	}
	dst := make([]byte, benchBytes)
	for i := range dst {
		dst[i] = 1 // fault it in: restores go to warm arena memory
	}
	for _, op := range []struct {
		name string
		read func(*testing.B, *os.File, []byte)
	}{{"rawread", rawRead}, {"rawread-par", rawReadParallel}} {
		b.Run("op="+op.name, func(b *testing.B) {
			f, err := os.Open(raw)
			if err != nil {
				b.Fatal(err)
			}
			defer f.Close()
			b.SetBytes(benchBytes)
			b.ReportAllocs()
			for b.Loop() {
				op.read(b, f, dst)
			}
		})
	}
	for _, size := range []int{16 << 20, 1 << 20} {
		_, objs := benchData(size)
		s, err := New(Config{Dirs: []string{dir}})
		if err != nil {
			b.Fatal(err)
		}
		defer s.Close()
		locs, err := s.SpillSync(context.Background(), objs)
		if err != nil {
			b.Fatal(err)
		}
		reqs := make([]RestoreRequest, len(objs))
		for i, o := range objs {
			reqs[i] = RestoreRequest{ID: o.ID, Loc: locs[i], Dst: dst[i*size : (i+1)*size]}
		}
		for _, mode := range []string{"seq", "many"} {
			b.Run(fmt.Sprintf("size=%s/%s", sizeName(size), mode), func(b *testing.B) {
				b.SetBytes(benchBytes)
				b.ReportAllocs()
				for b.Loop() {
					if mode == "many" {
						for i, err := range s.RestoreMany(reqs) {
							if err != nil {
								b.Fatalf("request %d: %v", i, err)
							}
						}
						continue
					}
					for _, r := range reqs {
						if err := s.Restore(r.ID, r.Loc, r.Dst); err != nil {
							b.Fatal(err)
						}
					}
				}
			})
		}
	}
}

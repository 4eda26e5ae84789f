package spill

import (
	"errors"
	"fmt"
	"io"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/zeebo/xxh3"
)

// restoreChunk is the size of the reads Restore makes: one checksum block, hashed
// right after it is read, while it is still in the CPU's L2 cache; large enough
// that the syscall per piece costs ~5% of copying it.
const restoreChunk = checksumBlock

// An object of at least parallelRestoreMin bytes is restored by several
// goroutines at once: its data is cut into ranges of at least restoreRange bytes
// (at most maxRestoreRanges of them), which the caller and idle workers claim in
// turn; each reads its range and hashes its blocks as above, and the blocks'
// hashes are joined in order (see checksumBlock). One goroutine copying from the page
// cache and checksumming reaches about half the speed of a plain sequential read
// (which only copies: ~0.48 of it, measured with BenchmarkRestore on two cores);
// two reach ~0.8. A Restore takes one helper per core that no other Restore
// occupies (more goroutines than cores measured slower), so under RestoreMany,
// which keeps the cores busy already, objects are mostly read whole. Below 4 MiB
// the wakeup of a worker (tens of µs) costs too much of the gain: a 1 MiB object
// went from ~0.5 to ~0.6 only.
const (
	parallelRestoreMin = 4 << 20
	restoreRange       = 512 << 10
	maxRestoreRanges   = 64
)

// hdrPool and summerPool hold header buffers and checksum states for Restore, so
// that a restore allocates nothing.
var (
	hdrPool    = sync.Pool{New: func() any { return new([HeaderSize]byte) }}
	summerPool = sync.Pool{New: func() any { return new(summer) }}
)

// Restore reads the object id at loc into dst, whose length must be loc.Length,
// and verifies its header and checksum. It runs on the caller's goroutine and,
// for an object of 4 MiB or more, on the workers that are idle (never waiting
// for a busy one).
//
// On error dst may have been partly or wholly overwritten, and its contents MUST
// NOT be used: a corrupt or truncated object is ErrCorrupt (a *CorruptError naming
// the object and the file), never returned as data. Restore does not delete the
// spilled copy; call Delete when it is no longer needed.
func (s *Spiller) Restore(id ID, loc Location, dst []byte) error {
	if int64(len(dst)) != loc.Length {
		return fmt.Errorf("spill: restore object %s from %v: destination is %d bytes, want %d", id, loc, len(dst), loc.Length)
	}
	f, err := s.acquire(loc)
	if err != nil {
		return fmt.Errorf("spill: restore object %s from %v: %w", id, loc, err)
	}
	defer s.release(f)

	start := time.Now()
	err = s.read(f, id, loc, dst, int(s.restoring.Add(1)))
	s.restoring.Add(-1)
	if err != nil {
		s.st.errors.Add(1)
		return err
	}
	s.st.restores.Add(1)
	s.st.restoredBytes.Add(loc.Length)
	s.st.restoreNanos.Add(int64(time.Since(start)))
	return nil
}

// read reads and verifies one object of f, which the caller has acquired, while
// busy Restores (this one included) are in progress. The bytes come from disk
// and may be anything.
func (s *Spiller) read(f *spillFile, id ID, loc Location, dst []byte, busy int) error {
	hb := hdrPool.Get().(*[HeaderSize]byte)
	defer hdrPool.Put(hb)
	n, err := f.f.ReadAt(hb[:], loc.Offset-HeaderSize)
	if n < HeaderSize {
		if isShort(err) {
			return f.corrupt(id, loc, "truncated: the file ends %d bytes into the object's %d-byte header", n, HeaderSize)
		}
		return fmt.Errorf("spill: restore object %s from %s: read header at offset %d: %w", id, f.path, loc.Offset-HeaderSize, err)
	}
	h, err := decodeHeader(hb[:])
	if err != nil {
		return f.corrupt(id, loc, "%v", err)
	}
	if h.id != id {
		return f.corrupt(id, loc, "the header there names object %s", h.id)
	}
	if h.length != loc.Length {
		return f.corrupt(id, loc, "the header says %d bytes, the location %d", h.length, loc.Length)
	}
	var got uint64
	helpers := 0 // one per core no other Restore keeps busy
	if len(dst) >= parallelRestoreMin {
		helpers = min(s.cfg.Workers, runtime.GOMAXPROCS(0)-busy)
	}
	if helpers > 0 {
		got, err = s.readParallel(f, id, loc, dst, helpers)
	} else {
		sum := summerPool.Get().(*summer)
		sum.reset()
		err = f.readData(id, loc, dst, 0, sum, nil)
		got = sum.sum()
		summerPool.Put(sum)
	}
	if err != nil {
		return err
	}
	if got != h.dataSum {
		return f.corrupt(id, loc, "data checksum mismatch: the header says %016x, the data has %016x", h.dataSum, got)
	}
	return nil
}

func (f *spillFile) corrupt(id ID, loc Location, format string, args ...any) error {
	return &CorruptError{ID: id, Path: f.path, Offset: loc.Offset, Reason: fmt.Sprintf(format, args...)}
}

// isShort reports whether a read that returned fewer bytes than asked met the
// end of the file.
func isShort(err error) bool {
	return err == nil || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
}

// readData reads dst, the object's data from byte off on (a multiple of
// checksumBlock), and hashes its blocks: into sum if it is not nil, else block k
// of dst into digests[k]. It reads a block at a time and hashes each while it is
// still in the CPU cache: one pass over the data through memory instead of two.
// Checksumming on a second goroutine, overlapped with the next read, measured
// slower with CRC-32C: the handoff and the cache lines crossing cores cost more
// than the checksum. (readParallel instead gives each goroutine its own range,
// read and hashed on one core.)
func (f *spillFile) readData(id ID, loc Location, dst []byte, off int64, sum *summer, digests []uint64) error {
	for done := 0; done < len(dst); done += restoreChunk {
		piece := dst[done:min(done+restoreChunk, len(dst))]
		at := off + int64(done)
		n, err := f.f.ReadAt(piece, loc.Offset+at)
		if n < len(piece) {
			if isShort(err) {
				return f.corrupt(id, loc, "truncated: the file ends %d bytes into the object's %d bytes of data", at+int64(n), loc.Length)
			}
			return fmt.Errorf("spill: restore object %s from %s: read %d bytes at offset %d: %w", id, f.path, len(piece), loc.Offset+at, err)
		}
		if sum != nil {
			sum.block(piece)
		} else {
			digests[done/restoreChunk] = xxh3.Hash(piece)
		}
	}
	return nil
}

// readParallel reads dst, all of the object's data, in ranges on the calling
// goroutine and up to helpers workers, and returns its checksum. The caller
// claims ranges until none is left, so it never waits for a worker that has not
// started (a busy one may take its task later and find nothing to do); it waits
// only for ranges in progress.
func (s *Spiller) readParallel(f *spillFile, id ID, loc Location, dst []byte, helpers int) (uint64, error) {
	size := max(restoreRange, (len(dst)+maxRestoreRanges-1)/maxRestoreRanges)
	size = (size + restoreChunk - 1) / restoreChunk * restoreChunk
	r := &rangedRead{f: f, id: id, loc: loc, dst: dst, size: size, n: (len(dst) + size - 1) / size,
		digests: make([]uint64, (len(dst)+restoreChunk-1)/restoreChunk)}
	r.firstBad.Store(int64(r.n))
	r.wg.Add(r.n)
	for range min(helpers, r.n-1) {
		if !s.q.pushRestore(r) {
			break
		}
	}
	r.run()
	r.wg.Wait()
	// Workers that take r from the queue later touch only r.next and r.n.
	r.f, r.dst = nil, nil
	if r.err != nil {
		return 0, r.err
	}
	sum := summerPool.Get().(*summer)
	defer summerPool.Put(sum)
	sum.reset()
	for _, d := range r.digests {
		sum.add(d)
	}
	return sum.sum(), nil
}

// rangedRead is one readParallel: range i is dst[i*size:][:size].
type rangedRead struct {
	f    *spillFile
	id   ID
	loc  Location
	dst  []byte
	size int // bytes per range; the last may be shorter
	n    int // ranges

	next     atomic.Int64   // the next range to claim
	firstBad atomic.Int64   // the lowest range that failed, n if none: ranges after it are skipped
	wg       sync.WaitGroup // one count per range, done when it is read or skipped

	// digests holds the hash of each checksumBlock of dst; those of range i are
	// written by the goroutine that claimed it.
	digests []uint64

	mu  sync.Mutex
	err error // the error of range firstBad
}

// run claims and reads ranges until none is left.
func (r *rangedRead) run() {
	for {
		i := int(r.next.Add(1) - 1)
		if i >= r.n {
			return
		}
		if int64(i) < r.firstBad.Load() {
			off := i * r.size
			err := r.f.readData(r.id, r.loc, r.dst[off:min(off+r.size, len(r.dst))], int64(off), nil, r.digests[off/restoreChunk:])
			if err != nil {
				r.fail(i, err)
			}
		}
		r.wg.Done()
	}
}

// fail records range i's error. Ranges before i are read even after it (only
// those after it are skipped), so the error kept is the first in the object, as
// a sequential read would have met it.
func (r *rangedRead) fail(i int, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err == nil || int64(i) < r.firstBad.Load() {
		r.err = err
		r.firstBad.Store(int64(i))
	}
}

// acquire finds the live object loc names and registers a reader on its file, so
// that neither Delete nor Close closes the file under the read. The caller MUST
// call release(f) when done reading.
func (s *Spiller) acquire(loc Location) (*spillFile, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mu.closed {
		return nil, ErrClosed
	}
	f := s.mu.files[loc.File]
	if f == nil {
		return nil, ErrUnknownLocation
	}
	if i, ok := f.index(loc); !ok || !f.isLive(i) {
		return nil, ErrUnknownLocation
	}
	f.readers++
	s.mu.readers++
	return f, nil
}

// release ends a read begun by acquire. If the object was deleted during the read
// and was the file's last, the file is removed now.
func (s *Spiller) release(f *spillFile) {
	s.mu.Lock()
	f.readers--
	s.mu.readers--
	remove := f.readers == 0 && f.nlive == 0 && !s.mu.closed // after closed, Close removes it
	if remove {
		delete(s.mu.files, f.num)
	}
	if s.mu.closed && s.mu.readers == 0 {
		s.mu.idle.Broadcast()
	}
	s.mu.Unlock()
	if remove {
		_ = s.removeFile(f) // counted in Stats().Errors; the Restore itself succeeded
	}
}

// RestoreMany restores every request, in parallel: the calling goroutine and up to
// Workers-1 idle workers take requests in turn (restores go before queued batches,
// and the caller never waits for a busy worker). It returns one error per request,
// nil where the restore succeeded, with Restore's meaning; a failed request does
// not stop the others.
func (s *Spiller) RestoreMany(reqs []RestoreRequest) []error {
	b := &restoreBatch{s: s, reqs: reqs, errs: make([]error, len(reqs)), done: make(chan struct{})}
	if len(reqs) == 0 {
		return b.errs
	}
	b.left.Store(int64(len(reqs)))
	for range min(s.cfg.Workers, len(reqs)-1) {
		if !s.q.pushRestore(b) {
			break
		}
	}
	b.run()
	<-b.done
	return b.errs
}

// restoreBatch is one RestoreMany. Helpers that a worker takes from the queue
// after every request is claimed return at once; nobody waits for them.
type restoreBatch struct {
	s    *Spiller
	reqs []RestoreRequest
	errs []error
	next atomic.Int64  // the next request to claim
	left atomic.Int64  // requests not yet finished; the one that takes it to 0 closes done
	done chan struct{} // closed when every request is finished
}

func (b *restoreBatch) run() {
	for {
		i := b.next.Add(1) - 1
		if i >= int64(len(b.reqs)) {
			return
		}
		r := &b.reqs[i]
		b.errs[i] = b.s.Restore(r.ID, r.Loc, r.Dst)
		if b.left.Add(-1) == 0 {
			close(b.done)
		}
	}
}

package spill

import (
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"sync"
	"sync/atomic"
	"time"
)

// restoreChunk is the size of the reads Restore makes: small enough that a piece
// is still in the CPU's L2 cache when it is checksummed, large enough that the
// syscall per piece costs ~5% of copying it.
const restoreChunk = 256 << 10

// hdrPool holds header buffers for Restore, so that a restore allocates nothing.
var hdrPool = sync.Pool{New: func() any { return new([HeaderSize]byte) }}

// Restore reads the object id at loc into dst, whose length must be loc.Length,
// and verifies its header and checksum. It runs on the caller's goroutine.
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
	if err := f.read(id, loc, dst); err != nil {
		s.st.errors.Add(1)
		return err
	}
	s.st.restores.Add(1)
	s.st.restoredBytes.Add(loc.Length)
	s.st.restoreNanos.Add(int64(time.Since(start)))
	return nil
}

// read reads and verifies one object. The bytes come from disk and may be anything.
func (f *spillFile) read(id ID, loc Location, dst []byte) error {
	corrupt := func(format string, args ...any) error {
		return &CorruptError{ID: id, Path: f.path, Offset: loc.Offset, Reason: fmt.Sprintf(format, args...)}
	}
	short := func(err error) bool {
		return err == nil || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
	}

	hb := hdrPool.Get().(*[HeaderSize]byte)
	defer hdrPool.Put(hb)
	n, err := f.f.ReadAt(hb[:], loc.Offset-HeaderSize)
	if n < HeaderSize {
		if short(err) {
			return corrupt("truncated: the file ends %d bytes into the object's %d-byte header", n, HeaderSize)
		}
		return fmt.Errorf("spill: restore object %s from %s: read header at offset %d: %w", id, f.path, loc.Offset-HeaderSize, err)
	}
	h, err := decodeHeader(hb[:])
	if err != nil {
		return corrupt("%v", err)
	}
	if h.id != id {
		return corrupt("the header there names object %s", h.id)
	}
	if h.length != loc.Length {
		return corrupt("the header says %d bytes, the location %d", h.length, loc.Length)
	}
	// Read in pieces and checksum each while it is still in the CPU cache: one
	// pass over the data through memory instead of two (the checksum runs at
	// ~20 GB/s from cache, ~5 GB/s from DRAM). Checksumming on a second
	// goroutine, overlapped with the next read, measured slower: the handoff and
	// the cache lines crossing cores cost more than the checksum.
	var got uint32
	for off := 0; off < len(dst); off += restoreChunk {
		piece := dst[off:min(off+restoreChunk, len(dst))]
		n, err := f.f.ReadAt(piece, loc.Offset+int64(off))
		if n < len(piece) {
			if short(err) {
				return corrupt("truncated: the file ends %d bytes into the object's %d bytes of data", off+n, len(dst))
			}
			return fmt.Errorf("spill: restore object %s from %s: read %d bytes at offset %d: %w", id, f.path, len(piece), loc.Offset+int64(off), err)
		}
		got = crc32.Update(got, castagnoli, piece)
	}
	if got != h.dataCRC {
		return corrupt("data checksum mismatch: the header says %08x, the data has %08x", h.dataCRC, got)
	}
	return nil
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
		if !s.q.pushRestore(b.run) {
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

package errorfs

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"

	"github.com/trovedb/trove/spill"
)

// Kind is what a fault does to an operation it fires on.
type Kind int

const (
	// CreateErr: Create fails with Err, and no file is made.
	CreateErr Kind = iota
	// WriteErr: WriteV or WriteAt writes nothing and fails with Err.
	WriteErr
	// NoSpace: the files the fault matches share Budget bytes, as files on one
	// full file system do. A WriteV that would cross the budget writes up to it,
	// then fails with ENOSPC; every later one fails at once. Removing a file does
	// not give its bytes back.
	NoSpace
	// ShortWrite: WriteV writes the first half of its bytes and reports that
	// count with no error, as a backend that stopped making progress.
	ShortWrite
	// StallWrite: WriteV signals Entered, waits for Gate to close, then writes.
	StallWrite
	// ShortRead: ReadAt reads the first half of p and returns io.EOF, as a read
	// that meets the end of a truncated file.
	ShortRead
	// FlipByte: ReadAt reads, then inverts byte At%n of the n bytes it read. The
	// file is unchanged.
	FlipByte
	// StallRead: ReadAt signals Entered, waits for Gate to close, then reads.
	StallRead
)

var kindNames = [...]string{"CreateErr", "WriteErr", "NoSpace", "ShortWrite", "StallWrite", "ShortRead", "FlipByte", "StallRead"}

func (k Kind) String() string {
	if k >= 0 && int(k) < len(kindNames) {
		return kindNames[k]
	}
	return fmt.Sprintf("Kind(%d)", int(k))
}

// enteredBuffer is how many stalls a fault remembers for Entered that no one has
// received yet; later ones are not signalled, rather than block the operation.
const enteredBuffer = 1024

// Fault is one injected fault. Set the exported fields, pass the Fault to
// FS.Inject and keep the *Fault it returns to inspect it or wait on it.
type Fault struct {
	Kind Kind
	// Path restricts the fault to files whose path contains it: a file, a
	// directory, or "" for every file.
	Path string
	// Nth makes the fault fire on the Nth matching operation only (1-based);
	// 0 fires it on every one.
	Nth int
	// Err is the error of a CreateErr or WriteErr fault, wrapped in an
	// *os.PathError. Default syscall.EIO.
	Err error
	// Budget is the bytes a NoSpace fault lets through, over all matching files.
	Budget int64
	// At chooses the byte a FlipByte fault inverts: At modulo the bytes read.
	At int
	// Gate holds a StallWrite or StallRead operation until it is closed. It is
	// required for those kinds.
	Gate chan struct{}

	fs      *FS           // set by Inject; fs.mu guards the counters below
	entered chan struct{} // StallWrite, StallRead: one value per stall
	seen    int           // matching operations so far
	fired   int           // operations the fault fired on
	used    int64         // NoSpace: bytes let through
}

// Fired returns how many operations the fault has fired on.
func (f *Fault) Fired() int {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	return f.fired
}

// Seen returns how many operations the fault has matched, fired on or not.
func (f *Fault) Seen() int {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	return f.seen
}

// Entered receives one value as each operation stalled by a StallWrite or
// StallRead fault begins to wait for Gate (up to 1024 not yet received). It is
// nil for the other kinds.
func (f *Fault) Entered() <-chan struct{} { return f.entered }

// FS is a spill.FS that injects faults into the operations it passes to the FS it
// wraps. Its zero value is not usable; call New or Wrap.
type FS struct {
	inner spill.FS

	mu struct {
		sync.Mutex
		faults []*Fault         // in the order injected
		avail  map[string]int64 // Available overrides, by cleaned directory
	}
}

var _ spill.FS = (*FS)(nil)

// New returns an FS over the local file system (spill.OSFS) with no faults.
func New() *FS { return Wrap(spill.OSFS{}) }

// Wrap returns an FS over inner with no faults.
func Wrap(inner spill.FS) *FS {
	e := &FS{inner: inner}
	e.mu.avail = map[string]int64{}
	return e
}

// Inject adds a fault, after those injected before it, and returns it. It panics
// if f is not a valid fault: an unknown Kind, or a stall without a Gate.
func (e *FS) Inject(f Fault) *Fault {
	switch f.Kind {
	case CreateErr, WriteErr:
		if f.Err == nil {
			f.Err = syscall.EIO
		}
	case StallWrite, StallRead:
		if f.Gate == nil {
			panic(fmt.Sprintf("errorfs: a %v fault needs a Gate", f.Kind))
		}
		f.entered = make(chan struct{}, enteredBuffer)
	case NoSpace, ShortWrite, ShortRead, FlipByte:
	default:
		panic(fmt.Sprintf("errorfs: unknown fault kind %v", f.Kind))
	}
	if f.Nth < 0 {
		panic(fmt.Sprintf("errorfs: Nth %d is negative", f.Nth))
	}
	p := &f
	p.fs = e
	e.mu.Lock()
	defer e.mu.Unlock()
	e.mu.faults = append(e.mu.faults, p)
	return p
}

// RemoveFault takes a fault out: it fires on no operation that starts
// afterwards. An operation it stalled still waits for its Gate.
func (e *FS) RemoveFault(f *Fault) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for i, g := range e.mu.faults {
		if g == f {
			e.mu.faults = append(e.mu.faults[:i:i], e.mu.faults[i+1:]...)
			return
		}
	}
}

// SetAvailable makes Available(dir) report n bytes free; a negative n asks the
// wrapped FS again.
func (e *FS) SetAvailable(dir string, n int64) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if n < 0 {
		delete(e.mu.avail, filepath.Clean(dir))
		return
	}
	e.mu.avail[filepath.Clean(dir)] = n
}

// match returns the first fault of one of kinds that fires for an operation on
// path, or nil. Every matching fault counts the operation, fired or not.
func (e *FS) match(path string, kinds ...Kind) *Fault {
	e.mu.Lock()
	defer e.mu.Unlock()
	var hit *Fault
	for _, f := range e.mu.faults {
		isKind := false
		for _, k := range kinds {
			isKind = isKind || f.Kind == k
		}
		if !isKind || !strings.Contains(path, f.Path) {
			continue
		}
		f.seen++
		if hit == nil && (f.Nth == 0 || f.seen == f.Nth) {
			hit = f
			f.fired++
		}
	}
	return hit
}

// stall signals f's Entered and waits for its Gate.
func stall(f *Fault) {
	select {
	case f.entered <- struct{}{}:
	default: // nobody is counting this many stalls; never block on the signal
	}
	<-f.Gate
}

func (e *FS) Create(name string) (spill.File, error) {
	if f := e.match(name, CreateErr); f != nil {
		return nil, &os.PathError{Op: "create", Path: name, Err: f.Err}
	}
	inner, err := e.inner.Create(name)
	if err != nil {
		return nil, err
	}
	return &file{fs: e, inner: inner, name: name}, nil
}

func (e *FS) Remove(name string) error                  { return e.inner.Remove(name) }
func (e *FS) Mkdir(name string, perm os.FileMode) error { return e.inner.Mkdir(name, perm) }

func (e *FS) Available(dir string) (int64, error) {
	e.mu.Lock()
	n, ok := e.mu.avail[filepath.Clean(dir)]
	e.mu.Unlock()
	if ok {
		return n, nil
	}
	return e.inner.Available(dir)
}

// file is a spill.File of an FS.
type file struct {
	fs    *FS
	inner spill.File
	name  string
}

func (f *file) WriteV(bufs [][]byte) (int64, error) {
	flt := f.fs.match(f.name, WriteErr, NoSpace, ShortWrite, StallWrite)
	if flt == nil {
		return f.inner.WriteV(bufs)
	}
	var total int64
	for _, b := range bufs {
		total += int64(len(b))
	}
	switch flt.Kind {
	case WriteErr:
		return 0, &os.PathError{Op: "write", Path: f.name, Err: flt.Err}
	case StallWrite:
		stall(flt)
		return f.inner.WriteV(bufs)
	case ShortWrite:
		return f.inner.WriteV(truncate(bufs, total/2))
	}
	// NoSpace: take what fits in the budget.
	f.fs.mu.Lock()
	fits := min(max(flt.Budget-flt.used, 0), total)
	flt.used += fits
	f.fs.mu.Unlock()
	n, err := f.inner.WriteV(truncate(bufs, fits))
	if err == nil && fits < total {
		err = &os.PathError{Op: "write", Path: f.name, Err: syscall.ENOSPC}
	}
	return n, err
}

// truncate returns the first n bytes of bufs.
func truncate(bufs [][]byte, n int64) [][]byte {
	var out [][]byte
	for _, b := range bufs {
		if n <= 0 {
			break
		}
		k := min(int64(len(b)), n)
		out = append(out, b[:k])
		n -= k
	}
	return out
}

// WriteAt is subject to WriteErr faults only: it overwrites bytes already
// written, so it takes no space.
func (f *file) WriteAt(p []byte, off int64) (int, error) {
	if flt := f.fs.match(f.name, WriteErr); flt != nil {
		return 0, &os.PathError{Op: "writeat", Path: f.name, Err: flt.Err}
	}
	return f.inner.WriteAt(p, off)
}

func (f *file) ReadAt(p []byte, off int64) (int, error) {
	flt := f.fs.match(f.name, ShortRead, FlipByte, StallRead)
	if flt == nil {
		return f.inner.ReadAt(p, off)
	}
	switch flt.Kind {
	case ShortRead:
		n, err := f.inner.ReadAt(p[:len(p)/2], off)
		if err == nil {
			err = io.EOF
		}
		return n, err
	case StallRead:
		stall(flt)
		return f.inner.ReadAt(p, off)
	}
	n, err := f.inner.ReadAt(p, off)
	if n > 0 {
		p[uint(flt.At)%uint(n)] ^= 0xff
	}
	return n, err
}

func (f *file) Sync() error  { return f.inner.Sync() }
func (f *file) Close() error { return f.inner.Close() }

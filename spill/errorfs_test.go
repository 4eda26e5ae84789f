package spill

import (
	"io"
	"os"
	"strings"
	"sync"
	"syscall"
)

// errorFS wraps an FS and injects faults into it, in the manner of pebble's
// vfs/errorfs: each fault applies to the files whose path contains a substring
// (one file, one directory, or every file), and fires on every matching operation
// or only on the nth. Faults are checked in the order they were added; the first
// that fires decides.
type errorFS struct {
	inner FS

	mu     sync.Mutex
	faults []*fault
	avail  map[string]int64 // Available overrides, by directory
}

type faultKind int

const (
	createErr  faultKind = iota // Create fails with err
	writeErr                    // WriteV writes nothing and fails with err
	noSpace                     // matching files share budget bytes; a WriteV crossing it writes up to it, then fails with ENOSPC
	shortWrite                  // WriteV writes half of its bytes and reports no error
	stallWrite                  // WriteV signals entered, then waits for gate to close
	shortRead                   // ReadAt reads half of p and returns io.EOF
	flipByte                    // ReadAt reads, then inverts byte at%n of what it read
	stallRead                   // ReadAt signals entered, then waits for gate to close
)

// fault is one injected fault. Set the fields above the line; the rest are its state.
type fault struct {
	kind   faultKind
	path   string // the fault applies to paths containing this; "" for every file
	nth    int    // fire on the nth matching operation only (1-based); 0: on every one
	err    error  // createErr, writeErr
	budget int64  // noSpace
	at     int    // flipByte
	gate   chan struct{}
	// ---
	entered chan struct{} // stallWrite, stallRead: receives once per stall
	seen    int           // matching operations so far
	used    int64         // noSpace: bytes written to matching files
	fired   int
}

func newErrorFS() *errorFS { return &errorFS{inner: OSFS{}, avail: map[string]int64{}} }

// inject adds f and returns it, to inspect f.fired or wait on f.entered.
func (e *errorFS) inject(f fault) *fault {
	e.mu.Lock()
	defer e.mu.Unlock()
	if f.kind == stallWrite || f.kind == stallRead {
		f.entered = make(chan struct{}, 100)
	}
	e.faults = append(e.faults, &f)
	return e.faults[len(e.faults)-1]
}

// setAvailable makes Available(dir) report n bytes.
func (e *errorFS) setAvailable(dir string, n int64) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.avail[dir] = n
}

// match returns the first fault among kinds that fires for an operation on path.
// Every matching fault counts the operation, fired or not.
func (e *errorFS) match(path string, kinds ...faultKind) *fault {
	e.mu.Lock()
	defer e.mu.Unlock()
	var hit *fault
	for _, f := range e.faults {
		isKind := false
		for _, k := range kinds {
			isKind = isKind || f.kind == k
		}
		if !isKind || !strings.Contains(path, f.path) {
			continue
		}
		f.seen++
		if hit == nil && (f.nth == 0 || f.seen == f.nth) {
			hit = f
			f.fired++
		}
	}
	return hit
}

func (e *errorFS) Create(name string) (File, error) {
	if f := e.match(name, createErr); f != nil {
		return nil, &os.PathError{Op: "create", Path: name, Err: f.err}
	}
	inner, err := e.inner.Create(name)
	if err != nil {
		return nil, err
	}
	return &errorFile{fs: e, inner: inner, name: name}, nil
}

func (e *errorFS) Remove(name string) error                  { return e.inner.Remove(name) }
func (e *errorFS) Mkdir(name string, perm os.FileMode) error { return e.inner.Mkdir(name, perm) }

func (e *errorFS) Available(dir string) (int64, error) {
	e.mu.Lock()
	n, ok := e.avail[dir]
	e.mu.Unlock()
	if ok {
		return n, nil
	}
	return e.inner.Available(dir)
}

type errorFile struct {
	fs    *errorFS
	inner File
	name  string
}

func (f *errorFile) WriteV(bufs [][]byte) (int64, error) {
	var total int64
	for _, b := range bufs {
		total += int64(len(b))
	}
	flt := f.fs.match(f.name, writeErr, noSpace, shortWrite, stallWrite)
	if flt == nil {
		return f.inner.WriteV(bufs)
	}
	switch flt.kind {
	case writeErr:
		return 0, &os.PathError{Op: "write", Path: f.name, Err: flt.err}
	case stallWrite:
		flt.entered <- struct{}{}
		<-flt.gate
		return f.inner.WriteV(bufs)
	case shortWrite:
		return f.inner.WriteV(truncate(bufs, total/2))
	}
	// noSpace: take what fits in the budget.
	f.fs.mu.Lock()
	room := max(flt.budget-flt.used, 0)
	fits := min(room, total)
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

// WriteAt is subject to writeErr faults, like WriteV.
func (f *errorFile) WriteAt(p []byte, off int64) (int, error) {
	if flt := f.fs.match(f.name, writeErr); flt != nil {
		return 0, &os.PathError{Op: "writeat", Path: f.name, Err: flt.err}
	}
	return f.inner.WriteAt(p, off)
}

func (f *errorFile) ReadAt(p []byte, off int64) (int, error) {
	flt := f.fs.match(f.name, shortRead, flipByte, stallRead)
	if flt == nil {
		return f.inner.ReadAt(p, off)
	}
	switch flt.kind {
	case shortRead:
		n, err := f.inner.ReadAt(p[:len(p)/2], off)
		if err == nil {
			err = io.EOF
		}
		return n, err
	case stallRead:
		flt.entered <- struct{}{}
		<-flt.gate
		return f.inner.ReadAt(p, off)
	}
	n, err := f.inner.ReadAt(p, off)
	if n > 0 {
		p[flt.at%n] ^= 0xff
	}
	return n, err
}

func (f *errorFile) Sync() error  { return f.inner.Sync() }
func (f *errorFile) Close() error { return f.inner.Close() }

package spill

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	iofs "io/fs"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Defaults for Config.
const (
	DefaultWorkers      = 4
	DefaultMinSpillSize = 100 << 20 // 100 MiB
)

// Config configures a Spiller. The zero value is valid.
type Config struct {
	// Dirs are the directories spill files go to: one file per batch, each batch
	// in the next directory round robin, falling back to the following ones if a
	// directory is full. A directory that does not exist is created (not its
	// parents) and removed again by Close. Default: one new directory under
	// os.TempDir() named trove-spill-<pid>-<random>.
	Dirs []string

	// Workers is the number of goroutines that write batches and serve
	// RestoreMany. Default DefaultWorkers.
	Workers int

	// MinSpillSize is the smallest batch the engine should spill unless memory is
	// short: a fused file amortizes its create, unlink and metadata over many
	// objects. The Spiller only carries the setting; it writes any batch it is
	// given. Default DefaultMinSpillSize.
	MinSpillSize int64

	// Sync makes every batch durable (fdatasync) before its done is called. Off by
	// default, because nothing ever reads a spill file after the process ends: the
	// objects die with the process or node, and New never recovers old files, so
	// a crash loses nothing that durability would have kept. Turn it on to force
	// the written bytes out of the page cache at once (dirty pages are memory,
	// too), at the cost of waiting for the disk.
	Sync bool

	// FS is the storage. Default OSFS{}. Only OSFS is swept of the files of
	// Spillers that ended without Close (see Spiller.Leftovers).
	FS FS

	// DirsSetting names, in error messages, the setting the user changes to
	// choose other directories. Default "spill.Config.Dirs"; the engine passes
	// the settings its users have ("troved -spill-dir or engine.Config.SpillDirs").
	DirsSetting string
}

// Object is one object of a batch to spill.
type Object struct {
	ID ID
	// Data is the object's bytes, typically a slice of the shared-memory arena.
	// It is written straight to the file, without a copy on the Go heap, and read
	// only until the batch's done is called: it MUST NOT change or be freed
	// before then.
	Data []byte
}

// Location names one spilled object: its file, and the offset and length of its
// data there. It is small and comparable, for the engine's per-object metadata.
// The zero Location names nothing.
type Location struct {
	File   uint64 // the spill file's number within its Spiller; never 0
	Offset int64  // file offset of the object's data (its header precedes it)
	Length int64  // the object's size in bytes
}

func (l Location) String() string {
	return fmt.Sprintf("spill file %d offset %d length %d", l.File, l.Offset, l.Length)
}

// RestoreRequest is one object for RestoreMany.
type RestoreRequest struct {
	ID  ID
	Loc Location
	Dst []byte // len(Dst) must equal Loc.Length
}

// Spiller writes batches of objects to fused spill files and reads them back.
// Its methods may be called from any goroutine.
type Spiller struct {
	cfg   Config     // defaults filled in; immutable
	fs    FS         // cfg.FS
	dirs  []spillDir // immutable after New
	token string     // file name prefix "trove-<pid>-<random>": Spillers sharing a directory never collide

	rr      atomic.Uint64 // the next batch starts at dirs[rr % len(dirs)]
	fileSeq atomic.Uint64 // the last file number handed out; 0 is never used
	closing atomic.Bool   // set first thing in Close: writes in progress give up
	// restoring counts Restores in progress: a large object is read in ranges
	// on several goroutines only while there are more cores than restores.
	restoring atomic.Int64

	q       queue
	workers sync.WaitGroup

	mu struct {
		sync.Mutex
		closed  bool
		files   map[uint64]*spillFile // every file with a live object or a reader
		readers int                   // Restores in progress, over all files
		idle    sync.Cond             // broadcast when readers drops to 0 after closed
	}

	owners    []*ownerLock // one per directory while the Spiller lives (OSFS only); released by Close
	leftovers Leftovers    // what New swept; immutable

	st counters
}

type spillDir struct {
	path    string
	created bool // by New: Close removes it
}

// spillFile is one fused file: the objects of one batch, back to back. Fields
// without a comment are immutable once the file is registered.
type spillFile struct {
	num  uint64
	path string
	f    File
	size int64   // bytes on disk
	offs []int64 // data offset of each object, ascending
	lens []int64 // data length of each object (padding may follow it)

	// Guarded by Spiller.mu.
	live    []uint64 // bit i is set while object i is live
	nlive   int      // the number of set bits in live
	readers int      // Restores reading this file; Close of f waits for 0
}

// index returns the index of the object loc names, if loc matches one exactly.
func (f *spillFile) index(loc Location) (int, bool) {
	i, found := slices.BinarySearch(f.offs, loc.Offset)
	if !found || f.length(i) != loc.Length {
		return 0, false
	}
	return i, true
}

// length returns the size of object i.
func (f *spillFile) length(i int) int64 { return f.lens[i] }

func (f *spillFile) isLive(i int) bool { return f.live[i/64]&(1<<(i%64)) != 0 }

// New starts a Spiller: it creates missing directories and starts the workers.
func New(cfg Config) (*Spiller, error) {
	if cfg.Workers < 0 || cfg.MinSpillSize < 0 {
		return nil, fmt.Errorf("spill: Workers (%d) and MinSpillSize (%d) must not be negative", cfg.Workers, cfg.MinSpillSize)
	}
	if cfg.Workers == 0 {
		cfg.Workers = DefaultWorkers
	}
	if cfg.MinSpillSize == 0 {
		cfg.MinSpillSize = DefaultMinSpillSize
	}
	if cfg.FS == nil {
		cfg.FS = OSFS{}
	}
	if cfg.DirsSetting == "" {
		cfg.DirsSetting = "spill.Config.Dirs"
	}
	s := &Spiller{fs: cfg.FS, token: fmt.Sprintf("trove-%d-%s", os.Getpid(), randomHex())}
	s.mu.files = make(map[uint64]*spillFile)
	s.mu.idle.L = &s.mu.Mutex
	s.q.nonEmpty.L = &s.q.mu

	// Only the local file system is swept and locked: flock(2) is what proves an
	// owner alive or gone (see leftover.go).
	local := cfg.FS == FS(OSFS{})
	if local && len(cfg.Dirs) == 0 {
		s.leftovers.add(sweepDefaultDirs(os.TempDir()))
	}
	if err := s.makeDirs(cfg.Dirs, cfg.DirsSetting); err != nil {
		s.removeDirs()
		return nil, err
	}
	if local {
		if err := s.claimDirs(); err != nil {
			s.releaseOwners()
			s.removeDirs()
			return nil, err
		}
	}
	cfg.Dirs = make([]string, len(s.dirs))
	for i, d := range s.dirs {
		cfg.Dirs[i] = d.path
	}
	s.cfg = cfg

	s.workers.Add(cfg.Workers)
	for range cfg.Workers {
		go s.work()
	}
	return s, nil
}

// claimDirs sweeps each directory of dead owners' files and takes it for s.
func (s *Spiller) claimDirs() error {
	for i, d := range s.dirs {
		if slices.ContainsFunc(s.dirs[:i], func(o spillDir) bool { return o.path == d.path }) {
			continue // listed twice: one owner file is enough
		}
		l, left, err := claimDir(d.path, s.token)
		s.leftovers.add(left)
		if err != nil {
			return err
		}
		if l != nil {
			s.owners = append(s.owners, l)
		}
	}
	return nil
}

// releaseOwners removes s's owner files: s no longer has spill files.
func (s *Spiller) releaseOwners() error {
	var errs []error
	for _, l := range s.owners {
		if err := l.release(); err != nil {
			errs = append(errs, err)
		}
	}
	s.owners = nil
	return errors.Join(errs...)
}

func (s *Spiller) makeDirs(dirs []string, setting string) error {
	if len(dirs) == 0 {
		for range 100 {
			path := filepath.Join(os.TempDir(), fmt.Sprintf("%s%d-%s", defaultDirPrefix, os.Getpid(), randomHex()))
			err := s.fs.Mkdir(path, 0o700)
			if err == nil {
				s.dirs = append(s.dirs, spillDir{path: path, created: true})
				return nil
			}
			if !errors.Is(err, iofs.ErrExist) {
				return fmt.Errorf("spill: create a spill directory under %s: %w; set TMPDIR, or choose a writable spill directory (%s)", os.TempDir(), err, setting)
			}
		}
		return fmt.Errorf("spill: no free name for a spill directory under %s", os.TempDir())
	}
	for _, d := range dirs {
		d = filepath.Clean(d)
		err := s.fs.Mkdir(d, 0o700)
		if err != nil && !errors.Is(err, iofs.ErrExist) {
			return fmt.Errorf("spill: spill directory %s: %w; create it or choose another (%s)", d, err, setting)
		}
		s.dirs = append(s.dirs, spillDir{path: d, created: err == nil})
	}
	return nil
}

// removeDirs removes the directories New created, which must be empty.
func (s *Spiller) removeDirs() error {
	var errs []error
	for i := len(s.dirs) - 1; i >= 0; i-- {
		if d := s.dirs[i]; d.created {
			if err := s.fs.Remove(d.path); err != nil {
				errs = append(errs, fmt.Errorf("spill: remove spill directory %s: %w", d.path, err))
			}
		}
	}
	return errors.Join(errs...)
}

func randomHex() string {
	var b [4]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on Linux (Go ≥ 1.24)
	return hex.EncodeToString(b[:])
}

// Config returns the Spiller's configuration with defaults filled in: Dirs holds
// the directories in use, the default one included.
func (s *Spiller) Config() Config {
	c := s.cfg
	c.Dirs = slices.Clone(c.Dirs)
	return c
}

// Spill queues objs to be written as one fused file, and returns at once. A
// worker writes the batch and then calls done, on the worker's goroutine, with one
// Location per object in the order of objs, or with an error; after an error no
// part of the batch is on disk, and nothing is lost: the objects are still in
// the caller's memory. Out of space in every directory is ErrOutOfDisk; a Close
// before the batch is complete is ErrClosed.
//
// objs and every objs[i].Data are read until done is called and MUST NOT change
// before then. done must not block for long (it holds a worker) and must not call
// Close; it may call any other method.
//
// Spill itself fails only if the Spiller is closed or the batch is invalid (no
// objects, or no done); then done is never called.
func (s *Spiller) Spill(objs []Object, done func([]Location, error)) error {
	_, err := s.enqueue(nil, objs, done)
	return err
}

// SpillSync writes objs as one fused file and returns their Locations, in order.
// If ctx ends first, the batch is abandoned (nothing of it stays on disk) and the
// error wraps ctx.Err(). Either way, SpillSync returns only once the batch no
// longer reads objs, so the caller may reuse their memory as soon as it returns.
func (s *Spiller) SpillSync(ctx context.Context, objs []Object) ([]Location, error) {
	type result struct {
		locs []Location
		err  error
	}
	ch := make(chan result, 1)
	j, err := s.enqueue(ctx, objs, func(locs []Location, err error) { ch <- result{locs, err} })
	if err != nil {
		return nil, err
	}
	select {
	case r := <-ch:
		return r.locs, r.err
	case <-ctx.Done():
		if s.q.remove(j) {
			return nil, s.abandoned(j)
		}
		r := <-ch // a worker has it: it notices ctx within one write window
		return r.locs, r.err
	}
}

type spillJob struct {
	ctx  context.Context // nil for Spill
	objs []Object
	done func([]Location, error)
}

func (s *Spiller) enqueue(ctx context.Context, objs []Object, done func([]Location, error)) (*spillJob, error) {
	if len(objs) == 0 {
		return nil, fmt.Errorf("%w: no objects", ErrInvalidBatch)
	}
	if done == nil {
		return nil, fmt.Errorf("%w: no done callback", ErrInvalidBatch)
	}
	j := &spillJob{ctx: ctx, objs: objs, done: done}
	if !s.q.pushSpill(j) {
		return nil, fmt.Errorf("spill: batch of %d objects: %w", len(objs), ErrClosed)
	}
	return j, nil
}

// abandoned returns why j must stop now, or nil: the Spiller is closing, or the
// batch's context ended.
func (s *Spiller) abandoned(j *spillJob) error {
	if s.closing.Load() {
		return fmt.Errorf("spill: batch of %d objects: %w", len(j.objs), ErrClosed)
	}
	if j.ctx != nil {
		if err := j.ctx.Err(); err != nil {
			return fmt.Errorf("spill: batch of %d objects abandoned: %w", len(j.objs), err)
		}
	}
	return nil
}

func isAbandoned(err error) bool {
	return errors.Is(err, ErrClosed) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}

// isNoSpace reports whether err means the directory is full: the next one may
// take the batch.
func isNoSpace(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) || errors.Is(err, io.ErrShortWrite)
}

// work is a worker: it runs queued restores first (a Get waits on each), then
// batches, until Close has closed the queue and it is empty.
func (s *Spiller) work() {
	defer s.workers.Done()
	for {
		restore, j, ok := s.q.pop()
		switch {
		case !ok:
			return
		case restore != nil:
			restore.run()
		default:
			s.runSpill(j)
		}
	}
}

func (s *Spiller) runSpill(j *spillJob) {
	start := time.Now()
	locs, err := s.writeBatch(j)
	switch {
	case err == nil:
		s.st.spills.Add(1)
		s.st.spillNanos.Add(int64(time.Since(start)))
	case errors.Is(err, ErrOutOfDisk):
		s.st.outOfDisk.Add(1)
		s.st.errors.Add(1)
	case !isAbandoned(err):
		s.st.errors.Add(1)
	}
	j.done(locs, err)
}

// writeBatch writes j's objects to a new file in the next directory, falling back
// to the following directories while they are full.
func (s *Spiller) writeBatch(j *spillJob) ([]Location, error) {
	if err := s.abandoned(j); err != nil {
		return nil, err
	}
	p := newPlan(j.objs)
	first := s.rr.Add(1) - 1
	var tried []DirAttempt
	for k := range uint64(len(s.dirs)) {
		dir := s.dirs[(first+k)%uint64(len(s.dirs))].path
		avail, err := s.fs.Available(dir)
		if err != nil {
			avail = -1
		} else if avail < p.size {
			tried = append(tried, DirAttempt{Dir: dir, Available: avail})
			continue
		}
		locs, written, err := s.writeFile(j, dir, p)
		if err == nil || !isNoSpace(err) {
			return locs, err
		}
		tried = append(tried, DirAttempt{Dir: dir, Available: avail, Written: written, Err: err})
	}
	return nil, &OutOfDiskError{Objects: len(j.objs), Needed: p.size, Tried: tried, Setting: s.cfg.DirsSetting}
}

// writeFile writes one batch to a new file in dir and registers it. On error the
// file is removed, and the error is the FS's own when it means the disk is full
// (the caller tries the next directory) and has the object and file otherwise.
func (s *Spiller) writeFile(j *spillJob, dir string, p *plan) (locs []Location, written int64, err error) {
	num := s.fileSeq.Add(1)
	path := filepath.Join(dir, fmt.Sprintf("%s-%d.spill", s.token, num))
	f, err := s.fs.Create(path)
	if err != nil {
		if isNoSpace(err) { // out of inodes
			return nil, 0, err
		}
		return nil, 0, fmt.Errorf("spill: create spill file for a batch of %d objects: %w", len(j.objs), err)
	}
	fail := func(err error) ([]Location, int64, error) {
		errs := []error{err}
		if cerr := f.Close(); cerr != nil {
			errs = append(errs, fmt.Errorf("spill: close partial file: %w", cerr))
		}
		if rerr := s.fs.Remove(path); rerr != nil {
			errs = append(errs, fmt.Errorf("spill: remove partial file: %w", rerr))
		}
		return nil, written, errors.Join(errs...)
	}

	written, failedAt, err := p.write(f, path, func() error { return s.abandoned(j) })
	if err != nil {
		if isNoSpace(err) || isAbandoned(err) {
			return fail(err)
		}
		i := p.objectAt(failedAt)
		return fail(fmt.Errorf("spill: write object %s (%d of %d in the batch) to %s: %w",
			j.objs[i].ID, i+1, len(j.objs), path, err))
	}
	if s.cfg.Sync {
		if err := f.Sync(); err != nil {
			return fail(fmt.Errorf("spill: sync %s: %w", path, err))
		}
	}
	if err := s.abandoned(j); err != nil {
		return fail(err)
	}

	locs = make([]Location, len(j.objs))
	sf := &spillFile{num: num, path: path, f: f, size: p.size, offs: make([]int64, len(j.objs)), lens: make([]int64, len(j.objs))}
	var data int64
	for i, o := range j.objs {
		n := int64(len(o.Data))
		sf.offs[i] = p.hdrOff[i] + HeaderSize
		sf.lens[i] = n
		locs[i] = Location{File: num, Offset: sf.offs[i], Length: n}
		data += n
	}
	sf.live = make([]uint64, (len(j.objs)+63)/64)
	for i := range j.objs {
		sf.live[i/64] |= 1 << (i % 64)
	}
	sf.nlive = len(j.objs)

	// Close waits for the workers before it sets mu.closed and deletes the files,
	// so a batch that got past the check above is registered, handed to done, and
	// then deleted by Close.
	s.mu.Lock()
	s.mu.files[num] = sf
	s.mu.Unlock()

	s.st.filesLive.Add(1)
	s.st.bytesOnDisk.Add(p.size)
	s.st.objectsLive.Add(int64(len(j.objs)))
	s.st.bytesLive.Add(data)
	s.st.spilledObjects.Add(int64(len(j.objs)))
	s.st.spilledBytes.Add(data)
	return locs, written, nil
}

// objectAt returns the index of the object whose header or data holds byte off of
// the batch's file.
func (p *plan) objectAt(off int64) int {
	for i, o := range p.objs {
		if off < p.hdrOff[i]+HeaderSize+int64(len(o.Data)) {
			return i // in its data, its header or the padding before it
		}
	}
	return len(p.objs) - 1
}

// Delete deletes a spilled object. When it was the last live object of its file,
// the file is removed. Deleting a Location twice, or one this Spiller never handed
// out, is ErrUnknownLocation and changes nothing.
func (s *Spiller) Delete(loc Location) error {
	s.mu.Lock()
	if s.mu.closed {
		s.mu.Unlock()
		return fmt.Errorf("spill: delete %v: %w", loc, ErrClosed)
	}
	f := s.mu.files[loc.File]
	i, ok := 0, false
	if f != nil {
		i, ok = f.index(loc)
	}
	if !ok || !f.isLive(i) {
		s.mu.Unlock()
		return fmt.Errorf("spill: delete %v: %w", loc, ErrUnknownLocation)
	}
	f.live[i/64] &^= 1 << (i % 64)
	f.nlive--
	remove := f.nlive == 0 && f.readers == 0
	if remove {
		delete(s.mu.files, f.num)
	}
	s.mu.Unlock()

	s.st.objectsLive.Add(-1)
	s.st.bytesLive.Add(-loc.Length)
	if remove {
		return s.removeFile(f)
	}
	return nil
}

// removeFile closes and removes a file that is no longer in Spiller.mu.files.
func (s *Spiller) removeFile(f *spillFile) error {
	cerr := f.f.Close()
	rerr := s.fs.Remove(f.path)
	s.st.filesLive.Add(-1)
	s.st.bytesOnDisk.Add(-f.size)
	if rerr != nil {
		s.st.errors.Add(1)
		return fmt.Errorf("spill: remove spill file %s: %w", f.path, rerr)
	}
	s.st.filesDeleted.Add(1)
	if cerr != nil {
		s.st.errors.Add(1)
		return fmt.Errorf("spill: close spill file %s: %w", f.path, cerr)
	}
	return nil
}

// Path returns the path of the file holding loc, or "" if no live file has that
// number. It is for messages and tests: the file is removed when its last object
// is deleted.
func (s *Spiller) Path(loc Location) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if f := s.mu.files[loc.File]; f != nil {
		return f.path
	}
	return ""
}

// Close abandons queued and unfinished batches (their done is called with
// ErrClosed), waits for the workers and for Restores in progress, deletes every
// spill file and removes the directories New created. Every Location is invalid
// afterwards, and every call but Close fails with ErrClosed. Close must not be
// called from a done callback. A second Close returns nil.
func (s *Spiller) Close() error {
	if !s.closing.CompareAndSwap(false, true) {
		return nil
	}
	s.q.close()
	s.workers.Wait() // each drains the queue: abandoned batches fail at once

	s.mu.Lock()
	s.mu.closed = true
	for s.mu.readers > 0 {
		s.mu.idle.Wait()
	}
	files := s.mu.files
	s.mu.files = nil
	s.mu.Unlock()

	var errs []error
	for _, f := range files {
		for i := range f.offs {
			if f.isLive(i) {
				s.st.objectsLive.Add(-1)
				s.st.bytesLive.Add(-f.length(i))
			}
		}
		if err := s.removeFile(f); err != nil {
			errs = append(errs, err)
		}
	}
	if err := s.releaseOwners(); err != nil {
		errs = append(errs, err)
	}
	if err := s.removeDirs(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// queue holds the work for the workers: restores before batches.
type queue struct {
	mu       sync.Mutex
	nonEmpty sync.Cond // on mu
	closed   bool
	restores []restoreTask
	spills   []*spillJob
}

// restoreTask is a restore a worker helps with: a RestoreMany, or the ranges of
// one large object. A pointer in an interface, so queueing one allocates nothing.
type restoreTask interface{ run() }

func (q *queue) pushSpill(j *spillJob) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return false
	}
	q.spills = append(q.spills, j)
	q.nonEmpty.Signal()
	return true
}

func (q *queue) pushRestore(t restoreTask) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return false
	}
	q.restores = append(q.restores, t)
	q.nonEmpty.Signal()
	return true
}

// remove takes j out of the queue if no worker has taken it yet.
func (q *queue) remove(j *spillJob) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	i := slices.Index(q.spills, j)
	if i < 0 {
		return false
	}
	q.spills = slices.Delete(q.spills, i, i+1)
	return true
}

// pop waits for work. It returns ok == false once the queue is closed and empty.
func (q *queue) pop() (restore restoreTask, j *spillJob, ok bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for len(q.restores) == 0 && len(q.spills) == 0 {
		if q.closed {
			return nil, nil, false
		}
		q.nonEmpty.Wait()
	}
	if len(q.restores) > 0 {
		restore = q.restores[0]
		q.restores[0] = nil
		q.restores = q.restores[1:]
		return restore, nil, true
	}
	j = q.spills[0]
	q.spills[0] = nil
	q.spills = q.spills[1:]
	return nil, j, true
}

func (q *queue) close() {
	q.mu.Lock()
	q.closed = true
	q.nonEmpty.Broadcast()
	q.mu.Unlock()
}

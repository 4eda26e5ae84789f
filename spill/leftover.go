package spill

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Spill files left behind by a process that ended without Close (a crash, a
// kill -9, a power cut) are found and removed by the next New that uses the same
// directory, or, for default directories, by the next New that uses a default
// directory under the same os.TempDir().
//
// Ownership is proven by a lock, not by a process ID: every Spiller holds an
// exclusive flock(2) on its owner file <token>.lock in each of its directories
// for as long as it lives, and the kernel drops the lock when the process dies,
// however it dies. A PID in a name proves nothing (PIDs are reused, and another
// PID namespace may share the directory); an owner file that can be locked is an
// owner that is gone. Two live Spillers, in one process or several, sharing a
// directory each see the other's lock held and leave its files alone.
//
// Creating the owner file and sweeping a directory are done under an exclusive
// flock on the directory itself, so a sweep never sees an owner file that exists
// but is not yet locked, and an owner file exists before any spill file of its
// token: a spill file whose token has no owner file belongs to nobody alive, or
// was written by a build of trove older than owner files. For those the PID in
// the name is the only evidence, so they are removed only when no process has
// that PID (a reused PID keeps them: a leak, never a loss).
//
// A file is removed only if it is named as a spill file (trove-<pid>-<hex>-<n>.spill)
// and begins with a valid object header (magic and header checksum) of any
// format version trove has written (1 or 2): the proof that trove wrote it. Anything else in the directory, or a file cut off before
// its first header was written, is left alone and counted in Leftovers.Kept.
// Owner files are removed only if they hold ownerMagic.

// Leftovers is what New removed of the spill files of Spillers that ended
// without Close: one line of the daemon's start-up log.
type Leftovers struct {
	Files int64 // spill files removed
	Bytes int64 // their size on disk: the space that came back
	Dirs  int64 // default spill directories (trove-spill-* under os.TempDir()) removed
	Kept  int64 // files of dead owners left alone: no valid header proves trove wrote them
	Err   error // what went wrong while sweeping (the sweep goes on past errors); nil if nothing
}

func (l *Leftovers) add(m Leftovers) {
	l.Files += m.Files
	l.Bytes += m.Bytes
	l.Dirs += m.Dirs
	l.Kept += m.Kept
	l.Err = errors.Join(l.Err, m.Err)
}

// Leftovers returns what New removed: spill files (and default directories)
// of Spillers that ended without Close. It is zero if New found none, or if the
// FS is not OSFS (only the local file system is swept).
func (s *Spiller) Leftovers() Leftovers { return s.leftovers }

const (
	spillSuffix = ".spill"
	lockSuffix  = ".lock"
	// ownerMagic opens every owner file, so that a sweep removes only owner
	// files trove wrote.
	ownerMagic = "trove spill owner v1\n"
	// defaultDirPrefix names the default directories under os.TempDir().
	defaultDirPrefix = "trove-spill-"
)

// parseToken checks that s is a token trove-<pid>-<8 hex digits> and returns
// its PID.
func parseToken(s string) (pid int, ok bool) {
	rest, ok := strings.CutPrefix(s, "trove-")
	if !ok {
		return 0, false
	}
	p, hex, ok := strings.Cut(rest, "-")
	if !ok || len(hex) != 8 || strings.Trim(hex, "0123456789abcdef") != "" {
		return 0, false
	}
	pid, err := strconv.Atoi(p)
	if err != nil || pid <= 0 || strconv.Itoa(pid) != p {
		return 0, false
	}
	return pid, true
}

// spillFileToken returns the token of a spill file's name <token>-<n>.spill.
func spillFileToken(name string) (token string, pid int, ok bool) {
	base, ok := strings.CutSuffix(name, spillSuffix)
	if !ok {
		return "", 0, false
	}
	i := strings.LastIndexByte(base, '-')
	if i < 0 {
		return "", 0, false
	}
	if n, err := strconv.ParseUint(base[i+1:], 10, 64); err != nil || n == 0 || strconv.FormatUint(n, 10) != base[i+1:] {
		return "", 0, false
	}
	token = base[:i]
	pid, ok = parseToken(token)
	return token, pid, ok
}

// processExists reports whether a process with this PID may exist (it does, or
// we may not signal it).
func processExists(pid int) bool {
	err := unix.Kill(pid, 0)
	return err == nil || err == unix.EPERM
}

// ownerLock is a Spiller's claim on one directory: the open, flocked owner file.
type ownerLock struct {
	fd   int
	path string
}

// release removes the owner file and then drops the lock (closing the fd), so
// that a sweep never finds it unlocked.
func (l *ownerLock) release() error {
	rerr := os.Remove(l.path)
	cerr := unix.Close(l.fd)
	if rerr != nil {
		return fmt.Errorf("spill: remove owner file: %w", rerr)
	}
	if cerr != nil {
		return fmt.Errorf("spill: close owner file %s: %w", l.path, cerr)
	}
	return nil
}

// lockDir opens dir and takes an exclusive flock on it; closing the fd drops it.
func lockDir(dir string, wait bool) (int, error) {
	fd, err := openRetry(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, &os.PathError{Op: "open", Path: dir, Err: err}
	}
	how := unix.LOCK_EX
	if !wait {
		how |= unix.LOCK_NB
	}
	if err := flockRetry(fd, how); err != nil {
		unix.Close(fd)
		return -1, &os.PathError{Op: "flock", Path: dir, Err: err}
	}
	return fd, nil
}

func openRetry(path string, mode int, perm uint32) (int, error) {
	for {
		fd, err := unix.Open(path, mode, perm)
		if err != unix.EINTR {
			return fd, err
		}
	}
}

func flockRetry(fd, how int) error {
	for {
		err := unix.Flock(fd, how)
		if err != unix.EINTR {
			return err
		}
	}
}

// claimDir sweeps dir of dead owners' spill files and creates token's owner
// file there, locked, both under the directory's lock. It returns a nil lock
// if the file system has no flock.
func claimDir(dir, token string) (*ownerLock, Leftovers, error) {
	dfd, err := lockDir(dir, true)
	if errors.Is(err, unix.ENOTSUP) || errors.Is(err, unix.ENOLCK) || errors.Is(err, unix.EINVAL) {
		// A file system without flock (some FUSE and network ones): no sweep, and
		// no owner file, so other sweeps judge this Spiller's files by its PID,
		// which keeps them while it lives.
		return nil, Leftovers{}, nil
	}
	if err != nil {
		return nil, Leftovers{}, fmt.Errorf("spill: lock spill directory: %w", err)
	}
	defer unix.Close(dfd)
	left := sweepLocked(dir)
	l, err := createOwner(filepath.Join(dir, token+lockSuffix))
	return l, left, err
}

func createOwner(path string) (*ownerLock, error) {
	fd, err := openRetry(path, unix.O_RDWR|unix.O_CREAT|unix.O_EXCL|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("spill: create owner file: %w", &os.PathError{Op: "create", Path: path, Err: err})
	}
	fail := func(err error) (*ownerLock, error) {
		unix.Close(fd)
		os.Remove(path)
		return nil, fmt.Errorf("spill: owner file: %w", &os.PathError{Op: "write", Path: path, Err: err})
	}
	if err := flockRetry(fd, unix.LOCK_EX|unix.LOCK_NB); err != nil {
		return fail(err) // nobody else can have it: it was just created, under the directory's lock
	}
	msg := []byte(ownerMagic + "pid " + strconv.Itoa(os.Getpid()) + "\n")
	if n, err := unix.Write(fd, msg); err != nil || n != len(msg) {
		if err == nil {
			err = errors.New("short write")
		}
		return fail(err)
	}
	return &ownerLock{fd: fd, path: path}, nil
}

// sweepLocked removes the spill files of dead owners in dir, and their owner
// files. The caller holds dir's lock.
func sweepLocked(dir string) Leftovers {
	var left Leftovers
	ents, err := os.ReadDir(dir)
	if err != nil {
		left.Err = fmt.Errorf("spill: list %s for leftover spill files: %w", dir, err)
		return left
	}
	// Owners: token → its lock fd if it is dead (locked here now), or -1 if it is
	// alive or its owner file is not trove's.
	owners := map[string]int{}
	defer func() {
		for _, fd := range owners {
			if fd >= 0 {
				unix.Close(fd)
			}
		}
	}()
	for _, e := range ents {
		token, ok := strings.CutSuffix(e.Name(), lockSuffix)
		if _, valid := parseToken(token); !ok || !valid || !e.Type().IsRegular() {
			continue
		}
		owners[token] = deadOwner(filepath.Join(dir, e.Name()))
	}
	kept := map[string]bool{} // dead owners with a file left alone
	for _, e := range ents {
		token, pid, ok := spillFileToken(e.Name())
		if !ok || !e.Type().IsRegular() {
			continue
		}
		if fd, has := owners[token]; has && fd < 0 || !has && processExists(pid) {
			continue // alive, or perhaps alive
		}
		path := filepath.Join(dir, e.Name())
		size, proven, err := trovesFile(path)
		switch {
		case err != nil:
			left.Err = errors.Join(left.Err, err)
			kept[token] = true
		case !proven:
			left.Kept++
			kept[token] = true
		default:
			if err := os.Remove(path); err != nil {
				left.Err = errors.Join(left.Err, fmt.Errorf("spill: remove leftover spill file: %w", err))
				kept[token] = true
				continue
			}
			left.Files++
			left.Bytes += size
		}
	}
	for token, fd := range owners {
		if fd < 0 || kept[token] {
			continue // kept: the next sweep finds the same dead owner and tries again
		}
		if err := os.Remove(filepath.Join(dir, token+lockSuffix)); err != nil {
			left.Err = errors.Join(left.Err, fmt.Errorf("spill: remove a dead owner's file: %w", err))
		}
	}
	return left
}

// deadOwner returns an fd holding the lock of the owner file path if its owner is
// gone (the lock was free) and the file is trove's; otherwise -1.
func deadOwner(path string) int {
	fd, err := openRetry(path, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
	if err != nil {
		return -1
	}
	if flockRetry(fd, unix.LOCK_EX|unix.LOCK_NB) != nil { // EWOULDBLOCK: alive
		unix.Close(fd)
		return -1
	}
	var b [len(ownerMagic)]byte
	if n, _ := unix.Pread(fd, b[:], 0); n != len(b) || string(b[:]) != ownerMagic {
		unix.Close(fd)
		return -1
	}
	return fd
}

// trovesFile reports whether the file path begins with a valid object header
// of any format version, and its size.
func trovesFile(path string) (size int64, proven bool, err error) {
	fd, err := openRetry(path, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
	if err != nil {
		return 0, false, fmt.Errorf("spill: open leftover spill file: %w", &os.PathError{Op: "open", Path: path, Err: err})
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return 0, false, fmt.Errorf("spill: stat leftover spill file: %w", &os.PathError{Op: "fstat", Path: path, Err: err})
	}
	// Either version's header proves it: a daemon of an older build may have
	// crashed here (version 1's header is the shorter, 40 bytes). The first
	// header is at 0, or, if the first object is aligned, just before the end
	// of the first page (see dataAlign).
	for _, off := range []int64{0, dataAlign - HeaderSize} {
		var hb [HeaderSize]byte
		n, err := unix.Pread(fd, hb[:], off)
		if err != nil && err != unix.EINTR {
			return 0, false, fmt.Errorf("spill: read leftover spill file: %w", &os.PathError{Op: "read", Path: path, Err: err})
		}
		if n >= v1HeaderSize && isTroveHeader(hb[:n]) {
			return st.Size, true, nil
		}
	}
	return st.Size, false, nil
}

// sweepDefaultDirs sweeps the default spill directories under tmp
// (trove-spill-<pid>-<hex>), skipping those whose lock another sweep or a New
// holds, and removes each that is left empty, if a dead owner's files were in it
// or no process has its PID.
func sweepDefaultDirs(tmp string) Leftovers {
	var left Leftovers
	ents, err := os.ReadDir(tmp)
	if err != nil {
		left.Err = fmt.Errorf("spill: list %s for leftover spill directories: %w", tmp, err)
		return left
	}
	for _, e := range ents {
		name, ok := strings.CutPrefix(e.Name(), defaultDirPrefix)
		if !ok || !e.IsDir() {
			continue
		}
		pid, ok := parseToken("trove-" + name)
		if !ok {
			continue
		}
		dir := filepath.Join(tmp, e.Name())
		dfd, err := lockDir(dir, false)
		if err != nil {
			continue // busy, vanished, or not ours to read
		}
		m := sweepLocked(dir)
		if m.Files > 0 || !processExists(pid) {
			// rmdir removes only an empty directory: a live owner's file keeps it.
			if err := unix.Rmdir(dir); err == nil {
				m.Dirs++
			}
		}
		unix.Close(dfd)
		if errors.Is(m.Err, unix.EACCES) {
			m.Err = nil // another user's directory: theirs to sweep
		}
		left.add(m)
	}
	return left
}

package spill

import (
	"errors"
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// FS is where spill files live: the local file system (OSFS) today, a remote store
// later. It is the whole of the spiller's contact with storage, so a test can wrap
// it to inject faults. Names are paths: a directory from Config.Dirs joined with a
// file name.
type FS interface {
	// Create creates the file name, which must not exist yet, and opens it for
	// appending writes and for reads.
	Create(name string) (File, error)
	// Remove removes the file or empty directory name.
	Remove(name string) error
	// Mkdir creates the directory name, not its parents. If it exists already the
	// error matches fs.ErrExist.
	Mkdir(name string, perm os.FileMode) error
	// Available returns how many bytes a new file in dir could still take, or an
	// error if the backend cannot tell (the spiller then just tries).
	Available(dir string) (int64, error)
}

// File is an open spill file. The spiller writes it from one goroutine, start to
// end (WriteV, and WriteAt for a header behind the end), then reads it from many
// goroutines at once with ReadAt. It never writes a file again once its batch is
// complete, and never calls Close while a ReadAt runs.
type File interface {
	// WriteV appends bufs to the file, in order, and returns how many bytes it
	// wrote; if that is less than their total, err says why (io.ErrShortWrite if
	// the backend made no progress without an error). WriteV may modify bufs (not
	// the bytes they hold). It must not retain bufs or the bytes after it returns:
	// they are the caller's memory, typically the shared-memory arena.
	WriteV(bufs [][]byte) (n int64, err error)
	// WriteAt overwrites len(p) bytes at offset off, all of which WriteV has
	// written before. The spiller uses it for one thing: the header of an object
	// larger than a write window, whose checksum is known only after its data is
	// written (a backend that cannot overwrite may hold back the bytes of a
	// header until then).
	WriteAt(p []byte, off int64) (n int, err error)
	// ReadAt reads len(p) bytes at offset off, as io.ReaderAt.
	ReadAt(p []byte, off int64) (n int, err error)
	// Sync makes the written bytes durable.
	Sync() error
	Close() error
}

// OSFS is the local file system. Its files write with writev(2), straight from
// the caller's buffers, and read with pread(2) straight into them: no byte of
// object data passes through a Go heap buffer.
type OSFS struct{}

var _ FS = OSFS{}

// iovMax is the most buffers one writev(2) takes (IOV_MAX on Linux).
const iovMax = 1024

func (OSFS) Create(name string) (File, error) {
	var fd int
	var err error
	for {
		fd, err = unix.Open(name, unix.O_RDWR|unix.O_CREAT|unix.O_EXCL|unix.O_CLOEXEC, 0o600)
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		return nil, &os.PathError{Op: "create", Path: name, Err: err}
	}
	return &osFile{fd: fd, name: name}, nil
}

func (OSFS) Remove(name string) error                  { return os.Remove(name) }
func (OSFS) Mkdir(name string, perm os.FileMode) error { return os.Mkdir(name, perm) }

func (OSFS) Available(dir string) (int64, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return 0, &os.PathError{Op: "statfs", Path: dir, Err: err}
	}
	// Bavail, not Bfree: the blocks reserved for root are the system's rescue
	// space, and a spiller running as root should not fill them either.
	return int64(st.Bavail) * int64(st.Bsize), nil
}

// osFile is a raw descriptor rather than an *os.File: regular files gain nothing
// from the runtime poller, and x/sys gives us writev. The spiller guarantees that
// Close never races with ReadAt (see Spiller.acquire), so the descriptor cannot be
// reused under a read.
type osFile struct {
	fd   int
	name string
}

func (f *osFile) WriteV(bufs [][]byte) (int64, error) {
	var total int64
	for {
		for len(bufs) > 0 && len(bufs[0]) == 0 {
			bufs = bufs[1:]
		}
		if len(bufs) == 0 {
			return total, nil
		}
		n, err := unix.Writev(f.fd, bufs[:min(len(bufs), iovMax)])
		if err == unix.EINTR {
			continue
		}
		if n > 0 {
			total += int64(n)
			bufs = advance(bufs, n)
		}
		if err != nil {
			return total, &os.PathError{Op: "write", Path: f.name, Err: err}
		}
		if n == 0 {
			return total, &os.PathError{Op: "write", Path: f.name, Err: io.ErrShortWrite}
		}
	}
}

func (f *osFile) WriteAt(p []byte, off int64) (int, error) {
	written := 0
	for written < len(p) {
		n, err := unix.Pwrite(f.fd, p[written:], off+int64(written))
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return written, &os.PathError{Op: "write", Path: f.name, Err: err}
		}
		if n == 0 {
			return written, &os.PathError{Op: "write", Path: f.name, Err: io.ErrShortWrite}
		}
		written += n
	}
	return written, nil
}

// advance drops the first n bytes from bufs.
func advance(bufs [][]byte, n int) [][]byte {
	for n > 0 {
		if n < len(bufs[0]) {
			bufs[0] = bufs[0][n:]
			return bufs
		}
		n -= len(bufs[0])
		bufs = bufs[1:]
	}
	return bufs
}

func (f *osFile) ReadAt(p []byte, off int64) (int, error) {
	read := 0
	for read < len(p) {
		n, err := unix.Pread(f.fd, p[read:], off+int64(read))
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return read, &os.PathError{Op: "read", Path: f.name, Err: err}
		}
		if n == 0 {
			return read, io.EOF
		}
		read += n
	}
	return read, nil
}

func (f *osFile) Sync() error {
	if err := unix.Fdatasync(f.fd); err != nil {
		return &os.PathError{Op: "fdatasync", Path: f.name, Err: err}
	}
	return nil
}

func (f *osFile) Close() error {
	if f.fd < 0 {
		return &os.PathError{Op: "close", Path: f.name, Err: os.ErrClosed}
	}
	err := unix.Close(f.fd)
	f.fd = -1
	if err != nil && !errors.Is(err, unix.EINTR) { // EINTR: Linux has closed the fd anyway
		return &os.PathError{Op: "close", Path: f.name, Err: err}
	}
	return nil
}

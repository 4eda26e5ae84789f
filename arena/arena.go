package arena

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// PrefaultMode says when the arena's pages are made resident.
type PrefaultMode uint8

const (
	// PrefaultLazy populates the arena from the bottom up, one chunk at a time,
	// as allocations first reach into it. Start-up is instant; each byte is
	// faulted once, in bulk, and never again.
	PrefaultLazy PrefaultMode = iota
	// PrefaultEager populates the whole arena in New. Start-up costs about
	// 2 s per GiB on slow-faulting machines; every write afterwards is warm.
	PrefaultEager
)

// DefaultChunk is how far ahead of the highest allocation the lazy mode populates.
const DefaultChunk = 64 << 20

// Options configures an arena. The zero value is valid.
type Options struct {
	Name     string       // the memfd's name, shown in /proc/PID/fd and maps; default "trove-arena"
	Prefault PrefaultMode // default PrefaultLazy
	Chunk    int64        // lazy populate granularity; default DefaultChunk
}

// Arena is one shared-memory segment mapped read-write and read-only.
type Arena struct {
	fd    int
	size  int64
	chunk int64
	rw    []byte // the read-write mapping: the store's writes
	ro    []byte // the read-only mapping: readers' views

	populated atomic.Int64 // [0, populated) is resident; written with popMu held, read without
	popMu     sync.Mutex   // serializes populating

	closed atomic.Bool
}

// New creates an arena of size bytes (rounded up to the OS page size).
func New(size int64, opts Options) (*Arena, error) {
	if size <= 0 {
		return nil, fmt.Errorf("arena: size %d must be positive", size)
	}
	page := int64(unix.Getpagesize())
	size = (size + page - 1) / page * page
	if opts.Name == "" {
		opts.Name = "trove-arena"
	}
	if opts.Chunk <= 0 {
		opts.Chunk = DefaultChunk
	}
	opts.Chunk = (opts.Chunk + page - 1) / page * page

	fd, err := unix.MemfdCreate(opts.Name, unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		return nil, fmt.Errorf("arena: memfd_create: %w", err)
	}
	a := &Arena{fd: fd, size: size, chunk: opts.Chunk}
	fail := func(what string, err error) (*Arena, error) {
		a.unmap()
		unix.Close(fd)
		return nil, fmt.Errorf("arena: %s (%d bytes): %w", what, size, err)
	}
	if err := unix.Ftruncate(fd, size); err != nil {
		return fail("ftruncate", err)
	}
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_ADD_SEALS, unix.F_SEAL_SHRINK|unix.F_SEAL_GROW); err != nil {
		return fail("seal size", err)
	}
	if a.rw, err = unix.Mmap(fd, 0, int(size), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED); err != nil {
		return fail("mmap read-write", err)
	}
	if a.ro, err = unix.Mmap(fd, 0, int(size), unix.PROT_READ, unix.MAP_SHARED); err != nil {
		return fail("mmap read-only", err)
	}
	if opts.Prefault == PrefaultEager {
		if err := a.Prefault(size); err != nil {
			return fail("prefault", err)
		}
	}
	return a, nil
}

// Size returns the arena's size in bytes.
func (a *Arena) Size() int64 { return a.size }

// FD returns the memfd, for passing to other processes. It stays owned by the arena.
func (a *Arena) FD() int { return a.fd }

// Populated returns how many bytes, from offset 0, are resident.
func (a *Arena) Populated() int64 { return a.populated.Load() }

// Writable returns the read-write bytes [off, off+n). The slice is valid until
// Close; its capacity is n, so appends cannot reach a neighbour.
func (a *Arena) Writable(off, n int64) []byte {
	a.check(off, n)
	return a.rw[off : off+n : off+n]
}

// ReadOnly returns the read-only bytes [off, off+n), for views. Writing through the
// slice faults. The slice is valid until Close.
func (a *Arena) ReadOnly(off, n int64) []byte {
	a.check(off, n)
	return a.ro[off : off+n : off+n]
}

func (a *Arena) check(off, n int64) {
	if off < 0 || n < 0 || off+n > a.size {
		panic(fmt.Sprintf("arena: range [%d, %d) outside arena of %d bytes", off, off+n, a.size))
	}
}

// Prefault makes bytes [0, end) resident, rounding up to the chunk size, before the
// caller writes there. It is cheap when they already are: one atomic load.
func (a *Arena) Prefault(end int64) error {
	if end <= a.populated.Load() {
		return nil
	}
	a.popMu.Lock()
	defer a.popMu.Unlock()
	from := a.populated.Load()
	if end <= from {
		return nil
	}
	to := min((end+a.chunk-1)/a.chunk*a.chunk, a.size)
	if err := populate(a.rw[from:to]); err != nil {
		return fmt.Errorf("arena: populate [%d, %d): %w", from, to, err)
	}
	a.populated.Store(to)
	return nil
}

// populate makes b's pages resident without changing their contents.
func populate(b []byte) error {
	if len(b) == 0 {
		return nil
	}
	err := unix.Madvise(b, unix.MADV_POPULATE_WRITE)
	if err == nil {
		return nil
	}
	if !errors.Is(err, unix.EINVAL) {
		return err // ENOMEM and friends: the machine is out of memory
	}
	// Kernels before 5.14 lack MADV_POPULATE_WRITE: touch each page with a write
	// that leaves its contents as they were.
	page := unix.Getpagesize()
	for i := 0; i < len(b); i += page {
		atomic.AddUint32((*uint32)(unsafe.Pointer(&b[i])), 0)
	}
	return nil
}

// Close unmaps the arena and closes the memfd. Every slice obtained from it must
// have been dropped: touching one afterwards faults.
func (a *Arena) Close() error {
	if !a.closed.CompareAndSwap(false, true) {
		return nil
	}
	err := a.unmap()
	if cerr := unix.Close(a.fd); err == nil && cerr != nil {
		err = fmt.Errorf("arena: close memfd: %w", cerr)
	}
	return err
}

func (a *Arena) unmap() error {
	var err error
	for _, m := range []*[]byte{&a.rw, &a.ro} {
		if *m != nil {
			if e := unix.Munmap(*m); e != nil && err == nil {
				err = fmt.Errorf("arena: munmap: %w", e)
			}
			*m = nil
		}
	}
	return err
}

package bpfcount

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"syscall"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/rlimit"
)

// ErrUnavailable is wrapped by Open's error when this machine cannot run the
// counting programs at all (not root, no BPF, no such tracepoint, another
// architecture): a test skips with the message, it does not fail.
var ErrUnavailable = errors.New("eBPF counting unavailable")

// Counts are what the kernel did for one process since it was watched. The
// layout is the BPF programs' map value: six little-endian (host order) uint64.
type Counts struct {
	BytesIn      uint64 // moved from the kernel into the process's memory (read, recvmsg, pread, process_vm_readv, ...)
	BytesOut     uint64 // moved from the process's memory into the kernel (write, sendmsg, pwrite, vmsplice, ...)
	BytesKernel  uint64 // moved within the kernel at the process's request (sendfile, splice, copy_file_range, tee)
	Calls        uint64 // data-moving system calls that moved at least one byte
	FaultsUser   uint64 // page faults taken in user mode (touching a mapped page the first time)
	FaultsKernel uint64 // page faults the kernel took touching the process's memory (copy_to_user into an unmapped page)
}

// Byte offsets of the Counts fields in the map value, for the programs.
const (
	offBytesIn      = 0
	offBytesOut     = 8
	offBytesKernel  = 16
	offCalls        = 24
	offFaultsUser   = 32
	offFaultsKernel = 40
	countsSize      = 48
)

// Bytes is every byte the process's system calls moved, in any direction.
func (c Counts) Bytes() uint64 { return c.BytesIn + c.BytesOut + c.BytesKernel }

// Faults is every page fault, user and kernel mode.
func (c Counts) Faults() uint64 { return c.FaultsUser + c.FaultsKernel }

// Sub returns c - before, field by field: what happened between two reads.
func (c Counts) Sub(before Counts) Counts {
	return Counts{
		BytesIn:      c.BytesIn - before.BytesIn,
		BytesOut:     c.BytesOut - before.BytesOut,
		BytesKernel:  c.BytesKernel - before.BytesKernel,
		Calls:        c.Calls - before.Calls,
		FaultsUser:   c.FaultsUser - before.FaultsUser,
		FaultsKernel: c.FaultsKernel - before.FaultsKernel,
	}
}

// Add returns c + o, field by field.
func (c Counts) Add(o Counts) Counts {
	return Counts{
		BytesIn:      c.BytesIn + o.BytesIn,
		BytesOut:     c.BytesOut + o.BytesOut,
		BytesKernel:  c.BytesKernel + o.BytesKernel,
		Calls:        c.Calls + o.Calls,
		FaultsUser:   c.FaultsUser + o.FaultsUser,
		FaultsKernel: c.FaultsKernel + o.FaultsKernel,
	}
}

func (c Counts) String() string {
	return fmt.Sprintf("%d B in, %d B out, %d B within the kernel in %d calls; %d user and %d kernel page faults",
		c.BytesIn, c.BytesOut, c.BytesKernel, c.Calls, c.FaultsUser, c.FaultsKernel)
}

// maxWatched bounds the processes one Counter watches at once.
const maxWatched = 64

// A Counter is the three programs attached and their maps. It counts from Open
// to Close, for the processes given to Watch. Its methods are safe for
// concurrent use (the maps are the kernel's).
type Counter struct {
	counts *ebpf.Map // tgid (uint32) → Counts
	kinds  *ebpf.Map // system call number → direction (array)
	progs  []*ebpf.Program
	links  []link.Link
}

// Open loads the programs and attaches them. The caller MUST Close the Counter:
// until then every system call on the machine runs its exit program.
func Open() (_ *Counter, err error) {
	if origAXOffset < 0 {
		return nil, fmt.Errorf("%w: the system call number's place in struct pt_regs is known only for x86-64, not %s", ErrUnavailable, runtime.GOARCH)
	}
	// Kernels before 5.11 charge BPF memory to RLIMIT_MEMLOCK; later ones ignore
	// it. Failing to raise it matters only if creating the maps fails then.
	memlockErr := rlimit.RemoveMemlock()
	c := &Counter{}
	defer func() {
		if err != nil {
			c.Close()
		}
	}()
	if c.counts, err = ebpf.NewMap(&ebpf.MapSpec{
		Name: "trove_counts", Type: ebpf.Hash, KeySize: 4, ValueSize: countsSize, MaxEntries: maxWatched,
	}); err != nil {
		if memlockErr != nil {
			err = fmt.Errorf("%w (raising RLIMIT_MEMLOCK failed too: %v)", err, memlockErr)
		}
		return nil, unavailable("create the counts map", err)
	}
	if c.kinds, err = ebpf.NewMap(&ebpf.MapSpec{
		Name: "trove_kinds", Type: ebpf.Array, KeySize: 4, ValueSize: 4, MaxEntries: maxSyscall,
	}); err != nil {
		return nil, unavailable("create the system call map", err)
	}
	for nr, dir := range dataSyscalls {
		if err := c.kinds.Put(uint32(nr), uint32(dir)); err != nil {
			return nil, fmt.Errorf("bpfcount: fill the system call map (%d): %w", nr, err)
		}
	}
	attach := []struct {
		tracepoint string
		name       string // the program's, as bpftool lists it: at most 15 bytes
		insns      asm.Instructions
	}{
		{"sys_exit", "trove_sys_exit", sysExitProgram(c.counts.FD(), c.kinds.FD())},
		{"page_fault_user", "trove_pf_user", faultProgram(c.counts.FD(), offFaultsUser)},
		{"page_fault_kernel", "trove_pf_kernel", faultProgram(c.counts.FD(), offFaultsKernel)},
	}
	for _, a := range attach {
		prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
			Name:         a.name,
			Type:         ebpf.RawTracepoint,
			Instructions: a.insns,
			// bpf_probe_read_kernel is offered to GPL-compatible programs only.
			License: "Dual MIT/GPL",
		})
		if err != nil {
			return nil, unavailable("load the "+a.tracepoint+" program", err)
		}
		c.progs = append(c.progs, prog)
		l, err := link.AttachRawTracepoint(link.RawTracepointOptions{Name: a.tracepoint, Program: prog})
		if err != nil {
			return nil, unavailable("attach to the "+a.tracepoint+" raw tracepoint", err)
		}
		c.links = append(c.links, l)
	}
	return c, nil
}

// unavailable wraps err with ErrUnavailable where it means this machine cannot
// do it (permissions, a kernel without the feature), and leaves it a plain error
// where the kernel rejected the programs themselves (a bug here, to be fixed).
func unavailable(what string, err error) error {
	var ve *ebpf.VerifierError
	if errors.As(err, &ve) {
		return fmt.Errorf("bpfcount: %s: the kernel's verifier rejected it: %w", what, err)
	}
	switch {
	case errors.Is(err, os.ErrPermission), errors.Is(err, syscall.EPERM), errors.Is(err, syscall.EACCES):
		return fmt.Errorf("%w: %s: %v (run as root, or with CAP_BPF and CAP_PERFMON)", ErrUnavailable, what, err)
	case errors.Is(err, ebpf.ErrNotSupported), errors.Is(err, syscall.ENOSYS), errors.Is(err, syscall.ENOENT),
		errors.Is(err, syscall.EOPNOTSUPP):
		return fmt.Errorf("%w: %s: %v (the kernel lacks BPF raw tracepoints or this tracepoint)", ErrUnavailable, what, err)
	}
	return fmt.Errorf("bpfcount: %s: %w", what, err)
}

// Watch starts counting for the processes pids (as os.Getpid returns, or
// exec.Cmd.Process.Pid), from zero. Watching a process already watched resets
// nothing. At most 64 processes are watched at once.
func (c *Counter) Watch(pids ...int) error {
	for _, pid := range pids {
		if pid <= 0 || pid > 1<<31-1 {
			return fmt.Errorf("bpfcount: watch process %d: not a process ID", pid)
		}
		err := c.counts.Update(uint32(pid), Counts{}, ebpf.UpdateNoExist)
		if err != nil && !errors.Is(err, ebpf.ErrKeyExist) {
			return fmt.Errorf("bpfcount: watch process %d (at most %d at once): %w", pid, maxWatched, err)
		}
	}
	return nil
}

// Read returns pid's counts since Watch. Every system call of pid that has
// returned, and every fault it has taken, is in them.
func (c *Counter) Read(pid int) (Counts, error) {
	var v Counts
	if err := c.counts.Lookup(uint32(pid), &v); err != nil {
		if errors.Is(err, ebpf.ErrKeyNotExist) {
			return Counts{}, fmt.Errorf("bpfcount: process %d is not watched; call Watch first", pid)
		}
		return Counts{}, fmt.Errorf("bpfcount: read the counts of process %d: %w", pid, err)
	}
	return v, nil
}

// Sum returns the counts of pids added up.
func (c *Counter) Sum(pids ...int) (Counts, error) {
	var sum Counts
	for _, pid := range pids {
		v, err := c.Read(pid)
		if err != nil {
			return Counts{}, err
		}
		sum = sum.Add(v)
	}
	return sum, nil
}

// WaitQuiet returns once no count of pids has changed for quiet, or with ctx's
// error. A process that answered a request may still be inside the system call
// that sent the answer when the requester already has it; its exit, and so its
// bytes, are counted a moment later. Reading after WaitQuiet includes them.
func (c *Counter) WaitQuiet(ctx context.Context, quiet time.Duration, pids ...int) error {
	last, err := c.Sum(pids...)
	if err != nil {
		return err
	}
	t := time.NewTicker(quiet)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return fmt.Errorf("bpfcount: processes %v still busy: %w", pids, ctx.Err())
		case <-t.C:
		}
		now, err := c.Sum(pids...)
		if err != nil {
			return err
		}
		if now == last {
			return nil
		}
		last = now
	}
}

// Close detaches the programs and frees the maps. Safe to call more than once.
func (c *Counter) Close() error {
	var errs []error
	for _, l := range c.links {
		errs = append(errs, l.Close())
	}
	for _, p := range c.progs {
		errs = append(errs, p.Close())
	}
	for _, m := range []*ebpf.Map{c.counts, c.kinds} {
		if m != nil {
			errs = append(errs, m.Close())
		}
	}
	c.links, c.progs, c.counts, c.kinds = nil, nil, nil, nil
	return errors.Join(errs...)
}

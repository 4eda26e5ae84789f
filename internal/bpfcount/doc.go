// Package bpfcount counts, with eBPF, what the kernel does for a chosen set of
// processes: the bytes their system calls move between user memory and the
// kernel, and their page faults. It exists to prove trove's zero-copy claims by
// counting, not only by timing: a Get of a 64 MiB object through the daemon moves a
// few hundred bytes through system calls and maps its pages (about one fault per
// 64 KiB, the kernel's fault-around window), where a Redis GET copies the value
// through a socket twice.
//
// How: three BPF programs, assembled in Go with cilium/ebpf's asm package (so
// nothing needs a C compiler or clang), attached to raw tracepoints, which need
// neither tracefs nor kprobes:
//
//   - sys_exit (args: struct pt_regs *regs, long ret): for a watched process and a
//     data-moving system call (see the table in syscalls_amd64.go) that returned
//     ret > 0, ret bytes are added to the counter of the call's direction. The
//     call's number is read from regs->orig_ax with bpf_probe_read_kernel.
//   - page_fault_user and page_fault_kernel (x86's exceptions tracepoints): one
//     fault added to the watched process's user or kernel fault counter.
//
// Processes are watched by thread-group ID (a process ID, as os.Getpid returns): a
// hash map from tgid to its Counts, which userspace fills with zeroes (Watch) and
// the programs update with atomic adds. Every other process costs one hash lookup
// per system call while a Counter is open.
//
// What is not counted, so a claim built on these figures must not rest on it:
// bytes moved by io_uring (no system call exit carries them), by
// recvmmsg/sendmmsg (they return a message count, not bytes), by ioctl-based
// interfaces, and any copy the kernel makes without a system call of the process
// (a pipe's or socket's internal buffering is counted once, at the call). Counts
// are exact for what they count: every data-moving call returns, and its exit is
// counted before the calling thread sees its result (another process may see its
// effect first, which is why Counter.WaitQuiet exists).
//
// Invariants:
//   - A Counts value only grows while its process is watched; the figures of an
//     operation are the difference of two reads (Counts.Sub).
//   - Open either attaches all three programs or none: a Counter that exists
//     counts everything it says it counts.
//
// Open needs root (CAP_BPF and CAP_PERFMON) and an x86-64 kernel with raw
// tracepoints and bpf_probe_read_kernel (5.5+); where either is missing it returns
// an error wrapping ErrUnavailable that says why, so tests skip with that reason.
// No BTF is needed: the programs read only the tracepoints' arguments and one
// field of struct pt_regs at its fixed offset.
package bpfcount

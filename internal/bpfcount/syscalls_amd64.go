package bpfcount

import "golang.org/x/sys/unix"

// origAXOffset is where struct pt_regs keeps the system call's number on x86-64
// (orig_ax, the 16th of its 8-byte fields; see arch/x86/include/asm/ptrace.h).
// The sys_exit tracepoint reads it there too (syscall_get_nr).
const origAXOffset = 15 * 8

// dataSyscalls says which system calls move bytes, in which direction, their
// return value being the number of bytes moved.
var dataSyscalls = map[int]direction{
	// Kernel → user memory.
	unix.SYS_READ:             dirIn,
	unix.SYS_READV:            dirIn,
	unix.SYS_PREAD64:          dirIn,
	unix.SYS_PREADV:           dirIn,
	unix.SYS_PREADV2:          dirIn,
	unix.SYS_RECVFROM:         dirIn,
	unix.SYS_RECVMSG:          dirIn,
	unix.SYS_PROCESS_VM_READV: dirIn, // from another process's memory into ours
	unix.SYS_GETRANDOM:        dirIn,
	// User memory → kernel.
	unix.SYS_WRITE:             dirOut,
	unix.SYS_WRITEV:            dirOut,
	unix.SYS_PWRITE64:          dirOut,
	unix.SYS_PWRITEV:           dirOut,
	unix.SYS_PWRITEV2:          dirOut,
	unix.SYS_SENDTO:            dirOut,
	unix.SYS_SENDMSG:           dirOut,
	unix.SYS_PROCESS_VM_WRITEV: dirOut, // from our memory into another process's
	unix.SYS_VMSPLICE:          dirOut, // user pages into a pipe
	// Within the kernel, between files, pipes and sockets.
	unix.SYS_SENDFILE:        dirKernel,
	unix.SYS_SPLICE:          dirKernel,
	unix.SYS_TEE:             dirKernel,
	unix.SYS_COPY_FILE_RANGE: dirKernel,
}

//go:build !amd64

package bpfcount

// The sys_exit program reads the system call's number from struct pt_regs, whose
// layout is per architecture; only x86-64's is written down (syscalls_amd64.go),
// and the page-fault tracepoints are x86's. Open reports ErrUnavailable elsewhere.
const origAXOffset = -1

var dataSyscalls = map[int]direction{}

package bpfcount

import "github.com/cilium/ebpf/asm"

// direction is a data-moving system call's entry in the kinds map; 0 (the
// array's zero value) is every other call.
type direction uint32

const (
	dirIn     direction = 1 + iota // kernel → user memory
	dirOut                         // user memory → kernel
	dirKernel                      // within the kernel
)

// maxSyscall bounds the system call numbers the kinds map covers (x86-64 has
// fewer than 470). A larger number (an x32 call has bit 30 set; -1 is no call)
// is not a data call.
const maxSyscall = 512

// Stack slots of the programs (below the frame pointer R10).
const (
	slotTgid = -4  // uint32: the map key
	slotNr   = -16 // uint64: orig_ax, read from pt_regs
	slotKey  = -20 // uint32: the kinds map key
)

// lookupWatched emits: R0 = counts[current tgid], or a jump to "out" if the
// current process is not watched. Clobbers R1–R5.
func lookupWatched(countsFD int) asm.Instructions {
	return asm.Instructions{
		asm.FnGetCurrentPidTgid.Call(), // tgid << 32 | thread id
		asm.RSh.Imm(asm.R0, 32),
		asm.StoreMem(asm.RFP, slotTgid, asm.R0, asm.Word),
		asm.LoadMapPtr(asm.R1, countsFD),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, slotTgid),
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(asm.R0, 0, "out"),
	}
}

// sysExitProgram is the sys_exit raw tracepoint's program. Its context is the
// tracepoint's arguments as uint64: args[0] struct pt_regs *regs, args[1] long ret.
// For a watched process whose call moved ret > 0 bytes, it adds ret to the
// counter of the call's direction and one to Calls.
func sysExitProgram(countsFD, kindsFD int) asm.Instructions {
	insns := asm.Instructions{asm.Mov.Reg(asm.R6, asm.R1)} // R6 = ctx, kept across calls
	insns = append(insns, lookupWatched(countsFD)...)
	return append(insns,
		asm.Mov.Reg(asm.R7, asm.R0),               // R7 = *Counts
		asm.LoadMem(asm.R8, asm.R6, 8, asm.DWord), // R8 = ret
		asm.JSLE.Imm(asm.R8, 0, "out"),            // an error, or nothing moved
		asm.LoadMem(asm.R3, asm.R6, 0, asm.DWord), // R3 = regs
		asm.Add.Imm(asm.R3, origAXOffset),         // &regs->orig_ax
		asm.Mov.Reg(asm.R1, asm.RFP),
		asm.Add.Imm(asm.R1, slotNr),
		asm.Mov.Imm(asm.R2, 8),
		asm.FnProbeReadKernel.Call(), // *(fp+slotNr) = regs->orig_ax
		asm.JNE.Imm(asm.R0, 0, "out"),
		asm.LoadMem(asm.R1, asm.RFP, slotNr, asm.DWord),
		asm.JGE.Imm(asm.R1, maxSyscall, "out"), // unsigned: also -1
		asm.StoreMem(asm.RFP, slotKey, asm.R1, asm.Word),
		asm.LoadMapPtr(asm.R1, kindsFD),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, slotKey),
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(asm.R0, 0, "out"),
		asm.LoadMem(asm.R1, asm.R0, 0, asm.Word), // R1 = direction
		asm.JEq.Imm(asm.R1, int32(dirIn), "in"),
		asm.JEq.Imm(asm.R1, int32(dirOut), "outbound"),
		asm.JEq.Imm(asm.R1, int32(dirKernel), "kernel"),
		asm.Ja.Label("out"), // not a data call
		asm.AddAtomic.Mem(asm.R7, asm.R8, asm.DWord, offBytesIn).WithSymbol("in"),
		asm.Ja.Label("calls"),
		asm.AddAtomic.Mem(asm.R7, asm.R8, asm.DWord, offBytesOut).WithSymbol("outbound"),
		asm.Ja.Label("calls"),
		asm.AddAtomic.Mem(asm.R7, asm.R8, asm.DWord, offBytesKernel).WithSymbol("kernel"),
		asm.Mov.Imm(asm.R1, 1).WithSymbol("calls"),
		asm.AddAtomic.Mem(asm.R7, asm.R1, asm.DWord, offCalls),
		asm.Mov.Imm(asm.R0, 0).WithSymbol("out"),
		asm.Return(),
	)
}

// faultProgram is a page-fault raw tracepoint's program: for a watched process,
// one added to the counter at byte offset off of its Counts.
func faultProgram(countsFD int, off int16) asm.Instructions {
	insns := lookupWatched(countsFD)
	return append(insns,
		asm.Mov.Imm(asm.R1, 1),
		asm.AddAtomic.Mem(asm.R0, asm.R1, asm.DWord, off),
		asm.Mov.Imm(asm.R0, 0).WithSymbol("out"),
		asm.Return(),
	)
}

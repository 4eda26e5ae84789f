package netns

import (
	"errors"
	"fmt"
	"math"
	"net"
	"os"
	"syscall"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/rlimit"
)

// The loss programs. One program per direction on the host-side veth: TCX
// ingress sees what the host sends, TCX egress what it receives. Each draws
// bpf_get_prandom_u32() per packet and drops the packet when the draw is below
// the threshold in the shared array map (share × 2^32, held as a uint64 so
// that a share of 1 drops everything), adding one to its direction's counter.

// Keys of the drops map.
const (
	dropsOut = 0 // packets the host sent that were dropped (TCX ingress)
	dropsIn  = 1 // packets to the host that were dropped (TCX egress)
)

// TCX verdicts (include/uapi/linux/bpf.h).
const (
	tcxNext = -1
	tcxDrop = 2
)

type lossProgs struct {
	threshold *ebpf.Map // key 0 → uint64
	drops     *ebpf.Map // dropsOut, dropsIn → uint64
	progs     []*ebpf.Program
	links     []link.Link
}

func (l *lossProgs) close() error {
	var errs []error
	for _, lk := range l.links {
		errs = append(errs, lk.Close())
	}
	for _, p := range l.progs {
		errs = append(errs, p.Close())
	}
	errs = append(errs, l.threshold.Close(), l.drops.Close())
	return errors.Join(errs...)
}

// lossProgram drops a packet with the probability in threshold's value,
// counting it in drops at key dir.
func lossProgram(thresholdFD, dropsFD int, dir int32) asm.Instructions {
	const slotKey = -4
	return asm.Instructions{
		asm.StoreImm(asm.RFP, slotKey, 0, asm.Word),
		asm.LoadMapPtr(asm.R1, thresholdFD),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, slotKey),
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(asm.R0, 0, "pass"),
		asm.LoadMem(asm.R6, asm.R0, 0, asm.DWord), // R6 = threshold, kept across the call
		asm.JEq.Imm(asm.R6, 0, "pass"),
		asm.FnGetPrandomU32.Call(),
		asm.JGE.Reg(asm.R0, asm.R6, "pass"), // unsigned, 64-bit: a threshold of 2^32 drops all
		asm.StoreImm(asm.RFP, slotKey, int64(dir), asm.Word),
		asm.LoadMapPtr(asm.R1, dropsFD),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, slotKey),
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(asm.R0, 0, "drop"),
		asm.Mov.Imm(asm.R1, 1),
		asm.AddAtomic.Mem(asm.R0, asm.R1, asm.DWord, 0),
		asm.Mov.Imm(asm.R0, tcxDrop).WithSymbol("drop"),
		asm.Return(),
		asm.Mov.Imm(asm.R0, tcxNext).WithSymbol("pass"),
		asm.Return(),
	}
}

// SetLoss drops share (0 to 1) of h's packets in each direction, at random,
// from now on; 0 detaches the programs. The first call loads and attaches
// them; later ones change the share in place, keeping the counts.
func (h *Host) SetLoss(share float64) error {
	if share < 0 || share > 1 || math.IsNaN(share) {
		return fmt.Errorf("netns: loss %v on host %d: want a share from 0 to 1 (0.05 drops 5%%)", share, h.Index)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if share == 0 {
		if h.loss == nil {
			return nil
		}
		err := h.loss.close()
		h.loss = nil
		if err != nil {
			return fmt.Errorf("netns: detach host %d's loss programs: %w", h.Index, err)
		}
		return nil
	}
	if h.loss == nil {
		l, err := attachLoss(h.Veth)
		if err != nil {
			return fmt.Errorf("netns: loss on host %d: %w", h.Index, err)
		}
		h.loss = l
	}
	thr := uint64(share * (1 << 32))
	if err := h.loss.threshold.Put(uint32(0), thr); err != nil {
		return fmt.Errorf("netns: set host %d's loss share: %w", h.Index, err)
	}
	return nil
}

// Drops are the packets a host's loss programs dropped since they were
// attached: Out of those it sent, In of those sent to it.
type Drops struct{ Out, In uint64 }

// Drops reads h's drop counters; zero when no loss is set.
func (h *Host) Drops() (Drops, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.loss == nil {
		return Drops{}, nil
	}
	var d Drops
	if err := h.loss.drops.Lookup(uint32(dropsOut), &d.Out); err != nil {
		return d, fmt.Errorf("netns: read host %d's drops: %w", h.Index, err)
	}
	if err := h.loss.drops.Lookup(uint32(dropsIn), &d.In); err != nil {
		return d, fmt.Errorf("netns: read host %d's drops: %w", h.Index, err)
	}
	return d, nil
}

func attachLoss(veth string) (_ *lossProgs, err error) {
	ifc, err := net.InterfaceByName(veth)
	if err != nil {
		return nil, fmt.Errorf("find %s: %w", veth, err)
	}
	memlockErr := rlimit.RemoveMemlock()
	l := &lossProgs{}
	defer func() {
		if err != nil {
			l.close()
		}
	}()
	if l.threshold, err = ebpf.NewMap(&ebpf.MapSpec{Name: "tnc_loss_thr", Type: ebpf.Array, KeySize: 4, ValueSize: 8, MaxEntries: 1}); err != nil {
		if memlockErr != nil {
			err = fmt.Errorf("%w (raising RLIMIT_MEMLOCK failed too: %v)", err, memlockErr)
		}
		return nil, bpfErr("create the threshold map", err)
	}
	if l.drops, err = ebpf.NewMap(&ebpf.MapSpec{Name: "tnc_loss_drops", Type: ebpf.Array, KeySize: 4, ValueSize: 8, MaxEntries: 2}); err != nil {
		return nil, bpfErr("create the drops map", err)
	}
	for _, a := range []struct {
		name   string
		attach ebpf.AttachType
		dir    int32
	}{{"tnc_loss_out", ebpf.AttachTCXIngress, dropsOut}, {"tnc_loss_in", ebpf.AttachTCXEgress, dropsIn}} {
		prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
			Name: a.name, Type: ebpf.SchedCLS, Instructions: lossProgram(l.threshold.FD(), l.drops.FD(), a.dir),
			License: "Dual MIT/GPL",
		})
		if err != nil {
			return nil, bpfErr("load the "+a.name+" program", err)
		}
		l.progs = append(l.progs, prog)
		lk, err := link.AttachTCX(link.TCXOptions{Interface: ifc.Index, Program: prog, Attach: a.attach})
		if err != nil {
			return nil, bpfErr("attach "+a.name+" to "+veth+" (TCX needs Linux 6.6)", err)
		}
		l.links = append(l.links, lk)
	}
	return l, nil
}

func bpfErr(what string, err error) error {
	var ve *ebpf.VerifierError
	switch {
	case errors.As(err, &ve):
		return fmt.Errorf("%s: the kernel's verifier rejected it: %w", what, err)
	case errors.Is(err, os.ErrPermission), errors.Is(err, syscall.EPERM):
		return fmt.Errorf("%w: %s: %v (run as root, or with CAP_BPF and CAP_NET_ADMIN)", ErrUnavailable, what, err)
	case errors.Is(err, ebpf.ErrNotSupported), errors.Is(err, syscall.EINVAL), errors.Is(err, syscall.EOPNOTSUPP):
		return fmt.Errorf("%w: %s: %v", ErrUnavailable, what, err)
	}
	return fmt.Errorf("%s: %w", what, err)
}

package netns

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Names and addresses this package creates; Cleanup removes what matches them.
const (
	NamespacePrefix = "trove-nc-"
	VethPrefix      = "tnc-"
	Bridge          = "trovebr0"
	// Subnet holds every host's address: host i is 10.77.0.<i+1>.
	Subnet = "10.77.0.0/24"
	// MaxHosts bounds a Net: the /24 less the network and broadcast addresses.
	MaxHosts = 253
	// LockPath is the file whose exclusive flock a Net holds for its life.
	LockPath = "/tmp/trove-netcluster.lock"
)

// ErrUnavailable is wrapped by the error of Available and New when this
// machine cannot make namespaces (not root, no ip or tc).
var ErrUnavailable = errors.New("network namespaces unavailable")

// Available says whether New can work here: nil, or an error wrapping
// ErrUnavailable that says why in one line.
func Available() error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("%w: not root (uid %d): namespaces, veths and qdiscs need CAP_NET_ADMIN and CAP_SYS_ADMIN", ErrUnavailable, os.Geteuid())
	}
	for _, tool := range []string{"ip", "tc"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("%w: %s(8) not found on PATH (Debian: apt-get install iproute2)", ErrUnavailable, tool)
		}
	}
	return nil
}

// Config is a Net's shape.
type Config struct {
	Hosts int
	// Rate caps each direction of every host's link, in tc's syntax ("200mbit",
	// "1gbit"); "" leaves the links uncapped.
	Rate string
	// Log, if set, is called with each command run.
	Log func(cmd string)
}

// Host is one namespace.
type Host struct {
	Index     int
	Namespace string // trove-nc-<i>
	Veth      string // the host-side veth on the bridge, tnc-<i>
	IP        string // 10.77.0.<i+1>

	net *Net
	// mu guards loss, the host's attached loss programs (nil: none).
	mu   sync.Mutex
	loss *lossProgs
}

// Net is a bridge and its hosts. Its methods are safe for concurrent use.
type Net struct {
	Hosts []*Host
	cfg   Config
	lock  *os.File

	closeOnce sync.Once
	closeErr  error
}

// New creates cfg.Hosts namespaces on a fresh bridge. It first removes any
// leftovers of an earlier run (Cleanup), under the lock. The caller MUST Close
// the Net, also on failure paths and signals: until then the namespaces, their
// links and the lock exist.
func New(ctx context.Context, cfg Config) (_ *Net, err error) {
	if err := Available(); err != nil {
		return nil, err
	}
	if cfg.Hosts < 1 || cfg.Hosts > MaxHosts {
		return nil, fmt.Errorf("netns: %d hosts: want 1 to %d", cfg.Hosts, MaxHosts)
	}
	lock, err := acquireLock(ctx)
	if err != nil {
		return nil, err
	}
	n := &Net{cfg: cfg, lock: lock}
	defer func() {
		if err != nil {
			n.Close()
		}
	}()
	if err := cleanup(ctx, cfg.Log); err != nil {
		return nil, err
	}
	if err := n.run(ctx, "ip", "link", "add", Bridge, "type", "bridge"); err != nil {
		if strings.Contains(err.Error(), "Operation not supported") || strings.Contains(err.Error(), "Unknown device type") {
			return nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
		}
		return nil, err
	}
	if err := n.run(ctx, "ip", "link", "set", Bridge, "up"); err != nil {
		return nil, err
	}
	for i := range cfg.Hosts {
		h := &Host{Index: i, Namespace: NamespacePrefix + strconv.Itoa(i), Veth: VethPrefix + strconv.Itoa(i),
			IP: "10.77.0." + strconv.Itoa(i+1), net: n}
		n.Hosts = append(n.Hosts, h)
		if err := n.addHost(ctx, h); err != nil {
			return nil, fmt.Errorf("netns: host %d: %w", i, err)
		}
	}
	return n, nil
}

func (n *Net) addHost(ctx context.Context, h *Host) error {
	steps := [][]string{
		{"ip", "netns", "add", h.Namespace},
		{"ip", "link", "add", h.Veth, "type", "veth", "peer", "name", "eth0", "netns", h.Namespace},
		{"ip", "link", "set", h.Veth, "master", Bridge, "up"},
		{"ip", "-n", h.Namespace, "addr", "add", h.IP + "/24", "dev", "eth0"},
		{"ip", "-n", h.Namespace, "link", "set", "eth0", "up"},
		{"ip", "-n", h.Namespace, "link", "set", "lo", "up"},
	}
	for _, s := range steps {
		if err := n.run(ctx, s...); err != nil {
			return err
		}
	}
	if n.cfg.Rate != "" {
		return h.shape(ctx, "add", n.cfg.Rate)
	}
	return nil
}

// tbfArgs are a tbf qdisc's parameters for rate: a bucket of ~10 ms of the
// rate (at least 64 KiB, so one GSO super-packet fits) and a queue of 50 ms.
func tbfArgs(rate string) ([]string, error) {
	bps, err := ParseRate(rate)
	if err != nil {
		return nil, err
	}
	burst := max(bps/8/100, 64<<10)
	return []string{"root", "tbf", "rate", rate, "burst", strconv.FormatInt(burst, 10), "latency", "50ms"}, nil
}

// shape adds or changes the tbf on both sides of h's link.
func (h *Host) shape(ctx context.Context, verb, rate string) error {
	args, err := tbfArgs(rate)
	if err != nil {
		return err
	}
	if err := h.net.run(ctx, append([]string{"tc", "qdisc", verb, "dev", h.Veth}, args...)...); err != nil {
		return err
	}
	return h.net.run(ctx, append([]string{"tc", "-n", h.Namespace, "qdisc", verb, "dev", "eth0"}, args...)...)
}

// SetRate changes h's link rate, both directions ("50mbit"): a slow node.
// The Net must have been made with a Rate.
func (h *Host) SetRate(ctx context.Context, rate string) error {
	if h.net.cfg.Rate == "" {
		return fmt.Errorf("netns: slow host %d: the net was made without -rate, so its links have no tbf to change", h.Index)
	}
	return h.shape(ctx, "change", rate)
}

// Partition cuts h's link (its host-side veth down: nothing in or out) until
// Heal.
func (h *Host) Partition(ctx context.Context) error {
	return h.net.run(ctx, "ip", "link", "set", h.Veth, "down")
}

// Heal undoes Partition.
func (h *Host) Heal(ctx context.Context) error {
	return h.net.run(ctx, "ip", "link", "set", h.Veth, "up")
}

// LinkCounters are a host's link counters, seen from the host: Out is what it
// sent (the host-side veth's rx), In what it received (its tx).
type LinkCounters struct {
	OutBytes, InBytes     uint64
	OutPackets, InPackets uint64
}

// Counters reads h's link counters from /sys/class/net/<veth>/statistics.
func (h *Host) Counters() (LinkCounters, error) {
	var c LinkCounters
	for _, f := range []struct {
		name string
		dst  *uint64
	}{{"rx_bytes", &c.OutBytes}, {"tx_bytes", &c.InBytes}, {"rx_packets", &c.OutPackets}, {"tx_packets", &c.InPackets}} {
		b, err := os.ReadFile("/sys/class/net/" + h.Veth + "/statistics/" + f.name)
		if err != nil {
			return c, fmt.Errorf("netns: read host %d's link counters: %w", h.Index, err)
		}
		if *f.dst, err = strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64); err != nil {
			return c, fmt.Errorf("netns: host %d's %s: %w", h.Index, f.name, err)
		}
	}
	return c, nil
}

// Command returns a command that runs name with args inside h's namespace
// (through `ip netns exec`, which execs it: the process's PID is the
// command's own).
func (h *Host) Command(name string, args ...string) *exec.Cmd {
	return exec.Command("ip", append([]string{"netns", "exec", h.Namespace, name}, args...)...)
}

// DialTCP connects to addr (such as 127.0.0.1:9464, the host's own loopback)
// from inside h's namespace. The conn lives in that namespace; the calling
// process stays where it was.
func (h *Host) DialTCP(ctx context.Context, addr string) (net.Conn, error) {
	var c net.Conn
	err := h.Do(func() (err error) {
		var d net.Dialer
		c, err = d.DialContext(ctx, "tcp", addr)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("netns: dial %s in %s: %w", addr, h.Namespace, err)
	}
	return c, nil
}

// ListenTCP listens on addr inside h's namespace.
func (h *Host) ListenTCP(addr string) (net.Listener, error) {
	var l net.Listener
	err := h.Do(func() (err error) {
		l, err = net.Listen("tcp", addr)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("netns: listen on %s in %s: %w", addr, h.Namespace, err)
	}
	return l, nil
}

// Do runs f on an OS thread that has entered h's network namespace, and
// returns its error. Sockets f creates belong to that namespace for their
// whole life, wherever they are used afterwards. f must not start goroutines
// that create sockets (they run on other threads).
func (h *Host) Do(f func() error) error {
	ch := make(chan error, 1)
	go func() {
		// If the thread cannot go back to its namespace, it stays locked, and
		// the runtime ends it with the goroutine rather than reuse it.
		runtime.LockOSThread()
		ch <- h.doLocked(f)
	}()
	return <-ch
}

func (h *Host) doLocked(f func() error) error {
	orig, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("open this thread's namespace: %w", err)
	}
	defer orig.Close()
	target, err := os.Open("/run/netns/" + h.Namespace)
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("open namespace %s: %w", h.Namespace, err)
	}
	defer target.Close()
	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("enter namespace %s: %w", h.Namespace, err)
	}
	ferr := f()
	if unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET) == nil {
		runtime.UnlockOSThread()
	}
	return ferr
}

// Close detaches every loss program, removes the hosts and the bridge, and
// releases the lock. It returns the first error; what it could remove is gone
// either way. Safe to call more than once and concurrently.
func (n *Net) Close() error {
	n.closeOnce.Do(func() {
		var errs []error
		for _, h := range n.Hosts {
			errs = append(errs, h.SetLoss(0))
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		errs = append(errs, cleanup(ctx, n.cfg.Log))
		if n.lock != nil {
			n.lock.Close() // releases the flock
		}
		n.closeErr = errors.Join(errs...)
	})
	return n.closeErr
}

// Cleanup removes every namespace, veth and bridge of this package's names,
// left by a run that could not tear down (killed with SIGKILL). It takes the
// lock, so it waits for a Net in use to be closed.
func Cleanup(ctx context.Context, log func(string)) error {
	if err := Available(); err != nil {
		return err
	}
	lock, err := acquireLock(ctx)
	if err != nil {
		return err
	}
	defer lock.Close()
	return cleanup(ctx, log)
}

func cleanup(ctx context.Context, log func(string)) error {
	var errs []error
	// Namespaces first: deleting one deletes its end of each veth, and so the
	// pair; then whatever links are left (the bridge, a veth whose namespace
	// was never made).
	for pass := range 2 {
		left, err := Leftovers()
		if err != nil {
			return err
		}
		for _, name := range left {
			isNS := strings.HasPrefix(name, NamespacePrefix)
			switch {
			case pass == 0 && isNS:
				errs = append(errs, killIn(ctx, log, name), runCmd(ctx, log, "ip", "netns", "del", name))
			case pass == 1 && !isNS:
				// The kernel destroys a deleted namespace's links asynchronously:
				// one may vanish between the listing and this command.
				if err := runCmd(ctx, log, "ip", "link", "del", name); err != nil && !strings.Contains(err.Error(), "Cannot find device") {
					errs = append(errs, err)
				}
			}
		}
	}
	var left []string
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		var err error
		if left, err = Leftovers(); err != nil {
			return err
		}
		if len(left) == 0 || time.Now().After(deadline) {
			break
		}
	}
	if len(left) > 0 {
		errs = append(errs, fmt.Errorf("netns: left after cleanup: %s", strings.Join(left, ", ")))
	}
	return errors.Join(errs...)
}

// killIn sends SIGKILL to every process left in namespace name (the troveds
// of a run that was itself killed), by the PIDs `ip netns pids` lists, and
// waits for them to go: a namespace with a process in it outlives its deletion.
func killIn(ctx context.Context, log func(string), name string) error {
	out, err := exec.CommandContext(ctx, "ip", "netns", "pids", name).Output()
	if err != nil {
		return fmt.Errorf("ip netns pids %s: %w", name, err)
	}
	var pids []int
	for _, f := range strings.Fields(string(out)) {
		pid, err := strconv.Atoi(f)
		if err != nil || pid <= 1 {
			continue
		}
		if log != nil {
			log(fmt.Sprintf("kill -9 %d (left in %s)", pid, name))
		}
		if err := syscall.Kill(pid, syscall.SIGKILL); err == nil {
			pids = append(pids, pid)
		}
	}
	for deadline := time.Now().Add(10 * time.Second); len(pids) > 0 && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		pids = slices.DeleteFunc(pids, func(pid int) bool { return syscall.Kill(pid, 0) != nil })
	}
	if len(pids) > 0 {
		return fmt.Errorf("netns: processes %v in %s did not exit after SIGKILL", pids, name)
	}
	return nil
}

// Leftovers lists the namespaces, veths and bridges of this package's names
// that exist now: empty after a Close or a Cleanup.
func Leftovers() ([]string, error) {
	var out []string
	ents, err := os.ReadDir("/run/netns")
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("netns: list namespaces: %w", err)
	}
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), NamespacePrefix) {
			out = append(out, e.Name())
		}
	}
	links, err := net.Interfaces()
	if err != nil {
		return nil, fmt.Errorf("netns: list links: %w", err)
	}
	for _, l := range links {
		if strings.HasPrefix(l.Name, VethPrefix) || l.Name == Bridge {
			out = append(out, l.Name)
		}
	}
	return out, nil
}

func acquireLock(ctx context.Context) (*os.File, error) {
	f, err := os.OpenFile(LockPath, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("netns: open the lock %s: %w", LockPath, err)
	}
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			return f, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("netns: lock %s: %w", LockPath, err)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("netns: another namespace cluster holds %s (a test or a netcluster run); wait for it to end: %w", LockPath, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (n *Net) run(ctx context.Context, args ...string) error { return runCmd(ctx, n.cfg.Log, args...) }

func runCmd(ctx context.Context, log func(string), args ...string) error {
	line := strings.Join(args, " ")
	if log != nil {
		log(line)
	}
	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s: %w: %s", line, err, strings.TrimSpace(out.String()))
	}
	return nil
}

// ParseRate reads a rate in tc's syntax (bit, kbit, mbit, gbit; bps, kbps,
// mbps, gbps are bytes) as bits per second.
func ParseRate(s string) (int64, error) {
	units := []struct {
		suffix string
		mult   float64
	}{{"gbit", 1e9}, {"mbit", 1e6}, {"kbit", 1e3}, {"gbps", 8e9}, {"mbps", 8e6}, {"kbps", 8e3}, {"bps", 8}, {"bit", 1}}
	low := strings.ToLower(strings.TrimSpace(s))
	for _, u := range units {
		if num, ok := strings.CutSuffix(low, u.suffix); ok {
			f, err := strconv.ParseFloat(num, 64)
			if err != nil || f <= 0 || f*u.mult > 1e12 {
				break
			}
			return int64(f * u.mult), nil
		}
	}
	return 0, fmt.Errorf("netns: rate %q: want a positive number and a unit of tc's, such as 200mbit or 1gbit", s)
}

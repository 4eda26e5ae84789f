package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/trovedb/trove/net/ipc"
	"github.com/trovedb/trove/tools/netcluster/netns"
)

// clusterPort is every node's cluster (QUIC and gossip) port, on its own
// address.
const clusterPort = 7100

// Options shape a namespace cluster.
type Options struct {
	Nodes    int
	Rate     string // each link's cap, both directions, tc syntax; "" uncapped
	Capacity string // each troved's -capacity
	Prefault bool   // troved -prefault: measure warm
	// PullSources, if >= 0, is passed as troved's -pull-sources (0 swarm, 1
	// single source); -1 passes nothing (a troved without the flag).
	PullSources int
	Troved      string   // the troved binary
	Args        []string // more troved flags, for every node
	Log         func(format string, args ...any)
}

// Cluster is a Net and one troved per host, joined, with an ipc client each.
type Cluster struct {
	Net   *netns.Net
	Nodes []*Node
	dir   string
	opts  Options

	closeOnce sync.Once
	closeErr  error
}

// Node is one troved in its namespace.
type Node struct {
	Index   int
	Host    *netns.Host
	Name    string
	Socket  string
	Metrics string // the /metrics URL, on the namespace's loopback
	Client  *ipc.Client

	cmd    *exec.Cmd
	stderr *lockedBuffer
	exited chan struct{} // closed when the process has exited
}

var (
	listeningLine = regexp.MustCompile(`^troved: listening on unix://(\S+) \(metrics (http://\S+)\)$`)
	clusterLine   = regexp.MustCompile(`^troved: cluster node (\S+) on (\S+)$`)
)

// BuildTroved builds cmd/troved into dir and returns its path.
func BuildTroved(ctx context.Context, dir string) (string, error) {
	out := filepath.Join(dir, "troved")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, "github.com/trovedb/trove/cmd/troved")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build cmd/troved: %w\n%s", err, b)
	}
	return out, nil
}

// HasPullSources says whether troved has the -pull-sources flag (multi-source
// pulls, issue 10).
func HasPullSources(troved string) bool {
	out, _ := exec.Command(troved, "-h").CombinedOutput()
	return bytes.Contains(out, []byte("-pull-sources"))
}

// Start makes the network and starts, joins and dials the nodes. The caller
// MUST Close the Cluster (on every path, signals included): it kills the
// troveds and removes the namespaces.
func Start(ctx context.Context, o Options) (_ *Cluster, err error) {
	if o.Log == nil {
		o.Log = func(string, ...any) {}
	}
	dir, err := os.MkdirTemp("", "trove-netcluster-")
	if err != nil {
		return nil, err
	}
	c := &Cluster{dir: dir, opts: o}
	defer func() {
		if err != nil {
			c.Close()
		}
	}()
	if c.Net, err = netns.New(ctx, netns.Config{Hosts: o.Nodes, Rate: o.Rate}); err != nil {
		return nil, err
	}
	seed := fmt.Sprintf("%s:%d", c.Net.Hosts[0].IP, clusterPort)
	for i, h := range c.Net.Hosts {
		join := seed
		if i == 0 {
			join = ""
		}
		n, err := c.startNode(ctx, h, join)
		if err != nil {
			return nil, err
		}
		c.Nodes = append(c.Nodes, n)
	}
	if err := c.awaitMembers(ctx, 30*time.Second); err != nil {
		return nil, err
	}
	return c, nil
}

func (c *Cluster) startNode(ctx context.Context, h *netns.Host, join string) (*Node, error) {
	nd := filepath.Join(c.dir, strconv.Itoa(h.Index))
	if err := os.MkdirAll(nd, 0o755); err != nil {
		return nil, err
	}
	n := &Node{Index: h.Index, Host: h, Name: "nc-" + strconv.Itoa(h.Index), Socket: filepath.Join(nd, "troved.sock"),
		stderr: &lockedBuffer{}, exited: make(chan struct{})}
	args := []string{"-socket", n.Socket, "-spill-dir", filepath.Join(nd, "spill"), "-http", "127.0.0.1:0",
		"-listen", fmt.Sprintf("%s:%d", h.IP, clusterPort), "-insecure", "-name", n.Name, "-log-level", "warn"}
	if c.opts.Capacity != "" {
		args = append(args, "-capacity", c.opts.Capacity)
	}
	if c.opts.Prefault {
		args = append(args, "-prefault")
	}
	if join != "" {
		args = append(args, "-join", join)
	}
	if c.opts.PullSources >= 0 {
		args = append(args, "-pull-sources", strconv.Itoa(c.opts.PullSources))
	}
	args = append(args, c.opts.Args...)
	n.cmd = h.Command(c.opts.Troved, args...)
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "TROVE_") {
			env = append(env, kv)
		}
	}
	n.cmd.Env = env
	n.cmd.Stderr = n.stderr
	// If this process dies without closing the cluster, so do its troveds.
	n.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, err := n.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	c.opts.Log("start %s in %s on %s: troved %s", n.Name, h.Namespace, h.IP, strings.Join(args, " "))
	if err := n.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start troved in %s: %w", h.Namespace, err)
	}
	lines := make(chan string, 4)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
		io.Copy(io.Discard, out)
		n.cmd.Wait()
		close(n.exited)
	}()
	timeout := time.After(60 * time.Second) // a prefaulted arena takes a while on a busy machine
	for got := 0; got < 2; {
		select {
		case line, ok := <-lines:
			if !ok {
				<-n.exited
				return nil, fmt.Errorf("%s exited at start: %v\n%s", n.Name, n.cmd.ProcessState, n.stderr.String())
			}
			if m := listeningLine.FindStringSubmatch(line); m != nil {
				n.Metrics = m[2]
				got++
			} else if clusterLine.MatchString(line) {
				got++
			}
		case <-timeout:
			return nil, fmt.Errorf("%s printed no listening and cluster lines within 60s\n%s", n.Name, n.stderr.String())
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	n.Client, err = ipc.DialContext(ctx, n.Socket, ipc.DialOptions{Name: "netcluster"})
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", n.Name, err)
	}
	return n, nil
}

// awaitMembers waits until every live node sees every other alive.
func (c *Cluster) awaitMembers(ctx context.Context, within time.Duration) error {
	deadline := time.Now().Add(within)
	for {
		short := ""
		for _, n := range c.Nodes {
			st, err := n.Client.Status(ctx)
			if err != nil {
				return fmt.Errorf("status of %s: %w", n.Name, err)
			}
			alive := 0
			for _, m := range st.Members {
				if m.State == "alive" {
					alive++
				}
			}
			if alive != len(c.Nodes) {
				short = fmt.Sprintf("%s sees %d of %d members alive", n.Name, alive, len(c.Nodes))
				break
			}
		}
		if short == "" {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the cluster did not form within %v: %s", within, short)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Kill sends SIGKILL to the node's troved and waits until it is gone.
func (n *Node) Kill() error {
	if err := n.cmd.Process.Signal(syscall.SIGKILL); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("kill %s: %w", n.Name, err)
	}
	<-n.exited
	n.Client.Close()
	return nil
}

// Alive says whether the node's troved is still running.
func (n *Node) Alive() bool {
	select {
	case <-n.exited:
		return false
	default:
		return true
	}
}

// Log is the node's stderr so far.
func (n *Node) Log() string { return n.stderr.String() }

// Metric reads one unlabelled value from the node's /metrics, over a TCP
// connection made inside its namespace.
func (n *Node) Metric(ctx context.Context, name string) (float64, error) {
	cl := http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DisableKeepAlives: true,
		DialContext: func(ctx context.Context, _, addr string) (net.Conn, error) {
			return n.Host.DialTCP(ctx, addr)
		},
	}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, n.Metrics, nil)
	if err != nil {
		return 0, err
	}
	resp, err := cl.Do(req)
	if err != nil {
		return 0, fmt.Errorf("metrics of %s: %w", n.Name, err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			return strconv.ParseFloat(v, 64)
		}
	}
	if err := sc.Err(); err != nil {
		return 0, fmt.Errorf("metrics of %s: %w", n.Name, err)
	}
	return 0, fmt.Errorf("%s's /metrics has no %s", n.Name, name)
}

// AwaitDrained waits until the node holds no objects, bytes, pins, views or
// client refs (releases are batched, and cross nodes), or within ends.
func (n *Node) AwaitDrained(ctx context.Context, within time.Duration) error {
	if err := n.Client.Flush(ctx); err != nil {
		return fmt.Errorf("flush %s's releases: %w", n.Name, err)
	}
	deadline := time.Now().Add(within)
	for {
		st, err := n.Client.Status(ctx)
		if err != nil {
			return fmt.Errorf("status of %s: %w", n.Name, err)
		}
		s := st.Store
		if s.Objects == 0 && s.ObjectBytes == 0 && s.Used == 0 && s.PinnedObjects == 0 && s.Views == 0 && st.Server.Refs == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not drained %v after every ref was dropped: objects=%d bytes=%d used=%d pinned=%d views=%d client refs=%d",
				n.Name, within, s.Objects, s.ObjectBytes, s.Used, s.PinnedObjects, s.Views, st.Server.Refs)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// Close stops every troved (SIGTERM, then SIGKILL after 10 s), removes the
// namespaces and the temporary directory. Safe to call more than once.
func (c *Cluster) Close() error {
	c.closeOnce.Do(func() {
		var errs []error
		for _, n := range c.Nodes {
			if n.Client != nil {
				n.Client.Close()
			}
			if n.Alive() {
				n.cmd.Process.Signal(syscall.SIGTERM)
			}
		}
		for _, n := range c.Nodes {
			select {
			case <-n.exited:
			case <-time.After(10 * time.Second):
				n.cmd.Process.Kill()
				<-n.exited
			}
		}
		if c.Net != nil {
			errs = append(errs, c.Net.Close())
		}
		errs = append(errs, os.RemoveAll(c.dir))
		c.closeErr = errors.Join(errs...)
	})
	return c.closeErr
}

// lockedBuffer is a bytes.Buffer safe for a writer and readers at once.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

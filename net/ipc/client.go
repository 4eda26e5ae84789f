package ipc

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/trovedb/trove"
)

// ErrDisconnected is the error of every call on a client whose daemon went away
// (it exited, restarted, or closed the connection). The client cannot recover:
// its refs and views were released by the daemon. Dial again.
var ErrDisconnected = errors.New("ipc: disconnected from the daemon")

// DialOptions configures DialContext.
type DialOptions struct {
	// Name is the client's name in `trove status` and `trove memory`. Default:
	// the program's base name.
	Name string
}

// Client is a connection to a node's daemon. It has the store's method set
// (trove.Store), so code written against trove.Store runs unchanged in process
// (engine.Store) or out (Client). Objects in shared memory are read in place:
// Get maps nothing and copies nothing; small objects travel inline.
//
// A Client is safe for concurrent use. Refs and views it hands out belong to it:
// when it is closed, or its process dies, the daemon releases them.
type Client struct {
	path string
	nc   *net.UnixConn
	out  sender

	node      trove.NodeID
	inline    int64 // objects up to this size travel inline
	maxMsg    int   // the largest request the daemon accepts
	daemonPID int
	arenaFD   int
	ro        []byte  // the arena, mapped read-only once
	win       *window // the arena again, writable only where this client's builders are

	nextID atomic.Uint64
	gone   atomic.Bool  // the connection ended: releases are moot
	views  atomic.Int64 // views whose bytes are in ro: ro is unmapped once Close and this allow
	open   atomic.Int64 // builders writing through win: likewise
	unmap  sync.Once

	mu struct {
		sync.Mutex
		calls   map[uint64]*call
		orphans map[uint64]*call // calls given up on (ctx ended): their replies are undone
		err     error            // why the connection ended; set once
		closed  bool
	}

	// Releases queued for the daemon: they go with the next request, or with
	// the releaser's next batch if no request comes first.
	rel struct {
		sync.Mutex
		ids, spareIDs     []trove.ObjectID
		views, spareViews []uint64
		since             time.Duration // when the oldest queued release was queued (since epoch)
		batches           uint64        // batches begun (the releaser sees whether releases keep coming)
	}
	epoch     time.Time    // the client's start: rel.since is monotonic time since it
	relQueued atomic.Int32 // queued since the last batch (a hint: 0 skips the lock)
	// Replies are read by whichever caller waiting for one holds rdMu, which
	// delivers the others' replies as they come: a lone caller reads its own,
	// with no hand-off between goroutines (half the cost of a round trip). When
	// it is done and calls are still waiting, it passes the reading on (turn).
	rdMu sync.Mutex
	rd   *frameReader // used by the holder of rdMu

	relKick chan struct{}
	done    chan struct{} // closed when the connection ends
	endOnce sync.Once
	relDone chan struct{}
}

var (
	_ trove.Store     = (*Client)(nil)
	_ trove.RefOwner  = (*Client)(nil)
	_ trove.ViewOwner = (*Client)(nil)
)

// Dial connects to the daemon listening on path, once.
func Dial(path string) (*Client, error) {
	return dial(context.Background(), path, DialOptions{})
}

// DialContext connects to the daemon on path, retrying while the socket is
// missing or refuses (the daemon is starting or restarting) until ctx ends.
func DialContext(ctx context.Context, path string, opts DialOptions) (*Client, error) {
	delay := 10 * time.Millisecond
	for {
		c, err := dial(ctx, path, opts)
		if err == nil || !(errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ECONNREFUSED)) {
			return c, err
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("%w (still failing when %w)", err, context.Cause(ctx))
		case <-time.After(delay):
		}
		delay = min(2*delay, 500*time.Millisecond)
	}
}

// handshakeTimeout bounds a handshake whose context has no deadline: a socket
// whose owner accepts but never answers is not a daemon.
const handshakeTimeout = 10 * time.Second

func dial(ctx context.Context, path string, opts DialOptions) (*Client, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, handshakeTimeout)
		defer cancel()
	}
	var d net.Dialer
	nc, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return nil, fmt.Errorf("ipc: no daemon at %s (start troved, or set TROVE_SOCKET): %w", path, err)
	}
	c := &Client{path: path, nc: nc.(*net.UnixConn), arenaFD: -1, epoch: time.Now(),
		relKick: make(chan struct{}, 1), done: make(chan struct{}), relDone: make(chan struct{})}
	c.out.conn = c.nc
	c.mu.calls = make(map[uint64]*call)
	c.mu.orphans = make(map[uint64]*call)
	if opts.Name == "" {
		opts.Name = filepath.Base(os.Args[0])
	}
	if len(opts.Name) > maxName {
		opts.Name = opts.Name[:maxName]
	}
	if err := c.handshake(ctx, opts.Name); err != nil {
		c.nc.Close()
		if c.arenaFD >= 0 {
			unix.Close(c.arenaFD)
		}
		return nil, err
	}
	go c.releaser()
	return c, nil
}

// handshake exchanges hellos before the reader starts: the reply brings the
// arena's descriptor, mapped read-only here once.
func (c *Client) handshake(ctx context.Context, name string) error {
	if dl, ok := ctx.Deadline(); ok {
		c.nc.SetDeadline(dl)
		defer c.nc.SetDeadline(time.Time{})
	}
	hello := helloReq{version: Version, pid: uint32(os.Getpid()), name: name}
	b := finish(hello.encode(appendHeader(nil, opHello, 0, 0)), 0)
	if _, err := c.nc.Write(b); err != nil {
		return fmt.Errorf("ipc: handshake with %s: %w", c.path, err)
	}
	rd := newFrameReader(c.nc)
	h, body, fds, err := rd.next()
	if err != nil {
		return fmt.Errorf("ipc: handshake with %s: %w", c.path, err)
	}
	r := &reader{b: body}
	if err := decodeStatus(r); err != nil {
		closeFDs(fds)
		return fmt.Errorf("ipc: the daemon at %s refused the handshake: %w", c.path, err)
	}
	var rep helloReply
	rep.decode(r)
	if err := r.done(); err != nil || h.op != opReply || len(fds) != 1 || rep.version != Version {
		closeFDs(fds)
		return fmt.Errorf("ipc: handshake with %s: bad reply (%v, %d descriptors, version %d)", c.path, err, len(fds), rep.version)
	}
	c.arenaFD = fds[0]
	c.node, c.inline, c.maxMsg, c.daemonPID = rep.node, int64(rep.inline), int(rep.maxMsg), int(rep.pid)
	if rep.arenaSize > 0 {
		ro, err := unix.Mmap(c.arenaFD, 0, int(rep.arenaSize), unix.PROT_READ, unix.MAP_SHARED)
		if err != nil {
			return fmt.Errorf("ipc: mapping the daemon's shared memory (%s): %w", trove.HumanBytes(int64(rep.arenaSize)), err)
		}
		c.ro = ro
		if c.win, err = newWindow(c.arenaFD, int64(rep.arenaSize)); err != nil {
			unix.Munmap(ro)
			return fmt.Errorf("ipc: %w", err)
		}
	}
	c.rd = rd
	return nil
}

// Node returns the daemon's node ID.
func (c *Client) Node() trove.NodeID { return c.node }

// InlineThreshold returns the largest object that travels inline in messages.
func (c *Client) InlineThreshold() int64 { return c.inline }

// DaemonPID returns the daemon's process ID.
func (c *Client) DaemonPID() int { return c.daemonPID }

// Close closes the connection; the daemon releases every ref, view and unsealed
// object of this client. Views' bytes stay mapped (reading them does not fault)
// until each is released, but they are no longer pinned: the daemon may reuse
// that memory at once, so their contents mean nothing after Close. The same holds
// after the daemon goes away (ErrDisconnected).
func (c *Client) Close() error {
	c.mu.Lock()
	if c.mu.closed {
		c.mu.Unlock()
		return nil
	}
	c.mu.closed = true
	c.mu.Unlock()
	err := c.nc.Close()
	c.rdMu.Lock() // a caller reading the socket sees it closed and stops
	c.end(nil)
	c.rdMu.Unlock()
	<-c.relDone
	c.maybeUnmap()
	return err
}

func (c *Client) maybeUnmap() {
	c.mu.Lock()
	closed := c.mu.closed
	c.mu.Unlock()
	if !closed || c.views.Load() != 0 || c.open.Load() != 0 {
		return
	}
	c.unmap.Do(func() {
		if c.ro != nil {
			unix.Munmap(c.ro)
		}
		c.win.unmap()
		unix.Close(c.arenaFD)
	})
}

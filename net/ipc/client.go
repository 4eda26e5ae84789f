package ipc

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/fxamacker/cbor/v2"
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
	}
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

// call is a request waiting for its reply.
type call struct {
	op   op
	ids  []trove.ObjectID // what it asked about, to undo an orphaned reply
	done chan struct{}
	turn chan struct{} // a token: read the socket for everyone (see rdMu)
	body []byte        // the reply after its status byte
	fds  []int
	err  error
}

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
	c := &Client{path: path, nc: nc.(*net.UnixConn), arenaFD: -1,
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

func closeFDs(fds []int) {
	for _, fd := range fds {
		unix.Close(fd)
	}
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

// readUntil reads and delivers replies until cl's has come or ctx ends. The
// caller holds rdMu. A read blocked when ctx ends is woken by a read deadline.
func (c *Client) readUntil(ctx context.Context, cl *call) {
	if ctx.Done() != nil {
		stop := context.AfterFunc(ctx, func() { c.nc.SetReadDeadline(time.Unix(1, 0)) })
		defer stop()
	}
	for {
		select {
		case <-cl.done:
			return
		default:
		}
		if ctx.Err() != nil {
			return
		}
		h, body, fds, err := c.rd.next()
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				// Set for this caller or a previous one: clear it and look at
				// ctx again. A partial frame stays buffered.
				c.nc.SetReadDeadline(time.Time{})
				continue
			}
			c.end(err)
			return
		}
		if h.op != opReply {
			closeFDs(fds)
			c.end(fmt.Errorf("%w: the daemon sent a %s", errProtocol, h.op))
			return
		}
		c.deliver(h.id, body, fds)
	}
}

// deliver hands a reply to its call, or undoes it if its call was given up.
func (c *Client) deliver(id uint64, body []byte, fds []int) {
	c.mu.Lock()
	cl := c.mu.calls[id]
	delete(c.mu.calls, id)
	orphan := c.mu.orphans[id]
	delete(c.mu.orphans, id)
	c.mu.Unlock()
	switch {
	case cl != nil:
		cl.body, cl.fds = append(cl.body[:0], body...), fds
		close(cl.done)
	case orphan != nil:
		c.undo(orphan, body, fds)
	default:
		closeFDs(fds)
	}
}

// passReading gives the reading to a waiting call, if any.
func (c *Client) passReading() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, cl := range c.mu.calls {
		select {
		case cl.turn <- struct{}{}:
		default:
		}
		return
	}
}

// end ends the connection (once) with cause (nil: the client was closed): every
// call waiting fails with ErrDisconnected, or net.ErrClosed after Close.
func (c *Client) end(cause error) {
	c.endOnce.Do(func() {
		c.mu.Lock()
		var err error
		if c.mu.closed {
			err = fmt.Errorf("%w: the client was closed", net.ErrClosed)
		} else {
			err = fmt.Errorf("%w at %s (%v): its refs and views were released; restart troved if needed, then dial again", ErrDisconnected, c.path, cause)
		}
		c.mu.err = err
		c.gone.Store(true)
		calls, orphans := c.mu.calls, c.mu.orphans
		c.mu.calls, c.mu.orphans = nil, nil
		c.mu.Unlock()
		c.nc.Close()
		closeFDs(c.rd.fds)
		c.rd.fds = nil
		for _, cl := range calls {
			cl.err = err
			close(cl.done)
		}
		for _, cl := range orphans {
			closeFDs(cl.fds)
		}
		close(c.done)
	})
}

// undo gives back what the reply to an abandoned call gave this client.
func (c *Client) undo(cl *call, body []byte, fds []int) {
	defer closeFDs(fds)
	r := &reader{b: body}
	if err := decodeStatus(r); err != nil || r.err != nil {
		return
	}
	switch cl.op {
	case opGet:
		for _, it := range decodeGetReply(r, len(cl.ids)) {
			if it.view != 0 {
				c.queueView(it.view)
			}
		}
	case opPut:
		c.queueRelease(r.id())
	case opCreate:
		var rep createReply
		rep.decode(r)
		if r.err == nil {
			c.sendAbort(rep.id)
			c.queueRelease(rep.id)
		}
	case opBorrow:
		for _, id := range cl.ids {
			c.queueRelease(id)
		}
	}
}

// roundTrip sends a request built by enc and waits for its reply. It returns
// the reply's body after the status, and any descriptors that came with it.
// If ctx ends first, the request is cancelled and whatever its late reply
// grants is given back.
func (c *Client) roundTrip(ctx context.Context, o op, ids []trove.ObjectID, enc func([]byte) []byte) (*reader, []int, error) {
	cl := &call{op: o, ids: ids, done: make(chan struct{}), turn: make(chan struct{}, 1)}
	id := c.nextID.Add(1)
	c.mu.Lock()
	if c.mu.err != nil || c.mu.closed {
		err := c.mu.err
		c.mu.Unlock()
		if err == nil {
			err = net.ErrClosed
		}
		return nil, nil, err
	}
	c.mu.calls[id] = cl
	c.mu.Unlock()

	bp := getBuf()
	// Releases waiting to go ride in the same write, ahead of the request.
	b := c.appendReleases(*bp)
	start := len(b)
	b = appendHeader(b, o, id, 0)
	if enc != nil {
		b = enc(b)
	}
	b = finish(b, start)
	var err error
	if len(b)-start > c.maxMsg {
		err = fmt.Errorf("%w: %s request of %s exceeds the daemon's limit of %s", errTooLarge, o, trove.HumanBytes(int64(len(b)-start)), trove.HumanBytes(int64(c.maxMsg)))
	} else {
		err = c.out.send(b)
	}
	*bp = b
	putBuf(bp)
	if err != nil {
		c.mu.Lock()
		delete(c.mu.calls, id)
		cerr := c.mu.err
		c.mu.Unlock()
		switch {
		case cerr != nil:
			err = cerr
		case !errors.Is(err, errTooLarge):
			err = fmt.Errorf("%w at %s (%v): dial again", ErrDisconnected, c.path, err)
		}
		return nil, nil, err
	}

	if !c.await(ctx, cl) {
		// The daemon has the same deadline and answers at it with what it means
		// (a full store, what was ready): give its answer a moment to arrive.
		got := false
		if errors.Is(ctx.Err(), context.DeadlineExceeded) && deadlineOf(ctx) != 0 {
			gctx, cancel := context.WithTimeout(context.Background(), deadlineGrace)
			got = c.await(gctx, cl)
			cancel()
		}
		if !got {
			c.mu.Lock()
			_, waiting := c.mu.calls[id]
			if waiting {
				delete(c.mu.calls, id)
				c.mu.orphans[id] = cl
			}
			c.mu.Unlock()
			c.passTurn(cl)
			if waiting {
				c.sendCancel(id)
				return nil, nil, trove.ContextError(ctx)
			}
			<-cl.done // the reply is being delivered
		}
	}
	c.passTurn(cl)
	if cl.err != nil {
		return nil, nil, cl.err
	}
	r := &reader{b: cl.body}
	if err := decodeStatus(r); err != nil {
		closeFDs(cl.fds)
		return nil, nil, err
	}
	if r.err != nil {
		closeFDs(cl.fds)
		return nil, nil, c.broken(r.err)
	}
	return r, cl.fds, nil
}

// await blocks until cl's reply is delivered (true) or ctx ends (false). While
// nobody else reads the socket, it does.
func (c *Client) await(ctx context.Context, cl *call) bool {
	for {
		select {
		case <-cl.done:
			return true
		default:
		}
		if c.rdMu.TryLock() {
			c.readUntil(ctx, cl)
			c.rdMu.Unlock()
			c.passReading()
			select {
			case <-cl.done:
				return true
			default:
			}
			if ctx.Err() != nil {
				return false
			}
			continue
		}
		select {
		case <-cl.done:
			return true
		case <-cl.turn:
		case <-ctx.Done():
			return false
		}
	}
}

// passTurn passes on a reading turn cl was given but no longer needs. cl is
// out of the calls by now, so no new turn can come to it.
func (c *Client) passTurn(cl *call) {
	select {
	case <-cl.turn:
		c.passReading()
	default:
	}
}

// broken closes a connection whose daemon sent a malformed reply.
func (c *Client) broken(err error) error {
	c.nc.Close()
	return fmt.Errorf("ipc: bad reply from the daemon at %s: %w", c.path, err)
}

// deadlineGrace is how long past a deadline a client waits for the daemon's
// answer to a request that carried the deadline.
const deadlineGrace = time.Second

func deadlineOf(ctx context.Context) int64 {
	if dl, ok := ctx.Deadline(); ok {
		return dl.UnixNano()
	}
	return 0
}

func (c *Client) sendSimple(o op, id uint64, enc func([]byte) []byte) {
	bp := getBuf()
	b := appendHeader(*bp, o, id, 0)
	if enc != nil {
		b = enc(b)
	}
	_ = c.out.send(finish(b, 0))
	*bp = b
	putBuf(bp)
}

func (c *Client) sendCancel(id uint64) { c.sendSimple(opCancel, id, nil) }

func (c *Client) sendAbort(id trove.ObjectID) {
	c.sendSimple(opAbort, c.nextID.Add(1), func(b []byte) []byte { return putID(b, id) })
}

// ---- releasing refs and views ----

// ReleaseRef implements trove.RefOwner: a handle was dropped. The daemon hears
// of it shortly after, in a batch.
func (c *Client) ReleaseRef(id trove.ObjectID, _ any) { c.queueRelease(id) }

func (c *Client) queueRelease(id trove.ObjectID) {
	if c.gone.Load() {
		return // the daemon released everything with the connection
	}
	c.rel.Lock()
	c.rel.ids = append(c.rel.ids, id)
	c.rel.Unlock()
	if c.relQueued.Add(1) == 1 {
		c.kick()
	}
}

// viewHint is a view's record: the daemon's pin, and the mapping of a spill
// file if the object's bytes were mapped from one.
type viewHint struct {
	id      uint64 // 0: an inline copy, nothing to release
	offset  int64  // in the arena, if arena
	arena   bool
	mapping []byte
}

// ReleaseView implements trove.ViewOwner: a view was released.
func (c *Client) ReleaseView(_ trove.ObjectID, hint any) {
	v, _ := hint.(*viewHint)
	if v == nil || v.id == 0 {
		return
	}
	if v.mapping != nil {
		unix.Munmap(v.mapping)
	}
	if v.arena {
		if c.views.Add(-1) == 0 {
			c.maybeUnmap()
		}
	}
	c.queueView(v.id)
}

func (c *Client) queueView(id uint64) {
	if c.gone.Load() {
		return
	}
	c.rel.Lock()
	c.rel.views = append(c.rel.views, id)
	c.rel.Unlock()
	if c.relQueued.Add(1) == 1 {
		c.kick()
	}
}

func (c *Client) kick() {
	select {
	case c.relKick <- struct{}{}:
	default:
	}
}

// releaseDelay is how long queued releases wait for a request to carry them
// before the releaser sends them on their own.
const releaseDelay = 200 * time.Microsecond

// releaser sends released refs and views to the daemon in batches, so that
// releasing never blocks the caller (the garbage collector's cleanups among
// them) on the socket.
func (c *Client) releaser() {
	defer close(c.relDone)
	for {
		select {
		case <-c.relKick:
			// Give a request the chance to carry them first.
			t := time.NewTimer(releaseDelay)
			select {
			case <-t.C:
			case <-c.done:
				t.Stop()
			}
			c.sendReleases()
		case <-c.done:
			c.rel.Lock()
			c.rel.ids, c.rel.views = nil, nil
			c.rel.Unlock()
			return
		}
	}
}

func (c *Client) sendReleases() {
	bp := getBuf()
	if b := c.appendReleases(*bp); len(b) > 0 {
		_ = c.out.send(b)
		*bp = b
	}
	putBuf(bp)
}

// appendReleases appends frames releasing every ref and view queued so far.
func (c *Client) appendReleases(b []byte) []byte {
	if c.relQueued.Load() == 0 {
		return b
	}
	c.rel.Lock()
	ids, views := c.rel.ids, c.rel.views
	c.rel.ids, c.rel.views = c.rel.spareIDs[:0], c.rel.spareViews[:0]
	c.relQueued.Store(0)
	const per = 16 << 10 // items per message, well under any limit
	for rest := ids; len(rest) > 0; {
		n := min(len(rest), per)
		start := len(b)
		b = finish(putIDs(appendHeader(b, opRelease, 0, 0), rest[:n]), start)
		rest = rest[n:]
	}
	for rest := views; len(rest) > 0; {
		n := min(len(rest), per)
		start := len(b)
		b = putU32(appendHeader(b, opReleaseView, 0, 0), uint32(n))
		for _, v := range rest[:n] {
			b = putU64(b, v)
		}
		b = finish(b, start)
		rest = rest[n:]
	}
	if cap(ids) <= 4096 {
		c.rel.spareIDs = ids[:0]
	}
	if cap(views) <= 4096 {
		c.rel.spareViews = views[:0]
	}
	c.rel.Unlock()
	return b
}

// Flush sends every release made so far and waits until the daemon has
// processed them: after it, the daemon's figures reflect this client's Drops
// and Releases.
func (c *Client) Flush(ctx context.Context) error {
	c.sendReleases()
	_, _, err := c.roundTrip(ctx, opSync, nil, nil)
	return err
}

// Ping is a round trip to the daemon that does nothing.
func (c *Client) Ping(ctx context.Context) error {
	_, _, err := c.roundTrip(ctx, opSync, nil, nil)
	return err
}

// ---- the store's method set ----

func (c *Client) idOf(ref trove.Ref) (trove.ObjectID, error) {
	if _, ok := ref.Hint(c); !ok {
		if ref.IsZero() {
			return trove.ObjectID{}, fmt.Errorf("zero ref: %w", trove.ErrInvalidRef)
		}
		return trove.ObjectID{}, fmt.Errorf("%v (dropped, or not from this client): %w", ref, trove.ErrInvalidRef)
	}
	return ref.ID(), nil
}

func (c *Client) idsOf(refs []trove.Ref) ([]trove.ObjectID, error) {
	ids := make([]trove.ObjectID, len(refs))
	for i, r := range refs {
		id, err := c.idOf(r)
		if err != nil {
			return nil, err
		}
		ids[i] = id
	}
	return ids, nil
}

// Put copies data into the store: inline in the request if it is small, else
// straight into shared memory.
func (c *Client) Put(ctx context.Context, data []byte) (trove.Ref, error) {
	if c.inline > 0 && int64(len(data)) <= c.inline {
		return c.putInline(ctx, data, nil)
	}
	b, err := c.Create(ctx, len(data))
	if err != nil {
		return trove.Ref{}, err
	}
	copy(b.Bytes(), data)
	if err := b.Seal(); err != nil {
		b.Ref().Drop()
		return trove.Ref{}, err
	}
	return b.Ref(), nil
}

func (c *Client) putInline(ctx context.Context, data []byte, contains []trove.ObjectID) (trove.Ref, error) {
	m := putReq{deadline: deadlineOf(ctx), contains: contains, data: data}
	r, _, err := c.roundTrip(ctx, opPut, nil, m.encode)
	if err != nil {
		return trove.Ref{}, fmt.Errorf("put: %w", err)
	}
	id := r.id()
	if err := r.done(); err != nil {
		return trove.Ref{}, c.broken(err)
	}
	return trove.NewRef(id, c, nil), nil
}

// PutFunc creates an object of size bytes, lets fill write it (in shared memory
// for a large object), and seals it. See trove.Store.
func (c *Client) PutFunc(ctx context.Context, size int, contains []trove.Ref, fill func(dst []byte) error) (trove.Ref, error) {
	defer runtime.KeepAlive(contains)
	if c.inline > 0 && int64(size) <= c.inline && size >= 0 {
		ids, err := c.idsOf(contains)
		if err != nil {
			return trove.Ref{}, fmt.Errorf("put: contained ref: %w", err)
		}
		buf := make([]byte, size)
		if err := fill(buf); err != nil {
			return trove.Ref{}, err
		}
		return c.putInline(ctx, buf, ids)
	}
	b, err := c.CreateContaining(ctx, size, contains)
	if err != nil {
		return trove.Ref{}, err
	}
	if err := fill(b.Bytes()); err != nil {
		b.Abort()
		b.Ref().Drop()
		return trove.Ref{}, err
	}
	if err := b.Seal(); err != nil {
		b.Ref().Drop()
		return trove.Ref{}, err
	}
	return b.Ref(), nil
}

// Get blocks until ref's object is sealed and returns a read-only view. Bytes in
// shared memory are read in place; small objects arrive inline. The caller MUST
// Release the view.
func (c *Client) Get(ctx context.Context, ref trove.Ref) (*trove.Object, error) {
	objs, err := c.GetAll(ctx, []trove.Ref{ref})
	if err != nil {
		return nil, err
	}
	return objs[0], nil
}

// GetAll gets every ref, in input order; on error it returns no views.
func (c *Client) GetAll(ctx context.Context, refs []trove.Ref) ([]*trove.Object, error) {
	defer runtime.KeepAlive(refs)
	ids, err := c.idsOf(refs)
	if err != nil {
		return nil, fmt.Errorf("get: %w", err)
	}
	views := trove.MakeObjects(len(refs))
	objs := make([]*trove.Object, 0, len(refs))
	for len(ids) > 0 {
		n, start := min(len(ids), maxBatch), len(objs)
		if err := c.getBatch(ctx, ids[:n], views[start:start+n]); err != nil {
			trove.ReleaseAll(objs)
			return nil, err
		}
		for i := range n {
			objs = append(objs, &views[start+i])
		}
		ids = ids[n:]
	}
	return objs, nil
}

func (c *Client) getBatch(ctx context.Context, ids []trove.ObjectID, into []trove.Object) error {
	m := idsReq{deadline: deadlineOf(ctx), ids: ids}
	r, fds, err := c.roundTrip(ctx, opGet, ids, func(b []byte) []byte { return m.encode(b, true, false) })
	if err != nil {
		if len(ids) == 1 {
			return fmt.Errorf("get %s: %w", ids[0], err)
		}
		return fmt.Errorf("get %d objects: %w", len(ids), err)
	}
	defer closeFDs(fds)
	items := decodeGetReply(r, len(ids))
	if err := r.done(); err != nil {
		return c.broken(err)
	}
	nextFD := 0
	for i, it := range items {
		var data []byte
		hint := &viewHint{id: it.view}
		switch it.place {
		case placeInline:
			data = it.data
		case placeArena:
			end := it.offset + it.size
			if end > uint64(len(c.ro)) || it.view == 0 {
				err = fmt.Errorf("%w: object at %d+%d outside the arena of %d bytes", errProtocol, it.offset, it.size, len(c.ro))
				break
			}
			data = c.ro[it.offset:end:end]
			hint.arena, hint.offset = true, int64(it.offset)
			c.views.Add(1)
		case placeFile:
			if nextFD >= len(fds) || it.view == 0 {
				err = fmt.Errorf("%w: a mapped object without its file", errProtocol)
				break
			}
			data, hint.mapping, err = mapFile(fds[nextFD], int64(it.offset), int64(it.size))
			nextFD++
		}
		if err != nil {
			for j := range i {
				into[j].Release()
			}
			for _, it := range items[i:] {
				if it.view != 0 {
					c.queueView(it.view)
				}
			}
			return fmt.Errorf("get %s: %w", ids[i], err)
		}
		trove.InitObject(&into[i], ids[i], data, c, hint)
	}
	return nil
}

// mapFile maps size bytes at off of the file fd, read-only.
func mapFile(fd int, off, size int64) (data, mapping []byte, err error) {
	if size == 0 {
		return []byte{}, nil, nil
	}
	page := int64(unix.Getpagesize())
	start := off / page * page
	m, err := unix.Mmap(fd, start, int(off+size-start), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		return nil, nil, fmt.Errorf("mapping its spill file: %w", err)
	}
	return m[off-start : off-start+size : off-start+size], m, nil
}

// ArenaOffset returns where in the daemon's shared memory the view's bytes are,
// and true; false for an object that arrived inline or was mapped from disk.
// Two processes reading one object see the same offset: the bytes are shared.
func (c *Client) ArenaOffset(o *trove.Object) (int64, bool) {
	h, ok := o.Hint(c)
	if !ok {
		return 0, false
	}
	v := h.(*viewHint)
	return v.offset, v.arena
}

// Wait blocks until numReturns of refs are ready; see trove.Store. If ctx ends
// first it returns what was ready by then and the context's error.
func (c *Client) Wait(ctx context.Context, refs []trove.Ref, numReturns int) (ready, pending []trove.Ref, err error) {
	defer runtime.KeepAlive(refs)
	if numReturns < 0 || numReturns > len(refs) {
		return nil, nil, fmt.Errorf("wait: numReturns %d outside [0, %d], the number of refs", numReturns, len(refs))
	}
	ids, err := c.idsOf(refs)
	if err != nil {
		return nil, nil, fmt.Errorf("wait: %w", err)
	}
	m := idsReq{deadline: deadlineOf(ctx), n: uint32(numReturns), ids: ids}
	// At the deadline the daemon answers with what was ready then (roundTrip
	// waits a moment for that answer).
	r, _, err := c.roundTrip(ctx, opWait, nil, func(b []byte) []byte { return m.encode(b, true, true) })
	if err != nil {
		return nil, nil, fmt.Errorf("wait: %w", err)
	}
	timedOut := r.u8()
	idx := decodeIndices(r, len(refs))
	if err := r.done(); err != nil {
		return nil, nil, c.broken(err)
	}
	ready = make([]trove.Ref, 0, len(idx))
	pending = make([]trove.Ref, 0, len(refs)-len(idx))
	j := 0
	for i, ref := range refs {
		if j < len(idx) && idx[j] == i {
			ready = append(ready, ref)
			j++
		} else {
			pending = append(pending, ref)
		}
	}
	if timedOut != 0 {
		return ready, pending, fmt.Errorf("wait: %d of %d ready, wanted %d: %w", len(ready), len(refs), numReturns, trove.ErrGetTimeout)
	}
	return ready, pending, nil
}

// Borrow returns a new handle to an object the daemon holds.
func (c *Client) Borrow(id trove.ObjectID) (trove.Ref, error) {
	refs, err := c.BorrowAll([]trove.ObjectID{id})
	if err != nil {
		return trove.Ref{}, err
	}
	return refs[0], nil
}

// BorrowAll returns new handles to ids, all or none (trove.GetValue uses it for
// the refs nested in a value).
func (c *Client) BorrowAll(ids []trove.ObjectID) ([]trove.Ref, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	m := idsReq{ids: ids}
	r, _, err := c.roundTrip(context.Background(), opBorrow, ids, func(b []byte) []byte { return m.encode(b, false, false) })
	if err != nil {
		return nil, fmt.Errorf("borrow: %w", err)
	}
	if err := r.done(); err != nil {
		return nil, c.broken(err)
	}
	if len(ids) == 1 {
		return []trove.Ref{trove.NewRef(ids[0], c, nil)}, nil
	}
	return trove.NewRefBatch(ids, c, make([]any, len(ids))), nil
}

// Create makes a pending object of size bytes to be written in place and
// returns its builder; its ref is a future from now on, for every process.
func (c *Client) Create(ctx context.Context, size int) (*Builder, error) {
	return c.CreateContaining(ctx, size, nil)
}

// CreateContaining is Create for an object that holds refs: each of contains
// lives as long as the object.
func (c *Client) CreateContaining(ctx context.Context, size int, contains []trove.Ref) (*Builder, error) {
	defer runtime.KeepAlive(contains)
	if size < 0 {
		return nil, fmt.Errorf("create object of %d bytes: size must not be negative", size)
	}
	ids, err := c.idsOf(contains)
	if err != nil {
		return nil, fmt.Errorf("create: contained ref: %w", err)
	}
	m := createReq{deadline: deadlineOf(ctx), size: uint64(size), contains: ids}
	r, _, err := c.roundTrip(ctx, opCreate, nil, m.encode)
	if err != nil {
		return nil, err
	}
	var rep createReply
	rep.decode(r)
	if err := r.done(); err != nil {
		return nil, c.broken(err)
	}
	b := &Builder{c: c, ref: trove.NewRef(rep.id, c, nil), size: size}
	if rep.off < 0 {
		b.buf = make([]byte, size)
	} else {
		if c.win == nil {
			err = fmt.Errorf("%w: an arena object from a daemon without an arena", errProtocol)
		} else {
			b.buf, b.span, err = c.win.openRange(rep.off, int64(size))
		}
		if err != nil {
			c.sendAbort(rep.id)
			b.ref.Drop()
			return nil, fmt.Errorf("create %s: %w", rep.id, err)
		}
		b.windowed = true
		c.open.Add(1)
	}
	b.cleanup = runtime.AddCleanup(b, func(a abandoned) { a.abandon() },
		abandoned{c: c, id: rep.id, span: b.span, windowed: b.windowed})
	return b, nil
}

// abandoned is what a builder's GC cleanup needs to abort it.
type abandoned struct {
	c        *Client
	id       trove.ObjectID
	span     span
	windowed bool
}

func (a abandoned) abandon() {
	a.c.closeBuilder(a.span, a.windowed)
	a.c.sendAbort(a.id)
}

// closeBuilder ends a builder's write access to the arena.
func (c *Client) closeBuilder(s span, windowed bool) {
	if !windowed {
		return
	}
	c.win.closeRange(s)
	if c.open.Add(-1) == 0 {
		c.maybeUnmap()
	}
}

// Builder writes one object in place, in the daemon's shared memory when the
// object is large. Seal or Abort it exactly once.
type Builder struct {
	c        *Client
	ref      trove.Ref
	size     int
	buf      []byte
	span     span // its pages in the client's window
	windowed bool // buf is in the window (else in the heap, sent at Seal)
	cleanup  runtime.Cleanup
	done     bool
}

// Ref returns the object's ref: a future until Seal.
func (b *Builder) Ref() trove.Ref { return b.ref }

// Size returns the object's size.
func (b *Builder) Size() int { return b.size }

// Bytes returns the writable bytes, nil after Seal or Abort.
func (b *Builder) Bytes() []byte { return b.buf }

// Seal makes the object immutable and readable, here and in every process.
func (b *Builder) Seal() error {
	if b.done {
		return fmt.Errorf("seal %v: %w", b.ref, trove.ErrSealed)
	}
	b.finish()
	m := sealReq{id: b.ref.ID()}
	if b.windowed {
		b.c.closeBuilder(b.span, true) // no more writes from here
	} else {
		m.data = b.buf
	}
	b.buf = nil
	r, _, err := b.c.roundTrip(context.Background(), opSeal, nil, m.encode)
	if err != nil {
		return fmt.Errorf("seal %s: %w", m.id, err)
	}
	return r.done()
}

// Abort gives up on the object: Gets of it fail with trove.ErrObjectAborted.
func (b *Builder) Abort() {
	if b.done {
		return
	}
	b.finish()
	b.c.closeBuilder(b.span, b.windowed)
	b.buf = nil
	b.c.sendAbort(b.ref.ID())
}

func (b *Builder) finish() {
	b.done = true
	b.cleanup.Stop()
}

// ---- the daemon's own ----

// Status returns the daemon's figures and clients.
func (c *Client) Status(ctx context.Context) (Status, error) {
	var st Status
	return st, c.cborCall(ctx, opStatus, &st)
}

// Memory lists every object the daemon holds and what holds it.
func (c *Client) Memory(ctx context.Context) (MemoryReport, error) {
	var rep MemoryReport
	return rep, c.cborCall(ctx, opMemory, &rep)
}

func (c *Client) cborCall(ctx context.Context, o op, v any) error {
	r, _, err := c.roundTrip(ctx, o, nil, nil)
	if err != nil {
		return fmt.Errorf("%s: %w", o, err)
	}
	if err := cbor.Unmarshal(r.rest(), v); err != nil {
		return c.broken(err)
	}
	return nil
}

// Keep makes the daemon hold ref's object after this client is gone, until
// Unkeep: what `trove put` does so that a later `trove get` finds it.
func (c *Client) Keep(ctx context.Context, ref trove.Ref) error {
	defer runtime.KeepAlive(ref)
	id, err := c.idOf(ref)
	if err != nil {
		return fmt.Errorf("keep: %w", err)
	}
	_, _, err = c.roundTrip(ctx, opKeep, nil, func(b []byte) []byte { return putID(b, id) })
	return err
}

// Unkeep gives back the daemon's hold taken by Keep.
func (c *Client) Unkeep(ctx context.Context, id trove.ObjectID) error {
	_, _, err := c.roundTrip(ctx, opUnkeep, nil, func(b []byte) []byte { return putID(b, id) })
	return err
}

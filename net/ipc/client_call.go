package ipc

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"time"

	"golang.org/x/sys/unix"

	"github.com/trovedb/trove"
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

// passTurn passes on a reading turn cl was given but no longer needs. cl is
// out of the calls by now, so no new turn can come to it.
func (c *Client) passTurn(cl *call) {
	select {
	case <-cl.turn:
		c.passReading()
	default:
	}
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
	case opCreate, opCreateResult:
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

func closeFDs(fds []int) {
	for _, fd := range fds {
		unix.Close(fd)
	}
}

package ipc

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/trovedb/trove"
	"github.com/trovedb/trove/engine"
)

// conn is one client's connection and everything held on its behalf, which is
// released when it goes.
type conn struct {
	srv       *Server
	nc        *net.UnixConn
	out       sender
	id        uint64
	pid       int
	name      string // from the handshake
	connected time.Time
	hello     atomic.Bool // handshake done: name and pid are set, never to change

	ctx    context.Context // cancelled when the connection ends
	cancel context.CancelCauseFunc
	reqs   sync.WaitGroup // this connection's requests running in goroutines

	mu struct {
		sync.Mutex
		dead     bool // cleaned up: results arriving now are released, not registered
		refs     map[trove.ObjectID]held
		views    map[uint64]*trove.Object
		nextView uint64
		builders map[trove.ObjectID]*engine.Builder
		results  map[trove.ObjectID]trove.Ref // builders' own refs of remote calls' results (createResult)
		inflight map[uint64]context.CancelCauseFunc
	}

	// loop is the read loop's own scratch, reused from request to request.
	loop struct {
		r     reader
		ids   []trove.ObjectID
		holds []engine.Hold
	}
}

// held is one object a client references: one engine count (a Hold, so no GC
// handle: the daemon always gives it back itself) for all of the client's
// handles, n of them.
type held struct {
	hold engine.Hold
	n    int
}

func (c *conn) logger() *slog.Logger {
	return c.srv.log.With("client", c.id, "pid", c.pid, "name", c.name)
}

// serve reads and handles requests until the connection ends, then releases
// everything the client held.
func (c *conn) serve() {
	defer c.srv.conns.Done()
	defer c.cleanup()
	sr := &stallReader{nc: c.nc, timeout: c.srv.cfg.FrameTimeout}
	br := bufio.NewReaderSize(sr, 64<<10)
	var hdr [headerSize]byte
	var body []byte
	for {
		// Replies to requests that came together go out together: hold them
		// while more requests are buffered, write them before waiting.
		if br.Buffered() < headerSize {
			if err := c.out.uncork(); err != nil {
				return
			}
		} else {
			c.out.cork()
		}
		// Between frames the client may stay quiet as long as it likes; once a
		// frame has begun, it must keep coming.
		if br.Buffered() == 0 {
			sr.inFrame = false
			if _, err := br.Peek(1); err != nil {
				if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
					c.logger().Info("client connection lost", "err", err)
				}
				return
			}
		}
		sr.inFrame = true
		if n, err := io.ReadFull(br, hdr[:]); err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				c.stalled(fmt.Sprintf("sent %d of a frame header's %d bytes", n, headerSize))
			} else if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
				c.logger().Info("client connection lost", "err", err)
			}
			return
		}
		h, err := parseHeader(hdr[:], c.srv.cfg.MaxMessage)
		if err == nil && h.nfds != 0 {
			err = fmt.Errorf("%w: clients send no file descriptors", errProtocol)
		}
		if err == nil && !c.hello.Load() && h.op != opHello {
			err = fmt.Errorf("%w: %s before the handshake", errProtocol, h.op)
		}
		if err == nil {
			if n := h.bodyLen(); cap(body) < n {
				body = make([]byte, n)
			}
			body = body[:h.bodyLen()]
			if br.Buffered() < len(body) {
				err = c.out.uncork() // the rest of the body may be a while
			}
			var n int
			if n, err = io.ReadFull(br, body); err == nil {
				c.srv.bytesIn.Add(uint64(headerSize + len(body)))
				c.srv.requests.Add(1)
				err = c.handle(h, body)
			} else if errors.Is(err, os.ErrDeadlineExceeded) {
				c.stalled(fmt.Sprintf("sent %d of a %s frame's %d body bytes", n, h.op, len(body)))
				return
			}
		}
		if err != nil {
			if errors.Is(err, errProtocol) || errors.Is(err, errTooLarge) {
				c.srv.protoErrors.Add(1)
				c.logger().Warn("closing client connection: bad message", "reason", err)
			} else if !errors.Is(err, net.ErrClosed) {
				c.logger().Info("client connection lost", "err", err)
			}
			return
		}
	}
}

// stalled logs and counts why a connection stuck in the middle of a frame is
// being closed; what has been read of the frame is dropped with it.
func (c *conn) stalled(what string) {
	c.srv.stalled.Add(1)
	c.logger().Warn("closing client connection: stuck in the middle of a frame",
		"reason", fmt.Sprintf("%s, then nothing for %v (ServerConfig.FrameTimeout)", what, c.srv.cfg.FrameTimeout))
}

// stallReader is the read loop's view of the socket. While a frame is partly
// read (inFrame), every read must bring bytes within timeout or fail with
// os.ErrDeadlineExceeded; between frames a read waits as long as it takes. Only
// the read loop uses it.
type stallReader struct {
	nc      *net.UnixConn
	timeout time.Duration // <= 0: no limit
	inFrame bool          // a frame has begun: reads have a deadline
	armed   bool          // a read deadline is set on nc
}

func (r *stallReader) Read(p []byte) (int, error) {
	switch {
	case r.inFrame && r.timeout > 0:
		// Each read that brings bytes moves the deadline on: a large frame
		// arriving slowly is fine, one that stops is not.
		if err := r.nc.SetReadDeadline(time.Now().Add(r.timeout)); err != nil {
			return 0, err
		}
		r.armed = true
	case r.armed:
		if err := r.nc.SetReadDeadline(time.Time{}); err != nil {
			return 0, err
		}
		r.armed = false
	}
	return r.nc.Read(p)
}

// cleanup releases everything the client held: builders are aborted, views
// released, refs dropped. It runs once the connection is gone.
func (c *conn) cleanup() {
	c.nc.Close()
	c.cancel(errDead)
	c.reqs.Wait() // its requests end (their context is cancelled); what they registered is collected below
	c.mu.Lock()
	c.mu.dead = true
	refs, views, builders, results := c.mu.refs, c.mu.views, c.mu.builders, c.mu.results
	c.mu.refs, c.mu.views, c.mu.builders, c.mu.results = nil, nil, nil, nil
	c.mu.Unlock()
	for _, b := range builders {
		b.Abort()
	}
	for _, r := range results {
		r.Drop()
	}
	for _, v := range views {
		v.Release()
	}
	for _, h := range refs {
		c.srv.st.Unhold(h.hold)
	}
	c.srv.builders.Add(-int64(len(builders)))
	c.srv.views.Add(-int64(len(views)))
	c.srv.refs.Add(-int64(len(refs)))
	s := c.srv
	s.mu.Lock()
	delete(s.mu.conns, c)
	s.mu.Unlock()
	if c.hello.Load() {
		c.logger().Info("client disconnected", "refs", len(refs), "views", len(views), "builders", len(builders))
	}
	s.closed(c)
}

// reply sends a successful reply to request id with body written by fill.
func (c *conn) reply(id uint64, fill func(b []byte) []byte) error {
	bp := getBuf()
	b := appendHeader(*bp, opReply, id, 0)
	b = putU8(b, codeOK)
	if fill != nil {
		b = fill(b)
	}
	b = finish(b, 0)
	c.srv.bytesOut.Add(uint64(len(b)))
	err := c.out.send(b)
	*bp = b
	putBuf(bp)
	return err
}

// fail sends an error reply to request id.
func (c *conn) fail(id uint64, err error) error {
	bp := getBuf()
	b := finish(appendError(appendHeader(*bp, opReply, id, 0), err), 0)
	c.srv.bytesOut.Add(uint64(len(b)))
	serr := c.out.send(b)
	*bp = b
	putBuf(bp)
	return serr
}

// async runs fn in a goroutine of its own with a context that ends at deadline
// (unix nanoseconds, 0 for none), on a cancel request, or when the connection or
// the server goes. fn returns the error to reply with, or nil if it replied.
func (c *conn) async(id uint64, deadline int64, fn func(ctx context.Context) error) {
	ctx, cancel := context.WithCancelCause(c.ctx)
	var stop context.CancelFunc = func() {}
	if deadline != 0 {
		ctx, stop = context.WithDeadline(ctx, time.Unix(0, deadline))
	}
	c.mu.Lock()
	c.mu.inflight[id] = cancel
	c.mu.Unlock()
	c.reqs.Add(1)
	c.srv.reqs.Add(1)
	go func() {
		defer c.srv.reqs.Done()
		defer c.reqs.Done()
		if err := fn(ctx); err != nil {
			_ = c.fail(id, err)
		}
		stop()
		cancel(nil)
		c.mu.Lock()
		delete(c.mu.inflight, id)
		c.mu.Unlock()
	}()
}

package ipc

import (
	"context"
	"errors"
	"fmt"
	"runtime"

	"github.com/trovedb/trove"
	"github.com/trovedb/trove/engine"
)

// Layers above the store (the task runtime's workers) speak to the daemon's
// clients through two seams, so that this package knows nothing of them:
//
//   - Server.Handle registers a handler for a LayerOp: a client's
//     Client.CallLayer(op, body) runs it (in a goroutine of its own: it may
//     block, as a worker's wait for its next call does) and gets its reply
//     bytes or its error. The handler's context ends when the client
//     cancels the request or its connection ends. Server.OnClose tells the
//     layer when a connection has ended and everything it held has been
//     released (its builders aborted, its refs dropped), so that work given
//     to a dead client can be given to another.
//   - ServerConfig.Results lets a client write the result of a remote call
//     in place (Client.CreateResult): a builder for an ID the caller's node
//     minted, made by the cluster layer and handed back to it once sealed.

// LayerOp names a layer's request (Server.Handle). A layer owns its ops'
// bodies, their versions and their decoders.
type LayerOp uint8

// LayerHandler answers one layer request. body is the request's (the
// handler's own copy); the reply is what Client.CallLayer returns, an error
// what it fails with (its message sent as text, sentinels as ipc errors are).
type LayerHandler func(ctx context.Context, c Conn, body []byte) ([]byte, error)

// ResultStore makes and keeps results of remote calls written by clients
// (ServerConfig.Results): a cluster.Node is one.
type ResultStore interface {
	// CreateResult returns a builder for the pending primary copy of id, an
	// ID the call's caller minted; contains live as long as the object.
	CreateResult(ctx context.Context, id trove.ObjectID, size int, contains []trove.Ref) (*engine.Builder, error)
	// KeepResult takes over the sealed result's ref (the builder's), keeping
	// the primary copy while its owner wants it.
	KeepResult(ref trove.Ref) error
}

// Conn is a client's connection as a layer handler sees it.
type Conn struct{ c *conn }

// ID is the connection's number, unique for the server's life.
func (c Conn) ID() uint64 { return c.c.id }

// PID is the client's process ID, as the kernel says (0 if it does not).
func (c Conn) PID() int { return c.c.pid }

// Name is the name the client gave in its handshake.
func (c Conn) Name() string { return c.c.name }

// Done is closed when the connection has ended.
func (c Conn) Done() <-chan struct{} { return c.c.ctx.Done() }

// ServerClosing is closed when the server begins to shut down: a handler
// that waits for work (a long poll) should then answer at once, since
// Shutdown waits for requests in progress (ServerConfig's grace).
func (c Conn) ServerClosing() <-chan struct{} { return c.c.srv.shutdown }

// Borrowed returns refs of the daemon's own on ids, each of which the client
// must hold (a client names only what it holds). The caller drops them.
func (c Conn) Borrowed(ids []trove.ObjectID) ([]trove.Ref, error) { return c.c.borrowed(ids) }

// Adopt gives the client one handle on ref's object (ref stays the caller's:
// drop it as ever). The reply must name the object, and the client must take
// it with Client.AdoptRef, else it stays held until the client disconnects.
func (c Conn) Adopt(ref trove.Ref) error {
	h, err := c.c.srv.st.HoldRef(ref)
	if err != nil {
		return err
	}
	if !c.c.adopt(h) {
		return errDead
	}
	return nil
}

// Handle registers h for op (nil removes it). Register before clients use
// op: a request for an op with no handler fails, saying so.
func (s *Server) Handle(op LayerOp, h LayerHandler) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mu.layer == nil {
		s.mu.layer = map[LayerOp]LayerHandler{}
	}
	if h == nil {
		delete(s.mu.layer, op)
		return
	}
	s.mu.layer[op] = h
}

// OnClose calls f after each connection ends and everything it held is
// released; the returned func stops it. f runs on the connection's own
// goroutine: it must not block for long.
func (s *Server) OnClose(f func(Conn)) (stop func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.mu.nextHook++
	id := s.mu.nextHook
	if s.mu.onClose == nil {
		s.mu.onClose = map[uint64]func(Conn){}
	}
	s.mu.onClose[id] = f
	return func() {
		s.mu.Lock()
		delete(s.mu.onClose, id)
		s.mu.Unlock()
	}
}

// closed runs the OnClose hooks for c.
func (s *Server) closed(c *conn) {
	s.mu.Lock()
	hooks := make([]func(Conn), 0, len(s.mu.onClose))
	for _, f := range s.mu.onClose {
		hooks = append(hooks, f)
	}
	s.mu.Unlock()
	for _, f := range hooks {
		f(Conn{c})
	}
}

// layer runs a layer request.
func (c *conn) layer(id uint64, body []byte) error {
	r := &reader{b: body}
	op := LayerOp(r.u8())
	if r.err != nil {
		return r.err
	}
	c.srv.mu.Lock()
	h := c.srv.mu.layer[op]
	c.srv.mu.Unlock()
	if h == nil {
		return c.fail(id, fmt.Errorf("ipc: this daemon serves no layer op %d (a single-node troved runs no remote functions: start it with -listen)", op))
	}
	own := append([]byte(nil), r.rest()...) // the read buffer is reused
	c.async(id, 0, func(ctx context.Context) error {
		rep, err := h(ctx, Conn{c}, own)
		if err != nil {
			return err
		}
		return c.reply(id, func(b []byte) []byte { return append(b, rep...) })
	})
	return nil
}

// createResult is create for a remote call's result (opCreateResult).
func (c *conn) createResult(id uint64, m *createResultReq) {
	rs := c.srv.cfg.Results
	if rs == nil {
		_ = c.fail(id, errors.New("ipc: this daemon stores no remote calls' results (a single-node troved runs no remote functions: start it with -listen)"))
		return
	}
	contains, err := c.borrowed(m.contains)
	if err != nil {
		_ = c.fail(id, err)
		return
	}
	c.async(id, m.deadline, func(ctx context.Context) error {
		defer dropRefs(contains)
		b, err := rs.CreateResult(ctx, m.id, int(m.size), contains)
		if err != nil {
			return err
		}
		h, err := c.srv.st.HoldRef(b.Ref())
		if err != nil {
			b.Abort()
			b.Ref().Drop()
			return err
		}
		c.mu.Lock()
		if c.mu.dead {
			c.mu.Unlock()
			b.Abort()
			b.Ref().Drop()
			c.srv.st.Unhold(h)
			return errDead
		}
		c.mu.builders[h.ID()] = b
		if c.mu.results == nil {
			c.mu.results = map[trove.ObjectID]trove.Ref{}
		}
		c.mu.results[h.ID()] = b.Ref() // handed to rs.KeepResult at Seal
		extra := c.adoptLocked(h)
		c.mu.Unlock()
		c.srv.st.Unhold(extra)
		c.srv.builders.Add(1)
		rep := createReply{id: h.ID(), off: b.ArenaOffset()}
		return c.reply(id, rep.encode)
	})
}

// takeResult returns the builder's ref of the result id, if id is one.
func (c *conn) takeResult(id trove.ObjectID) (trove.Ref, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	r, ok := c.mu.results[id]
	delete(c.mu.results, id)
	return r, ok
}

// CallLayer sends a request of a layer above (Server.Handle) and returns the
// handler's reply. If ctx ends first the request is cancelled and its late
// reply dropped: a layer whose replies grant something must cope (or call
// with a context that does not end).
func (c *Client) CallLayer(ctx context.Context, op LayerOp, body []byte) ([]byte, error) {
	r, _, err := c.roundTrip(ctx, opLayer, nil, func(b []byte) []byte {
		return append(append(b, byte(op)), body...)
	})
	if err != nil {
		return nil, err
	}
	return append([]byte(nil), r.rest()...), nil
}

// AdoptRef returns a ref to id, an object the daemon gave this client a
// handle on in a layer reply (Conn.Adopt). Call it exactly once per handle
// given: each ref returned gives its handle back when dropped.
func (c *Client) AdoptRef(id trove.ObjectID) trove.Ref { return trove.NewRef(id, c, nil) }

// CreateResult makes a builder for the result id of a remote call this
// client runs (the daemon's ServerConfig.Results makes it: a cluster node's
// pending primary copy of id), written in place in shared memory; contains
// live as long as the object. Seal or Abort it as any builder; once sealed
// the daemon keeps the result for its owner, and the builder's ref is this
// client's own handle (drop it).
func (c *Client) CreateResult(ctx context.Context, id trove.ObjectID, size int, contains []trove.Ref) (*Builder, error) {
	defer runtime.KeepAlive(contains)
	if size < 0 {
		return nil, fmt.Errorf("create result of %d bytes: size must not be negative", size)
	}
	ids, err := c.idsOf(contains)
	if err != nil {
		return nil, fmt.Errorf("create result: contained ref: %w", err)
	}
	m := createResultReq{deadline: deadlineOf(ctx), id: id, size: uint64(size), contains: ids}
	r, _, err := c.roundTrip(ctx, opCreateResult, nil, m.encode)
	if err != nil {
		return nil, err
	}
	return c.newBuilder(r, size)
}

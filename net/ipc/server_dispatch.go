package ipc

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
)

// handle handles one request. An error closes the connection (the client broke
// the protocol or is gone); a failed request is answered with its error.
func (c *conn) handle(h header, body []byte) error {
	r := &c.loop.r
	*r = reader{b: body}
	s := c.srv
	// Refuse new work while shutting down; releases and cancels still count.
	switch h.op {
	case opRelease, opReleaseView, opCancel, opAbort, opReply:
	default:
		if s.closing() && h.op != opHello {
			return c.fail(h.id, ErrServerClosed)
		}
	}
	switch h.op {
	case opHello:
		var m helloReq
		if err := decodeAll(r, &m); err != nil {
			return err
		}
		return c.handshake(h.id, &m)
	case opPut:
		var m putReq
		m.decode(r) // not decodeAll: through its interface m would escape to the heap
		if err := r.done(); err != nil {
			return err
		}
		// Inline puts never wait for arena room, so the read loop runs them; a
		// daemon that keeps every object in the arena (inline threshold 0)
		// takes creates only.
		if s.inline == 0 || int64(len(m.data)) > s.inline {
			return fmt.Errorf("%w: put of %d bytes inline; the daemon's inline threshold is %d (use create)", errProtocol, len(m.data), s.inline)
		}
		return c.put(h.id, &m)
	case opCreate:
		var m createReq
		if err := decodeAll(r, &m); err != nil {
			return err
		}
		c.create(h.id, &m)
		return nil
	case opSeal:
		var m sealReq
		if err := decodeAll(r, &m); err != nil {
			return err
		}
		if err := c.seal(&m); err != nil {
			return c.fail(h.id, err)
		}
		return c.reply(h.id, nil)
	case opAbort:
		id := r.id()
		if err := r.done(); err != nil {
			return err
		}
		c.abort(id)
		return nil
	case opGet:
		m, err := decodeIDs(r, true, false)
		if err != nil {
			return err
		}
		if len(m.ids) > maxBatch {
			return fmt.Errorf("%w: get of %d objects in one request (limit %d)", errProtocol, len(m.ids), maxBatch)
		}
		c.get(h.id, m)
		return nil
	case opWait:
		m, err := decodeIDs(r, true, true)
		if err != nil {
			return err
		}
		c.wait(h.id, m)
		return nil
	case opBorrow:
		m, err := decodeIDs(r, false, false)
		if err != nil {
			return err
		}
		if err := c.borrow(m.ids); err != nil {
			return c.fail(h.id, err)
		}
		return c.reply(h.id, nil)
	case opRelease:
		// The read loop's scratch: one release rides with nearly every request.
		ids := r.appendIDs(c.loop.ids[:0], math.MaxInt32)
		if err := r.done(); err != nil {
			return err
		}
		c.release(ids)
		if cap(ids) <= 4096 {
			c.loop.ids = ids[:0]
		}
		return nil
	case opReleaseView:
		views := decodeViews(r)
		if err := r.done(); err != nil {
			return err
		}
		c.releaseViews(views)
		return nil
	case opCancel:
		if err := r.done(); err != nil {
			return err
		}
		c.mu.Lock()
		cancel := c.mu.inflight[h.id]
		c.mu.Unlock()
		if cancel != nil {
			cancel(errCanceled)
		}
		return nil
	case opStatus:
		if err := r.done(); err != nil {
			return err
		}
		st := s.status()
		return c.replyCBOR(h.id, &st)
	case opMemory:
		if err := r.done(); err != nil {
			return err
		}
		c.async(h.id, 0, func(context.Context) error {
			rep := s.memory()
			return c.replyCBOR(h.id, &rep)
		})
		return nil
	case opClusterMemory:
		limit := int(r.u32())
		if err := r.done(); err != nil {
			return err
		}
		if s.cfg.Cluster == nil {
			return c.fail(h.id, errors.New("this daemon is a single node, not a cluster node (troved -listen): use trove memory without -cluster"))
		}
		c.async(h.id, 0, func(ctx context.Context) error {
			rep, err := s.cfg.Cluster.Objects(ctx, limit)
			if err != nil {
				return err
			}
			return c.replyCBOR(h.id, &rep)
		})
		return nil
	case opKeep, opUnkeep:
		id := r.id()
		if err := r.done(); err != nil {
			return err
		}
		var err error
		if h.op == opKeep {
			err = c.keep(id)
		} else {
			err = s.unkeep(id)
		}
		if err != nil {
			return c.fail(h.id, err)
		}
		return c.reply(h.id, nil)
	case opLayer:
		return c.layer(h.id, body)
	case opCreateResult:
		var m createResultReq
		if err := decodeAll(r, &m); err != nil {
			return err
		}
		c.createResult(h.id, &m)
		return nil
	case opSync:
		if err := r.done(); err != nil {
			return err
		}
		return c.reply(h.id, nil)
	default: // opReply
		return fmt.Errorf("%w: a client sent a %s", errProtocol, h.op)
	}
}

// decodeAll decodes a whole message body into m.
func decodeAll(r *reader, m interface{ decode(*reader) }) error {
	m.decode(r)
	return r.done()
}

// decodeIDs decodes a whole get, wait, borrow or release body.
func decodeIDs(r *reader, withDeadline, withN bool) (idsReq, error) {
	var m idsReq
	m.decode(r, withDeadline, withN)
	return m, r.done()
}

func (c *conn) handshake(id uint64, m *helloReq) error {
	if c.hello.Load() {
		return fmt.Errorf("%w: a second handshake", errProtocol)
	}
	if m.version != Version {
		_ = c.fail(id, fmt.Errorf("%w: client speaks protocol version %d, this daemon %d; use a client built from the same trove release", errProtocol, m.version, Version))
		return fmt.Errorf("%w: protocol version %d", errProtocol, m.version)
	}
	c.name = m.name
	if c.pid == 0 {
		c.pid = int(m.pid)
	}
	c.hello.Store(true)
	st := c.srv.st
	rep := helloReply{
		version: Version, node: st.Node(), arenaSize: uint64(st.ArenaSize()),
		inline: uint64(c.srv.inline), maxMsg: uint32(c.srv.cfg.MaxMessage), pid: uint32(os.Getpid()),
	}
	bp := getBuf()
	b := finish(rep.encode(putU8(appendHeader(*bp, opReply, id, 1), codeOK)), 0)
	err := c.out.sendFDs(b, []int{st.ArenaFD()})
	*bp = b
	putBuf(bp)
	c.logger().Info("client connected")
	return err
}

package ipc

import (
	"context"
	"fmt"

	"github.com/trovedb/trove"
	"github.com/trovedb/trove/engine"
)

func (c *conn) put(id uint64, m *putReq) error {
	var contains []trove.Ref
	if len(m.contains) > 0 {
		var err error
		if contains, err = c.borrowed(m.contains); err != nil {
			return c.fail(id, err)
		}
		defer dropRefs(contains)
	}
	// Small objects live in the heap: this never waits for room.
	h, err := c.srv.st.PutHold(c.ctx, len(m.data), contains, func(dst []byte) error {
		copy(dst, m.data)
		return nil
	})
	if err != nil {
		return c.fail(id, err)
	}
	oid := h.ID()
	if !c.adopt(h) {
		return errDead
	}
	return c.reply(id, func(b []byte) []byte { return putID(b, oid) })
}

func (c *conn) create(id uint64, m *createReq) {
	contains, err := c.borrowed(m.contains)
	if err != nil {
		_ = c.fail(id, err)
		return
	}
	c.async(id, m.deadline, func(ctx context.Context) error {
		defer dropRefs(contains)
		b, err := c.srv.st.CreateContaining(ctx, int(m.size), contains)
		if err != nil {
			return err
		}
		// The daemon keeps a Hold, not the builder's GC-watched ref.
		h, err := c.srv.st.HoldRef(b.Ref())
		b.Ref().Drop()
		if err != nil {
			b.Abort()
			return err
		}
		c.mu.Lock()
		if c.mu.dead {
			c.mu.Unlock()
			b.Abort()
			c.srv.st.Unhold(h)
			return errDead
		}
		c.mu.builders[h.ID()] = b
		extra := c.adoptLocked(h)
		c.mu.Unlock()
		c.srv.st.Unhold(extra)
		c.srv.builders.Add(1)
		rep := createReply{id: h.ID(), off: b.ArenaOffset()}
		return c.reply(id, rep.encode)
	})
}

func (c *conn) takeBuilder(id trove.ObjectID) *engine.Builder {
	c.mu.Lock()
	b := c.mu.builders[id]
	delete(c.mu.builders, id)
	c.mu.Unlock()
	if b != nil {
		c.srv.builders.Add(-1)
	}
	return b
}

func (c *conn) seal(m *sealReq) error {
	b := c.takeBuilder(m.id)
	if b == nil {
		return fmt.Errorf("seal %s: no object this client is creating: %w", m.id, trove.ErrSealed)
	}
	res, isResult := c.takeResult(m.id) // the builder's own ref: kept once sealed, else dropped
	kept := false
	defer func() {
		if isResult && !kept {
			res.Drop()
		}
	}()
	if b.ArenaOffset() < 0 {
		if len(m.data) != b.Size() {
			b.Abort()
			return fmt.Errorf("seal %s: %d bytes sent for an object of %d; it was aborted", m.id, len(m.data), b.Size())
		}
		copy(b.Bytes(), m.data)
	} else if len(m.data) != 0 {
		b.Abort()
		return fmt.Errorf("seal %s: bytes sent for an object written in shared memory; it was aborted", m.id)
	}
	if err := b.Seal(); err != nil {
		return err
	}
	if isResult {
		kept = true
		return c.srv.cfg.Results.KeepResult(res)
	}
	return nil
}

func (c *conn) abort(id trove.ObjectID) {
	if b := c.takeBuilder(id); b != nil {
		b.Abort()
	}
	if r, ok := c.takeResult(id); ok {
		r.Drop()
	}
}

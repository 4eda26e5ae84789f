package ipc

import (
	"context"
	"fmt"
	"runtime"

	"github.com/trovedb/trove"
)

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
	return c.newBuilder(r, size)
}

// newBuilder is the builder a create (or create-result) reply r describes.
func (c *Client) newBuilder(r *reader, size int) (*Builder, error) {
	var err error
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

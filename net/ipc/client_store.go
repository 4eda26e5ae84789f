package ipc

import (
	"context"
	"fmt"
	"runtime"

	"golang.org/x/sys/unix"

	"github.com/trovedb/trove"
)

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

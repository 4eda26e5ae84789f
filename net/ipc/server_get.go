package ipc

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/fxamacker/cbor/v2"

	"github.com/trovedb/trove"
	"github.com/trovedb/trove/engine"
)

// get answers at once if every object is in memory, else in a goroutine.
func (c *conn) get(id uint64, m idsReq) {
	c.mu.Lock()
	holds, err := c.lookupLocked(m.ids)
	c.mu.Unlock()
	if err != nil {
		_ = c.fail(id, err)
		return
	}
	views := make([]*trove.Object, len(holds))
	fast := true
	for i, h := range holds {
		v, err := c.srv.st.TryGetHold(h)
		if err != nil {
			trove.ReleaseAll(views)
			_ = c.fail(id, err)
			return
		}
		if v == nil {
			fast = false
			break
		}
		views[i] = v
	}
	if fast {
		if err := c.replyViews(id, views); err != nil {
			_ = c.fail(id, err)
		}
		return
	}
	refs, err := c.borrowed(m.ids) // the read loop may drop the client's refs meanwhile
	if err != nil {
		trove.ReleaseAll(views)
		_ = c.fail(id, err)
		return
	}
	c.async(id, m.deadline, func(ctx context.Context) error {
		defer dropRefs(refs)
		for i, r := range refs {
			if views[i] != nil {
				continue
			}
			v, err := c.srv.st.Get(ctx, r)
			if err != nil {
				trove.ReleaseAll(views)
				return fmt.Errorf("get (ref %d of %d): %w", i, len(refs), err)
			}
			views[i] = v
		}
		return c.replyViews(id, views)
	})
}

// replyViews registers views as the client's pins and sends where their bytes
// are. Small objects are copied into the reply and their views released at once;
// objects mapped from a spill file send that file's descriptor.
func (c *conn) replyViews(id uint64, views []*trove.Object) error {
	items := make([]getItem, len(views))
	var files []*os.File
	defer func() {
		for _, f := range files {
			f.Close()
		}
	}()
	for i, v := range views {
		loc, err := c.srv.st.Locate(v)
		if err != nil {
			trove.ReleaseAll(views)
			return err
		}
		it := &items[i]
		it.size = uint64(v.Size())
		switch loc.Place {
		case engine.PlaceHeap:
			it.place, it.data = placeInline, v.Bytes()
		case engine.PlaceArena:
			it.place, it.offset = placeArena, uint64(loc.Offset)
		case engine.PlaceFile:
			f, err := os.Open(loc.Path)
			if err != nil {
				trove.ReleaseAll(views)
				return fmt.Errorf("get %s: open its spill file: %w", v.ID(), err)
			}
			files = append(files, f)
			it.place, it.offset = placeFile, uint64(loc.Offset)
		}
	}
	if len(files) > maxFDs {
		trove.ReleaseAll(views)
		return fmt.Errorf("get: %d objects mapped from spill files in one request (limit %d); get fewer at once", len(files), maxFDs)
	}
	c.mu.Lock()
	if c.mu.dead {
		c.mu.Unlock()
		trove.ReleaseAll(views)
		return errDead
	}
	for i, v := range views {
		if items[i].place == placeInline {
			continue
		}
		c.mu.nextView++
		items[i].view = c.mu.nextView
		c.mu.views[c.mu.nextView] = v
	}
	c.mu.Unlock()
	bp := getBuf()
	b := appendHeader(*bp, opReply, id, len(files))
	b = putU32(putU8(b, codeOK), uint32(len(items)))
	for i := range items {
		b = items[i].encode(b)
	}
	b = finish(b, 0)
	// Inline objects were copied: their pins can go.
	pinned := int64(0)
	for i, v := range views {
		if items[i].place == placeInline {
			v.Release()
		} else {
			pinned++
		}
	}
	c.srv.views.Add(pinned)
	c.srv.bytesOut.Add(uint64(len(b)))
	var err error
	if len(files) > 0 {
		fds := make([]int, len(files))
		for i, f := range files {
			fds[i] = int(f.Fd())
		}
		err = c.out.sendFDs(b, fds)
	} else {
		err = c.out.send(b)
	}
	*bp = b
	putBuf(bp)
	return err
}

func (c *conn) wait(id uint64, m idsReq) {
	if int(m.n) > len(m.ids) {
		_ = c.fail(id, fmt.Errorf("wait: numReturns %d outside [0, %d], the number of refs", m.n, len(m.ids)))
		return
	}
	c.mu.Lock()
	holds, err := c.lookupLocked(m.ids)
	c.mu.Unlock()
	if err != nil {
		_ = c.fail(id, err)
		return
	}
	// Fast path: enough are ready now, in input order.
	var idx []int
	for i, h := range holds {
		if len(idx) == int(m.n) {
			break
		}
		if c.srv.st.ReadyHold(h) {
			idx = append(idx, i)
		}
	}
	if len(idx) == int(m.n) {
		_ = c.reply(id, func(b []byte) []byte { return encodeWait(b, 0, idx) })
		return
	}
	refs, err := c.borrowed(m.ids)
	if err != nil {
		_ = c.fail(id, err)
		return
	}
	c.async(id, m.deadline, func(ctx context.Context) error {
		defer dropRefs(refs)
		ready, _, err := c.srv.st.Wait(ctx, refs, int(m.n))
		var timedOut uint8
		if err != nil {
			if !errors.Is(err, trove.ErrGetTimeout) {
				return err
			}
			timedOut = 1
		}
		// ready is a subsequence of refs, in order.
		idx := make([]int, 0, len(ready))
		j := 0
		for i, r := range refs {
			if j < len(ready) && ready[j] == r {
				idx = append(idx, i)
				j++
			}
		}
		return c.reply(id, func(b []byte) []byte { return encodeWait(b, timedOut, idx) })
	})
}

// encodeWait writes a wait reply: whether the deadline passed, and the ready
// refs' positions.
func encodeWait(b []byte, timedOut uint8, idx []int) []byte {
	b = putU32(putU8(b, timedOut), uint32(len(idx)))
	for _, i := range idx {
		b = putU32(b, uint32(i))
	}
	return b
}

func (c *conn) replyCBOR(id uint64, v any) error {
	data, err := cbor.Marshal(v)
	if err != nil {
		return c.fail(id, err)
	}
	return c.reply(id, func(b []byte) []byte { return append(b, data...) })
}

package ipc

import (
	"context"
	"time"

	"golang.org/x/sys/unix"

	"github.com/trovedb/trove"
)

// ReleaseRef implements trove.RefOwner: a handle was dropped. The daemon hears
// of it shortly after, in a batch.
func (c *Client) ReleaseRef(id trove.ObjectID, _ any) { c.queueRelease(id) }

func (c *Client) queueRelease(id trove.ObjectID) {
	if c.gone.Load() {
		return // the daemon released everything with the connection
	}
	c.rel.Lock()
	c.markQueuedLocked()
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
	c.markQueuedLocked()
	c.rel.views = append(c.rel.views, id)
	c.rel.Unlock()
	if c.relQueued.Add(1) == 1 {
		c.kick()
	}
}

// markQueuedLocked notes when a batch begins: the releaser sends it once its
// oldest release has waited releaseDelay. The caller holds c.rel.
func (c *Client) markQueuedLocked() {
	if len(c.rel.ids) == 0 && len(c.rel.views) == 0 {
		c.rel.since = time.Since(c.epoch)
		c.rel.batches++
	}
}

func (c *Client) kick() {
	select {
	case c.relKick <- struct{}{}:
	default:
	}
}

// releaseDelay is how long queued releases wait for a request to carry them
// before the releaser sends them on their own. It bounds how late an idle
// client's drops reach the daemon (Flush for at once); the longer it is, the
// less often a busy client's releaser wakes (each wake costs a busy client a
// scheduler hand-off, about a quarter of a one-at-a-time Put+Drop at 200 µs).
const releaseDelay = time.Millisecond

// releaser sends released refs and views to the daemon in batches, so that
// releasing never blocks the caller (the garbage collector's cleanups among
// them) on the socket. It sends a batch only once its oldest release has waited
// releaseDelay: while requests keep coming, they carry every release, and the
// releaser writes nothing. A kick wakes it when releases begin to be queued;
// from then on it wakes on its timer, once per releaseDelay, until a whole
// period passes with no release queued, so that a client dropping refs
// steadily costs one timer wake per period and no kicks.
func (c *Client) releaser() {
	defer close(c.relDone)
	t := time.NewTimer(time.Hour)
	t.Stop()
	for {
		select {
		case <-c.relKick:
		case <-c.done:
			c.dropQueued()
			return
		}
		var seen uint64 // batches begun when last looked
		for active := true; active; {
			c.rel.Lock()
			queued := len(c.rel.ids) > 0 || len(c.rel.views) > 0
			waited := time.Since(c.epoch) - c.rel.since
			batches := c.rel.batches
			c.rel.Unlock()
			wait := releaseDelay
			switch {
			case queued && waited >= releaseDelay:
				c.sendReleases()
			case queued:
				wait = releaseDelay - waited
			case batches == seen:
				// A quiet period: wait for a kick again. Drop one left by a
				// batch already carried (it would wake us for nothing), then
				// look once more: a batch begun before the drop has kicked
				// already, and one begun after kicks anew.
				select {
				case <-c.relKick:
				default:
				}
				c.rel.Lock()
				active = len(c.rel.ids) > 0 || len(c.rel.views) > 0 || c.rel.batches != seen
				c.rel.Unlock()
				continue
			}
			seen = batches
			t.Reset(wait)
			select {
			case <-t.C:
			case <-c.done:
				t.Stop()
				c.dropQueued()
				return
			}
		}
	}
}

// dropQueued forgets queued releases once the connection is gone (the daemon
// released everything with it).
func (c *Client) dropQueued() {
	c.rel.Lock()
	c.rel.ids, c.rel.views = nil, nil
	c.rel.Unlock()
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

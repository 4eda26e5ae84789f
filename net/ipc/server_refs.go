package ipc

import (
	"fmt"

	"github.com/trovedb/trove"
	"github.com/trovedb/trove/engine"
)

// lookupLocked returns the daemon's holds on ids, which the client must hold.
// The caller holds c.mu. Only the read loop gives holds back (release, and
// cleanup once it has ended), so in the read loop they stay valid after c.mu is
// let go; a request running in a goroutine of its own takes refs of its own
// (borrowed).
func (c *conn) lookupLocked(ids []trove.ObjectID) ([]engine.Hold, error) {
	if err := c.holdsLocked(ids); err != nil {
		return nil, err
	}
	holds := make([]engine.Hold, len(ids))
	for i, id := range ids {
		holds[i] = c.mu.refs[id].hold
	}
	return holds, nil
}

// holdsLocked fails unless the client holds a ref to each of ids. The caller
// holds c.mu.
func (c *conn) holdsLocked(ids []trove.ObjectID) error {
	for _, id := range ids {
		if _, ok := c.mu.refs[id]; !ok {
			return fmt.Errorf("object %s: this client holds no ref to it (borrow it first): %w", id, trove.ErrInvalidRef)
		}
	}
	return nil
}

// borrowed returns new engine refs of ids, which the client must hold: for a
// request that outlives the read loop's view of the client's refs.
func (c *conn) borrowed(ids []trove.ObjectID) ([]trove.Ref, error) {
	c.mu.Lock()
	err := c.holdsLocked(ids)
	c.mu.Unlock()
	if err != nil {
		return nil, err
	}
	refs := make([]trove.Ref, 0, len(ids))
	for _, id := range ids {
		r, err := c.srv.st.Borrow(id)
		if err != nil {
			dropRefs(refs)
			return nil, err
		}
		refs = append(refs, r)
	}
	return refs, nil
}

func dropRefs(refs []trove.Ref) {
	for _, r := range refs {
		r.Drop()
	}
}

// adopt records a new client handle to h's object, taking h (the caller's
// count) as the daemon's if it has none yet. If the connection is gone it gives
// h back and reports false.
func (c *conn) adopt(h engine.Hold) bool {
	c.mu.Lock()
	if c.mu.dead {
		c.mu.Unlock()
		c.srv.st.Unhold(h)
		return false
	}
	extra := c.adoptLocked(h)
	c.mu.Unlock()
	c.srv.st.Unhold(extra)
	return true
}

// adoptLocked records a new client handle to h's object and returns the hold
// the caller must give back (zero if h became the daemon's). The caller holds
// c.mu.
func (c *conn) adoptLocked(h engine.Hold) (extra engine.Hold) {
	id := h.ID()
	if hd, ok := c.mu.refs[id]; ok {
		hd.n++
		c.mu.refs[id] = hd
		return h
	}
	c.mu.refs[id] = held{hold: h, n: 1}
	c.srv.refs.Add(1)
	return engine.Hold{}
}

// borrow gives the client one more handle to each of ids, or none if any fails.
//
// HoldID of an ID another node owns can be a round trip to that node (a
// cluster node registers itself as a borrower before the hold exists, up to
// its request timeout if the owner is slow or dying), so the holds are taken
// without c.mu: the client's requests in flight, its releases and `trove
// status` do not wait on it. The read loop does (borrow runs on it), which
// keeps a client's Borrow ordered before its later requests.
func (c *conn) borrow(ids []trove.ObjectID) error {
	holds := make([]engine.Hold, len(ids))
	for i, id := range ids {
		h, err := c.srv.st.HoldID(id)
		if err != nil {
			for _, h := range holds[:i] {
				c.srv.st.Unhold(h)
			}
			return err
		}
		holds[i] = h
	}
	c.mu.Lock()
	if c.mu.dead {
		c.mu.Unlock()
		for _, h := range holds {
			c.srv.st.Unhold(h)
		}
		return errDead
	}
	var extra []engine.Hold
	for _, h := range holds {
		if e := c.adoptLocked(h); !e.IsZero() {
			extra = append(extra, e)
		}
	}
	c.mu.Unlock()
	for _, h := range extra {
		c.srv.st.Unhold(h)
	}
	return nil
}

// release gives back one client handle to each of ids. Only the read loop
// calls it (it uses the loop's scratch).
func (c *conn) release(ids []trove.ObjectID) {
	c.mu.Lock()
	drop := c.loop.holds[:0]
	unknown := 0
	for _, id := range ids {
		hd, ok := c.mu.refs[id]
		if !ok {
			unknown++
			continue
		}
		if hd.n--; hd.n == 0 {
			delete(c.mu.refs, id)
			drop = append(drop, hd.hold)
		} else {
			c.mu.refs[id] = hd
		}
	}
	c.mu.Unlock()
	c.srv.refs.Add(-int64(len(drop)))
	for i, h := range drop {
		c.srv.st.Unhold(h)
		drop[i] = engine.Hold{}
	}
	if cap(drop) <= 4096 {
		c.loop.holds = drop[:0]
	}
	if unknown > 0 {
		c.logger().Warn("client released refs it does not hold", "count", unknown)
	}
}

func (c *conn) releaseViews(ids []uint64) {
	c.mu.Lock()
	views := make([]*trove.Object, 0, len(ids))
	for _, id := range ids {
		if v := c.mu.views[id]; v != nil {
			views = append(views, v)
			delete(c.mu.views, id)
		}
	}
	c.mu.Unlock()
	trove.ReleaseAll(views)
	c.srv.views.Add(-int64(len(views)))
	if len(views) < len(ids) {
		c.logger().Warn("client released views it does not hold", "count", len(ids)-len(views))
	}
}

func (c *conn) keep(id trove.ObjectID) error {
	refs, err := c.borrowed([]trove.ObjectID{id})
	if err != nil {
		return err
	}
	s := c.srv
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.mu.kept[id]; ok {
		refs[0].Drop()
		return nil
	}
	s.mu.kept[id] = refs[0]
	return nil
}

func (s *Server) unkeep(id trove.ObjectID) error {
	s.mu.Lock()
	r, ok := s.mu.kept[id]
	delete(s.mu.kept, id)
	s.mu.Unlock()
	if !ok {
		return notKeptError{id}
	}
	r.Drop()
	return nil
}

// notKeptError is an unkeep of an object the daemon does not keep. It is
// trove.ErrUnknownObject to errors.Is (and crosses the socket as that), but
// its message says what happened once, without the sentinel's general advice.
type notKeptError struct{ id trove.ObjectID }

func (e notKeptError) Error() string {
	return fmt.Sprintf("unkeep %s: the daemon keeps no such object (dropped already, or never kept by trove put)", e.id)
}

func (e notKeptError) Is(target error) bool { return target == trove.ErrUnknownObject }

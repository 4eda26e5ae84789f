package ipc

import (
	"fmt"

	"github.com/trovedb/trove"
)

// lookup returns the engine refs for ids, which the client must hold. The caller
// holds c.mu.
func (c *conn) lookupLocked(ids []trove.ObjectID) ([]trove.Ref, error) {
	if err := c.holdsLocked(ids); err != nil {
		return nil, err
	}
	refs := make([]trove.Ref, len(ids))
	for i, id := range ids {
		refs[i] = c.mu.refs[id].ref
	}
	return refs, nil
}

// holdsLocked fails unless the client holds a ref to each of ids. The caller
// holds c.mu.
func (c *conn) holdsLocked(ids []trove.ObjectID) error {
	for _, id := range ids {
		if c.mu.refs[id] == nil {
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

// adopt records a new client handle to ref's object, taking ref (the caller's
// engine ref) as the server's if it has none yet. If the connection is gone it
// drops ref and reports false.
func (c *conn) adopt(ref trove.Ref) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.mu.dead {
		ref.Drop()
		return false
	}
	c.adoptLocked(ref)
	return true
}

func (c *conn) adoptLocked(ref trove.Ref) {
	if h := c.mu.refs[ref.ID()]; h != nil {
		h.n++
		ref.Drop()
		return
	}
	c.mu.refs[ref.ID()] = &held{ref: ref, n: 1}
	c.srv.refs.Add(1)
}

// borrow gives the client one more handle to each of ids, or none if any fails.
func (c *conn) borrow(ids []trove.ObjectID) error {
	refs := make([]trove.Ref, 0, len(ids))
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, id := range ids {
		if h := c.mu.refs[id]; h != nil {
			h.n++
			refs = append(refs, trove.Ref{})
			continue
		}
		r, err := c.srv.st.Borrow(id)
		if err != nil {
			// Undo: the ones counted on held refs, and the new ones.
			for i, r := range refs {
				if r.IsZero() {
					c.mu.refs[ids[i]].n--
				} else {
					r.Drop()
				}
			}
			return err
		}
		refs = append(refs, r)
	}
	for _, r := range refs {
		if !r.IsZero() {
			c.adoptLocked(r)
		}
	}
	return nil
}

func (c *conn) release(ids []trove.ObjectID) {
	c.mu.Lock()
	var drop []trove.Ref
	unknown := 0
	for _, id := range ids {
		h := c.mu.refs[id]
		if h == nil {
			unknown++
			continue
		}
		if h.n--; h.n == 0 {
			delete(c.mu.refs, id)
			drop = append(drop, h.ref)
		}
	}
	c.mu.Unlock()
	c.srv.refs.Add(-int64(len(drop)))
	dropRefs(drop)
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

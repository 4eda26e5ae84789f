package engine

import (
	"context"
	"errors"
	"fmt"
	"runtime"

	"github.com/trovedb/trove"
)

// Get blocks until ref's object is sealed and returns a read-only, zero-copy view
// that pins the object until Release. The caller MUST Release the view. If ctx's
// deadline passes first, Get fails with ErrGetTimeout (which also matches
// context.DeadlineExceeded); if ctx is cancelled, with ctx's error; if the creator
// aborts, with ErrObjectAborted.
func (s *Store) Get(ctx context.Context, ref trove.Ref) (*trove.Object, error) {
	e, err := s.entryOf(ref)
	if err != nil {
		return nil, fmt.Errorf("get: %w", err)
	}
	defer runtime.KeepAlive(ref)
	for {
		if s.closed.Load() {
			return nil, fmt.Errorf("get %s: %w", e.id, trove.ErrClosed)
		}
		obj, st, err := s.pin(e)
		if st != statePending {
			return obj, err
		}
		if err := s.waitOne(ctx, e); err != nil {
			return nil, fmt.Errorf("get %s: %w", e.id, err)
		}
	}
}

// pin takes a view of a sealed object. For a pending object it returns
// statePending and no error: the caller waits.
func (s *Store) pin(e *entry) (*trove.Object, state, error) {
	for {
		w := e.rc.Load()
		switch st := wordState(w); st {
		case stateSealed:
			if wordRefs(w) == 0 {
				return nil, stateFreed, fmt.Errorf("get %s: %w", e.id, trove.ErrObjectFreed)
			}
			if wordPins(w) == pinMask {
				return nil, st, fmt.Errorf("get %s: %d views already pin it; release some", e.id, pinMask)
			}
			if !e.rc.CompareAndSwap(w, w+pinOne) {
				continue
			}
			sh := s.shardFor(e)
			sh.views.Add(1)
			if wordPins(w) == 0 {
				sh.pinnedObjects.Add(1)
				sh.pinnedBytes.Add(int64(len(e.data)))
			}
			if s.closed.Load() { // after counting the view: see maybeUnmap
				s.ReleaseView(e.id, e)
				return nil, stateFreed, fmt.Errorf("get %s: %w", e.id, trove.ErrClosed)
			}
			s.gets.Add(1)
			return trove.NewObject(e.id, e.data, s, e), st, nil
		case statePending:
			return nil, st, nil
		case stateAborted:
			return nil, st, fmt.Errorf("get %s: %w", e.id, trove.ErrObjectAborted)
		default:
			return nil, st, fmt.Errorf("get %s: %w", e.id, trove.ErrObjectFreed)
		}
	}
}

// waitOne blocks until e is no longer pending, ctx ends, or the store closes.
func (s *Store) waitOne(ctx context.Context, e *entry) error {
	w := newWaiter(1)
	if !s.register(e, w) {
		return nil
	}
	select {
	case <-w.ch:
		return nil
	case <-ctx.Done():
		s.unregister(e, w)
		return ctxError(ctx)
	case <-s.closing:
		s.unregister(e, w)
		return trove.ErrClosed
	}
}

// register adds w to e's waiters if e is still pending; otherwise it reports false.
func (s *Store) register(e *entry, w *waiter) bool {
	sh := s.shardFor(e)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if wordState(e.rc.Load()) != statePending {
		return false
	}
	if e.more == nil {
		e.more = &entryMore{}
	}
	e.more.waiters = append(e.more.waiters, w)
	return true
}

func (s *Store) unregister(e *entry, w *waiter) {
	sh := s.shardFor(e)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	ws := e.more.waiters // register made more
	for i, x := range ws {
		if x == w {
			e.more.waiters = append(ws[:i], ws[i+1:]...)
			return
		}
	}
}

// ctxError is the error for a wait that ctx ended: ErrGetTimeout for a deadline.
func ctxError(ctx context.Context) error {
	err := context.Cause(ctx)
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		if err == context.DeadlineExceeded {
			return trove.ErrGetTimeout
		}
		return fmt.Errorf("%w: %w", trove.ErrGetTimeout, err)
	}
	return err
}

// GetAll gets every ref, blocking until all are sealed, and returns the views in
// input order. On any error it releases the views it took and returns none. The
// caller MUST Release every view (trove.ReleaseAll).
func (s *Store) GetAll(ctx context.Context, refs []trove.Ref) ([]*trove.Object, error) {
	objs := make([]*trove.Object, len(refs))
	for i, r := range refs {
		o, err := s.Get(ctx, r)
		if err != nil {
			trove.ReleaseAll(objs[:i])
			return nil, fmt.Errorf("get all (ref %d of %d): %w", i, len(refs), err)
		}
		objs[i] = o
	}
	return objs, nil
}

// Wait blocks until numReturns of refs are ready and returns the first numReturns
// ready refs and the others, each in input order. A ref is ready when Get would not
// block: sealed, or aborted (Get then fails at once). If ctx ends first, Wait
// returns what was ready by then and ctx's error. A ref listed twice counts twice.
func (s *Store) Wait(ctx context.Context, refs []trove.Ref, numReturns int) (ready, pending []trove.Ref, err error) {
	if numReturns < 0 || numReturns > len(refs) {
		return nil, nil, fmt.Errorf("wait: numReturns %d outside [0, %d], the number of refs", numReturns, len(refs))
	}
	entries := make([]*entry, len(refs))
	for i, r := range refs {
		if entries[i], err = s.entryOf(r); err != nil {
			return nil, nil, fmt.Errorf("wait (ref %d of %d): %w", i, len(refs), err)
		}
	}
	defer runtime.KeepAlive(refs)
	for {
		if s.closed.Load() {
			return nil, nil, fmt.Errorf("wait: %w", trove.ErrClosed)
		}
		n, waitOn := 0, entries[:0:0]
		for _, e := range entries {
			if wordState(e.rc.Load()) != statePending {
				n++
			} else {
				waitOn = append(waitOn, e)
			}
		}
		if n >= numReturns {
			ready, pending = splitReady(refs, entries, numReturns)
			return ready, pending, nil
		}
		if err := s.waitMany(ctx, waitOn, numReturns-n); err != nil {
			ready, pending = splitReady(refs, entries, numReturns)
			return ready, pending, fmt.Errorf("wait: %d of %d ready, wanted %d: %w", len(ready), len(refs), numReturns, err)
		}
	}
}

// waitMany blocks until need more of entries, which were all pending when the
// caller looked, stop pending; or until ctx ends or the store closes.
func (s *Store) waitMany(ctx context.Context, entries []*entry, need int) error {
	w := newWaiter(need)
	var registered []*entry
	for _, e := range entries {
		if s.register(e, w) {
			registered = append(registered, e)
		} else {
			w.ready() // became ready since the caller looked
		}
	}
	var err error
	select {
	case <-w.ch:
	case <-ctx.Done():
		err = ctxError(ctx)
	case <-s.closing:
		err = trove.ErrClosed
	}
	for _, e := range registered {
		s.unregister(e, w)
	}
	return err
}

func splitReady(refs []trove.Ref, entries []*entry, n int) (ready, pending []trove.Ref) {
	ready = make([]trove.Ref, 0, n)
	pending = make([]trove.Ref, 0, len(refs)-min(n, len(refs)))
	for i, e := range entries {
		if len(ready) < n && wordState(e.rc.Load()) != statePending {
			ready = append(ready, refs[i])
		} else {
			pending = append(pending, refs[i])
		}
	}
	return ready, pending
}

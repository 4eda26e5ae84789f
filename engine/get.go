package engine

import (
	"context"
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
	o := new(trove.Object)
	if err := s.getInto(ctx, ref, o); err != nil {
		return nil, err
	}
	return o, nil
}

// pin pins a sealed object for a view the caller then makes. For a pending or a
// spilled object it returns that state and no error: the caller waits or restores;
// so for an absent one (remote.go), which the caller fetches.
func (s *Store) pin(e *entry) (state, error) {
	for {
		w := e.rc.Load()
		switch st := wordState(w); st {
		case stateSealed:
			if wordRefs(w) == 0 {
				return stateFreed, fmt.Errorf("get %s: %w", e.id, trove.ErrObjectFreed)
			}
			if wordPins(w) == pinMask {
				return st, fmt.Errorf("get %s: %d views already pin it; release some", e.id, pinMask)
			}
			if !e.rc.CompareAndSwap(w, (w+pinOne)|accessedBit) {
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
				return stateFreed, fmt.Errorf("get %s: %w", e.id, trove.ErrClosed)
			}
			s.gets.Add(1)
			return st, nil
		case statePending, stateSpilled, stateRemote:
			return st, nil
		case stateEvicted:
			if s.cfg.Remote != nil {
				return st, nil // fetched again (remote.go)
			}
			return st, fmt.Errorf("get %s: %w", e.id, trove.ErrObjectEvicted)
		case stateAborted:
			return st, fmt.Errorf("get %s: %w", e.id, trove.ErrObjectAborted)
		default:
			return st, fmt.Errorf("get %s: %w", e.id, trove.ErrObjectFreed)
		}
	}
}

// waitOne blocks until e is no longer pending, ctx ends, or the store closes.
func (s *Store) waitOne(ctx context.Context, e *entry) error {
	w := newWaiter(1)
	if !s.register(e, w) {
		return nil
	}
	return s.await(ctx, e, w)
}

// await blocks until w, registered with e, fires, ctx ends, or the store closes;
// in the latter two cases it takes w off e's waiters.
func (s *Store) await(ctx context.Context, e *entry, w *waiter) error {
	select {
	case <-w.ch:
		return nil
	case <-ctx.Done():
		s.unregister(e, w)
		return trove.ContextError(ctx)
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
	if st := wordState(e.rc.Load()); st.ready() && !s.absent(st) || s.absent(st) && (e.more.foreign == nil || e.more.foreign.fetch == nil) {
		return false // an absent object is waited on while its fetch runs
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

// GetAll gets every ref, blocking until all are sealed, and returns the views in
// input order. On any error it releases the views it took and returns none. The
// caller MUST Release every view (trove.ReleaseAll).
//
// It first pins the objects that are in memory (so that making room for the
// others cannot spill them), then restores the spilled ones together, in
// parallel (restoreAll), then, as Get does, waits for the pending ones, fetches
// the absent ones and restores any it could not batch, one at a time.
func (s *Store) GetAll(ctx context.Context, refs []trove.Ref) ([]*trove.Object, error) {
	defer runtime.KeepAlive(refs)
	if s.cfg.Remote != nil {
		defer s.leaveFetches(s.prefetch(refs)) // pull the foreign ones in parallel
	}
	views := trove.MakeObjects(len(refs)) // one allocation for the batch
	objs := make([]*trove.Object, len(refs))
	fail := func(i int, err error) ([]*trove.Object, error) {
		trove.ReleaseAll(objs)
		return nil, fmt.Errorf("get all (ref %d of %d): %w", i, len(refs), err)
	}
	var spilled []*entry
	var at []int // the index in refs of each of spilled
	for i, r := range refs {
		e, err := s.entryOf(r)
		if err != nil {
			return fail(i, fmt.Errorf("get: %w", err))
		}
		if s.closed.Load() {
			return fail(i, fmt.Errorf("get %s: %w", e.id, trove.ErrClosed))
		}
		switch st, err := s.pin(e); {
		case st == stateSealed && err == nil:
			trove.InitObject(&views[i], e.id, e.data, s, e)
			objs[i] = &views[i]
		case st == stateSpilled:
			spilled = append(spilled, e)
			at = append(at, i)
		case err != nil:
			return fail(i, err)
		}
		// Pending, or absent (a copy to fetch): the last loop, as Get.
	}
	if len(spilled) > 1 {
		for k, err := range s.restoreAll(ctx, spilled) {
			if err != nil {
				return fail(at[k], fmt.Errorf("get %s: %w", spilled[k].id, err))
			}
		}
	}
	for i, r := range refs {
		if objs[i] != nil {
			continue
		}
		if err := s.getInto(ctx, r, &views[i]); err != nil {
			return fail(i, err)
		}
		objs[i] = &views[i]
	}
	return objs, nil
}

// getInto is Get making the view in o.
func (s *Store) getInto(ctx context.Context, ref trove.Ref, o *trove.Object) error {
	defer runtime.KeepAlive(ref) // the handle holds the object until pinned
	e, err := s.entryOf(ref)
	if err != nil {
		return fmt.Errorf("get: %w", err)
	}
	fetched := 0
	for {
		if s.closed.Load() {
			return fmt.Errorf("get %s: %w", e.id, trove.ErrClosed)
		}
		st, err := s.pin(e)
		switch {
		case st == stateSealed && err == nil:
			trove.InitObject(o, e.id, e.data, s, e)
			return nil
		case st == stateSpilled:
			if err := s.restore(ctx, e); err != nil {
				return fmt.Errorf("get %s: %w", e.id, err)
			}
		case st == statePending:
			if err := s.waitOne(ctx, e); err != nil {
				return fmt.Errorf("get %s: %w", e.id, err)
			}
		case err == nil: // absent: fetch a copy (remote.go)
			if fetched++; fetched > maxFetchRounds {
				return errNoCopy(e.id)
			}
			if err := s.awaitFetch(ctx, e); err != nil {
				return fmt.Errorf("get %s: %w", e.id, err)
			}
		default:
			return err
		}
	}
}

// Wait blocks until numReturns of refs are ready and returns the first numReturns
// ready refs and the others, each in input order. A ref is ready when Get would not
// block: sealed, or aborted (Get then fails at once). If ctx ends first, Wait
// returns what was ready by then and ctx's error. A ref listed twice counts twice.
//
// Wait looks at refs in order and stops at the numReturns'th ready one: the refs
// after it are returned as pending without being examined (some may be ready, as
// in Ray's wait), so an invalid ref there is reported by a later Wait. pending may
// share refs' backing array (it never has room to append into it).
//
// With a Config.Remote, a foreign ref this node has no copy of is ready once a
// copy is here: Wait fetches it (as Ray's wait with fetch_local), and counts it
// ready too if that fetch fails (Get then reports why). A fetch that only this
// Wait waited on is cancelled when Wait returns.
func (s *Store) Wait(ctx context.Context, refs []trove.Ref, numReturns int) (ready, pending []trove.Ref, err error) {
	if numReturns < 0 || numReturns > len(refs) {
		return nil, nil, fmt.Errorf("wait: numReturns %d outside [0, %d], the number of refs", numReturns, len(refs))
	}
	defer runtime.KeepAlive(refs)
	var joined []joinedFetch // the fetches of foreign objects this Wait waits on (remote.go)
	defer func() { s.leaveFetches(joined) }()
	for {
		if s.closed.Load() {
			return nil, nil, fmt.Errorf("wait: %w", trove.ErrClosed)
		}
		n, cut := 0, len(refs)
		var waitOn []*entry // the refs found pending, each counted in need below
		for i, r := range refs {
			if n == numReturns {
				cut = i
				break
			}
			e, err := s.entryOf(r)
			if err != nil {
				return nil, nil, fmt.Errorf("wait (ref %d of %d): %w", i, len(refs), err)
			}
			switch st := wordState(e.rc.Load()); {
			case s.absent(st):
				ok, err := s.waitFetched(e, &joined)
				if err != nil {
					return nil, nil, fmt.Errorf("wait (ref %d of %d): %w", i, len(refs), err)
				}
				if ok {
					n++
				} else {
					waitOn = append(waitOn, e)
				}
			case st.ready():
				n++
			default:
				waitOn = append(waitOn, e)
			}
		}
		if n >= numReturns {
			ready, pending = s.splitReady(refs, cut, numReturns, joined)
			return ready, pending, nil
		}
		// Every ref was examined and too few are ready: wait on the pending ones
		// (waitMany counts those that became ready since).
		if err := s.waitMany(ctx, waitOn, numReturns-n); err != nil {
			ready, pending = s.splitReady(refs, len(refs), numReturns, joined)
			return ready, pending, fmt.Errorf("wait: %d of %d ready, wanted %d: %w", len(ready), len(refs), numReturns, err)
		}
	}
}

// splitReady returns the first n ready refs among refs[:cut] and all the others,
// each in input order. States only move forward, so refs found ready stay ready
// (an absent object is ready once the fetch this Wait joined has ended: joined).
// When the first n refs are the ready ones (the common case of polling with
// numReturns 1) pending is refs[n:] itself, with its capacity clipped, not a copy.
func (s *Store) splitReady(refs []trove.Ref, cut, n int, joined []joinedFetch) (ready, pending []trove.Ref) {
	ready = make([]trove.Ref, 0, n)
	for _, r := range refs[:cut] {
		if e, err := s.entryOf(r); err != nil || !s.waitReady(e, joined) {
			break
		}
		ready = append(ready, r)
		if len(ready) == n {
			return ready, refs[n:len(refs):len(refs)]
		}
	}
	ready = ready[:0]
	pending = make([]trove.Ref, 0, len(refs)-n)
	for _, r := range refs[:cut] {
		if len(ready) < n {
			if e, err := s.entryOf(r); err == nil && s.waitReady(e, joined) {
				ready = append(ready, r)
				continue
			}
		}
		pending = append(pending, r)
	}
	return ready, append(pending, refs[cut:]...)
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
		err = trove.ContextError(ctx)
	case <-s.closing:
		err = trove.ErrClosed
	}
	for _, e := range registered {
		s.unregister(e, w)
	}
	return err
}

// waitReady reports whether Wait counts e as ready: its state is ready, or it is
// absent and the fetch the Wait joined (in joined) has ended.
func (s *Store) waitReady(e *entry, joined []joinedFetch) bool {
	st := wordState(e.rc.Load())
	if !s.absent(st) {
		return st.ready()
	}
	for _, j := range joined {
		if j.e == e {
			select {
			case <-j.f.done:
				return !j.f.abandoned
			default:
			}
		}
	}
	return false
}

package task

import (
	"context"
	"sync"

	"github.com/trovedb/trove"
)

// Argument prefetch, as Ray's raylet pulls a queued task's arguments while
// it waits: a call that stays queued on this node (every slot busy) has its
// ref arguments borrowed here (one BorrowAll: one owner registration per ID
// per node, counted locally afterwards) and fetched in the background, so
// that the node's copy exists before the call starts and stays while any
// call queued or running here needs it. Without it, a node whose running
// calls all ended at once dropped its last handle on an argument, freed its
// copy, and the next queued call pulled the same bytes again.
//
// The held handles are the job's (job.pf) from enqueue until the call ends
// (its slot, after the function returned or its worker reported), is
// withdrawn, dropped with its caller or handed back at Close; the call
// still borrows and resolves its arguments itself when it starts (cheap
// local counts by then), so a prefetch that failed, was skipped or has not
// run yet costs nothing but its own work, and the call reports its own
// error as before.
//
// Bounds: at most maxPrefetchers fetches run at once (the rest wait, FIFO,
// in the prefetcher's queue; a call that ended first is skipped), and an
// argument is fetched only while the node's store has more than
// prefetchFree of its capacity free (the running calls' own arguments and
// results come first); the borrow is done either way, so the copy a
// running call brought stays for the queued ones. Enqueue only appends to
// the queue: the submit handler never waits on a borrow or a fetch.
//
// An argument that is another call's result not computed yet is waited
// for, as any Get of a future is: its prefetcher is taken until it resolves
// or the queued call ends (the fetch's context ends with the job), so a
// node's queue of such chains prefetches maxPrefetchers of them at a time.
// A node left with no call queued or running frees its copies, as Ray's do.

// maxPrefetchers is how many prefetches run at once on a node.
const maxPrefetchers = 4

// prefetchFree is the fraction of the store's capacity that must be free
// for a prefetch to fetch.
const prefetchFree = 0.5

// prefetch is a queued job's hold on its ref arguments.
type prefetch struct {
	ids    []trove.ObjectID // the job's ref arguments
	ctx    context.Context  // ends when the job does (the fetch stops)
	cancel context.CancelFunc

	mu    sync.Mutex
	refs  []trove.Ref // guarded by mu: the borrowed handles, until dropped
	busy  bool        // guarded by mu: a fetch is reading refs
	ended bool        // guarded by mu: the job ended; refs are dropped once !busy
}

// prefetcher is a runtime's queue of prefetches and its goroutines.
type prefetcher struct {
	mu      sync.Mutex
	queue   []*prefetch // guarded by mu: waiting for a goroutine, FIFO
	running int         // guarded by mu: goroutines at work
}

// refArgs are the IDs of j's ref arguments (its literals left out).
func refArgs(j *job) []trove.ObjectID {
	var ids []trove.ObjectID
	for i, id := range j.args {
		if (j.lits == nil || j.lits[i] == nil) && id != (trove.ObjectID{}) {
			ids = append(ids, id)
		}
	}
	return ids
}

// queuePrefetch gives the queued job j a prefetch of its ref arguments, if
// it has any (called with the executor's mu held: it only appends, and
// starts a goroutine if fewer than maxPrefetchers run).
func (rt *Runtime) queuePrefetch(j *job) {
	ids := refArgs(j)
	if len(ids) == 0 {
		return
	}
	pf := &prefetch{ids: ids}
	pf.ctx, pf.cancel = context.WithCancel(rt.life)
	j.pf = pf
	p := &rt.pre
	p.mu.Lock()
	p.queue = append(p.queue, pf)
	spawn := p.running < maxPrefetchers
	if spawn {
		p.running++
	}
	p.mu.Unlock()
	if spawn {
		rt.wg.Go(rt.prefetchLoop)
	}
}

// prefetchLoop runs the queue's prefetches until it is empty.
func (rt *Runtime) prefetchLoop() {
	p := &rt.pre
	for {
		p.mu.Lock()
		if len(p.queue) == 0 {
			p.running--
			p.mu.Unlock()
			return
		}
		pf := p.queue[0]
		p.queue[0] = nil
		p.queue = p.queue[1:]
		p.mu.Unlock()
		rt.runPrefetch(pf)
	}
}

// runPrefetch borrows pf's arguments and, while the store has room, brings
// them here. Its failures are not the call's: the call resolves its
// arguments itself when it starts and reports what fails then.
func (rt *Runtime) runPrefetch(pf *prefetch) {
	if pf.ctx.Err() != nil {
		return // the job ended (or started and ended) first
	}
	refs, err := rt.node.BorrowAll(pf.ids)
	if err != nil {
		return
	}
	pf.mu.Lock()
	if pf.ended {
		pf.mu.Unlock()
		dropAll(refs)
		return
	}
	pf.refs = refs
	st := rt.node.Local().Stats()
	fetch := float64(st.Free) > prefetchFree*float64(st.Capacity)
	pf.busy = fetch
	pf.mu.Unlock()
	if !fetch {
		return
	}
	if objs, err := rt.node.GetAll(pf.ctx, refs); err == nil {
		for _, o := range objs {
			o.Release()
		}
	}
	pf.mu.Lock()
	pf.busy = false
	drop := pf.ended
	if drop {
		refs, pf.refs = pf.refs, nil
	}
	pf.mu.Unlock()
	if drop {
		dropAll(refs)
	}
}

// endPrefetch drops j's held arguments (its call ended, was withdrawn,
// dropped or handed back); a fetch under way is stopped and drops them
// when it returns. Safe on a job without a prefetch, and more than once.
func endPrefetch(j *job) {
	pf := j.pf
	if pf == nil {
		return
	}
	pf.cancel()
	pf.mu.Lock()
	pf.ended = true
	var refs []trove.Ref
	if !pf.busy {
		refs, pf.refs = pf.refs, nil
	}
	pf.mu.Unlock()
	dropAll(refs)
}

func dropAll(refs []trove.Ref) {
	for _, r := range refs {
		r.Drop()
	}
}

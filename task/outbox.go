package task

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/trovedb/trove"
	"github.com/trovedb/trove/net/quic"
)

// Messages to other runtimes are batched per peer: a call's submit (or an
// executed call's report) joins its peer's lane, and one goroutine per
// lane sends what has gathered while its previous request was on its way,
// up to maxBatch items and batchBytes each request. One call at a time goes
// at once, alone; many at once share requests. A lane's goroutine ends when
// its lane is empty.

// outbox is a runtime's lanes.
type outbox struct {
	mu    sync.Mutex
	subs  map[trove.NodeID]*subLane  // guarded by mu
	dones map[trove.NodeID]*doneLane // guarded by mu
}

type outSubmit struct {
	c *call
	j *job
}

type subLane struct {
	q       []outSubmit // guarded by outbox.mu
	sending bool        // guarded by outbox.mu: its goroutine runs
}

type outDone struct {
	m  doneReq
	ok bool // doneOK: the result is dropped if the caller does not keep it
}

type doneLane struct {
	q       []outDone // guarded by outbox.mu
	sending bool      // guarded by outbox.mu
}

// sendSubmit queues j (c's attempt) for node to.
func (rt *Runtime) sendSubmit(c *call, j *job, to trove.NodeID) {
	o := &rt.out
	o.mu.Lock()
	l := o.subs[to]
	if l == nil {
		l = &subLane{}
		o.subs[to] = l
	}
	l.q = append(l.q, outSubmit{c, j})
	start := !l.sending
	l.sending = true
	o.mu.Unlock()
	if start {
		rt.wg.Go(func() { rt.runSubLane(to, l) })
	}
}

func (rt *Runtime) runSubLane(to trove.NodeID, l *subLane) {
	var batch []outSubmit
	var ms []submitReq
	var body []byte
	for {
		o := &rt.out
		o.mu.Lock()
		batch, ms = batch[:0], ms[:0]
		size := 0
		k := 0
		for k < len(l.q) && k < maxBatch && (k == 0 || size < batchBytes) {
			s := l.q[k]
			m := submitReq{id: s.j.id, attempt: s.j.attempt, fn: s.j.fn.name, need: s.j.need, args: s.j.args, lits: s.j.lits}
			size += len(m.fn) + len(m.args)*(idLen+1) + 64
			for _, lit := range m.lits {
				size += len(lit)
			}
			batch, ms = append(batch, s), append(ms, m)
			k++
		}
		n := copy(l.q, l.q[k:])
		clear(l.q[n:])
		l.q = l.q[:n]
		if k == 0 {
			l.sending = false
			if len(l.q) == 0 && o.subs[to] == l {
				delete(o.subs, to)
			}
			o.mu.Unlock()
			return
		}
		o.mu.Unlock()
		body = appendSubmits(body[:0], rt.self, ms)
		rep, err := rt.node.Call(rt.life, to, opSubmit, body, nil)
		var refused []string
		if err == nil {
			refused, err = decodeSubmitReply(rep, len(batch))
		}
		for i, s := range batch {
			e := err
			if e == nil && refused[i] != "" {
				e = errors.New(refused[i])
			}
			rt.submitted(s.c, s.j, to, e)
		}
		clear(batch)
	}
}

// submitted handles the answer to j's submit to node to: err nil, it is
// queued there; else the node is excluded and the call placed again.
func (rt *Runtime) submitted(c *call, j *job, to trove.NodeID, err error) {
	if err == nil {
		c.mu.Lock()
		withdrawn := c.withdrawn
		c.mu.Unlock()
		if withdrawn { // the caller's context ended while the submit was on its way
			rt.wg.Go(func() { rt.sendWithdraw(to, c.id) })
		}
		return
	}
	if rt.life.Err() != nil {
		return
	}
	c.mu.Lock()
	stale := c.attempt != j.attempt || c.done
	c.mu.Unlock()
	if stale {
		return
	}
	rt.exclude(c, to)
	rt.wg.Go(func() { rt.place(c) })
}

// sendDone queues m, a report for the caller to, and returns at once.
func (rt *Runtime) sendDone(to trove.NodeID, m doneReq) {
	o := &rt.out
	o.mu.Lock()
	l := o.dones[to]
	if l == nil {
		l = &doneLane{}
		o.dones[to] = l
	}
	l.q = append(l.q, outDone{m: m, ok: m.status == doneOK})
	start := !l.sending
	l.sending = true
	o.mu.Unlock()
	if start {
		rt.wg.Go(func() { rt.runDoneLane(to, l) })
	}
}

// runDoneLane sends the lane's reports, each batch again until the caller
// takes it, dies or leaves (a result it will never take is dropped), or
// this runtime closes (the node's own departure then tells the caller).
func (rt *Runtime) runDoneLane(to trove.NodeID, l *doneLane) {
	var batch []outDone
	var ms []doneReq
	var body []byte
	for {
		o := &rt.out
		o.mu.Lock()
		batch, ms = batch[:0], ms[:0]
		size, k := 0, 0
		for k < len(l.q) && k < maxBatch && (k == 0 || size < batchBytes) {
			d := l.q[k]
			size += len(d.m.inline) + len(d.m.msg) + len(d.m.node) + 48
			batch, ms = append(batch, d), append(ms, d.m)
			k++
		}
		n := copy(l.q, l.q[k:])
		clear(l.q[n:])
		l.q = l.q[:n]
		if k == 0 {
			l.sending = false
			if o.dones[to] == l {
				delete(o.dones, to)
			}
			o.mu.Unlock()
			return
		}
		o.mu.Unlock()
		body = appendDones(body[:0], rt.self, ms)
		for attempt := 0; ; attempt++ {
			rep, err := rt.node.Call(context.Background(), to, opDone, body, nil)
			var keep []bool
			if err == nil {
				keep, err = decodeDoneReply(rep, len(batch))
			}
			var answered *quic.RemoteError
			if err == nil || errors.As(err, &answered) {
				// Taken, or refused by a node that answered (its runtime is
				// closed, and has failed its calls): either way, done.
				for i, d := range batch {
					if d.ok && (err != nil || !keep[i]) {
						rt.node.DropResult(d.m.id) // the caller no longer wants it
					}
				}
				break
			}
			gaveUp := false
			select {
			case <-rt.node.Dead(to):
				for _, d := range batch {
					if d.ok {
						rt.node.DropResult(d.m.id)
					}
				}
				gaveUp = true
			case <-rt.life.Done():
				gaveUp = true
			case <-rt.node.Done():
				gaveUp = true
			case <-time.After(min(time.Duration(attempt+1)*50*time.Millisecond, time.Second)):
			}
			if gaveUp {
				break
			}
		}
		clear(batch)
	}
}

// argStore is the trove.Store a call's arguments are made through: a small
// literal (a Val of at most maxLiteral bytes with no nested refs, while the
// call's literals stay within maxLiterals) is kept as bytes, to travel
// inside the submit of each attempt; anything else is put in the node, once,
// whatever the attempts (large literals are never copied per call or retry).
type argStore struct {
	trove.Store
	max   int    // the largest literal kept
	total int    // bytes of literals kept for the call so far
	lit   []byte // the last argument's, if it was kept
}

func (s *argStore) PutFunc(ctx context.Context, size int, contains []trove.Ref, fill func(dst []byte) error) (trove.Ref, error) {
	if len(contains) > 0 || size <= 0 || size > s.max || s.total+size > maxLiterals {
		return s.Store.PutFunc(ctx, size, contains, fill)
	}
	b := make([]byte, size)
	if err := fill(b); err != nil {
		return trove.Ref{}, fmt.Errorf("encode the argument: %w", err)
	}
	s.total += size
	s.lit = b
	return trove.Ref{}, nil
}

func (s *argStore) Put(ctx context.Context, data []byte) (trove.Ref, error) {
	return s.PutFunc(ctx, len(data), nil, func(dst []byte) error { copy(dst, data); return nil })
}

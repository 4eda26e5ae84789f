package task

import (
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/trovedb/trove"
	"github.com/trovedb/trove/cluster"
	"github.com/trovedb/trove/net/quic"
)

// The record of calls (a dashboard's "calls" page): each runtime keeps the
// calls placed on its node, queued and running (the executor's own tables),
// and the last CallRing that ended, in a ring written under the executor's
// lock in the critical section that ends the call anyway (no allocation, no
// lock of its own), with totals over the runtime's life. A call that no node
// could run is recorded by its caller's runtime, with no executor.

// CallRing is how many ended calls a runtime keeps for Calls.
const CallRing = 1000

// MaxCallsLimit bounds Calls' and ClusterCalls' limit (a bounded reply).
const MaxCallsLimit = 1000

// Call states (CallInfo.State).
const (
	CallQueued   = "queued"
	CallRunning  = "running"
	CallFinished = "finished"
	CallFailed   = "failed"
)

// CallInfo is one call as a node's runtime saw it.
type CallInfo struct {
	ID       trove.ObjectID // the call's result (its future)
	Function string
	Caller   string // the caller's node (the result's owner)
	Executor string // the node that queued or ran it; empty if none could
	State    string // CallQueued, CallRunning, CallFinished or CallFailed
	Attempt  int    // 0 first; retries after a node's death count up
	Error    string // CallFailed: why
	// Submitted is when the executor queued it; Started when it started
	// (zero if it did not); Ended when it ended (zero until then).
	Submitted, Started, Ended time.Time
}

// CallsReport is a runtime's record of calls.
type CallsReport struct {
	Node string
	// Queued and Running are the calls queued and running now; Finished
	// and Failed count those that ended over the runtime's life (withdrawn
	// and dropped calls count as failed).
	Queued, Running  int
	Finished, Failed int64
	// Calls are the queued calls (oldest first), then the running ones
	// (oldest start first), up to limit together, then the last ended ones
	// (newest first), up to limit and CallRing.
	Calls []CallInfo
	// Truncated says that queued or running calls were left out (limit).
	Truncated bool
}

// record is an ended call in the ring.
type record struct {
	id                        trove.ObjectID
	fn                        string
	owner                     trove.NodeID
	attempt                   int
	failed                    bool
	ran                       bool // an executor queued it (not a caller's own failure)
	msg                       string
	submitted, started, ended time.Time
}

// callLog is the executor's ring and totals (guarded by the executor's mu).
type callLog struct {
	ring             []record // CallRing slots, made at init
	next             int      // the slot the next record takes
	n                int      // records held, ≤ CallRing
	finished, failed int64
}

func (l *callLog) add(r record) {
	if l.ring == nil {
		l.ring = make([]record, CallRing)
	}
	l.ring[l.next] = r
	l.next = (l.next + 1) % len(l.ring)
	l.n = min(l.n+1, len(l.ring))
	if r.failed {
		l.failed++
	} else {
		l.finished++
	}
}

// ended records j's end under ex.mu.
func (ex *executor) endedLocked(j *job, failed bool, msg string, now time.Time) {
	ex.log.add(record{id: j.id, fn: j.fn.name, owner: j.owner, attempt: j.attempt, failed: failed, ran: true,
		msg: msg, submitted: j.submitted, started: j.started, ended: now})
}

// callerFailed records a call of this node's that no executor took.
func (ex *executor) callerFailed(c *call, attempt int, self trove.NodeID, msg string) {
	now := time.Now()
	ex.mu.Lock()
	defer ex.mu.Unlock()
	ex.log.add(record{id: c.id, fn: c.fn.name, owner: self, attempt: attempt, failed: true, msg: msg, ended: now})
}

// report is the executor's record, up to limit rows of each part (caller
// names resolved by name).
func (ex *executor) report(limit int, name func(trove.NodeID) string, self string) CallsReport {
	limit = min(max(limit, 0), MaxCallsLimit)
	ex.mu.Lock()
	rep := CallsReport{Node: self, Queued: len(ex.byID), Running: len(ex.run), Finished: ex.log.finished, Failed: ex.log.failed}
	live := make([]CallInfo, 0, min(limit, len(ex.byID)+len(ex.run)))
	owners := make([]trove.NodeID, 0, cap(live))
	add := func(j *job, state string) {
		live = append(live, CallInfo{ID: j.id, Function: j.fn.name, Executor: self, State: state, Attempt: j.attempt,
			Submitted: j.submitted, Started: j.started})
		owners = append(owners, j.owner)
	}
	if len(ex.byID) <= limit {
		for _, j := range ex.byID {
			add(j, CallQueued)
		}
	} else {
		// The oldest limit: the shapes' queues are each in order.
		for _, j := range ex.oldestLocked(limit) {
			add(j, CallQueued)
		}
	}
	for _, j := range ex.run {
		if len(live) >= limit {
			break
		}
		add(j, CallRunning)
	}
	rep.Truncated = len(live) < len(ex.byID)+len(ex.run)
	var ended []record
	for i := 0; i < ex.log.n && i < limit; i++ {
		ended = append(ended, ex.log.ring[(ex.log.next-1-i+2*len(ex.log.ring))%len(ex.log.ring)])
	}
	ex.mu.Unlock()

	// Queued oldest first, then running by start.
	idx := make([]int, len(live))
	for i := range idx {
		idx[i] = i
	}
	slices.SortStableFunc(idx, func(a, b int) int {
		x, y := live[a], live[b]
		if x.State != y.State {
			if x.State == CallQueued {
				return -1
			}
			return 1
		}
		if x.State == CallQueued {
			return x.Submitted.Compare(y.Submitted)
		}
		return x.Started.Compare(y.Started)
	})
	names := map[trove.NodeID]string{}
	lookup := func(id trove.NodeID) string {
		n, ok := names[id]
		if !ok {
			n = name(id)
			names[id] = n
		}
		return n
	}
	rep.Calls = make([]CallInfo, 0, len(live)+len(ended))
	for _, i := range idx {
		ci := live[i]
		ci.Caller = lookup(owners[i])
		rep.Calls = append(rep.Calls, ci)
	}
	for _, r := range ended {
		ci := CallInfo{ID: r.id, Function: r.fn, Caller: lookup(r.owner), Attempt: r.attempt, State: CallFinished,
			Submitted: r.submitted, Started: r.started, Ended: r.ended}
		if r.ran {
			ci.Executor = self
		}
		if r.failed {
			ci.State, ci.Error = CallFailed, r.msg
		}
		rep.Calls = append(rep.Calls, ci)
	}
	return rep
}

// oldestLocked returns the limit oldest queued jobs (a merge of the shapes'
// queues, each in order).
func (ex *executor) oldestLocked(limit int) []*job {
	var out []*job
	for _, q := range ex.order {
		k := 0
		for _, j := range q.jobs[q.head:] {
			if k == limit {
				break
			}
			if !j.gone {
				out = append(out, j)
				k++
			}
		}
	}
	slices.SortFunc(out, func(a, b *job) int { return cmp.Compare(a.seq, b.seq) })
	if len(out) > limit {
		out = out[:limit]
	}
	return out
}

// Calls is this node's record of calls: those queued and running here (up
// to limit, at most MaxCallsLimit) and the last ended ones (up to limit and
// CallRing), with the totals.
func (rt *Runtime) Calls(limit int) CallsReport {
	return rt.ex.report(limit, func(id trove.NodeID) string {
		if id == rt.self {
			return rt.name
		}
		return nodeName(rt.node, id)
	}, rt.name)
}

// ClusterCalls is every runtime's record of calls (Calls of each, limit
// each), by node name, asked of every alive member at once (opCalls). The
// runtimes that did not answer are left out of the map and named in the
// error, which is nil when every one answered; the map holds the others'
// either way.
func (rt *Runtime) ClusterCalls(ctx context.Context, limit int) (map[string]CallsReport, error) {
	if rt.closed.Load() {
		return nil, fmt.Errorf("task: runtime of node %s: %w", rt.name, trove.ErrClosed)
	}
	limit = min(max(limit, 0), MaxCallsLimit)
	out := map[string]CallsReport{rt.name: rt.Calls(limit)}
	var mu sync.Mutex
	var errs []error
	var wg sync.WaitGroup
	body := appendCallsReq(nil, rt.self, limit)
	for _, m := range rt.node.Members() {
		if m.ID == rt.self || m.State != cluster.StateAlive && m.State != cluster.StateSuspect {
			continue
		}
		wg.Go(func() {
			rep, err := rt.node.Call(ctx, m.ID, opCalls, body, nil)
			var r CallsReport
			if err == nil {
				r, err = decodeCallsReport(rep)
			}
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, fmt.Errorf("node %s: %w", m.Name, err))
				return
			}
			out[m.Name] = r
		})
	}
	wg.Wait()
	if len(errs) > 0 {
		slices.SortFunc(errs, func(a, b error) int { return cmp.Compare(a.Error(), b.Error()) })
		return out, fmt.Errorf("task: the record of calls of %d runtime(s) is missing (the others' are in the map): %w", len(errs), errors.Join(errs...))
	}
	return out, nil
}

// serveCalls answers opCalls.
func (rt *Runtime) serveCalls(ctx context.Context, peer quic.Peer, body, reply []byte) ([]byte, error) {
	_, limit, err := decodeCallsReq(body)
	if err != nil {
		return reply, fmt.Errorf("from %s: %w", peer.Name, err)
	}
	r := rt.Calls(limit)
	return r.append(reply), nil
}

// opCalls' wire form (see wire.go):
//
//	request: header, limit (≤ MaxCallsLimit)
//	reply:   version, node, queued, running, finished, failed, truncated u8,
//	         n (≤ 2 × MaxCallsLimit), n × (id(16), function, caller,
//	         executor, state u8 (1 queued 2 running 3 finished 4 failed),
//	         attempt, error (≤ maxCallError bytes), submitted, started,
//	         ended (Unix nanoseconds, 0 for none))

// maxCallError bounds a failed call's error in opCalls (longer ones are cut).
const maxCallError = 512

var callStates = []string{"", CallQueued, CallRunning, CallFinished, CallFailed}

func appendCallsReq(b []byte, from trove.NodeID, limit int) []byte {
	return binary.AppendUvarint(appendHeader(b, from), uint64(limit))
}

func decodeCallsReq(b []byte) (trove.NodeID, int, error) {
	r := reader{b: b}
	from := r.header()
	limit := r.uvarint("limit", MaxCallsLimit)
	return from, int(limit), r.end()
}

func appendTime(b []byte, t time.Time) []byte {
	var n int64
	if !t.IsZero() {
		n = max(t.UnixNano(), 0)
	}
	return binary.AppendUvarint(b, uint64(n))
}

func (r *reader) time(what string) time.Time {
	n := r.uvarint(what, 1<<62)
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, int64(n))
}

func clip(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

func (rep *CallsReport) append(b []byte) []byte {
	b = append(b, wireVersion)
	b = appendString(b, clip(rep.Node, maxName))
	for _, v := range []int64{int64(rep.Queued), int64(rep.Running), rep.Finished, rep.Failed} {
		b = binary.AppendUvarint(b, uint64(max(v, 0)))
	}
	var t byte
	if rep.Truncated {
		t = 1
	}
	b = append(b, t)
	calls := rep.Calls[:min(len(rep.Calls), 2*MaxCallsLimit)]
	b = binary.AppendUvarint(b, uint64(len(calls)))
	for _, c := range calls {
		b = append(b, c.ID[:]...)
		b = appendString(b, clip(c.Function, maxName))
		b = appendString(b, clip(c.Caller, maxName))
		b = appendString(b, clip(c.Executor, maxName))
		b = append(b, byte(max(slices.Index(callStates, c.State), 0)))
		b = binary.AppendUvarint(b, uint64(max(c.Attempt, 0)))
		b = appendString(b, clip(c.Error, maxCallError))
		b = appendTime(b, c.Submitted)
		b = appendTime(b, c.Started)
		b = appendTime(b, c.Ended)
	}
	return b
}

// minCallRow is the fewest bytes a row takes (checked before allocating).
const minCallRow = idLen + 10

func decodeCallsReport(b []byte) (CallsReport, error) {
	r := reader{b: b}
	if v := r.u8("version"); r.err == nil && v != wireVersion {
		r.fail("wire version %d, this node speaks %d (run one trove version across the cluster)", v, wireVersion)
	}
	var rep CallsReport
	rep.Node = r.str("node name", maxName)
	rep.Queued = int(r.uvarint("queued", 1<<40))
	rep.Running = int(r.uvarint("running", 1<<40))
	rep.Finished = int64(r.uvarint("finished", 1<<62))
	rep.Failed = int64(r.uvarint("failed", 1<<62))
	switch t := r.u8("truncated"); {
	case r.err != nil:
	case t > 1:
		r.fail("truncated flag %d", t)
	default:
		rep.Truncated = t == 1
	}
	n := r.uvarint("call count", 2*MaxCallsLimit)
	if r.err == nil && n*uint64(minCallRow) > uint64(len(r.b)) {
		r.fail("%d calls in %d bytes", n, len(r.b))
	}
	if r.err == nil && n > 0 {
		rep.Calls = make([]CallInfo, 0, n)
	}
	for i := uint64(0); i < n && r.err == nil; i++ {
		var c CallInfo
		c.ID = r.id("call ID")
		c.Function = r.str("function name", maxName)
		c.Caller = r.str("caller", maxName)
		c.Executor = r.str("executor", maxName)
		if s := r.u8("state"); r.err == nil {
			if s == 0 || int(s) >= len(callStates) {
				r.fail("call state %d", s)
			} else {
				c.State = callStates[s]
			}
		}
		c.Attempt = int(r.uvarint("attempt", 1<<20))
		c.Error = r.str("error", maxCallError)
		c.Submitted = r.time("submitted")
		c.Started = r.time("started")
		c.Ended = r.time("ended")
		rep.Calls = append(rep.Calls, c)
	}
	if err := r.end(); err != nil {
		return CallsReport{}, err
	}
	return rep, nil
}

// ArgHold is what holds an object as an argument of live calls: how many of
// this runtime's calls not yet ended hold it, and the function of one of
// them (the first by name).
type ArgHold struct {
	Calls    int
	Function string
}

// CallArgs lists the objects this runtime holds as ref arguments of its
// calls not yet ended (the caller's handles, kept so that a retry can run
// the call again), for the dashboard's memory page ("held by: pending call
// f"). A call that ended keeps its arguments as its result's lineage until
// the result's last ref is dropped; those are not listed (they show as
// local refs). Literal arguments are not refs of the caller's and are not
// listed either. It walks the call table once: O(calls in it).
func (rt *Runtime) CallArgs() map[trove.ObjectID]ArgHold {
	out := map[trove.ObjectID]ArgHold{}
	for _, c := range rt.calls.filter(func(*call) bool { return true }) {
		c.mu.Lock()
		if c.done {
			c.mu.Unlock()
			continue
		}
		for _, r := range c.args {
			if r.IsZero() {
				continue
			}
			h := out[r.ID()]
			h.Calls++
			if h.Function == "" || c.fn.name < h.Function {
				h.Function = c.fn.name
			}
			out[r.ID()] = h
		}
		c.mu.Unlock()
	}
	return out
}

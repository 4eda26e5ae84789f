package task

import (
	"bytes"
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/trovedb/trove"
)

// states lists a report's rows as "function state caller>executor".
func states(rep CallsReport) []string {
	var out []string
	for _, c := range rep.Calls {
		out = append(out, c.Function+" "+c.State+" "+c.Caller+">"+c.Executor)
	}
	return out
}

// The record of calls: each runtime lists the calls queued and running on
// its node and the last ended ones (with their errors), with totals; a call
// no node could run is its caller's; ClusterCalls gathers every node's over
// opCalls; limit bounds the rows.
func TestCallsRecord(t *testing.T) {
	tc := newCluster(t, 2, func(i int) Config {
		if i == 1 {
			return Config{CPUs: 1, Resources: map[string]float64{"Custom": 1}}
		}
		return Config{CPUs: 1}
	})
	ctx := testCtx(t)
	a, b := tc.rts[0], tc.rts[1]
	key, g := newGate(t)
	custom := blockFn.Options(Resource("Custom", 1))
	r1, err := custom.Remote(ctx, a, Val(key)) // runs on node-b
	if err != nil {
		t.Fatal(err)
	}
	g.waitStart(t, ctx)
	kref, err := trove.PutValue(ctx, a, key) // r2's argument, by ref
	if err != nil {
		t.Fatal(err)
	}
	defer kref.Drop()
	r2, err := custom.Remote(ctx, a, Ref[string](kref)) // queued on node-b
	if err != nil {
		t.Fatal(err)
	}
	waitStatus(t, b, 1, 1)
	// CallArgs: the caller's runtime holds r2's ref argument (r1's literal
	// is none of its refs); the executor's holds none of its own calls'.
	if got, want := a.CallArgs(), map[trove.ObjectID]ArgHold{kref.ID(): {Calls: 1, Function: "test.block"}}; !maps.Equal(got, want) {
		t.Fatalf("node-a's CallArgs = %v, want %v", got, want)
	}
	if got := b.CallArgs(); len(got) != 0 {
		t.Fatalf("node-b's CallArgs = %v, want none", got)
	}
	r3, err := failFn.Options(Resource("Custom", 0)).Remote(ctx, a, Val("boom"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := trove.GetValue[int](ctx, a, r3); err == nil {
		t.Fatal("test.fail did not fail")
	}
	r4, err := failFn.Options(Resource("Custom", 5)).Remote(ctx, a, Val("never runs")) // no node has that
	if err != nil {
		t.Fatal(err)
	}
	if _, err := trove.GetValue[int](ctx, a, r4); err == nil {
		t.Fatal("an infeasible call did not fail")
	}

	all, err := a.ClusterCalls(ctx, 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 2 {
		t.Fatalf("ClusterCalls has %d nodes: %v", len(all), slices.Collect(mapKeys(all)))
	}
	rb := all["node-b"]
	if got, want := states(rb), []string{"test.block queued node-a>node-b", "test.block running node-a>node-b"}; !slices.Equal(got[:min(2, len(got))], want) {
		t.Fatalf("node-b's record: %v, want %v first", got, want)
	}
	if rb.Node != "node-b" || rb.Queued != 1 || rb.Running != 1 || rb.Truncated {
		t.Fatalf("node-b's report: %+v", rb)
	}
	if c := rb.Calls[1]; c.ID != r1.ID() || c.Started.IsZero() || !c.Ended.IsZero() || c.Submitted.After(c.Started) {
		t.Fatalf("node-b's running call: %+v (r1 %s)", c, r1.ID())
	}
	if c := rb.Calls[0]; c.ID != r2.ID() || !c.Started.IsZero() || c.Submitted.IsZero() {
		t.Fatalf("node-b's queued call: %+v (r2 %s)", c, r2.ID())
	}
	// test.fail ran wherever placement put it; the infeasible one is
	// node-a's (the caller's), with no executor.
	var failed, infeasible *CallInfo
	for _, rep := range all {
		for i, c := range rep.Calls {
			switch c.ID {
			case r3.ID():
				failed = &rep.Calls[i]
			case r4.ID():
				infeasible = &rep.Calls[i]
			}
		}
	}
	if failed == nil || failed.State != CallFailed || failed.Error != "boom" || failed.Caller != "node-a" || failed.Executor == "" || failed.Ended.IsZero() {
		t.Fatalf("the failed call's row: %+v", failed)
	}
	if infeasible == nil || infeasible.State != CallFailed || infeasible.Executor != "" || !strings.Contains(infeasible.Error, "task.Config") {
		t.Fatalf("the infeasible call's row: %+v", infeasible)
	}
	if local := a.Calls(100); local.Failed+all["node-b"].Failed != 2 || local.Node != "node-a" {
		t.Fatalf("failed totals: node-a %d, node-b %d; want 2 together", local.Failed, all["node-b"].Failed)
	}
	// limit: one row of the two live ones (and one ended at most), and it says so.
	if lim := b.Calls(1); !lim.Truncated || lim.Calls[0].State != CallQueued || len(lim.Calls) > 2 {
		t.Fatalf("Calls(1): %v, truncated %v", states(lim), lim.Truncated)
	}

	close(g.release)
	for _, r := range []trove.Ref{r1, r2} {
		get[string](t, a, mustBorrow(t, a, r))
		r.Drop()
	}
	r3.Drop()
	r4.Drop()
	// The call ended when the executor's report came: its argument is no
	// live call's (the lineage it stays in until r2's result is freed is not
	// listed).
	for deadline := time.Now().Add(10 * time.Second); len(a.CallArgs()) != 0; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("node-a's CallArgs after the calls ended: %v", a.CallArgs())
		}
	}
	rep := b.Calls(100)
	if rep.Queued != 0 || rep.Running != 0 || rep.Finished != 2 {
		t.Fatalf("node-b after the calls: %+v", rep)
	}
	if got := states(rep)[:2]; !slices.Equal(got, []string{"test.block finished node-a>node-b", "test.block finished node-a>node-b"}) {
		t.Fatalf("node-b's last ended: %v", got)
	}
	if rep.Calls[0].ID != r2.ID() || rep.Calls[1].ID != r1.ID() {
		t.Fatalf("ended rows not newest first: %v, %v", rep.Calls[0].ID, rep.Calls[1].ID)
	}
}

func mapKeys[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// The ring keeps the last CallRing ended calls, newest first, and the
// totals count every one.
func TestCallRing(t *testing.T) {
	var ex executor
	ex.init(Resources{CPU: 1})
	ex.start = func(*job) {}
	fn := &function{name: "ring"}
	const n = CallRing + 250
	for i := range n {
		j := &job{owner: trove.NodeID{1}, id: trove.NewObjectID(trove.NodeID{1}, uint64(i+1)), fn: fn, need: oneCPU}
		if err := ex.enqueue(j); err != nil {
			t.Fatal(err)
		}
		out := outcome{status: doneOK}
		if i%3 == 0 {
			out = outcome{status: doneFailed, msg: "no"}
		}
		ex.finish(j, &out)
	}
	rep := ex.report(MaxCallsLimit, func(trove.NodeID) string { return "node-x" }, "node-y")
	if rep.Finished+rep.Failed != n || rep.Failed != (n+2)/3 {
		t.Fatalf("totals %d finished, %d failed; want %d, %d", rep.Finished, rep.Failed, n-(n+2)/3, (n+2)/3)
	}
	if len(rep.Calls) != CallRing {
		t.Fatalf("%d rows, want %d", len(rep.Calls), CallRing)
	}
	for k, c := range rep.Calls {
		seq := n - k // newest first
		if c.ID != trove.NewObjectID(trove.NodeID{1}, uint64(seq)) || (c.State == CallFailed) != ((seq-1)%3 == 0) || c.Caller != "node-x" || c.Executor != "node-y" {
			t.Fatalf("row %d: %+v, want call %d", k, c, seq)
		}
	}
	if rep := ex.report(10, func(trove.NodeID) string { return "" }, ""); len(rep.Calls) != 10 {
		t.Fatalf("limit 10: %d rows", len(rep.Calls))
	}
}

// FuzzDecodeCalls feeds arbitrary bytes to the opCalls decoders (request
// and reply): no panic, errMessage on refusal, and what is accepted
// re-encodes to the same bytes.
func FuzzDecodeCalls(f *testing.F) {
	t0 := time.Unix(1700000000, 5)
	rep := CallsReport{Node: "node-a", Queued: 1, Running: 1, Finished: 7, Failed: 2, Truncated: true, Calls: []CallInfo{
		{ID: fuzzID, Function: "f", Caller: "node-b", Executor: "node-a", State: CallQueued, Submitted: t0},
		{ID: fuzzID, Function: "g", Caller: "node-b", State: CallFailed, Attempt: 2, Error: "boom", Submitted: t0, Started: t0, Ended: t0},
	}}
	f.Add(rep.append(nil))
	f.Add((&CallsReport{}).append(nil))
	f.Add(appendCallsReq(nil, fuzzFrom, 100))
	f.Fuzz(func(t *testing.T, b []byte) {
		if from, limit, err := decodeCallsReq(b); err != nil {
			if !errors.Is(err, errMessage) {
				t.Fatalf("request: error %v is not errMessage", err)
			}
		} else if enc := appendCallsReq(nil, from, limit); !bytes.Equal(enc, b) || limit > MaxCallsLimit {
			t.Fatalf("request re-encoded %x, want %x (limit %d)", enc, b, limit)
		}
		r, err := decodeCallsReport(b)
		if err != nil {
			if !errors.Is(err, errMessage) {
				t.Fatalf("error %v is not errMessage", err)
			}
			return
		}
		if len(r.Calls) > 2*MaxCallsLimit {
			t.Fatalf("%d calls decoded", len(r.Calls))
		}
		if enc := r.append(nil); !bytes.Equal(enc, b) {
			t.Fatalf("re-encoded %x, want %x", enc, b)
		}
	})
}

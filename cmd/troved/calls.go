package main

import (
	"cmp"
	"context"
	"slices"
	"time"

	"github.com/trovedb/trove"
	"github.com/trovedb/trove/dashboard"
	"github.com/trovedb/trove/task"
)

// runtimeCalls is the dashboard's calls source: the task runtime's record of
// calls across the cluster (task.Runtime.ClusterCalls), in the dashboard's
// terms (dashboard does not import task).
type runtimeCalls struct {
	rt interface {
		ClusterCalls(ctx context.Context, limit int) (map[string]task.CallsReport, error)
	}
}

// ClusterCalls merges every runtime's record, the most recent first (by the
// call's last event: its end, else its start, else its queueing), cut to
// limit. A call appears once per runtime that recorded it: a call retried
// on another node after its first died shows each attempt. When some
// runtimes did not answer it returns the others' calls with the error that
// names the missing ones (dashboard.CallsSource's partial answer).
func (s runtimeCalls) ClusterCalls(ctx context.Context, limit int) ([]dashboard.Call, error) {
	limit = min(max(limit, 0), task.MaxCallsLimit)
	reps, err := s.rt.ClusterCalls(ctx, limit)
	var out []dashboard.Call
	for _, rep := range reps {
		for _, c := range rep.Calls {
			out = append(out, toCall(c))
		}
	}
	last := func(c dashboard.Call) time.Time {
		switch {
		case !c.End.IsZero():
			return c.End
		case !c.Start.IsZero():
			return c.Start
		}
		return c.Submit
	}
	slices.SortStableFunc(out, func(a, b dashboard.Call) int {
		if c := last(b).Compare(last(a)); c != 0 {
			return c
		}
		return cmp.Compare(a.ID, b.ID)
	})
	if len(out) > limit {
		out = out[:limit]
	}
	return out, err
}

// toCall is c as the dashboard shows it: attempts counted from 1, no
// executor while queued (the dashboard's executor is the node running or
// that ran it).
func toCall(c task.CallInfo) dashboard.Call {
	d := dashboard.Call{ID: c.ID.String(), Function: c.Function, Caller: c.Caller, Executor: c.Executor,
		State: c.State, Attempt: c.Attempt + 1, Error: c.Error, Submit: c.Submitted, Start: c.Started, End: c.Ended}
	if c.State == task.CallQueued {
		d.Executor = ""
	}
	return d
}

// runtimeCallArgs is the dashboard's call-arguments source: the objects the
// task runtime holds as ref arguments of its live calls.
type runtimeCallArgs struct {
	rt interface {
		CallArgs() map[trove.ObjectID]task.ArgHold
	}
}

func (s runtimeCallArgs) CallArgs() map[trove.ObjectID]dashboard.CallArg {
	held := s.rt.CallArgs()
	out := make(map[trove.ObjectID]dashboard.CallArg, len(held))
	for id, h := range held {
		out[id] = dashboard.CallArg{Calls: h.Calls, Function: h.Function}
	}
	return out
}

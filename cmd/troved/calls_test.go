package main

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/trovedb/trove"
	"github.com/trovedb/trove/dashboard"
	"github.com/trovedb/trove/task"
)

type fakeRuntime struct {
	reps map[string]task.CallsReport
	err  error
}

func (f fakeRuntime) ClusterCalls(_ context.Context, limit int) (map[string]task.CallsReport, error) {
	return f.reps, f.err
}

// The calls page's adapter: every node's calls merged most recent first
// (end, else start, else queueing), attempts from 1, no executor while
// queued, cut to limit; a partial answer keeps the calls and the error.
func TestRuntimeCalls(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	id := func(b byte) trove.ObjectID { var x trove.ObjectID; x[15] = b; return x }
	reps := map[string]task.CallsReport{
		"node-a": {Node: "node-a", Calls: []task.CallInfo{
			{ID: id(1), Function: "f", Caller: "node-a", Executor: "node-a", State: task.CallQueued, Submitted: t0.Add(5 * time.Second)},
			{ID: id(2), Function: "f", Caller: "node-b", Executor: "node-a", State: task.CallFinished, Attempt: 1, Submitted: t0, Started: t0, Ended: t0.Add(time.Second)},
		}},
		"node-b": {Node: "node-b", Calls: []task.CallInfo{
			{ID: id(3), Function: "g", Caller: "node-a", Executor: "node-b", State: task.CallRunning, Submitted: t0, Started: t0.Add(3 * time.Second)},
			{ID: id(4), Function: "g", Caller: "node-b", State: task.CallFailed, Error: "no node offers GPU", Ended: t0.Add(4 * time.Second)},
		}},
	}
	tests := []struct {
		name    string
		src     fakeRuntime
		limit   int
		ids     []byte
		wantErr bool
	}{
		{"all", fakeRuntime{reps: reps}, 10, []byte{1, 4, 3, 2}, false},
		{"limit", fakeRuntime{reps: reps}, 2, []byte{1, 4}, false},
		{"partial", fakeRuntime{reps: map[string]task.CallsReport{"node-b": reps["node-b"]}, err: errors.New("node node-a: timeout")}, 10, []byte{4, 3}, true},
		{"none", fakeRuntime{err: errors.New("closed")}, 10, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			calls, err := runtimeCalls{tt.src}.ClusterCalls(context.Background(), tt.limit)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error %v", err, tt.wantErr)
			}
			var got []byte
			for _, c := range calls {
				got = append(got, byte(c.ID[len(c.ID)-1]-'0'))
			}
			if !slices.Equal(got, tt.ids) {
				t.Fatalf("calls %+v, want ids %v in that order", calls, tt.ids)
			}
		})
	}
	calls, _ := runtimeCalls{fakeRuntime{reps: reps}}.ClusterCalls(context.Background(), 10)
	want := map[string]dashboard.Call{
		id(1).String(): {ID: id(1).String(), Function: "f", Caller: "node-a", State: dashboard.CallQueued, Attempt: 1, Submit: t0.Add(5 * time.Second)},
		id(2).String(): {ID: id(2).String(), Function: "f", Caller: "node-b", Executor: "node-a", State: dashboard.CallFinished, Attempt: 2, Submit: t0, Start: t0, End: t0.Add(time.Second)},
		id(4).String(): {ID: id(4).String(), Function: "g", Caller: "node-b", State: dashboard.CallFailed, Attempt: 1, Error: "no node offers GPU", End: t0.Add(4 * time.Second)},
	}
	for _, c := range calls {
		if w, ok := want[c.ID]; ok && c != w {
			t.Errorf("call %s = %+v, want %+v", c.ID, c, w)
		}
	}
}

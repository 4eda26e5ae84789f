package dashboard

import (
	"context"
	"time"

	"github.com/trovedb/trove"
)

// CallsSource lists remote calls for the calls page: the cluster's task
// runtime (task.Runtime's ClusterCalls, through an adapter in troved).
type CallsSource interface {
	// ClusterCalls lists at most limit calls known anywhere in the cluster,
	// the most recent first. Calls with an error is a partial answer (some
	// nodes did not answer; the error names them): the page lists the calls
	// and shows the error.
	ClusterCalls(ctx context.Context, limit int) ([]Call, error)
}

// Call states, as the calls page and /api/calls name them.
const (
	CallQueued   = "queued"
	CallRunning  = "running"
	CallFinished = "finished"
	CallFailed   = "failed"
)

// Call is one remote call.
type Call struct {
	ID       string    `json:"id"`
	Function string    `json:"function"`
	Caller   string    `json:"caller"`   // the node that submitted it
	Executor string    `json:"executor"` // the node running or that ran it ("" while queued)
	State    string    `json:"state"`    // queued, running, finished or failed
	Attempt  int       `json:"attempt"`  // 1 for the first run; more after retries
	Error    string    `json:"error,omitempty"`
	Submit   time.Time `json:"submitted,omitzero"` // zero for a call no node queued
	Start    time.Time `json:"started,omitzero"`
	End      time.Time `json:"finished,omitzero"`
}

// MaxCalls bounds the calls one /api/calls reply lists.
const MaxCalls = 1000

// CallArgsSource says which objects this node's task runtime holds as
// arguments of live calls (the memory page's "held by: pending call f"):
// troved's adapter over task.Runtime.CallArgs. Called once per listing of
// this node's objects.
type CallArgsSource interface {
	CallArgs() map[trove.ObjectID]CallArg
}

// CallArg is what holds an object as an argument of live calls.
type CallArg struct {
	Calls    int    // live calls holding it
	Function string // the function of one of them
}

package main

import (
	"fmt"
	"net/http"
	"sync/atomic"

	"github.com/trovedb/trove/cluster"
)

// health answers the probes an orchestrator sends to the HTTP port
// (deploy/kubernetes: liveness and readiness):
//
//   - /healthz: 200 while the process serves HTTP at all. It asks nothing of
//     the store, so that a busy store (a long spill, a prefault) is not taken
//     for a dead process and restarted.
//   - /readyz: 200 once the store is open and its socket is served, and, for
//     a cluster node, the node is up: troved opens (and, told to -join,
//     joins) the node before it serves HTTP, so a node that could not join
//     never answers. 503 before the socket is served, once shutdown has
//     begun (SIGTERM), and after the cluster node has closed.
type health struct {
	serving atomic.Bool // the socket is served and shutdown has not begun

	// node's view, nil for a single-node daemon.
	node    func() (alive int, done bool)
	socket  string
	joining []string
}

// nodeHealth is a cluster node's side of /readyz.
func nodeHealth(n *cluster.Node) func() (int, bool) {
	return func() (int, bool) {
		select {
		case <-n.Done():
			return 0, true
		default:
		}
		alive := 0
		for _, m := range n.Members() {
			if m.State == cluster.StateAlive {
				alive++
			}
		}
		return alive, false
	}
}

func (h *health) healthz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	fmt.Fprintln(w, "ok: troved is running")
}

func (h *health) readyz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if !h.serving.Load() {
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintf(w, "not ready: the socket %s is not served (starting, or shutting down)\n", h.socket)
		return
	}
	if h.node == nil {
		fmt.Fprintf(w, "ready: store open, socket %s served\n", h.socket)
		return
	}
	alive, done := h.node()
	if done {
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintln(w, "not ready: the cluster node has closed")
		return
	}
	joined := "started a cluster (no -join)"
	if len(h.joining) > 0 {
		joined = fmt.Sprintf("joined through %v", h.joining)
	}
	fmt.Fprintf(w, "ready: store open, socket %s served, cluster node %s, %d members alive\n", h.socket, joined, alive)
}

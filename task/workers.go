package task

import "github.com/trovedb/trove/net/ipc"

// Workers lists the worker processes attached to this runtime (ServeWorkers)
// as `trove status` shows them: each one's connection, pid and name, the
// functions it registered, its slots and the calls given to it and not yet
// reported. Nil when none is attached.
func (rt *Runtime) Workers() []ipc.WorkerInfo {
	h := &rt.hub
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []ipc.WorkerInfo
	for id, w := range h.workers {
		out = append(out, ipc.WorkerInfo{ConnID: id, PID: w.conn.PID(), Name: w.conn.Name(),
			Functions: len(w.fns), Slots: w.slots, Busy: len(w.assigned)})
	}
	return out
}

// Package task runs remote functions on a trove cluster, as Ray's tasks:
// functions registered by name in the program (every node runs the same
// program), called with typed arguments, whose results are objects of the
// store that the call's ref names before they exist.
//
//	var Sum = task.Define1("sum", func(ctx context.Context, nums []int) (int, error) { ... })
//
//	rt, err := task.Start(node, task.Config{CPUs: 4, Resources: map[string]float64{"Custom": 2}})
//	ref, err := Sum.Remote(ctx, rt, task.Val([]int{23, 42, 93}))   // returns at once: a future
//	n, err := trove.GetValue[int](ctx, rt, ref)                      // 158, from any node
//
// # Worker processes
//
// A troved that is a cluster node runs a runtime too, with no functions of
// its own: worker processes attached to its socket run them, as Ray's
// workers do for their raylet. A worker is the same program as every other
// (it Defines the functions), attached over ipc:
//
//	c, err := ipc.Dial(ipc.DefaultSocket())
//	w, err := task.Attach(c, task.WorkerConfig{Slots: 4}) // default GOMAXPROCS
//	err = w.Serve(ctx)                                     // until ctx ends; then detaches
//
// A *Worker is a Caller as a *Runtime is, so a driver (an attached program
// that never Serves) and a worker's functions (CallerFrom(ctx)) make calls
// through it, which troved's runtime places and owns:
//
//	ref, err := Sum.Remote(ctx, w, task.Val([]int{23, 42, 93}))
//	n, err := trove.GetValue[int](ctx, w, ref)
//
// A worker resolves its call's arguments through its client (zero-copy from
// troved's shared memory, read-only) and writes the result as the primary
// copy of the call's ID in troved's store: in place through the client's
// write window (ipc.Client.CreateResult) when it is larger than the inline
// threshold, inline in its report otherwise. dispatch.go is troved's end:
// the executor's CPUs and resources bound what starts, a started call goes
// to a worker that registered its function with a slot free, a worker that
// dies (kill -9) has its calls run again (MaxRetries, ErrWorkerDied when
// they are spent), one that detaches has finished its calls and hands back
// those it was given and did not start, and calls waiting for a function
// whose last worker went are handed back to their callers. Nodes advertise
// the functions they run (opStatus, names only when they change) and calls
// are placed only where they can run; a call no node runs fails at once,
// naming the function and saying to attach a worker that Defines it.
//
// # What the package owns
//
//   - The registry of Defined functions (define.go) and their typed
//     arguments: Val (a small literal without nested refs, up to the
//     store's InlineThreshold and 64 KiB, travels inside the submit and is
//     stored where the call runs; a larger one is stored once per call in
//     the caller's node, whatever the attempts) or Ref (a ref to a value). Top-level arguments are resolved
//     before the function runs: fetched to the executing node and decoded
//     (zero-copy, read-only, for objects larger than the store's
//     InlineThreshold); refs nested inside argument values arrive as live
//     refs and are fetched only if the function Gets them.
//   - The calling side (call.go): a call is a future of the caller's node
//     (cluster.Node.NewFuture) plus the call's spec, kept with handles on its
//     arguments while the result is referenced (its lineage). Calls are
//     placed when made (see call.go for the rule: free resources, then the
//     most argument bytes, asking the owners of foreign ref arguments where
//     they are (where.go), then the least load) and queue at the executing
//     node when every slot is busy. Submits and reports to other nodes are
//     batched per peer (outbox.go).
//   - The executing side (exec.go): one FIFO queue per node, calls starting
//     in order as the resources they ask for (CPU 1 by default, custom ones
//     by Resource) are free (kept as one FIFO per resource shape: O(shapes)
//     per start), run on long-lived slot goroutines; the result is stored
//     as the primary copy of the caller's ID on the executing node
//     (cluster.Node.StoreResult) and its
//     size (and bytes, if small) reported to the caller, which resolves the
//     future; the owner then keeps its metadata and names the executor as
//     the holder to every node that Gets it.
//   - Argument prefetch (prefetch.go): a call left queued on a node has its
//     ref arguments borrowed there and fetched in the background (at most
//     maxPrefetchers at once, only while prefetchFree of the store is free),
//     held until it ends, is withdrawn, dropped or handed back, so a node
//     keeps an argument's copy while a call queued or running there needs it.
//   - Failures: an error or a panic of the function (a write into a
//     read-only argument is one) fails Gets of the result with
//     ErrTaskFailed (*TaskError: function, node, cause); a call whose node
//     dies before reporting is placed again (MaxRetries, default 3); a
//     result lost with its node is computed again from its lineage
//     (cluster.FutureHooks.Lost), else its Gets fail with
//     trove.ErrObjectLost saying why; a call whose caller's context ends
//     before it starts is withdrawn.
//   - The record of calls (calls.go): Calls and ClusterCalls list the calls
//     queued and running on each node and the last CallRing ended ones,
//     with totals (a dashboard's "calls" page).
//   - The wire format of its requests (wire.go), carried by the cluster's
//     layer seam (cluster.Node.Handle/Call, ops from cluster.FirstLayerOp),
//     and of those between a node and its attached programs
//     (worker_wire.go), carried by the ipc layer seam (ipc.Server.Handle,
//     ipc.Client.CallLayer); versioned, bounded and fuzzed.
//
// # Invariants
//
//   - A call's future is resolved or failed exactly once per attempt; a
//     report of an attempt that is not the current one, or from a node the
//     attempt was not sent to, is refused and its result dropped.
//   - A call holds its arguments alive from Remote until its result's last
//     handle on every node is gone (or the call failed), never longer.
//   - A queued call's held arguments (its prefetch) are dropped exactly once,
//     when the call ends, is withdrawn, dropped or handed back; a fetch under
//     way drops them when it returns.
//   - At most a node's Config.CPUs worth of calls (and of each custom
//     resource) run on it at once, in process or in its workers; at most a
//     worker's Slots in each worker. The next call to start is the oldest
//     queued one that fits (a call that does not fit lets later ones that
//     fit go first).
//   - A call is placed only on a node that runs its function (its program
//     Defines it, or one of its workers registered it).
//   - Nothing is left behind: when every ref is dropped, every node's store
//     is empty of the calls' arguments, results and futures.
package task

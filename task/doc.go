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
// # What the package owns
//
//   - The registry of Defined functions (define.go) and their typed
//     arguments: Val (stored once per call in the caller's node, whatever its
//     size) or Ref (a ref to a value). Top-level arguments are resolved
//     before the function runs: fetched to the executing node and decoded
//     (zero-copy, read-only, for objects larger than the store's
//     InlineThreshold); refs nested inside argument values arrive as live
//     refs and are fetched only if the function Gets them.
//   - The calling side (call.go): a call is a future of the caller's node
//     (cluster.Node.NewFuture) plus the call's spec, kept with handles on its
//     arguments while the result is referenced (its lineage). Calls are
//     placed when made (see call.go for the rule: free resources, then the
//     most argument bytes, then the least load) and queue at the executing
//     node when every slot is busy.
//   - The executing side (exec.go): one FIFO queue per node, calls starting
//     in order as the resources they ask for (CPU 1 by default, custom ones
//     by Resource) are free; the result is stored as the primary copy of the
//     caller's ID on the executing node (cluster.Node.StoreResult) and its
//     size (and bytes, if small) reported to the caller, which resolves the
//     future; the owner then keeps its metadata and names the executor as
//     the holder to every node that Gets it.
//   - Failures: an error or a panic of the function (a write into a
//     read-only argument is one) fails Gets of the result with
//     ErrTaskFailed (*TaskError: function, node, cause); a call whose node
//     dies before reporting is placed again (MaxRetries, default 3); a
//     result lost with its node is computed again from its lineage
//     (cluster.FutureHooks.Lost), else its Gets fail with
//     trove.ErrObjectLost saying why; a call whose caller's context ends
//     before it starts is withdrawn.
//   - The wire format of its requests (wire.go), carried by the cluster's
//     layer seam (cluster.Node.Handle/Call, ops from cluster.FirstLayerOp),
//     versioned, bounded and fuzzed.
//
// # Invariants
//
//   - A call's future is resolved or failed exactly once per attempt; a
//     report of an attempt that is not the current one, or from a node the
//     attempt was not sent to, is refused and its result dropped.
//   - A call holds its arguments alive from Remote until its result's last
//     handle on every node is gone (or the call failed), never longer.
//   - At most a node's Config.CPUs worth of calls (and of each custom
//     resource) run on it at once.
//   - Nothing is left behind: when every ref is dropped, every node's store
//     is empty of the calls' arguments, results and futures.
package task

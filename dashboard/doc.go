// Package dashboard is trove's web dashboard: the pages a user of the Ray
// Dashboard expects (nodes, memory, activity, calls), served by troved at /
// on its loopback HTTP port from files embedded in the binary, and the JSON
// API under /api/ they read (docs/dashboard.md).
//
// It owns:
//   - the sampler: every Config.Interval (1 s) it records the node's store and
//     cluster counters into a ring of Config.History samples (10 minutes),
//     the only state the dashboard keeps; nothing is recorded per object;
//   - the dashboard op (opDashboard, cluster.FirstLayerOp+32), which the
//     dashboard of every node serves to the others, so that any node's pages
//     show the whole cluster although each HTTP port is loopback-only: a
//     node's report (figures and samples), a page of its objects filtered and
//     sorted where they are, and what it knows of one object. Requests and
//     replies are a version byte and CBOR, decoded with bounds (fuzzed);
//   - the HTTP handlers and the static files (HTML, CSS, vanilla JS drawing
//     its own SVG plots; no external request, no build step).
//
// Invariants: no request reads more than a bounded amount of a node's state
// into a reply. A listing keeps at most MaxWindow rows per node however many
// objects the node holds (a bounded heap while it walks the table), so 1M
// objects never reach the browser or the wire; deeper pages are refused with
// a message naming the filters that narrow them. The dashboard never holds a
// ref or a view of an object: it reads the engine's and the cluster's
// listings, so it cannot keep anything alive.
//
// Calls come from a CallsSource (the task runtime, which troved wires in);
// without one /api/calls says that the node runs none. A CallArgsSource
// (the same runtime's) marks the objects live calls hold as arguments.
package dashboard

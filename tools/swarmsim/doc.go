// Command swarmsim runs a discrete-event model of a trove broadcast: one
// origin holds an object, N−1 nodes Get it at once (or staggered), each
// running the real swarm.Scheduler over modelled links, for N up to 1,000.
// It prints broadcast times, load spread, the origin's egress, the owner's
// directory messages and memberlist's gossip traffic per node, writes them
// as JSON (bench/out/swarmsim.json) and plots time against N
// (docs/swarmsim.png); -compare checks the model against the namespace
// cluster's measured figures (tools/netcluster). The model itself is
// package tools/swarmsim/sim; docs/scale.md says what it finds.
//
// Its figures are simulated times, not measurements: they are deterministic
// given the flags (-seed), and the wall time a run takes says nothing about
// them.
package main

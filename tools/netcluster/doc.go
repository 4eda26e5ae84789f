// Command netcluster runs a cluster of real network hosts on one machine: N
// troved daemons, each in a network namespace of its own with its own
// address on a bridge, every link capped with tc tbf, joined into one trove
// cluster, and runs a workload on it. It can cut a node's link, slow it, or
// drop a share of its packets (an eBPF program on its veth), and it tears
// everything down itself, also on SIGINT or SIGTERM; -cleanup removes what a
// killed run left. docs/netcluster.md says how to run it and what it creates.
//
//	netcluster broadcast -n 4 -size 256MiB -rate 200mbit [-loss 1:0.05] [-slow 2:50mbit] [-partition 3]
//	netcluster bench -n 2,4,8,16 -count 3 -size 256MiB -rate 200mbit -json bench/out/netcluster.json -png docs/broadcast.png
//	netcluster -cleanup
//
// It owns the orchestration only: building troved (go build -o, once, into a
// temporary directory), starting one per namespace through `ip netns exec`,
// talking to each over its unix socket with net/ipc's client (a unix socket
// works across network namespaces), and reading each node's /metrics over a
// TCP connection made inside its namespace. The network itself is
// tools/netcluster/netns.
//
// Invariants: every byte a Get returns is checked against the pattern node 0
// wrote (each 8-byte word a function of its offset); after a workload every
// view is released and every ref dropped, and every live node must drain to
// zero objects, bytes, pins and client refs, or the run fails. A run holds the
// netns lock for its life, so two never share the bridge; its troveds die with
// it (Pdeathsig), and nothing it creates survives Close.
package main

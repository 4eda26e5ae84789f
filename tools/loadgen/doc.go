// Command loadgen puts load on one or several trove stores and checks every byte it
// reads back.
//
// It owns the load generator only: flag parsing, the op mix, the per-worker rings
// of live refs that form the working set, the self-verifying payload format, the
// progress display and the final report (a text table, or JSON with -json). It
// holds no store logic; it talks to daemons through net/ipc clients, with
// -embedded to an in-process engine.Store, and with -embedded-cluster N to N
// in-process cluster.Nodes, all through the trove.Store interface. With
// -cluster (implied by -embedded-cluster) the targets are nodes of one
// cluster: worker i puts through node i mod N and runs its gets and waits on
// the other nodes, on refs borrowed there by ID, and the report has a row per
// node, with its cluster counters over the run (bytes in and out, remote
// gets, inline replies, pulls...) and the latency of gets that crossed nodes
// against local ones (-local-gets: the share of gets run on the node that
// put the object). -profile FILE takes a CPU profile of every node during
// the run (each daemon's /debug/pprof/profile, at the HTTP address its
// status gives; loadgen's own process, one profile, when the stores run in
// it), labels each sample node=NAME, merges them with google/pprof's
// profile package into FILE and lists the top functions by flat and cum
// CPU in the report.
//
//	loadgen -socket /run/trove/troved.sock -duration 30s -concurrency 16 \
//	    -sizes 1KiB:70,1MiB:25,16MiB:5 -mix put:40,get:50,wait:10 -working-set 2GiB
//	loadgen -embedded -capacity 256MiB -ops 100000 -json
//	loadgen -cluster -socket /run/a/troved.sock,/run/b/troved.sock,/run/c/troved.sock -duration 30s
//	loadgen -embedded-cluster 3 -ops 20000
//	loadgen -cluster -socket /run/a/troved.sock,/run/b/troved.sock -duration 30s -profile cluster.pb.gz
//
// Invariants: every view it Gets is Released before the next op of its worker,
// and every ref it borrows on another node is dropped then too; every ref it
// Puts is dropped by the end of the run (drop-oldest as the working
// set overflows, the rest when the run ends); clients are closed last. Every Get
// is verified (header magic, size, seed, CRC-32C of the body): a mismatch is an
// error naming the object ID, and any error makes the exit status 1, as does a
// store that cannot be reached (at once, unless -dial-timeout asks to wait for
// a daemon that is starting); bad flags are 2. A run is always bounded by
// -duration and/or -ops; the first SIGINT stops it early and still prints the
// report, a second one also cancels the ops in flight. After the run a daemon's
// figures are read until they settle (at most 5 s), since it frees what
// loadgen dropped after replying; the -json schema is in docs/cli.md.
package main

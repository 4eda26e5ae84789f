// Command loadgen puts load on one or several trove stores and checks every byte it
// reads back.
//
// It owns the load generator only: flag parsing, the op mix, the per-worker rings
// of live refs that form the working set, the self-verifying payload format, the
// progress display and the final report (a text table, or JSON with -json). It
// holds no store logic; it talks to daemons through net/ipc clients and, with
// -embedded, to an in-process engine.Store, both through the trove.Store interface.
//
//	loadgen -socket /run/trove/troved.sock -duration 30s -concurrency 16 \
//	    -sizes 1KiB:70,1MiB:25,16MiB:5 -mix put:40,get:50,wait:10 -working-set 2GiB
//	loadgen -embedded -capacity 256MiB -ops 100000 -json
//
// Invariants: every view it Gets is Released before the next op of its worker;
// every ref it Puts is dropped by the end of the run (drop-oldest as the working
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

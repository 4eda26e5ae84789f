// Command trove is trove's command-line tool.
//
//	trove demo                 walk through Ray's remote-objects tutorials on an in-process cluster of three nodes
//	trove status               the daemon's memory, objects, spilling and clients
//	trove memory               every object and what holds it, like `ray memory`
//	trove put FILE|-           store a file (or stdin); prints the object ID
//	trove get ID [-o FILE]     write the object's bytes to stdout or FILE
//	trove drop ID              let the daemon free what put stored
//	trove memory -cluster      every object on every node of the daemon's cluster
//	trove cert create-ca -dir D                                   a cluster's CA
//	trove cert create-node -ca-dir D -dir N -name NAME -host H... a node's credentials
//
// The demo needs no daemon and no flags: it starts an in-process cluster of
// three nodes with a task runtime each (internal/localcluster), runs each step
// of the seed tutorials against it (remote calls and batch inference included),
// prints what happens, and checks every result, exiting non-zero if one is wrong.
//
// cert needs no daemon either: it calls cluster.CreateCA and
// cluster.CreateNodeCert. The other commands are clients of the node's daemon (cmd/troved) over its unix
// socket (package net/ipc): -socket, default ipc.DefaultSocket() (which honours
// $TROVE_SOCKET), and --json to print machine-readable output. A process's refs
// and views die with it, so `trove put` asks the daemon to keep the object
// (ipc.Client.Keep) until `trove drop`; `trove get` borrows a ref, reads the
// object zero-copy from shared memory, writes it out, and releases it. Flags may
// follow positional arguments (`trove get ID -o FILE`).
//
// One style for every command (docs/cli.md): sizes as trove.ParseBytes reads
// them (1GiB), durations as Go's (30s); -h prints "usage: trove CMD ...", a
// sentence and the flags on stdout. An error is one line on stderr, "trove:
// ...", saying what happened once and what to do; with --json it is also a
// JSON object on stdout ({"command", "error", "kind", "exit_code"}). The --json
// outputs are the CLI's own types (json.go), snake_case, not ipc's structs.
// Exit status: 0 done, 1 failed, 2 bad flags or arguments.
package main

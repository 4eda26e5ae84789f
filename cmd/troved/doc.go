// Command troved is the node daemon: it runs the node's object store (package
// engine) and serves it to the node's other processes over a unix socket
// (package net/ipc), so that every process on the node reads the same bytes in
// shared memory.
//
//	troved                               # embedded defaults: 30% of RAM, default socket
//	troved -capacity 4GiB -spill-dir /mnt/a -spill-dir /mnt/b
//	TROVE_SOCKET=/run/trove.sock troved -http off
//	troved -listen 10.0.0.1:7100 -join 10.0.0.2:7100 -certs-dir /etc/trove/node   # a cluster node
//
// # Configuration
//
// Each setting comes from, in order of precedence, a flag, an environment
// variable, the JSON config file named by -config or $TROVE_CONFIG (the keys
// are the flags' names, unknown keys are an error), or the embedded default, so
// `troved` alone works:
//
//	flag             env               default
//	-socket          TROVE_SOCKET      ipc.DefaultSocket()
//	-capacity        TROVE_CAPACITY    30% of RAM ("4GiB", "512MiB", "30%", bytes)
//	-spill-dir       TROVE_SPILL_DIR   a directory under the OS temp dir (repeat, or a comma list)
//	-http            TROVE_HTTP        127.0.0.1:9464 (loopback only; "off" disables)
//	-log-level       TROVE_LOG_LEVEL   info (debug, info, warn, error)
//	-log-format      TROVE_LOG_FORMAT  text (text, json), to stderr
//	-prefault        TROVE_PREFAULT    false: populate the whole arena at start
//	-shutdown-grace  TROVE_SHUTDOWN_GRACE 10s
//
// Once listening, troved prints one line on stdout for scripts to wait on:
//
//	troved: listening on unix:///run/user/1000/trove/troved.sock (metrics http://127.0.0.1:9464/metrics)
//
// # A cluster node
//
// With -listen HOST:PORT troved runs a cluster node (package cluster) rather
// than a lone store: the socket serves the node's local store, whose objects
// owned by other nodes are fetched from them, so a client's Borrow(id) of an
// ID another node owns, and its Get, work through the same ipc.Client methods.
// Without -listen troved is the single-node daemon, and the settings below
// are refused (with the one that was given).
//
//	-listen          TROVE_LISTEN          the node's one cluster address (UDP; port 0 picks one)
//	-join            TROVE_JOIN            addresses of any members (repeat, or a comma list); none starts a cluster
//	                                       (a DNS name is resolved to all its addresses: a headless Service)
//	-certs-dir       TROVE_CERTS_DIR       ca.crt, node.crt, node.key (trove cert create-node); or every
//	                                       node's, ca.crt, NAME.crt, NAME.key, -name picks (certs.go)
//	-insecure        TROVE_INSECURE        no certificates: for a laptop, never a default
//	-name            TROVE_NAME            the certificate's name, or host-pid with -insecure
//	-probe-interval, -probe-timeout, -gossip-interval, -suspicion-mult: membership timing
//	                                       (defaults declare a killed node dead within ~6 s)
//	-request-timeout TROVE_REQUEST_TIMEOUT bound on a control request to another node (5s)
//
// A cluster node prints a second line, with the address other nodes -join:
//
//	troved: cluster node node-a on 127.0.0.1:7100
//
// # Remote functions
//
// A cluster node runs a task runtime (package task) that Defines no
// functions itself: programs attached to its socket serve them as worker
// processes (task.Attach, Worker.Serve), and calls placed on the node run in
// the workers that registered their function. The node's offer bounds what
// runs on it at once, over all its workers; it shows in `trove status`
// (SLOTS, RESOURCES) and in every node's ClusterResources. Calls are placed
// only on nodes with a worker (or an embedded program) that runs the
// function. `trove status` lists the attached workers (pid, name,
// functions, slots, busy; task.Runtime.Workers), and the dashboard's calls
// page the cluster's calls (task.Runtime.ClusterCalls, through calls.go's
// adapter). A single-node troved runs no task runtime (there is no cluster
// to own the futures), and refuses these settings:
//
//	-cpus            TROVE_CPUS            CPU slots: calls of 1 CPU each run at once (the machine's CPU count)
//	-resources       TROVE_RESOURCES       custom resources, e.g. Custom=2,GPU=1 (a string in the config file)
//
// `trove status` then lists the members and `trove memory -cluster` every
// member's objects (cluster.Node.ClusterObjects); /metrics adds the
// trove_cluster_* figures of cluster.Node.Stats. SIGTERM leaves the cluster
// gracefully (peers forget this node's borrows at once) before the store closes.
//
// # HTTP
//
// On a loopback address only (it is unauthenticated): Prometheus metrics at
// /metrics, read from the store's and the server's figures at scrape time, with
// the Go runtime and process collectors; net/http/pprof at /debug/pprof/; and
// the probes an orchestrator asks (health.go): /healthz (200 while the process
// serves) and /readyz (200 once the socket is served, the cluster node joined;
// 503 from shutdown on). -version prints the version (internal/version).
//
// # Shutdown
//
// SIGTERM or SIGINT shuts down cleanly: the socket file is removed and no new
// clients are accepted, requests in progress get -shutdown-grace to finish and
// are then failed with ipc.ErrServerClosed, every client's refs and views are
// released, then the HTTP server stops and the store is closed. troved then
// exits 0. A second signal exits at once with status 1.
//
// # Start-up errors
//
// Before opening anything, troved checks that no process serves -socket (a
// second daemon on it is the real cause of any other clash, such as the -http
// port) and names it by pid. A spill directory that cannot be made is reported
// with the knob that set it (-spill-dir, $TROVE_SPILL_DIR, the config file).
// Exit status: 0 after a clean shutdown, 1 a failure, 2 a bad flag or setting.
package main

// Package localcluster runs a trove cluster inside one process: a few
// cluster.Node values on 127.0.0.1 with ports the kernel picks, joined to the
// first, for the runnable examples (examples/) and `trove demo`, which need no
// set-up and must leave nothing behind.
//
// It owns the nodes it opens: Open returns once every node sees every other
// alive, Close closes them (the last opened first, each leaving the cluster),
// and WaitDrained is the check each example ends with: every node's store
// holds no objects, bytes, pins or views once the program has dropped its refs.
//
// The nodes run Insecure (self-signed TLS that verifies no one, and
// unauthenticated gossip). That is for a laptop, where every node is in one
// process on the loopback interface; a real cluster's nodes are given
// certificates from one CA (`trove cert create-ca`, `trove cert create-node`,
// troved -certs-dir).
package localcluster

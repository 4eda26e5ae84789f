// Package cluster makes a set of trove nodes one store. It holds the cluster's
// credentials: CreateCA makes the cluster's certificate authority and
// CreateNodeCert a node's certificate signed by it, the files the node-to-node
// transport (net/quic) authenticates peers with. And it holds membership
// (membership.go): hashicorp/memberlist's SWIM failure detection and gossip,
// carried over the node's QUIC transport as tagged packets and streams, so the
// same mutual TLS authenticates gossip; a node without the cluster's
// credentials never becomes a member. Ownership, pulls and distributed
// reference counting build on both here next.
//
// # Invariants
//
//   - The CA's private key (CAKeyFile) is written only to the CA's directory,
//     never to a node's: CreateNodeCert refuses a node directory that is the
//     CA's directory or already holds a CA key. A node's directory holds
//     exactly what the node needs: the CA certificate, its certificate and its
//     key (net/quic's CAFile, CertFile, KeyFile).
//   - Nothing is overwritten: creating credentials where some already exist
//     fails with the path, so a cluster's CA is never replaced by accident.
//   - Keys are ECDSA P-256, written with mode 0600.
//   - A member's name is its certificate's name (memberlist's node name), and
//     its ID is its store's: a restart (new ID or boot number) is reported as
//     the previous run's death before the new run's rejoin, so no consumer
//     mistakes a restarted node's empty store for the old one.
//   - Watch's events come in the order memberlist made the changes, from one
//     goroutine, with no lock held; delegates memberlist calls with its locks
//     held only queue notes.
//   - Dead and left members stay listed for membershipConfig.ForgetAfter
//     (10 minutes by default), then are forgotten.
package cluster

// Package cluster makes a set of trove nodes one store. For now it holds the
// cluster's credentials: CreateCA makes the cluster's certificate authority and
// CreateNodeCert a node's certificate signed by it, the files the node-to-node
// transport (net/quic) authenticates peers with. Membership, ownership, pulls
// and distributed reference counting build on net/quic here next.
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
package cluster

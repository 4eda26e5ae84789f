// Package cluster makes a set of trove nodes one store. A Node (Open) wraps a
// local engine.Store, a net/quic transport and the cluster's membership, and
// satisfies trove.Store for refs owned by any node: a ref made on one node is
// Borrowed by its ID on another, and Get there pulls a copy of its bytes into
// the local arena. The package also holds the cluster's credentials: CreateCA
// makes its certificate authority and CreateNodeCert a node's certificate
// signed by it, the files the transport authenticates peers with.
//
// # Ownership (Ray's model, per node)
//
// The node that created an object owns it (its ObjectID names the node). For
// every owned object that other nodes borrow, the owner keeps a small record
// (owner.go): which nodes borrow it, with a count each, and which of them hold
// a sealed copy; size and seal state are the local store's. A borrowing node
// reaches the owner through the engine's Remote seam (remote.go):
//
//   - Borrowed (the first handle to a foreign ID on this node: Borrow,
//     BorrowAll, a decoded value's nested refs) registers this node with the
//     owner (opBorrow) before the Borrow returns; the owner takes one engine
//     hold on the primary for all its borrowers.
//   - Fetch asks the owner (opLocate), which answers once the object is sealed
//     (a future: the owner's handler waits on its store, no polling; the
//     caller's context bounds it, and so does the owner's death). Objects up to
//     the store's InlineThreshold come back inline in the reply and are written
//     into a CreateCopy builder; larger ones are pulled in chunks on parallel
//     streams straight into the builder's arena bytes from every holder the
//     owner names at once, nodes still pulling included (a swarm pull,
//     pull.go: the chunks chosen by a swarm.Scheduler). Each puller tells the
//     owner, every PullRefresh, the chunks it holds and those it is fetching
//     (opPulling), so that pullers ask the owner for chunks nobody fetches
//     and get the others from each other; a holder that fails, stalls or is
//     declared dead loses its chunks to the others; each node serves
//     Config.ServeSlots chunks at once and refuses requests beyond ServeQueue
//     as busy, so that a broadcast's origin sends little more than one copy.
//     The copy is sealed and the owner told (batched).
//     Concurrent Gets of one ID share one Fetch (the engine's doing).
//   - Released (this node's last handle gone, its copy freed) is queued and
//     sent to the owner in one batch per owner (opUpdate), retried until the
//     owner takes it or is declared dead.
//
// # Inspection
//
// Stats (stats.go) counts a node's remote gets, pulls and bytes in and out,
// and the swarm's chunks pulled, chunks served from partial copies,
// multi-source pulls and holder failures; Holders lists an owned object's
// full and partial copies as the owner knows them;
// ClusterObjects (listing.go) asks every alive member for its object listing
// (opObjects), bounded by a limit per node, for `trove memory -cluster`.
//
// # Membership
//
// membership.go: hashicorp/memberlist's SWIM failure detection and gossip,
// carried over the node's QUIC transport as tagged packets and streams, so the
// same mutual TLS authenticates gossip; a node without the cluster's
// credentials never becomes a member. A Node follows its Watch events: a
// member that died or left owns nothing and borrows nothing any more.
//
// # Invariants
//
//   - An owner's primary lives while any local handle, containing object or
//     borrowing node holds it. Every node holding a copy is a borrower, and its
//     release arrives only after its copy is freed, so when the primary is
//     freed no copy is left anywhere: no order to drop copies is needed.
//   - A Get never hangs on a failed node: the owner's death or departure (a
//     membership event) ends its borrowers' fetches and registrations with
//     trove.ErrOwnerDied; a borrower's death drops its borrows at the owner;
//     every control request but opLocate has Config.RequestTimeout, and a
//     silent peer gives trove.ErrNodeUnreachable; holders that all fail a pull
//     give trove.ErrObjectLost, and so does a pull no holder left can finish
//     (no holder has a missing chunk, and no partial holder gets it within
//     a few refreshes). A sealed copy a node holds keeps serving its local
//     holders after the owner dies.
//   - A pull's chunk is pulled by one goroutine at a time (never raced by
//     a re-ask), and served to peers only once it has arrived; a pull's
//     bytes are served only while the pull runs (its close takes the
//     write lock before Seal or Abort), then from the sealed copy.
//   - The owner lists a partial copy only while its node borrows the object,
//     is alive and pulls: the copied update, updatePullEnd, the release and
//     the node's death each remove it.
//   - Control messages (wire.go) are versioned, bounded, encoded into pooled
//     buffers, have exactly one encoding each, and are fuzzed.
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

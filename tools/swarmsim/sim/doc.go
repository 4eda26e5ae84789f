// Package sim is a discrete-event model of a trove broadcast: one origin
// (node 0, also the object's owner) holds an object of Size bytes and N−1
// nodes pull it, each driving the real swarm.Scheduler as the cluster's
// pull does (cluster/pull.go), over modelled links, in virtual time. Run is
// deterministic: the same Config gives the same Result (events at one time
// run in the order they were scheduled; randomness comes only from Seed;
// nothing iterates a map).
//
// # What is modelled
//
//   - Links: every node has an uplink and a downlink of fixed rate. The
//     chunk transfers on the wire share them max-min fairly (progressive
//     filling over all links, recomputed at most every RateEvery after a
//     transfer starts or ends): the fixed point TCP-like congestion control
//     tends to, with none of its dynamics (no slow start, no loss, no
//     queueing delay beyond the fixed RTT). No CPU limit: copying and
//     hashing are free. The namespace cluster's tbf caps both directions of
//     each host's link, as this does.
//   - Latency: a request reaches its holder RTT/2 after Next gave it; the
//     chunk arrives RTT/2 after its last byte left. Directory messages
//     likewise.
//   - The owner's directory: the pull's first opLocate, an opPulling every
//     Refresh (it reports the puller's chunks and returns the locations,
//     one message, as the cluster's PullRefresh does), a Stuck pull's
//     immediate refresh, and one report of each sealed copy. The owner
//     handles them one at a time at OwnerRate messages per second; the
//     result counts them and the owner's busy time, so it shows when the
//     owner saturates. The reply lists holders as serveLocate does: sealed
//     copies, the primary, partial copies with a chunk, at most MaxHolders.
//   - Holders: a node serves every chunk it holds, also while still
//     pulling; ServeSlots and ServeQueue add holder-side admission (the
//     cluster has none: every request arriving is served at once).
//   - Failures: a node dying stops its transfers at once; its peers and the
//     owner act on it Detect later (the cluster's pull sees a dead holder's
//     streams end at the QUIC idle timeout): in-flight chunks are reported
//     Failed, the holder removed, the owner lists it no more.
//   - ChunkTimeout: a chunk not arrived that long after it was asked is
//     given up (its transfer cancelled) and reported Failed, as the
//     cluster's PullChunkTimeout does.
//
// Not modelled: TCP/QUIC congestion dynamics and flow-control windows, CPU
// and memory, packet loss, gossip's effect on failure detection (Detect is a
// constant), the owner's own egress for replies (counted in
// OwnerReplyBytes, not charged to its link), the origin's death (the
// cluster ends every pull with ErrOwnerDied then; Run refuses it).
//
// GossipAt derives memberlist's traffic per node at N from memberlist
// v0.7.0's constants and its own message encodings; see Gossip.
//
// # Invariants a Result satisfies (the tests check them)
//
//   - Every surviving puller ends with every chunk; SentBytes (chunks that
//     left holders in full) == RecvBytes == UsefulBytes + DuplicateBytes.
//   - A holder is asked only for chunks it really holds: the model fails
//     with ErrModel otherwise (the owner's view may be stale, never ahead).
//   - A broadcast that stops making progress ends with an error, never a
//     hang: ErrStalled when no chunk arrived for 6×ChunkTimeout, an error at
//     MaxSimTime, or when nothing is left to happen.
package sim

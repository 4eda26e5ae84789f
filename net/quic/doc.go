// Package quic is the node-to-node transport, on quic-go: control requests and
// chunked object pulls between the nodes of a cluster, over mutually
// authenticated TLS 1.3. It carries bytes and knows nothing of ownership: what a
// request means and which node holds which object are the cluster's (the
// Handler it implements).
//
//	t, err := quic.Listen(ctx, quic.Config{Addr: "10.0.0.1:7100", CertsDir: dir, Handler: h})
//	reply, err := t.Request(ctx, peerAddr, opLocate, body, buf[:0])  // a stream of its own
//	err = t.Pull(ctx, peerAddr, id, 0, builder.Bytes())                // chunks on parallel streams
//
// # Connections and streams
//
// A transport has one UDP socket: it accepts peers' connections and dials its
// own from it, so a peer is known by one address both ways, and a connection
// that a peer opened is reused for calls to that peer. There is one connection
// per peer pair (two peers dialling each other for the first time at the same
// instant may open two; both work, the later one idles out). Every call is one
// bidirectional stream of that connection: a request and its reply, or a chunk
// request and the chunk's bytes (wire.go). Streams are independent (QUIC has no
// head-of-line blocking between them) and control replies are sent at a higher
// priority than chunk bytes, so a small request is never queued behind a large
// pull. Chunks are named by object and byte range, so any holder can serve
// any chunk; Pull splits a range into Config.ChunkSize chunks on up to
// Config.Streams parallel streams and reads each straight into the caller's
// slice (network → arena, one copy).
//
// # Tagged streams and packets
//
// Another protocol of the node can ride the same connections (tagged.go): a
// TagHandler registered with HandleTag gets the peers' streams of its Tag as
// net.Conns (DialStream opens one) and their packets (SendPacket: one-way,
// best effort, each on a unidirectional stream of its own). The cluster's
// membership gossip (memberlist) is carried so, and is authenticated by the
// same mutual TLS. What a tag means is the caller's, as ops are.
//
// # Security
//
// With Config.CertsDir, both ends present a certificate from the cluster CA
// and check the other's (cluster.CreateCA, cluster.CreateNodeCert); a peer
// without one is refused at the handshake and the refusing side logs why. A
// peer's name is its certificate's common name (Peer.Name). Config.Insecure
// skips all of it, for a laptop, and is never a default.
//
// # Invariants
//
//   - Nothing a peer sends is trusted: every length is checked against
//     Config.MaxMessage or the requested chunk before anything is allocated
//     from it, and a peer that breaks the wire format (garbage, an oversized
//     frame, bytes after a frame) is disconnected and logged; the transport and
//     its other peers are unaffected. Every decoder is fuzzed (fuzz_test.go).
//   - A call ends with its reply, an error, or the caller's ctx: a peer that
//     vanishes is detected by Config.IdleTimeout even without a deadline (and
//     one restarted at its address resets its old connections at once); a
//     peer that is alive but whose handler does not return is bounded only by
//     the caller's ctx, so callers set deadlines; a chunk whose holder stops
//     sending mid-way fails after Config.StallTimeout without a byte (the
//     connection is kept). Unreachable peers give a *trove.NodeError matching
//     trove.ErrNodeUnreachable.
//   - Control messages are encoded in and read into pooled buffers
//     (bytebufferpool); a handler's request body is valid only during the call.
//   - Close closes every connection and waits for every handler, whose ctx it
//     ends.
//
// The UDP socket's buffers are raised to what quic-go needs where the system
// allows (udp.go); where not, one log line says which sysctl to raise.
package quic

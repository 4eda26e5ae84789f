// Package ipc serves a node's store to the other processes of the node over a
// unix socket, and is the client they use. A client has the store's method set
// (trove.Store, plus Create, Status, Memory), so code written against trove.Store
// runs unchanged in process or out:
//
//	c, err := ipc.Dial(ipc.DefaultSocket())
//	ref, err := c.Put(ctx, data)       // large: written straight into shared memory
//	obj, err := c.Get(ctx, ref)        // zero-copy: the daemon's pages, mapped read-only
//	defer obj.Release()
//
// # Zero copy
//
// The handshake passes the arena's memfd to the client (SCM_RIGHTS), which maps
// it read-only once. A Get of an arena object returns its offset and the client
// reads the daemon's pages in place. A client writes a large object through a
// second mapping of the arena, its write window (window.go): read-only except
// the pages of the client's unsealed builders, made writable at Create and
// read-only again at Seal or Abort. Objects up to the daemon's inline threshold
// travel inside messages instead; an object the daemon restored by mapping its
// spill file (fallback allocation) is sent as that file's descriptor and mapped
// read-only. Large objects never cross the socket.
//
// # Protocol
//
// Every message is a frame: a 16-byte header (length, op, descriptor count,
// reserved, request ID; see wire.go) and a body of fixed fields. The first
// request is a handshake carrying Version; the daemon refuses other versions.
// Requests that may block (create, get, wait) run in goroutines of their own and
// may be answered out of order, matched by request ID; a client whose context
// ends sends a cancel and gives back whatever the late reply grants. Releases
// of refs and views are batched and unanswered. docs/ipc-protocol.md describes
// the protocol byte by byte.
//
// # Invariants
//
//   - The daemon trusts nothing a client sends: sizes, counts and lengths are
//     checked before anything is allocated, and a malformed or oversized frame
//     closes that client's connection with a logged reason, as does a frame
//     begun and then left unfinished for ServerConfig.FrameTimeout (a client
//     quiet between frames is never cut off). Other clients and the store are
//     unaffected. Every decoder is fuzzed (fuzz_test.go).
//   - The daemon holds one engine ref per object a client references (counting
//     the client's handles), one pin per view it handed out, and the builder of
//     each object the client is writing. When the connection ends (Close, exit,
//     kill -9), all of them are released: builders aborted, views released,
//     refs dropped.
//   - A client's view keeps the arena mapped: Close unmaps it only once every
//     view is released.
//
// # Where things are
//
// The daemon: server.go (listening, shutdown, figures), server_conn.go (one
// client's connection: its read loop, replies, requests in goroutines, cleanup),
// server_dispatch.go (decoding each request and the handshake), server_put.go
// (put, create, seal, abort), server_get.go (get and wait), server_refs.go (the
// refs a client holds: borrow, release, keep). The client: client.go (dialing,
// the handshake, Close), client_call.go (a request and its reply: who reads the
// socket, cancels, undoing late replies), client_release.go (batched releases
// of refs and views), client_store.go (the store's method set), client_builder.go
// (Create and Builder), client_daemon.go (Status, Memory, Keep). The seams
// for layers above (the task runtime's workers): layer.go (Server.Handle and
// Client.CallLayer, Server.OnClose, results written in place through
// ServerConfig.Results and Client.CreateResult). Both: wire.go
// (the message formats), frame.go (reading frames with their descriptors),
// send.go (coalesced writes), window.go (the client's writable arena window),
// status.go (the daemon's reports).
package ipc

// Package swarm decides, for one pull of one object, which chunk to ask of
// which holder next, and nothing else. It is a pure data structure like
// eviction: no I/O, no goroutines, no clock reads (the caller passes now), no
// imports of ours. The cluster's Fetch drives it with QUIC streams, and the
// simulator in tools/swarmsim drives it with virtual time; both ask Next for
// work, report each assignment's end (Done or Failed), and tell it what the
// holders have (SetHolder), who is gone (RemoveHolder) and what the other
// pullers are fetching (SetPending).
//
// An object of size bytes is cut into Chunks() chunks of Config.ChunkSize
// (the last may be short). A holder is a node that has some of them: a full
// holder (a sealed copy) has them all, a partial holder (a node still pulling
// the object) has those its own scheduler's Have reports. Bitmap is the set
// of chunks a holder has, with a compact wire encoding (Append, Decode).
//
// # Policy: rarest first, then the least-loaded holder
//
// Next picks, among the chunks neither held nor in flight that some eligible
// holder has, the one the fewest holders have, and asks it of the eligible
// holder with the fewest chunks in flight from this puller. Why:
//
//   - Rarest first: when many nodes pull one object at once, each starts
//     from the one full copy. If all asked for chunk 0 first they would hold
//     the same chunks and have nothing to trade; rarest first (ties broken by
//     a hash seeded per puller, Config.Seed) makes each hold chunks the others
//     lack, so that they soon serve each other and the origin's egress stays
//     near one copy's size. It also keeps a chunk only one leaving holder
//     has from being lost with it.
//   - Others' chunks in flight count as holders (SetPending: the cluster
//     relays each puller's Pending through the owner): rarest first alone
//     knows only what holders have, so pullers that start at once would ask
//     the origin for the same "rare" chunk while it is on its way to another
//     puller (a 1 MiB chunk takes ~1 s when the origin's uplink serves 28
//     at once), and the origin's uplink, the swarm's bottleneck, would send
//     it twice. Further, a chunk only full holders have and another puller is
//     fetching is not asked while this puller has anything else in flight:
//     it waits to get it from that puller. When idle it asks it anyway, after
//     every other chunk, so a puller that is slow or gone delays it at most
//     by its other chunks. Pending never makes a puller a holder, nor enters
//     Stuck.
//   - Least-loaded holder: spreads this puller's requests over every holder
//     that has the chunk, so no holder (in particular the origin, which
//     everyone can ask) serves more than its share; at equal load a partial
//     holder is preferred to a full one, sparing the holders everyone can use.
//   - PerPeer (default 4) bounds what one holder is asked at once: enough to
//     keep a link busy (4 chunks of 1 MiB cover a 200 Mbit/s link with 160 ms
//     of latency) without letting one puller take a holder's every stream.
//     PerPull (default 16) bounds the pull's memory of requests in flight and
//     its share of its own link.
//
// A chunk asked of a holder that does not answer within SlowAfter may be
// asked of another (the end game of BitTorrent): only when there is no
// fresh chunk to ask, so re-asks cost nothing while there is other work. A
// holder whose request failed is passed over for that chunk while another has
// it, and not asked at all for RetryAfter. A holder that died is removed by
// the caller (RemoveHolder) and its chunks in flight are asked of others.
//
// # Invariants
//
//   - Every chunk is assigned once, unless it is asked again after
//     SlowAfter (a re-ask, counted in Stats.Reasked) or after its ask failed
//     or its holder was removed. A chunk held is never assigned again.
//   - A chunk is asked of a holder only if SetHolder said the holder has it.
//     A removed holder is never assigned again until SetHolder adds it anew.
//   - In flight never exceeds PerPeer for any holder nor PerPull in all; an
//     assignment is in flight from Next until its Done or Failed, or its
//     holder's removal.
//   - Stuck is true exactly when some chunk is missing that no holder has:
//     then no sequence of Next, Done and Failed can complete the pull
//     without a new SetHolder.
//   - The same calls in the same order give the same assignments: iteration
//     is over holders in the order they were added, never over a map.
//
// The package's tests check these after every operation of random
// scripts (model_test.go) and under fuzzing (FuzzScheduler).
//
// # Cost
//
// Next is O(H·C/64 + C + H) for H holders and C chunks (a union of the
// eligible holders' bitmaps, a scan of the missing chunks, a scan of the
// holders); Done and Failed are O(PerPeer + re-asks). A 256-chunk object
// costs 0.30 µs per chunk with one holder, 0.38 µs with 16 and 3.5 µs with
// 256 (BenchmarkNextDone, medians of 6 runs on a busy 2-vCPU VM, perf.md),
// against ~20 µs to copy the chunk's 1 MiB once.
//
// # Concurrency
//
// A Scheduler is not safe for concurrent use: its caller holds a lock
// around it (the cluster's pull does) or drives it from one goroutine (the
// simulator does). A Bitmap shares its bits when copied by value; Have and
// Clone return independent copies.
package swarm

package cluster

import "sync/atomic"

// Stats are a node's cluster counters since Open (troved exports them as
// Prometheus metrics).
type Stats struct {
	MembersAlive  int   // members this node sees alive, itself included
	RemoteGets    int64 // fetches of foreign objects begun (one per object per node: concurrent Gets share one)
	RemoteInline  int64 // of those, answered inline by the owner
	CacheHits     int64 // of those, served from the small-object cache, asking nobody
	Pulls         int64 // of those, pulled in chunks from holders
	FetchErrors   int64 // fetches that failed (owner died, object lost, unreachable, caller gave up)
	BytesIn       int64 // object bytes received: inline replies and pulled chunks
	BytesOut      int64 // object bytes served: inline replies and chunks to peers
	OwnedBorrowed int   // objects this node owns that other nodes borrow
}

// counters are a Node's Stats counters.
type counters struct {
	remoteGets, remoteInline, cacheHits, pulls, fetchErrors, bytesIn, bytesOut atomic.Int64
}

// Stats returns the node's cluster counters.
func (n *Node) Stats() Stats {
	s := Stats{
		RemoteGets: n.ctr.remoteGets.Load(), RemoteInline: n.ctr.remoteInline.Load(), CacheHits: n.ctr.cacheHits.Load(), Pulls: n.ctr.pulls.Load(),
		FetchErrors: n.ctr.fetchErrors.Load(), BytesIn: n.ctr.bytesIn.Load(), BytesOut: n.ctr.bytesOut.Load(),
		OwnedBorrowed: n.own.len(),
	}
	for _, m := range n.members.Members() {
		if m.State == StateAlive {
			s.MembersAlive++
		}
	}
	return s
}

package cluster

import (
	"reflect"
	"strings"
	"sync/atomic"
	"unicode"
)

// Stats are a node's cluster counters since Open (troved exports them as
// Prometheus metrics, trove status lists them). Convention, which Fields
// relies on: an int64 field is a counter since Open, an int field a gauge.
type Stats struct {
	MembersAlive     int   // members this node sees alive, itself included
	RemoteGets       int64 // fetches of foreign objects begun (one per object per node: concurrent Gets share one)
	RemoteInline     int64 // of those, answered inline by the owner
	CacheHits        int64 // of those, served from the small-object cache, asking nobody
	Pulls            int64 // of those, pulled in chunks from holders
	FetchErrors      int64 // fetches that failed (owner died, object lost, unreachable, caller's deadline passed)
	FetchesCancelled int64 // fetches abandoned because every Get waiting on them was cancelled (Wait's numReturns met, a caller's cancel): not errors
	BytesIn          int64 // object bytes received: inline replies and pulled chunks
	BytesOut         int64 // object bytes served: inline replies and chunks to peers
	OwnedBorrowed    int   // objects this node owns that other nodes borrow
	Borrowing        int   // foreign objects this node borrows
	OwedUpdates      int   // releases and new copies not yet sent to their owners
	Futures          int   // this node's futures still referenced (future.go)
	Results          int   // results this node stores for other nodes' futures

	// Swarm pulls (pull.go).
	ChunksPulled        int64 // chunks of large objects pulled into this node
	PartialChunksServed int64 // chunks served from a copy this node was still pulling
	MultiSourcePulls    int64 // pulls that took chunks from more than one holder
	PullHolderFailures  int64 // chunk pulls that failed (a holder died, slowed past PullChunkTimeout, or failed mid-chunk)
	PullRefreshes       int64 // as an owner: pulls' refreshes of locations served (opPulling)
	ChunksRefusedBusy   int64 // chunk requests this node refused, serving ServeSlots with ServeQueue waiting
	PullsBusyRefusals   int64 // chunk pulls a holder refused as busy (asked again of another, or later)
	PullsInProgress     int   // swarm pulls under way now (serving the chunks they have)
}

// counters are a Node's Stats counters.
type counters struct {
	remoteGets, remoteInline, cacheHits, pulls, fetchErrors, fetchesCancelled, bytesIn, bytesOut atomic.Int64

	chunksPulled, partialChunksServed, multiSourcePulls, pullHolderFailures, pullRefreshes atomic.Int64

	chunksRefusedBusy, pullsBusyRefusals atomic.Int64
}

// Stats returns the node's cluster counters.
func (n *Node) Stats() Stats {
	s := Stats{
		RemoteGets: n.ctr.remoteGets.Load(), RemoteInline: n.ctr.remoteInline.Load(), CacheHits: n.ctr.cacheHits.Load(), Pulls: n.ctr.pulls.Load(),
		FetchErrors: n.ctr.fetchErrors.Load(), FetchesCancelled: n.ctr.fetchesCancelled.Load(), BytesIn: n.ctr.bytesIn.Load(), BytesOut: n.ctr.bytesOut.Load(),
		OwnedBorrowed: n.own.len(), Borrowing: n.bor.len(), OwedUpdates: n.outq.pending(),
		Futures: n.Futures(), Results: n.Results(),

		ChunksPulled: n.ctr.chunksPulled.Load(), PartialChunksServed: n.ctr.partialChunksServed.Load(),
		MultiSourcePulls: n.ctr.multiSourcePulls.Load(), PullHolderFailures: n.ctr.pullHolderFailures.Load(),
		PullRefreshes: n.ctr.pullRefreshes.Load(), PullsInProgress: n.pulls.len(),
		ChunksRefusedBusy: n.ctr.chunksRefusedBusy.Load(), PullsBusyRefusals: n.ctr.pullsBusyRefusals.Load(),
	}
	for _, m := range n.members.Members() {
		if m.State == StateAlive {
			s.MembersAlive++
		}
	}
	return s
}

// StatField is one figure of Stats by name, for displays that list every
// field (trove status, loadgen) without naming each: a field added to Stats
// shows there at once.
type StatField struct {
	Name    string // the field's name in snake_case: RemoteGets is "remote_gets"
	Value   int64
	Counter bool // a count since Open (an int64 field); otherwise a gauge, a figure of now (an int field)
}

// Fields lists s's fields in declaration order. By the convention of Stats,
// int64 fields are counters since Open and int fields are gauges.
func (s Stats) Fields() []StatField {
	v := reflect.ValueOf(s)
	out := make([]StatField, 0, v.NumField())
	for i := range v.NumField() {
		f := v.Type().Field(i)
		switch f.Type.Kind() {
		case reflect.Int64:
			out = append(out, StatField{Name: snakeCase(f.Name), Value: v.Field(i).Int(), Counter: true})
		case reflect.Int:
			out = append(out, StatField{Name: snakeCase(f.Name), Value: v.Field(i).Int()})
		}
	}
	return out
}

// snakeCase turns a Go field name into snake_case: "BytesIn" is "bytes_in",
// "FetchErrors" "fetch_errors"; a run of capitals is one word ("HTTPPort" is
// "http_port").
func snakeCase(name string) string {
	var b strings.Builder
	rs := []rune(name)
	for i, r := range rs {
		if unicode.IsUpper(r) {
			prevLower := i > 0 && !unicode.IsUpper(rs[i-1])
			endOfRun := i > 0 && i+1 < len(rs) && unicode.IsUpper(rs[i-1]) && unicode.IsLower(rs[i+1])
			if prevLower || endOfRun {
				b.WriteByte('_')
			}
			r = unicode.ToLower(r)
		}
		b.WriteRune(r)
	}
	return b.String()
}

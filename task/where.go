package task

import (
	"context"
	"encoding/binary"
	"fmt"
	"sync"
	"time"

	"github.com/trovedb/trove"
	"github.com/trovedb/trove/cluster"
	"github.com/trovedb/trove/net/quic"
)

// Placement of a call whose ref arguments other nodes own: this node knows
// where its own objects and futures are (cluster.Node.Locations), not
// another owner's. Before choosing, it asks each such owner's runtime once
// (opWhere, in parallel, bounded by whereTimeout) for the size and holders
// of the arguments it owns, so that the node holding the most bytes wins
// wherever the objects came from. An owner that does not answer in time
// leaves the old estimate: its node holds the primary, of unknown size.

// whereTimeout bounds the owners' answers to one placement.
const whereTimeout = time.Second

// maxWhereHolders bounds the holders listed per object in opWhere.
const maxWhereHolders = 8

// foreignLocations appends the locations of args, which other nodes own
// and this node holds no copy of, as their owners' runtimes report them.
func (rt *Runtime) foreignLocations(args []trove.Ref, dst []cluster.Location) []cluster.Location {
	if len(args) == 0 {
		return dst
	}
	byOwner := map[trove.NodeID][]trove.ObjectID{}
	for _, r := range args {
		id := r.ID()
		if id.IsZero() || id.Node() == rt.self {
			continue
		}
		byOwner[id.Node()] = append(byOwner[id.Node()], id)
	}
	if len(byOwner) == 0 {
		return dst
	}
	ctx, cancel := context.WithTimeout(rt.life, whereTimeout)
	defer cancel()
	var mu sync.Mutex
	var wg sync.WaitGroup
	for owner, ids := range byOwner {
		wg.Go(func() {
			locs, err := rt.askWhere(ctx, owner, ids)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				for range ids { // the owner holds the primary, size unknown here
					dst = append(dst, cluster.Location{Node: owner, Bytes: 1})
				}
				return
			}
			dst = append(dst, locs...)
		})
	}
	wg.Wait()
	return dst
}

// askWhere asks owner's runtime where ids are.
func (rt *Runtime) askWhere(ctx context.Context, owner trove.NodeID, ids []trove.ObjectID) ([]cluster.Location, error) {
	rep, err := rt.node.Call(ctx, owner, opWhere, appendWhereReq(nil, rt.self, ids), nil)
	if err != nil {
		return nil, err
	}
	ws, err := decodeWhereReply(rep, len(ids))
	if err != nil {
		return nil, err
	}
	var locs []cluster.Location
	for _, w := range ws {
		for _, h := range w.holders {
			locs = append(locs, cluster.Location{Node: h, Bytes: w.size})
		}
	}
	return locs, nil
}

// serveWhere answers opWhere: for each id this node owns and holds, its
// size and the nodes known to hold it.
func (rt *Runtime) serveWhere(ctx context.Context, peer quic.Peer, body, reply []byte) ([]byte, error) {
	_, ids, err := decodeWhereReq(body)
	if err != nil {
		return reply, fmt.Errorf("from %s: %w", peer.Name, err)
	}
	ws := make([]where, len(ids))
	var buf [maxWhereHolders + 1]cluster.Location
	for i, id := range ids {
		if id.Node() != rt.self {
			continue
		}
		ref, err := rt.node.Borrow(id) // its own object: no message
		if err != nil {
			continue // freed: unknown
		}
		locs := rt.node.Locations([]trove.Ref{ref}, buf[:0])
		ref.Drop()
		for _, l := range locs[:min(len(locs), maxWhereHolders)] {
			ws[i].size = l.Bytes
			ws[i].holders = append(ws[i].holders, l.Node)
		}
	}
	return appendWhereReply(reply, ws), nil
}

// where is one object in an opWhere reply.
type where struct {
	size    int64
	holders []trove.NodeID // none: not known there
}

// opWhere's wire form: request header, n (1..maxArgs), n × id(16); reply
// version, n × (k (≤ maxWhereHolders), then if k > 0 size and k × node(8)).

func appendWhereReq(b []byte, from trove.NodeID, ids []trove.ObjectID) []byte {
	b = appendHeader(b, from)
	b = binary.AppendUvarint(b, uint64(len(ids)))
	for _, id := range ids {
		b = append(b, id[:]...)
	}
	return b
}

func decodeWhereReq(b []byte) (trove.NodeID, []trove.ObjectID, error) {
	r := reader{b: b}
	from := r.header()
	n := r.uvarint("id count", maxArgs)
	if r.err == nil && (n == 0 || n*uint64(idLen) != uint64(len(r.b))) {
		r.fail("%d ids in %d bytes", n, len(r.b))
	}
	var ids []trove.ObjectID
	if r.err == nil {
		ids = make([]trove.ObjectID, n)
		for i := range ids {
			ids[i] = r.id("object ID")
		}
	}
	if err := r.end(); err != nil {
		return trove.NodeID{}, nil, err
	}
	return from, ids, nil
}

func appendWhereReply(b []byte, ws []where) []byte {
	b = append(b, wireVersion)
	for _, w := range ws {
		b = binary.AppendUvarint(b, uint64(len(w.holders)))
		if len(w.holders) == 0 {
			continue
		}
		b = binary.AppendUvarint(b, uint64(max(w.size, 0)))
		for _, h := range w.holders {
			b = append(b, h[:]...)
		}
	}
	return b
}

func decodeWhereReply(b []byte, n int) ([]where, error) {
	r := reader{b: b}
	if v := r.u8("version"); r.err == nil && v != wireVersion {
		r.fail("wire version %d, this node speaks %d (run one trove version across the cluster)", v, wireVersion)
	}
	if r.err == nil && (n < 0 || n > maxArgs || n > len(r.b)) {
		r.fail("%d objects in %d bytes", n, len(r.b))
	}
	var ws []where
	if r.err == nil {
		ws = make([]where, n)
	}
	for i := 0; i < n && r.err == nil; i++ {
		k := r.uvarint("holder count", maxWhereHolders)
		if k == 0 || r.err != nil {
			continue
		}
		ws[i].size = int64(r.uvarint("size", 1<<62))
		for range k {
			h := r.bytes("holder", 8)
			if r.err != nil {
				break
			}
			ws[i].holders = append(ws[i].holders, trove.NodeID(h))
		}
	}
	if err := r.end(); err != nil {
		return nil, err
	}
	return ws, nil
}

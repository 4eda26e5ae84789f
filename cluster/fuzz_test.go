package cluster

import (
	"bytes"
	"errors"
	"testing"

	"github.com/trovedb/trove"
	"github.com/trovedb/trove/net/quic"
	"github.com/trovedb/trove/swarm"
)

// FuzzDecodeRequest: any body a peer sends for any op decodes to a request or
// a clear error, never a panic, and a decoded request encodes back to the body.
func FuzzDecodeRequest(f *testing.F) {
	from, id := trove.NewNodeID(), trove.NewObjectID(trove.NewNodeID(), 7)
	f.Add(uint16(opLocate), appendIDRequest(nil, from, id))
	f.Add(uint16(opBorrow), appendIDRequest(nil, from, id))
	f.Add(uint16(opUpdate), appendUpdates(nil, from, []update{{updateRelease, id}, {updateCopied, id}}))
	f.Add(uint16(opUpdate), appendUpdates(nil, from, nil))
	f.Add(uint16(opUpdate), appendUpdates(nil, from, []update{{updatePullEnd, id}}))
	have := swarm.NewBitmap(10)
	have.Set(3)
	pending := swarm.NewBitmap(10)
	pending.Set(4)
	pending.Set(9)
	f.Add(uint16(opPulling), appendPulling(nil, from, id, 1<<20, have, pending))
	f.Add(uint16(opPulling), appendPulling(nil, from, id, 1, swarm.NewBitmap(0), swarm.NewBitmap(0)))
	f.Add(uint16(9), []byte{wireVersion})
	f.Fuzz(func(t *testing.T, op uint16, b []byte) {
		r, err := decodeRequest(quic.Op(op), b, nil)
		if err != nil {
			return
		}
		var again []byte
		switch quic.Op(op) {
		case opLocate, opBorrow:
			again = appendIDRequest(nil, r.from, r.id)
		case opPulling:
			if r.chunk <= 0 || r.chunk > maxPullChunk || r.have.Len() > swarm.MaxChunks || r.pending.Len() != r.have.Len() {
				t.Fatalf("opPulling decoded out of bounds: chunk %d, %d chunks, %d pending", r.chunk, r.have.Len(), r.pending.Len())
			}
			again = appendPulling(nil, r.from, r.id, r.chunk, r.have, r.pending)
		case opUpdate:
			if len(r.updates) > maxUpdates {
				t.Fatalf("%d updates decoded, bound %d", len(r.updates), maxUpdates)
			}
			again = appendUpdates(nil, r.from, r.updates)
		default:
			t.Fatalf("op %d decoded", op)
		}
		if !bytes.Equal(again, b) {
			t.Fatalf("request re-encodes as %x, was %x", again, b)
		}
	})
}

// FuzzDecodeLocateReply: any reply decodes or fails cleanly, within its bounds,
// and re-encodes to itself.
func FuzzDecodeLocateReply(f *testing.F) {
	f.Add(appendInlineReply(nil, []byte("hello")))
	f.Add(appendInlineReply(nil, nil))
	have := swarm.NewBitmap(int(chunksOf(1<<30, 1<<20)))
	have.Set(0)
	have.Set(1000)
	pending := swarm.NewBitmap(have.Len())
	pending.Set(7)
	f.Add(appendLocationsReply(nil, 1<<30, []location{{addr: "127.0.0.1:7100", full: true}, {addr: "10.0.0.2:7100", chunk: 1 << 20, have: have, pending: pending}}))
	f.Add(appendLocationsReply(nil, 5, []location{{addr: "a", chunk: 2, have: swarm.FullBitmap(3), pending: swarm.NewBitmap(3)}}))
	f.Add([]byte{wireVersion, replyLocations, 0x80})
	f.Fuzz(func(t *testing.T, b []byte) {
		const bound = 1 << 40
		r, err := decodeLocateReply(b, bound)
		if err != nil {
			return
		}
		if r.size < 0 || r.size > bound || len(r.locs) > maxHolders {
			t.Fatalf("decoded out of bounds: size %d, %d locations", r.size, len(r.locs))
		}
		for _, l := range r.locs {
			if !l.full && (int64(l.have.Len()) != chunksOf(r.size, l.chunk) || l.pending.Len() != l.have.Len()) {
				t.Fatalf("a partial location's %d chunks do not cover %d bytes in chunks of %d", l.have.Len(), r.size, l.chunk)
			}
		}
		var again []byte
		if r.locs == nil {
			again = appendInlineReply(nil, r.inline)
		} else {
			again = appendLocationsReply(nil, r.size, r.locs)
		}
		if !bytes.Equal(again, b) {
			t.Fatalf("reply re-encodes as %x, was %x", again, b)
		}
	})
}

// FuzzDecodeListing: any listing request or reply a peer sends decodes within
// its bounds or fails cleanly, and a decoded one re-encodes to itself.
func FuzzDecodeListing(f *testing.F) {
	from, id := trove.NewNodeID(), trove.NewObjectID(trove.NewNodeID(), 7)
	f.Add(appendListRequest(nil, from, 100), appendListReply(nil, 3, []ObjectEntry{
		{ID: id, Size: 1 << 20, Refs: 2, Pins: 1, Where: "memory"},
		{ID: id, Size: 10, Refs: 1, Copy: true, Where: "heap"},
	}))
	f.Add(appendListRequest(nil, from, MaxListing), appendListReply(nil, 0, nil))
	f.Add([]byte{wireVersion}, []byte{wireVersion, 0x80})
	f.Fuzz(func(t *testing.T, req, rep []byte) {
		if from, limit, err := decodeListRequest(req); err == nil {
			if limit < 1 || limit > MaxListing {
				t.Fatalf("limit %d decoded", limit)
			}
			if again := appendListRequest(nil, from, limit); !bytes.Equal(again, req) {
				t.Fatalf("request re-encodes as %x, was %x", again, req)
			}
		}
		const limit = 50
		total, es, err := decodeListReply(rep, limit)
		if err != nil {
			return
		}
		if len(es) > limit || total < len(es) {
			t.Fatalf("%d entries of %d decoded, limit %d", len(es), total, limit)
		}
		if again := appendListReply(nil, total, es); !bytes.Equal(again, rep) {
			t.Fatalf("reply re-encodes as %x, was %x", again, rep)
		}
	})
}

// FuzzDecodeDropResults: any opDropResult body decodes to ids its sender
// owns (1 to maxDropBatch) or fails with errMessage, and re-encodes to
// itself.
func FuzzDecodeDropResults(f *testing.F) {
	from := trove.NewNodeID()
	f.Add(appendIDRequest(nil, from, trove.NewObjectID(from, 1)))
	f.Add(appendDropResults(nil, from, []trove.ObjectID{trove.NewObjectID(from, 1), trove.NewObjectID(from, 2)}))
	f.Add(appendDropResults(nil, from, []trove.ObjectID{trove.NewObjectID(trove.NewNodeID(), 1)}))
	f.Fuzz(func(t *testing.T, b []byte) {
		from, ids, err := decodeDropResults(b)
		if err != nil {
			if !errors.Is(err, errMessage) {
				t.Fatalf("error %v is not errMessage", err)
			}
			return
		}
		if len(ids) == 0 || len(ids) > maxDropBatch {
			t.Fatalf("%d ids decoded", len(ids))
		}
		if again := appendDropResults(nil, from, ids); !bytes.Equal(again, b) {
			t.Fatalf("re-encodes as %x, was %x", again, b)
		}
	})
}

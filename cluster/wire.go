package cluster

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/valyala/bytebufferpool"

	"github.com/trovedb/trove"
	"github.com/trovedb/trove/net/quic"
	"github.com/trovedb/trove/swarm"
)

// Control messages between nodes, carried as net/quic requests. Every body
// starts with the wire version and the sending node's ID:
//
//	request  = version u8, from NodeID(8), then per op:
//	  opLocate:  id(16)                        → locateReply
//	  opBorrow:  id(16)                        → empty: the owner now counts one more borrow by `from`
//	  opUpdate:  n uvarint (≤ maxUpdates), n × (kind u8, id(16)) → empty
//	  opPulling: id(16), chunk uvarint, have bitmap, pending bitmap → locateReply:
//	             `from` is pulling id, holds the chunks in have (of `chunk` bytes,
//	             swarm.Bitmap's encoding) and is fetching those in pending (as many)
//	locateReply = version u8, kind u8, size uvarint, then
//	  replyInline:    exactly size bytes of the object
//	  replyLocations: n uvarint (1..maxHolders), n × (len u8, addr, state u8, then
//	                  for statePartial: chunk uvarint, have bitmap and pending
//	                  bitmap, each of ceil(size/chunk) chunks)
//
// Lengths are checked against what is left of the body before anything is
// allocated from them; a message with bytes after its end is refused.
const (
	// wireVersion 2: opPulling and partial locations carry the chunks the
	// puller is fetching (pending) as well as those it holds.
	wireVersion = 2

	opLocate quic.Op = 1 // where is id, and how large; inline bytes if small; waits until sealed
	opBorrow quic.Op = 2 // register the sender as a borrower of id
	opUpdate quic.Op = 3 // a batch of releases and new copies
	// opPulling: the sender is pulling id and holds these chunks; the reply
	// is the object's locations now (a swarm pull's refresh, pull.go).
	opPulling quic.Op = 5

	updateRelease uint8 = 1 // the sender's last handle of id is gone (its copy freed)
	updateCopied  uint8 = 2 // the sender holds a sealed copy of id
	updatePullEnd uint8 = 3 // the sender's pull of id ended without a copy: forget its partial one

	stateFull    uint8 = 1 // a location with a sealed copy: the primary or a copy
	statePartial uint8 = 2 // a node still pulling: the chunks it holds and those it fetches follow

	replyInline    uint8 = 1
	replyLocations uint8 = 3 // (2 was a list of full holders' addresses only)

	maxUpdates = 8192 // entries per opUpdate: 17 bytes each, well under quic.DefaultMaxMessage
	maxHolders = 64   // addresses in a locate reply
	maxAddr    = 255
	// maxPullChunk bounds a partial location's chunk size (a chunk reply's
	// length is 32 bits in net/quic).
	maxPullChunk = 1 << 32
	// maxPartialBytes bounds the bitmaps of partial locations in one reply
	// (the owner lists fewer partial copies rather than exceed it).
	maxPartialBytes = 256 << 10
	headerLen       = 1 + 8
	idLen           = len(trove.ObjectID{})
)

var errMessage = errors.New("cluster: malformed control message")

// bufs holds the buffers control messages are encoded into and replies read into.
var bufs bytebufferpool.Pool

func appendHeader(b []byte, from trove.NodeID) []byte {
	b = append(b, wireVersion)
	return append(b, from[:]...)
}

// appendIDRequest encodes an opLocate or opBorrow request.
func appendIDRequest(b []byte, from trove.NodeID, id trove.ObjectID) []byte {
	return append(appendHeader(b, from), id[:]...)
}

// update is one entry of an opUpdate.
type update struct {
	kind uint8
	id   trove.ObjectID
}

func appendUpdates(b []byte, from trove.NodeID, us []update) []byte {
	b = appendHeader(b, from)
	b = binary.AppendUvarint(b, uint64(len(us)))
	for _, u := range us {
		b = append(b, u.kind)
		b = append(b, u.id[:]...)
	}
	return b
}

// request is a decoded control request.
type request struct {
	from    trove.NodeID
	id      trove.ObjectID // opLocate, opBorrow, opPulling
	updates []update       // opUpdate
	chunk   int64          // opPulling: the sender's chunk size
	have    swarm.Bitmap   // opPulling: the chunks it holds
	pending swarm.Bitmap   // opPulling: the chunks it is fetching (as many as have)
}

// appendPulling encodes an opPulling request; pending must be of as many
// chunks as have.
func appendPulling(b []byte, from trove.NodeID, id trove.ObjectID, chunk int64, have, pending swarm.Bitmap) []byte {
	b = appendIDRequest(b, from, id)
	b = binary.AppendUvarint(b, uint64(chunk))
	return pending.Append(have.Append(b))
}

// decodeHavePending decodes a have bitmap and a pending one of as many
// chunks, returning what follows.
func decodeHavePending(b []byte, have, pending *swarm.Bitmap) ([]byte, error) {
	b, err := have.Decode(b)
	if err != nil {
		return nil, err
	}
	if b, err = pending.Decode(b); err != nil {
		return nil, fmt.Errorf("pending chunks: %w", err)
	}
	if pending.Len() != have.Len() {
		return nil, fmt.Errorf("a bitmap of %d chunks pending for one of %d held", pending.Len(), have.Len())
	}
	return b, nil
}

// decodeRequest decodes a request body of op. The updates are appended to
// us (pass a reused slice, or nil).
func decodeRequest(op quic.Op, b []byte, us []update) (request, error) {
	var r request
	if len(b) < headerLen {
		return r, fmt.Errorf("%w: %d-byte request shorter than its header", errMessage, len(b))
	}
	if b[0] != wireVersion {
		return r, fmt.Errorf("%w: wire version %d, this node speaks %d (run one trove version across the cluster)", errMessage, b[0], wireVersion)
	}
	r.from = trove.NodeID(b[1:headerLen])
	b = b[headerLen:]
	switch op {
	case opLocate, opBorrow:
		if len(b) != idLen {
			return r, fmt.Errorf("%w: op %d body of %d bytes, want an object ID", errMessage, op, len(b))
		}
		r.id = trove.ObjectID(b)
		return r, nil
	case opPulling:
		if len(b) < idLen {
			return r, fmt.Errorf("%w: opPulling body of %d bytes, shorter than an object ID", errMessage, len(b))
		}
		r.id = trove.ObjectID(b[:idLen])
		b = b[idLen:]
		chunk, k := uvarint(b)
		if k <= 0 || chunk == 0 || chunk > maxPullChunk {
			return r, fmt.Errorf("%w: opPulling chunk size invalid, zero or over %d", errMessage, uint64(maxPullChunk))
		}
		r.chunk = int64(chunk)
		rest, err := decodeHavePending(b[k:], &r.have, &r.pending)
		if err != nil {
			return r, fmt.Errorf("%w: opPulling: %w", errMessage, err)
		}
		if len(rest) != 0 {
			return r, fmt.Errorf("%w: %d bytes after an opPulling bitmap", errMessage, len(rest))
		}
		return r, nil
	case opUpdate:
		n, k := uvarint(b)
		if k <= 0 || n > maxUpdates {
			return r, fmt.Errorf("%w: update count invalid or over %d", errMessage, maxUpdates)
		}
		b = b[k:]
		if uint64(len(b)) != n*(1+uint64(idLen)) {
			return r, fmt.Errorf("%w: %d updates in %d bytes", errMessage, n, len(b))
		}
		us = us[:0]
		for i := uint64(0); i < n; i++ {
			u := update{kind: b[0], id: trove.ObjectID(b[1 : 1+idLen])}
			if u.kind != updateRelease && u.kind != updateCopied && u.kind != updatePullEnd {
				return r, fmt.Errorf("%w: update kind %d", errMessage, u.kind)
			}
			us = append(us, u)
			b = b[1+idLen:]
		}
		r.updates = us
		return r, nil
	}
	return r, fmt.Errorf("%w: unknown op %d", errMessage, op)
}

// locateReply is the owner's answer to opLocate and opPulling.
type locateReply struct {
	size   int64
	inline []byte     // the object's bytes (aliases the reply buffer), if answered inline
	locs   []location // else the nodes to pull from
}

// location is one node holding some or all of an object's bytes.
type location struct {
	addr    string
	full    bool         // a sealed copy (the primary or a copy): every chunk
	chunk   int64        // a partial copy's chunk size
	have    swarm.Bitmap // and the chunks it holds
	pending swarm.Bitmap // and those it is fetching (as many chunks)
}

func appendInlineReply(b []byte, data []byte) []byte {
	b = append(b, wireVersion, replyInline)
	b = binary.AppendUvarint(b, uint64(len(data)))
	return append(b, data...)
}

// appendLocationsReply encodes locs, whose partial bitmaps (have and
// pending) must be of chunksOf(size, chunk) chunks.
func appendLocationsReply(b []byte, size int64, locs []location) []byte {
	b = append(b, wireVersion, replyLocations)
	b = binary.AppendUvarint(b, uint64(size))
	b = binary.AppendUvarint(b, uint64(len(locs)))
	for _, l := range locs {
		b = append(b, byte(len(l.addr)))
		b = append(b, l.addr...)
		if l.full {
			b = append(b, stateFull)
			continue
		}
		b = append(b, statePartial)
		b = binary.AppendUvarint(b, uint64(l.chunk))
		b = l.pending.Append(l.have.Append(b))
	}
	return b
}

// chunksOf is the number of chunks of chunk bytes in size bytes.
func chunksOf(size, chunk int64) int64 { return (size + chunk - 1) / chunk }

// decodeLocateReply decodes an opLocate or opPulling reply. maxSize bounds
// the object's size.
func decodeLocateReply(b []byte, maxSize int64) (locateReply, error) {
	var r locateReply
	if len(b) < 2 {
		return r, fmt.Errorf("%w: %d-byte locate reply", errMessage, len(b))
	}
	if b[0] != wireVersion {
		return r, fmt.Errorf("%w: wire version %d, this node speaks %d (run one trove version across the cluster)", errMessage, b[0], wireVersion)
	}
	kind := b[1]
	b = b[2:]
	size, k := uvarint(b)
	if k <= 0 || size > uint64(maxSize) {
		return r, fmt.Errorf("%w: object size invalid or over %d", errMessage, maxSize)
	}
	r.size = int64(size)
	b = b[k:]
	switch kind {
	case replyInline:
		if uint64(len(b)) != size {
			return r, fmt.Errorf("%w: inline object of %d bytes carries %d", errMessage, size, len(b))
		}
		r.inline = b
		return r, nil
	case replyLocations:
		n, k := uvarint(b)
		if k <= 0 || n == 0 || n > maxHolders {
			return r, fmt.Errorf("%w: location count invalid, zero or over %d", errMessage, maxHolders)
		}
		b = b[k:]
		r.locs = make([]location, 0, min(n, uint64(len(b)/3)))
		for i := uint64(0); i < n; i++ {
			if len(b) < 2 || len(b) < 2+int(b[0]) || b[0] == 0 {
				return r, fmt.Errorf("%w: location address truncated or empty", errMessage)
			}
			l := location{addr: string(b[1 : 1+int(b[0])])}
			state := b[1+int(b[0])]
			b = b[2+int(b[0]):]
			switch state {
			case stateFull:
				l.full = true
			case statePartial:
				chunk, k := uvarint(b)
				if k <= 0 || chunk == 0 || chunk > maxPullChunk {
					return r, fmt.Errorf("%w: partial location's chunk size invalid, zero or over %d", errMessage, uint64(maxPullChunk))
				}
				l.chunk = int64(chunk)
				var err error
				if b, err = decodeHavePending(b[k:], &l.have, &l.pending); err != nil {
					return r, fmt.Errorf("%w: partial location: %w", errMessage, err)
				}
				if int64(l.have.Len()) != chunksOf(r.size, l.chunk) {
					return r, fmt.Errorf("%w: partial location's bitmap of %d chunks for %d bytes in chunks of %d", errMessage, l.have.Len(), r.size, l.chunk)
				}
			default:
				return r, fmt.Errorf("%w: location state %d", errMessage, state)
			}
			r.locs = append(r.locs, l)
		}
		if len(b) != 0 {
			return r, fmt.Errorf("%w: %d bytes after the locations", errMessage, len(b))
		}
		return r, nil
	}
	return r, fmt.Errorf("%w: locate reply kind %d", errMessage, kind)
}

// checkEmptyReply checks an opBorrow or opUpdate reply.
func checkEmptyReply(b []byte) error {
	if len(b) != 1 || b[0] != wireVersion {
		return fmt.Errorf("%w: %d-byte acknowledgement", errMessage, len(b))
	}
	return nil
}

// uvarint is binary.Uvarint that also refuses non-minimal encodings (k <= 0),
// so that every message has exactly one encoding.
func uvarint(b []byte) (uint64, int) {
	v, k := binary.Uvarint(b)
	if k > 1 && b[k-1] == 0 {
		return 0, -1
	}
	return v, k
}

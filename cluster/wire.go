package cluster

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/valyala/bytebufferpool"

	"github.com/trovedb/trove"
	"github.com/trovedb/trove/net/quic"
)

// Control messages between nodes, carried as net/quic requests. Every body
// starts with the wire version and the sending node's ID:
//
//	request  = version u8, from NodeID(8), then per op:
//	  opLocate: id(16)                        → locateReply
//	  opBorrow: id(16)                        → empty: the owner now counts one more borrow by `from`
//	  opUpdate: n uvarint (≤ maxUpdates), n × (kind u8, id(16)) → empty
//	locateReply = version u8, kind u8, size uvarint, then
//	  replyInline:  exactly size bytes of the object
//	  replyHolders: n uvarint (1..maxHolders), n × (len u8, addr)
//
// Lengths are checked against what is left of the body before anything is
// allocated from them; a message with bytes after its end is refused.
const (
	wireVersion = 1

	opLocate quic.Op = 1 // where is id, and how large; inline bytes if small; waits until sealed
	opBorrow quic.Op = 2 // register the sender as a borrower of id
	opUpdate quic.Op = 3 // a batch of releases and new copies

	updateRelease uint8 = 1 // the sender's last handle of id is gone (its copy freed)
	updateCopied  uint8 = 2 // the sender holds a sealed copy of id

	replyInline  uint8 = 1
	replyHolders uint8 = 2

	maxUpdates = 8192 // entries per opUpdate: 17 bytes each, well under quic.DefaultMaxMessage
	maxHolders = 64   // addresses in a locate reply
	maxAddr    = 255
	headerLen  = 1 + 8
	idLen      = len(trove.ObjectID{})
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
	id      trove.ObjectID // opLocate, opBorrow
	updates []update       // opUpdate
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
			if u.kind != updateRelease && u.kind != updateCopied {
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

// locateReply is the owner's answer to opLocate.
type locateReply struct {
	size    int64
	inline  []byte   // the object's bytes (aliases the reply buffer), if answered inline
	holders []string // else the nodes to pull from, in order of preference
}

func appendInlineReply(b []byte, data []byte) []byte {
	b = append(b, wireVersion, replyInline)
	b = binary.AppendUvarint(b, uint64(len(data)))
	return append(b, data...)
}

func appendHoldersReply(b []byte, size int64, holders []string) []byte {
	b = append(b, wireVersion, replyHolders)
	b = binary.AppendUvarint(b, uint64(size))
	b = binary.AppendUvarint(b, uint64(len(holders)))
	for _, h := range holders {
		b = append(b, byte(len(h)))
		b = append(b, h...)
	}
	return b
}

// decodeLocateReply decodes an opLocate reply. maxSize bounds the object's size.
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
	case replyHolders:
		n, k := uvarint(b)
		if k <= 0 || n == 0 || n > maxHolders {
			return r, fmt.Errorf("%w: holder count invalid, zero or over %d", errMessage, maxHolders)
		}
		b = b[k:]
		for i := uint64(0); i < n; i++ {
			if len(b) < 1 || len(b) < 1+int(b[0]) || b[0] == 0 {
				return r, fmt.Errorf("%w: holder address truncated or empty", errMessage)
			}
			r.holders = append(r.holders, string(b[1:1+int(b[0])]))
			b = b[1+int(b[0]):]
		}
		if len(b) != 0 {
			return r, fmt.Errorf("%w: %d bytes after the holders", errMessage, len(b))
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

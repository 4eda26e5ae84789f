package cluster

import (
	"bytes"
	"testing"

	"github.com/trovedb/trove"
	"github.com/trovedb/trove/net/quic"
)

// FuzzDecodeRequest: any body a peer sends for any op decodes to a request or
// a clear error, never a panic, and a decoded request encodes back to the body.
func FuzzDecodeRequest(f *testing.F) {
	from, id := trove.NewNodeID(), trove.NewObjectID(trove.NewNodeID(), 7)
	f.Add(uint16(opLocate), appendIDRequest(nil, from, id))
	f.Add(uint16(opBorrow), appendIDRequest(nil, from, id))
	f.Add(uint16(opUpdate), appendUpdates(nil, from, []update{{updateRelease, id}, {updateCopied, id}}))
	f.Add(uint16(opUpdate), appendUpdates(nil, from, nil))
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
	f.Add(appendHoldersReply(nil, 1<<30, []string{"127.0.0.1:7100", "10.0.0.2:7100"}))
	f.Add([]byte{wireVersion, replyHolders, 0x80})
	f.Fuzz(func(t *testing.T, b []byte) {
		const bound = 1 << 40
		r, err := decodeLocateReply(b, bound)
		if err != nil {
			return
		}
		if r.size < 0 || r.size > bound || len(r.holders) > maxHolders {
			t.Fatalf("decoded out of bounds: size %d, %d holders", r.size, len(r.holders))
		}
		var again []byte
		if r.holders == nil {
			again = appendInlineReply(nil, r.inline)
		} else {
			again = appendHoldersReply(nil, r.size, r.holders)
		}
		if !bytes.Equal(again, b) {
			t.Fatalf("reply re-encodes as %x, was %x", again, b)
		}
	})
}

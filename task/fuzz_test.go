package task

import (
	"bytes"
	"errors"
	"testing"

	"github.com/trovedb/trove"
)

var (
	fuzzFrom = trove.NodeID{1, 2, 3, 4, 5, 6, 7, 8}
	fuzzID   = trove.NewObjectID(fuzzFrom, 9)
)

// FuzzDecodeSubmit feeds arbitrary bytes to the opSubmit decoder (from any
// member): it must not panic, must refuse with errMessage, and what it
// accepts must re-encode to the same bytes (one encoding per message).
func FuzzDecodeSubmit(f *testing.F) {
	f.Add((&submitReq{from: fuzzFrom, id: fuzzID, attempt: 1, fn: "sum", need: Resources{CPU: 1, "Custom": 0.5},
		args: []trove.ObjectID{fuzzID}}).append(nil))
	f.Add((&submitReq{from: fuzzFrom, id: fuzzID, fn: "f", need: Resources{}}).append(nil))
	f.Add([]byte{1, 2, 3})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := decodeSubmit(b)
		if err != nil {
			if !errors.Is(err, errMessage) {
				t.Fatalf("error %v is not errMessage", err)
			}
			return
		}
		if len(m.args) > maxArgs || len(m.fn) > maxName || len(m.need) > maxResources {
			t.Fatalf("decoded %+v out of bounds", m)
		}
		if enc := m.append(nil); !bytes.Equal(enc, b) {
			t.Fatalf("re-encoded %x, want %x", enc, b)
		}
	})
}

// FuzzDecodeDone is FuzzDecodeSubmit for opDone.
func FuzzDecodeDone(f *testing.F) {
	f.Add((&doneReq{from: fuzzFrom, id: fuzzID, attempt: 2, status: doneOK, size: 3, inline: []byte{1, 2, 3}}).append(nil))
	f.Add((&doneReq{from: fuzzFrom, id: fuzzID, status: doneOK, size: 1 << 30}).append(nil))
	f.Add((&doneReq{from: fuzzFrom, id: fuzzID, status: doneFailed, panicked: true, node: "node-a", msg: "boom"}).append(nil))
	f.Add((&doneReq{from: fuzzFrom, id: fuzzID, status: doneWithdrawn}).append(nil))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := decodeDone(b)
		if err != nil {
			if !errors.Is(err, errMessage) {
				t.Fatalf("error %v is not errMessage", err)
			}
			return
		}
		if len(m.msg) > maxMessage || len(m.inline) > maxInline || m.size < 0 {
			t.Fatalf("decoded %+v out of bounds", m)
		}
		if enc := m.append(nil); !bytes.Equal(enc, b) {
			t.Fatalf("re-encoded %x, want %x", enc, b)
		}
	})
}

// FuzzDecodeStatus is FuzzDecodeSubmit for opStatus replies.
func FuzzDecodeStatus(f *testing.F) {
	f.Add((&status{total: Resources{CPU: 4, "GPU": 1}, free: Resources{CPU: 2, "GPU": 0}, queued: 3, running: 2}).append(nil))
	f.Add((&status{total: Resources{}, free: Resources{}}).append(nil))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := decodeStatus(b)
		if err != nil {
			if !errors.Is(err, errMessage) {
				t.Fatalf("error %v is not errMessage", err)
			}
			return
		}
		if len(s.total) > maxResources || len(s.free) > maxResources || s.queued < 0 || s.running < 0 {
			t.Fatalf("decoded %+v out of bounds", s)
		}
		if enc := s.append(nil); !bytes.Equal(enc, b) {
			t.Fatalf("re-encoded %x, want %x", enc, b)
		}
	})
}

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

// FuzzDecodeSubmit feeds arbitrary bytes to the opSubmit decoders (the
// batch, from any member, and its reply): they must not panic, must refuse
// with errMessage, and what they accept must re-encode to the same bytes
// (one encoding per message).
func FuzzDecodeSubmit(f *testing.F) {
	f.Add(appendSubmits(nil, fuzzFrom, []submitReq{{id: fuzzID, attempt: 1, fn: "sum", need: Resources{CPU: 1, "Custom": 0.5},
		args: []trove.ObjectID{fuzzID}}}))
	f.Add(appendSubmits(nil, fuzzFrom, []submitReq{{id: fuzzID, fn: "f", need: Resources{}},
		{id: fuzzID, fn: "g", need: Resources{CPU: 1}, args: []trove.ObjectID{{}, fuzzID}, lits: [][]byte{{1, 2, 3}, nil}}}))
	f.Add(appendSubmitReply(nil, []string{"", "no function"}))
	f.Add([]byte{1, 2, 3})
	f.Fuzz(func(t *testing.T, b []byte) {
		if refused, err := decodeSubmitReply(b, -1); err != nil {
			if !errors.Is(err, errMessage) {
				t.Fatalf("reply: error %v is not errMessage", err)
			}
		} else if enc := appendSubmitReply(nil, refused); !bytes.Equal(enc, b) {
			t.Fatalf("reply re-encoded %x, want %x", enc, b)
		}
		from, ms, err := decodeSubmits(b)
		if err != nil {
			if !errors.Is(err, errMessage) {
				t.Fatalf("error %v is not errMessage", err)
			}
			return
		}
		if len(ms) == 0 || len(ms) > maxBatch {
			t.Fatalf("%d calls decoded", len(ms))
		}
		for _, m := range ms {
			if len(m.args) > maxArgs || len(m.fn) > maxName || len(m.need) > maxResources {
				t.Fatalf("decoded %+v out of bounds", m)
			}
			for i, l := range m.lits {
				if l != nil && (len(l) == 0 || len(l) > maxLiteral || !m.args[i].IsZero()) {
					t.Fatalf("literal %d of %d bytes, id %v", i, len(l), m.args[i])
				}
			}
		}
		if enc := appendSubmits(nil, from, ms); !bytes.Equal(enc, b) {
			t.Fatalf("re-encoded %x, want %x", enc, b)
		}
	})
}

// FuzzDecodeDone is FuzzDecodeSubmit for opDone.
func FuzzDecodeDone(f *testing.F) {
	f.Add(appendDones(nil, fuzzFrom, []doneReq{{id: fuzzID, attempt: 2, status: doneOK, size: 3, inline: []byte{1, 2, 3}}}))
	f.Add(appendDones(nil, fuzzFrom, []doneReq{{id: fuzzID, status: doneOK, size: 1 << 30},
		{id: fuzzID, status: doneFailed, panicked: true, node: "node-a", msg: "boom"},
		{id: fuzzID, status: doneWithdrawn}, {id: fuzzID, status: doneRefused},
		{id: fuzzID, attempt: 1, status: doneLost, node: "node-b", msg: "worker pid 7 exited while running it"}}))
	f.Add(appendDoneReply(nil, []bool{true, false}))
	f.Fuzz(func(t *testing.T, b []byte) {
		if keep, err := decodeDoneReply(b, -1); err != nil {
			if !errors.Is(err, errMessage) {
				t.Fatalf("reply: error %v is not errMessage", err)
			}
		} else if enc := appendDoneReply(nil, keep); !bytes.Equal(enc, b) {
			t.Fatalf("reply re-encoded %x, want %x", enc, b)
		}
		from, ms, err := decodeDones(b)
		if err != nil {
			if !errors.Is(err, errMessage) {
				t.Fatalf("error %v is not errMessage", err)
			}
			return
		}
		for _, m := range ms {
			if len(m.msg) > maxMessage || len(m.inline) > maxInline || m.size < 0 {
				t.Fatalf("decoded %+v out of bounds", m)
			}
		}
		if enc := appendDones(nil, from, ms); !bytes.Equal(enc, b) {
			t.Fatalf("re-encoded %x, want %x", enc, b)
		}
	})
}

// FuzzDecodeStatus is FuzzDecodeSubmit for opStatus replies.
func FuzzDecodeStatus(f *testing.F) {
	f.Add((&status{total: Resources{CPU: 4, "GPU": 1}, free: Resources{CPU: 2, "GPU": 0}, queued: 3, running: 2}).append(nil))
	f.Add((&status{total: Resources{}, free: Resources{}}).append(nil))
	f.Add((&status{total: Resources{CPU: 2}, free: Resources{CPU: 1}, gen: 7, fns: []string{"a", "b"}}).append(nil))
	f.Add((&status{total: Resources{CPU: 2}, free: Resources{CPU: 1}, gen: 9, fns: []string{}}).append(nil))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := decodeStatus(b)
		if err != nil {
			if !errors.Is(err, errMessage) {
				t.Fatalf("error %v is not errMessage", err)
			}
			return
		}
		if len(s.total) > maxResources || len(s.free) > maxResources || s.queued < 0 || s.running < 0 || len(s.fns) > maxFuncs {
			t.Fatalf("decoded %+v out of bounds", s)
		}
		if enc := s.append(nil); !bytes.Equal(enc, b) {
			t.Fatalf("re-encoded %x, want %x", enc, b)
		}
	})
}

// FuzzDecodeWorker feeds arbitrary bytes to the decoders of the messages
// between a node and its attached programs (worker_wire.go), chosen by
// which: none may panic, refusals are errMessage, and what is accepted
// re-encodes to the same bytes.
func FuzzDecodeWorker(f *testing.F) {
	seeds := [][]byte{
		(&registerReq{slots: 4, fns: []funcSig{{"a", 1}, {"b", 3}}}).append(nil),
		(&jobMsg{id: fuzzID, attempt: 2, fn: "sum", args: []trove.ObjectID{fuzzID, fuzzID}}).append(nil),
		(&workerDone{id: fuzzID, attempt: 1, status: doneOK, size: 3, inline: []byte{1, 2, 3}, contains: []trove.ObjectID{fuzzID}}).append(nil),
		(&workerDone{id: fuzzID, status: doneOK, size: 1 << 30, inPlace: true}).append(nil),
		(&workerDone{id: fuzzID, status: doneFailed, panicked: true, msg: "boom"}).append(nil),
		(&callMsg{fn: "sum", need: Resources{CPU: 1, "GPU": 0.5}, retries: 3, args: []trove.ObjectID{fuzzID}}).append(nil),
		append([]byte{wireVersion}, fuzzID[:]...),
		{wireVersion},
	}
	for i, s := range seeds {
		f.Add(uint8(i), s)
	}
	f.Fuzz(func(t *testing.T, which uint8, b []byte) {
		var enc []byte
		var err error
		switch which % 6 {
		case 0:
			var m registerReq
			if m, err = decodeRegister(b); err == nil {
				if len(m.fns) > maxFuncs || m.slots > maxSlots {
					t.Fatalf("decoded %+v out of bounds", m)
				}
				enc = m.append(nil)
			}
		case 1:
			var m jobMsg
			if m, err = decodeJob(b); err == nil {
				enc = m.append(nil)
			}
		case 2:
			var m workerDone
			if m, err = decodeWorkerDone(b); err == nil {
				if len(m.msg) > maxMessage || len(m.inline) > maxInline || m.size < 0 {
					t.Fatalf("decoded %+v out of bounds", m)
				}
				enc = m.append(nil)
			}
		case 3:
			var m callMsg
			if m, err = decodeCall(b); err == nil {
				enc = m.append(nil)
			}
		case 4:
			var id trove.ObjectID
			if id, err = decodeCallReply(b); err == nil {
				enc = append([]byte{wireVersion}, id[:]...)
			}
		case 5:
			if err = decodeEmpty(b); err == nil {
				enc = []byte{wireVersion}
			}
		}
		if err != nil {
			if !errors.Is(err, errMessage) {
				t.Fatalf("error %v is not errMessage", err)
			}
			return
		}
		if !bytes.Equal(enc, b) {
			t.Fatalf("decoder %d: %x re-encodes as %x", which%6, b, enc)
		}
	})
}

package task

import (
	"encoding/binary"
	"fmt"

	"github.com/trovedb/trove"
	"github.com/trovedb/trove/net/ipc"
)

// The messages between a node's runtime and the programs attached to its
// troved (workers and drivers), carried as ipc layer requests
// (ipc.Client.CallLayer, ipc.Server.Handle). Every body starts with the wire
// version; the encodings are wire.go's (uvarints, strings with a length,
// resource maps sorted):
//
//	layerRegister worker → node: slots, n, n × (name, arity) sorted by name → ack
//	layerNext     worker → node: nothing → a call: id(16), attempt, name, n, n × arg id(16)
//	              (a long poll: answered when a call of one of its functions is given to it)
//	layerDone     worker → node: id(16), attempt, status u8, then
//	                doneOK: size, in place u8 (1: written through ipc CreateResult),
//	                        inline bytes (a string: empty when in place), n, n × contained id(16)
//	                doneFailed: panicked u8, message
//	              → ack
//	layerCall     any → node: name, need, max retries, n, n × arg id(16)
//	              → version, the result's future id(16) (a handle the client adopts)
//	layerDetach   worker → node: nothing → ack (calls given to it that it did not
//	              run are given to others)
//
// Lengths are checked against what is left of the body before anything is
// allocated; a message with bytes after its end is refused.
const (
	layerRegister ipc.LayerOp = 1
	layerNext     ipc.LayerOp = 2
	layerDone     ipc.LayerOp = 3
	layerCall     ipc.LayerOp = 4
	layerDetach   ipc.LayerOp = 5

	maxFuncs    = 4096 // functions one worker (or one node) registers
	maxSlots    = 1 << 16
	maxRetryOpt = 1 << 20
)

func (r *reader) version() {
	if v := r.u8("version"); r.err == nil && v != wireVersion {
		r.fail("wire version %d, this node speaks %d (build the worker and troved from one trove version)", v, wireVersion)
	}
}

func (r *reader) ids(what string, limit int) []trove.ObjectID {
	n := r.uvarint(what+" count", uint64(limit))
	if r.err == nil && uint64(len(r.b)) < n*uint64(idLen) {
		r.fail("%d %ss in %d bytes", n, what, len(r.b))
	}
	if r.err != nil || n == 0 {
		return nil
	}
	ids := make([]trove.ObjectID, n)
	for i := range ids {
		ids[i] = r.id(what)
	}
	return ids
}

func appendIDs(b []byte, ids []trove.ObjectID) []byte {
	b = binary.AppendUvarint(b, uint64(len(ids)))
	for _, id := range ids {
		b = append(b, id[:]...)
	}
	return b
}

// registerReq is a layerRegister.
type registerReq struct {
	slots int
	fns   []funcSig // sorted by name, unique
}

// funcSig is a function as a worker registers it.
type funcSig struct {
	name  string
	arity int
}

func (m *registerReq) append(b []byte) []byte {
	b = append(b, wireVersion)
	b = binary.AppendUvarint(b, uint64(m.slots))
	b = binary.AppendUvarint(b, uint64(len(m.fns)))
	for _, f := range m.fns {
		b = appendString(b, f.name)
		b = binary.AppendUvarint(b, uint64(f.arity))
	}
	return b
}

func decodeRegister(b []byte) (registerReq, error) {
	r := reader{b: b}
	var m registerReq
	r.version()
	m.slots = int(r.uvarint("slots", maxSlots))
	n := r.uvarint("function count", maxFuncs)
	if r.err == nil && uint64(len(r.b)) < n*2 {
		r.fail("%d functions in %d bytes", n, len(r.b))
	}
	for i := uint64(0); i < n && r.err == nil; i++ {
		f := funcSig{name: r.str("function name", maxName), arity: int(r.uvarint("arity", 3))}
		switch {
		case r.err != nil:
		case f.name == "":
			r.fail("an empty function name")
		case i > 0 && f.name <= m.fns[i-1].name:
			r.fail("function names repeated or unsorted")
		}
		m.fns = append(m.fns, f)
	}
	if err := r.end(); err != nil {
		return registerReq{}, err
	}
	if m.slots == 0 {
		return registerReq{}, fmt.Errorf("%w: a worker of 0 slots", errMessage)
	}
	return m, nil
}

// jobMsg is a layerNext reply: a call for a worker to run.
type jobMsg struct {
	id      trove.ObjectID
	attempt int
	fn      string
	args    []trove.ObjectID
}

func (m *jobMsg) append(b []byte) []byte {
	b = append(b, wireVersion)
	b = append(b, m.id[:]...)
	b = binary.AppendUvarint(b, uint64(m.attempt))
	b = appendString(b, m.fn)
	return appendIDs(b, m.args)
}

func decodeJob(b []byte) (jobMsg, error) {
	r := reader{b: b}
	var m jobMsg
	r.version()
	m.id = r.id("result ID")
	m.attempt = int(r.uvarint("attempt", 1<<20))
	m.fn = r.str("function name", maxName)
	m.args = r.ids("argument", maxArgs)
	if err := r.end(); err != nil {
		return jobMsg{}, err
	}
	if m.fn == "" {
		return jobMsg{}, fmt.Errorf("%w: empty function name", errMessage)
	}
	return m, nil
}

// workerDone is a layerDone.
type workerDone struct {
	id       trove.ObjectID
	attempt  int
	status   uint8 // doneOK or doneFailed
	size     int64
	inPlace  bool
	inline   []byte // aliases the body
	contains []trove.ObjectID
	panicked bool
	msg      string

	keep []trove.Ref // the worker's: handles on contains until the node answered (not sent)
}

func (m *workerDone) append(b []byte) []byte {
	b = append(b, wireVersion)
	b = append(b, m.id[:]...)
	b = binary.AppendUvarint(b, uint64(m.attempt))
	b = append(b, m.status)
	switch m.status {
	case doneOK:
		b = binary.AppendUvarint(b, uint64(m.size))
		b = append(b, boolByte(m.inPlace))
		b = binary.AppendUvarint(b, uint64(len(m.inline)))
		b = append(b, m.inline...)
		b = appendIDs(b, m.contains)
	case doneFailed:
		b = append(b, boolByte(m.panicked))
		b = appendString(b, m.msg)
	}
	return b
}

func boolByte(v bool) byte {
	if v {
		return 1
	}
	return 0
}

func (r *reader) flag(what string) bool {
	switch v := r.u8(what); {
	case r.err != nil:
	case v <= 1:
		return v == 1
	default:
		r.fail("%s flag %d", what, v)
	}
	return false
}

func decodeWorkerDone(b []byte) (workerDone, error) {
	r := reader{b: b}
	var m workerDone
	r.version()
	m.id = r.id("result ID")
	m.attempt = int(r.uvarint("attempt", 1<<20))
	m.status = r.u8("status")
	switch {
	case r.err != nil:
	case m.status == doneOK:
		m.size = int64(r.uvarint("size", 1<<62))
		m.inPlace = r.flag("in place")
		n := r.uvarint("inline length", maxInline)
		m.inline = r.bytes("inline bytes", int(n))
		switch {
		case r.err != nil:
		case m.inPlace && n != 0:
			r.fail("a result written in place carries %d bytes", n)
		case !m.inPlace && int64(n) != m.size:
			r.fail("inline result of %d bytes carries %d", m.size, n)
		}
		if n == 0 {
			m.inline = nil
		}
		m.contains = r.ids("contained ref", maxArgs)
	case m.status == doneFailed:
		m.panicked = r.flag("panicked")
		m.msg = r.str("message", maxMessage)
	default:
		r.fail("status %d", m.status)
	}
	if err := r.end(); err != nil {
		return workerDone{}, err
	}
	return m, nil
}

// callMsg is a layerCall.
type callMsg struct {
	fn      string
	need    Resources
	retries int
	args    []trove.ObjectID
}

func (m *callMsg) append(b []byte) []byte {
	b = append(b, wireVersion)
	b = appendString(b, m.fn)
	b = appendResources(b, m.need)
	b = binary.AppendUvarint(b, uint64(m.retries))
	return appendIDs(b, m.args)
}

func decodeCall(b []byte) (callMsg, error) {
	r := reader{b: b}
	var m callMsg
	r.version()
	m.fn = r.str("function name", maxName)
	m.need = r.resources("need")
	m.retries = int(r.uvarint("max retries", maxRetryOpt))
	m.args = r.ids("argument", maxArgs)
	if err := r.end(); err != nil {
		return callMsg{}, err
	}
	if m.fn == "" {
		return callMsg{}, fmt.Errorf("%w: empty function name", errMessage)
	}
	for _, v := range m.need {
		if v < 0 {
			return callMsg{}, fmt.Errorf("%w: a negative resource need", errMessage)
		}
	}
	return m, nil
}

// decodeEmpty checks a body of the version alone (layerNext, layerDetach, acks).
func decodeEmpty(b []byte) error {
	r := reader{b: b}
	r.version()
	return r.end()
}

// decodeCallReply decodes a layerCall reply.
func decodeCallReply(b []byte) (trove.ObjectID, error) {
	r := reader{b: b}
	r.version()
	id := r.id("result ID")
	return id, r.end()
}

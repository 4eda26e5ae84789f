package task

import (
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"

	"github.com/trovedb/trove"
	"github.com/trovedb/trove/cluster"
	"github.com/trovedb/trove/net/quic"
)

// The runtime's messages between nodes, carried as cluster layer requests
// (cluster.Node.Handle/Call). Every body starts with the wire version and
// the sending node's ID; integers are uvarints (minimal), amounts float64
// bits big endian, strings a uvarint length then bytes, resource maps sorted
// by name (one encoding each):
//
//	opSubmit   caller → executor: a batch of calls (1..maxBatch), each
//	             id(16), attempt, name, need, n, n × (0, arg id(16) | 1,
//	             literal: a small Val's bytes, carried inline)
//	           → per call: queued, or refused and why
//	opDone     executor → caller: a batch of reports (1..maxBatch), each
//	             id(16), attempt, status u8, then
//	             doneOK: size, inline (a string: empty if not inline)
//	             doneFailed: panicked u8, node, message
//	             doneWithdrawn, doneRefused: nothing
//	             doneLost: node, message (the worker process running it died: run it again)
//	           → per report: keep u8 (0: the caller no longer wants this result: drop it)
//	opWithdraw caller → executor: id(16) → ack (the call is dropped if it has not started)
//	opStatus   anyone → executor: the functions' generation it knows → total, free,
//	             queued, running, generation, u8 (1: names follow), n, n × name
//	             (names only when the asker's generation is not the executor's: a
//	             refresh costs the same few bytes while nothing changes)
//	opCalls    anyone → executor: limit → its record of calls (calls.go)
//	opWhere    caller → owner: ids → size and holders of each (where.go)
//
// Lengths are checked against what is left of the body before anything is
// allocated; a message with bytes after its end is refused.
const (
	// wireVersion 2: the functions a node runs (opStatus), doneLost;
	// 3: opSubmit and opDone carry batches, and calls their small literal
	// arguments; opCalls.
	wireVersion = 3

	opSubmit   = cluster.FirstLayerOp + 0
	opDone     = cluster.FirstLayerOp + 1
	opWithdraw = cluster.FirstLayerOp + 2
	opStatus   = cluster.FirstLayerOp + 3
	opCalls    = cluster.FirstLayerOp + 4
	opWhere    = cluster.FirstLayerOp + 5

	doneOK        uint8 = 1
	doneFailed    uint8 = 2
	doneWithdrawn uint8 = 3
	doneRefused   uint8 = 4 // the executor's runtime closed before starting it, or it has no worker for the function: run it elsewhere
	doneLost      uint8 = 5 // the worker process running it died: run it again (MaxRetries)

	maxName         = 256
	maxResources    = 16
	maxResourceName = 64
	maxAmount       = 1 << 40
	maxArgs         = 1 << 16
	maxMessage      = 64 << 10 // a failure's message
	maxInline       = 1 << 21  // a result's bytes carried in opDone
	maxBatch        = 1024     // calls in one opSubmit, reports in one opDone
	maxLiteral      = 64 << 10 // a literal argument carried in opSubmit
	maxLiterals     = 256 << 10
	maxRefusal      = 1024    // an opSubmit's reason for refusing a call
	batchBytes      = 1 << 20 // a batch is closed once this long (one item at least)
	headerLen       = 1 + 8
	idLen           = len(trove.ObjectID{})
)

var errMessage = errors.New("task: malformed message")

// ops lists the runtime's ops (for Handle).
var ops = []quic.Op{opSubmit, opDone, opWithdraw, opStatus, opCalls, opWhere}

func appendHeader(b []byte, from trove.NodeID) []byte {
	b = append(b, wireVersion)
	return append(b, from[:]...)
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendResources(b []byte, r Resources) []byte {
	names := slices.Sorted(maps.Keys(r))
	b = binary.AppendUvarint(b, uint64(len(names)))
	for _, k := range names {
		b = appendString(b, k)
		b = binary.BigEndian.AppendUint64(b, math.Float64bits(r[k]))
	}
	return b
}

// reader decodes a body; the first error sticks.
type reader struct {
	b   []byte
	err error
}

func (r *reader) fail(format string, args ...any) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: "+format, append([]any{errMessage}, args...)...)
	}
}

func (r *reader) uvarint(what string, limit uint64) uint64 {
	if r.err != nil {
		return 0
	}
	v, k := binary.Uvarint(r.b)
	if k <= 0 || (k > 1 && r.b[k-1] == 0) || v > limit {
		r.fail("%s invalid or over %d", what, limit)
		return 0
	}
	r.b = r.b[k:]
	return v
}

func (r *reader) bytes(what string, n int) []byte {
	if r.err != nil {
		return nil
	}
	if len(r.b) < n {
		r.fail("%s truncated", what)
		return nil
	}
	v := r.b[:n]
	r.b = r.b[n:]
	return v
}

func (r *reader) str(what string, limit int) string {
	n := r.uvarint(what+" length", uint64(limit))
	return string(r.bytes(what, int(n)))
}

func (r *reader) id(what string) trove.ObjectID {
	b := r.bytes(what, idLen)
	if b == nil {
		return trove.ObjectID{}
	}
	id := trove.ObjectID(b)
	if id.IsZero() {
		r.fail("%s is the zero object ID", what)
	}
	return id
}

func (r *reader) u8(what string) uint8 {
	b := r.bytes(what, 1)
	if b == nil {
		return 0
	}
	return b[0]
}

func (r *reader) resources(what string) Resources {
	n := r.uvarint(what+" count", maxResources)
	if r.err != nil {
		return nil
	}
	res := make(Resources, n)
	last := ""
	for i := uint64(0); i < n && r.err == nil; i++ {
		k := r.str(what+" name", maxResourceName)
		b := r.bytes(what+" amount", 8)
		if r.err != nil {
			break
		}
		v := math.Float64frombits(binary.BigEndian.Uint64(b))
		switch {
		case k == "" || (i > 0 && k <= last):
			r.fail("%s names empty, repeated or unsorted", what)
		case math.IsNaN(v) || math.IsInf(v, 0) || v < -maxAmount || v > maxAmount:
			r.fail("%s %s amount %v out of bounds", what, k, v)
		}
		res[k], last = v, k
	}
	return res
}

func (r *reader) header() trove.NodeID {
	b := r.bytes("header", headerLen)
	if b == nil {
		return trove.NodeID{}
	}
	if b[0] != wireVersion {
		r.fail("wire version %d, this node speaks %d (run one trove version across the cluster)", b[0], wireVersion)
	}
	return trove.NodeID(b[1:])
}

func (r *reader) end() error {
	if r.err == nil && len(r.b) != 0 {
		r.fail("%d bytes after the message's end", len(r.b))
	}
	return r.err
}

// submitReq is one call in an opSubmit batch.
type submitReq struct {
	id      trove.ObjectID
	attempt int
	fn      string
	need    Resources
	args    []trove.ObjectID // the zero ID where the argument is a literal
	lits    [][]byte         // nil, or one per argument: the literal's bytes (nil for a ref)
}

// appendSubmits encodes an opSubmit: header, n (1..maxBatch), n calls, each
// id(16), attempt, name, need, n args, each kind u8 (0: a ref, id(16); 1: a
// literal, length (1..maxLiteral) and bytes).
func appendSubmits(b []byte, from trove.NodeID, ms []submitReq) []byte {
	b = appendHeader(b, from)
	b = binary.AppendUvarint(b, uint64(len(ms)))
	for i := range ms {
		b = ms[i].append(b)
	}
	return b
}

func (m *submitReq) append(b []byte) []byte {
	b = append(b, m.id[:]...)
	b = binary.AppendUvarint(b, uint64(m.attempt))
	b = appendString(b, m.fn)
	b = appendResources(b, m.need)
	b = binary.AppendUvarint(b, uint64(len(m.args)))
	for i, a := range m.args {
		if m.lits != nil && m.lits[i] != nil {
			b = append(b, 1)
			b = binary.AppendUvarint(b, uint64(len(m.lits[i])))
			b = append(b, m.lits[i]...)
			continue
		}
		b = append(b, 0)
		b = append(b, a[:]...)
	}
	return b
}

// minSubmit is the fewest bytes a call in an opSubmit takes.
const minSubmit = idLen + 4

func decodeSubmits(b []byte) (trove.NodeID, []submitReq, error) {
	r := reader{b: b}
	from := r.header()
	n := r.uvarint("call count", maxBatch)
	if r.err == nil && (n == 0 || n*uint64(minSubmit) > uint64(len(r.b))) {
		r.fail("%d calls in %d bytes", n, len(r.b))
	}
	var ms []submitReq
	if r.err == nil {
		ms = make([]submitReq, 0, n)
	}
	for i := uint64(0); i < n && r.err == nil; i++ {
		ms = append(ms, r.submit())
	}
	if err := r.end(); err != nil {
		return trove.NodeID{}, nil, err
	}
	for _, m := range ms {
		if m.fn == "" {
			return trove.NodeID{}, nil, fmt.Errorf("%w: empty function name", errMessage)
		}
		for _, v := range m.need {
			if v < 0 {
				return trove.NodeID{}, nil, fmt.Errorf("%w: a negative resource need", errMessage)
			}
		}
	}
	return from, ms, nil
}

func (r *reader) submit() submitReq {
	var m submitReq
	m.id = r.id("result ID")
	m.attempt = int(r.uvarint("attempt", 1<<20))
	m.fn = r.str("function name", maxName)
	m.need = r.resources("need")
	n := r.uvarint("argument count", maxArgs)
	if r.err == nil && n*(1+1) > uint64(len(r.b)) {
		r.fail("%d arguments in %d bytes", n, len(r.b))
	}
	if r.err != nil {
		return m
	}
	m.args = make([]trove.ObjectID, n)
	for i := range m.args {
		switch k := r.u8("argument kind"); {
		case r.err != nil:
		case k == 0:
			m.args[i] = r.id("argument")
		case k == 1:
			l := r.uvarint("literal length", maxLiteral)
			if r.err == nil && l == 0 {
				r.fail("an empty literal")
			}
			lit := r.bytes("literal", int(l))
			if r.err == nil {
				if m.lits == nil {
					m.lits = make([][]byte, n)
				}
				m.lits[i] = lit
			}
		default:
			r.fail("argument kind %d", k)
		}
		if r.err != nil {
			break
		}
	}
	return m
}

// An opSubmit's reply: version, n, n × (0: queued | 1, why: refused).
func appendSubmitReply(b []byte, refused []string) []byte {
	b = append(b, wireVersion)
	b = binary.AppendUvarint(b, uint64(len(refused)))
	for _, why := range refused {
		if why == "" {
			b = append(b, 0)
			continue
		}
		b = append(b, 1)
		b = appendString(b, clip(why, maxRefusal))
	}
	return b
}

func decodeSubmitReply(b []byte, want int) ([]string, error) {
	r := reader{b: b}
	if v := r.u8("version"); r.err == nil && v != wireVersion {
		r.fail("wire version %d, this node speaks %d (run one trove version across the cluster)", v, wireVersion)
	}
	n := r.uvarint("reply count", maxBatch)
	if r.err == nil && (want >= 0 && n != uint64(want) || n > uint64(len(r.b))) {
		r.fail("%d replies (%d bytes) to %d calls", n, len(r.b), want)
	}
	var out []string
	if r.err == nil {
		out = make([]string, n)
	}
	for i := uint64(0); i < n && r.err == nil; i++ {
		switch k := r.u8("reply kind"); {
		case r.err != nil:
		case k == 0:
		case k == 1:
			out[i] = r.str("refusal", maxRefusal)
			if r.err == nil && out[i] == "" {
				r.fail("an empty refusal")
			}
		default:
			r.fail("reply kind %d", k)
		}
	}
	if err := r.end(); err != nil {
		return nil, err
	}
	return out, nil
}

// doneReq is one report in an opDone batch.
type doneReq struct {
	id       trove.ObjectID
	attempt  int
	status   uint8
	size     int64  // doneOK
	inline   []byte // doneOK: the result's bytes, or nil (aliases the body)
	panicked bool   // doneFailed
	node     string // doneFailed
	msg      string // doneFailed
}

// appendDones encodes an opDone: header, n (1..maxBatch), n reports.
func appendDones(b []byte, from trove.NodeID, ms []doneReq) []byte {
	b = appendHeader(b, from)
	b = binary.AppendUvarint(b, uint64(len(ms)))
	for i := range ms {
		b = ms[i].append(b)
	}
	return b
}

func (m *doneReq) append(b []byte) []byte {
	b = append(b, m.id[:]...)
	b = binary.AppendUvarint(b, uint64(m.attempt))
	b = append(b, m.status)
	switch m.status {
	case doneOK:
		b = binary.AppendUvarint(b, uint64(m.size))
		b = binary.AppendUvarint(b, uint64(len(m.inline)))
		b = append(b, m.inline...)
	case doneFailed:
		var p byte
		if m.panicked {
			p = 1
		}
		b = append(b, p)
		b = appendString(b, m.node)
		b = appendString(b, m.msg)
	case doneLost:
		b = appendString(b, m.node)
		b = appendString(b, m.msg)
	}
	return b
}

// minDone is the fewest bytes a report in an opDone takes.
const minDone = idLen + 2

func decodeDones(b []byte) (trove.NodeID, []doneReq, error) {
	r := reader{b: b}
	from := r.header()
	n := r.uvarint("report count", maxBatch)
	if r.err == nil && (n == 0 || n*uint64(minDone) > uint64(len(r.b))) {
		r.fail("%d reports in %d bytes", n, len(r.b))
	}
	var ms []doneReq
	if r.err == nil {
		ms = make([]doneReq, 0, n)
	}
	for i := uint64(0); i < n && r.err == nil; i++ {
		ms = append(ms, r.done())
	}
	if err := r.end(); err != nil {
		return trove.NodeID{}, nil, err
	}
	return from, ms, nil
}

func (r *reader) done() doneReq {
	var m doneReq
	m.id = r.id("result ID")
	m.attempt = int(r.uvarint("attempt", 1<<20))
	m.status = r.u8("status")
	switch {
	case r.err != nil:
	case m.status == doneOK:
		m.size = int64(r.uvarint("size", 1<<62))
		n := r.uvarint("inline length", maxInline)
		m.inline = r.bytes("inline bytes", int(n))
		if r.err == nil && n != 0 && int64(n) != m.size {
			r.fail("inline result of %d bytes carries %d", m.size, n)
		}
		if n == 0 {
			m.inline = nil
		}
	case m.status == doneFailed:
		switch p := r.u8("panicked"); p {
		case 0, 1:
			m.panicked = p == 1
		default:
			r.fail("panicked flag %d", p)
		}
		m.node = r.str("node name", maxName)
		m.msg = r.str("message", maxMessage)
	case m.status == doneLost:
		m.node = r.str("node name", maxName)
		m.msg = r.str("message", maxMessage)
	case m.status == doneWithdrawn, m.status == doneRefused:
	default:
		r.fail("status %d", m.status)
	}
	return m
}

// An opDone's reply: version, n, n × keep u8 (0: the caller no longer
// wants this result: drop it; 1: kept).
func appendDoneReply(b []byte, keep []bool) []byte {
	b = append(b, wireVersion)
	b = binary.AppendUvarint(b, uint64(len(keep)))
	for _, k := range keep {
		var v byte
		if k {
			v = 1
		}
		b = append(b, v)
	}
	return b
}

func decodeDoneReply(b []byte, want int) ([]bool, error) {
	r := reader{b: b}
	if v := r.u8("version"); r.err == nil && v != wireVersion {
		r.fail("wire version %d, this node speaks %d (run one trove version across the cluster)", v, wireVersion)
	}
	n := r.uvarint("reply count", maxBatch)
	if r.err == nil && (want >= 0 && n != uint64(want) || n != uint64(len(r.b))) {
		r.fail("%d replies (%d bytes) to %d reports", n, len(r.b), want)
	}
	var keep []bool
	if r.err == nil {
		keep = make([]bool, n)
	}
	for i := uint64(0); i < n && r.err == nil; i++ {
		switch k := r.u8("keep"); {
		case r.err != nil:
		case k <= 1:
			keep[i] = k == 1
		default:
			r.fail("keep flag %d", k)
		}
	}
	if err := r.end(); err != nil {
		return nil, err
	}
	return keep, nil
}

// idReq is an opWithdraw.
func appendIDReq(b []byte, from trove.NodeID, id trove.ObjectID) []byte {
	return append(appendHeader(b, from), id[:]...)
}

func decodeIDReq(b []byte) (trove.NodeID, trove.ObjectID, error) {
	r := reader{b: b}
	from := r.header()
	id := r.id("result ID")
	return from, id, r.end()
}

// appendStatusReq is an opStatus: the generation of the executor's
// functions the asker knows (0: none).
func appendStatusReq(b []byte, from trove.NodeID, gen uint64) []byte {
	return binary.AppendUvarint(appendHeader(b, from), gen)
}

func decodeStatusReq(b []byte) (trove.NodeID, uint64, error) {
	r := reader{b: b}
	from := r.header()
	gen := r.uvarint("generation", math.MaxUint64)
	return from, gen, r.end()
}

// status is an opStatus reply: a node's resources and load, and the
// functions it runs (fns nil when the asker knows generation gen already).
type status struct {
	total, free     Resources
	queued, running int
	gen             uint64
	fns             []string // sorted; nil: unchanged
}

func (s *status) append(b []byte) []byte {
	b = append(b, wireVersion)
	b = appendResources(b, s.total)
	b = appendResources(b, s.free)
	b = binary.AppendUvarint(b, uint64(s.queued))
	b = binary.AppendUvarint(b, uint64(s.running))
	b = binary.AppendUvarint(b, s.gen)
	if s.fns == nil {
		return append(b, 0)
	}
	b = append(b, 1)
	b = binary.AppendUvarint(b, uint64(len(s.fns)))
	for _, f := range s.fns {
		b = appendString(b, f)
	}
	return b
}

func decodeStatus(b []byte) (status, error) {
	r := reader{b: b}
	if v := r.u8("version"); r.err == nil && v != wireVersion {
		r.fail("wire version %d, this node speaks %d", v, wireVersion)
	}
	var s status
	s.total = r.resources("total")
	s.free = r.resources("free")
	s.queued = int(r.uvarint("queued", 1<<40))
	s.running = int(r.uvarint("running", 1<<40))
	s.gen = r.uvarint("generation", math.MaxUint64)
	if r.flag("names") {
		n := r.uvarint("function count", maxFuncs)
		if r.err == nil && uint64(len(r.b)) < n {
			r.fail("%d functions in %d bytes", n, len(r.b))
		}
		s.fns = make([]string, 0, n)
		for i := uint64(0); i < n && r.err == nil; i++ {
			f := r.str("function name", maxName)
			if r.err == nil && (f == "" || i > 0 && f <= s.fns[i-1]) {
				r.fail("function names empty, repeated or unsorted")
			}
			s.fns = append(s.fns, f)
		}
	}
	if err := r.end(); err != nil {
		return status{}, err
	}
	return s, nil
}

// checkAck checks an empty acknowledgement.
func checkAck(b []byte) error {
	if len(b) != 1 || b[0] != wireVersion {
		return fmt.Errorf("%w: %d-byte acknowledgement", errMessage, len(b))
	}
	return nil
}

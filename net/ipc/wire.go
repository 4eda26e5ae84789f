package ipc

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"github.com/trovedb/trove"
)

// Version is the protocol version this package speaks. A daemon refuses a client
// of another version in the handshake, with a message naming both.
const Version = 2

// The frame header: every message in either direction starts with it.
//
//	[0:4]   uint32  length of what follows the length word (header rest + body)
//	[4]     uint8   op
//	[5]     uint8   number of file descriptors sent with the frame (SCM_RIGHTS)
//	[6:8]   uint16  reserved, zero
//	[8:16]  uint64  request ID: a reply carries its request's
//
// All integers are little-endian.
const (
	headerSize = 16
	lenSize    = 4
)

type op uint8

const (
	opReply op = iota + 1
	opHello
	opPut
	opCreate
	opSeal
	opAbort
	opGet
	opWait
	opBorrow
	opRelease
	opReleaseView
	opCancel
	opStatus
	opMemory
	opKeep
	opUnkeep
	opSync
	opClusterMemory
	opLayer        // a request of a layer above (Server.Handle): layer op u8, then its body
	opCreateResult // create the result of a remote call whose ID is given (ServerConfig.Results)
	opMax          // not an op: one past the last
)

var opNames = [...]string{"?", "reply", "hello", "put", "create", "seal", "abort", "get", "wait",
	"borrow", "release", "release-view", "cancel", "status", "memory", "keep", "unkeep", "sync", "cluster-memory", "layer", "create-result"}

func (o op) String() string {
	if int(o) < len(opNames) {
		return opNames[o]
	}
	return fmt.Sprintf("op(%d)", uint8(o))
}

// Limits on what a peer may ask for; decoders check them before allocating.
const (
	// DefaultMaxMessage is the largest request a daemon accepts by default: an
	// inline object of up to engine.DefaultInlineThreshold with room to spare,
	// or a request naming up to 65,000 objects.
	DefaultMaxMessage = 1 << 20
	// maxReply is the largest reply a client accepts: a batch of up to
	// maxBatch objects, each up to an inline threshold, inline.
	maxReply = 256 << 20
	// maxBatch is the most objects a client names in one Get request; GetAll
	// splits larger lists.
	maxBatch = 1024
	maxName  = 256
	maxFDs   = 16
)

// header is a decoded frame header.
type header struct {
	length uint32 // of the frame after the length word
	op     op
	nfds   uint8
	id     uint64
}

func (h header) bodyLen() int { return int(h.length) - (headerSize - lenSize) }

// parseHeader decodes and checks a frame header. max is the largest frame the
// reader accepts.
func parseHeader(b []byte, max int) (header, error) {
	if len(b) < headerSize {
		return header{}, fmt.Errorf("%w: short header (%d bytes)", errProtocol, len(b))
	}
	h := header{
		length: binary.LittleEndian.Uint32(b[0:]),
		op:     op(b[4]),
		nfds:   b[5],
		id:     binary.LittleEndian.Uint64(b[8:]),
	}
	switch {
	case binary.LittleEndian.Uint16(b[6:]) != 0:
		return h, fmt.Errorf("%w: reserved header bits set", errProtocol)
	case h.op == 0 || h.op >= opMax:
		return h, fmt.Errorf("%w: unknown op %d", errProtocol, b[4])
	case h.length < headerSize-lenSize:
		return h, fmt.Errorf("%w: frame length %d is shorter than its header", errProtocol, h.length)
	case int64(h.length)+lenSize > int64(max):
		return h, fmt.Errorf("%w: %s message of %s exceeds the limit of %s", errTooLarge, h.op,
			trove.HumanBytes(int64(h.length)+lenSize), trove.HumanBytes(int64(max)))
	case h.nfds > maxFDs:
		return h, fmt.Errorf("%w: %d file descriptors in one frame", errProtocol, h.nfds)
	}
	return h, nil
}

// appendHeader starts a frame; finish fills in its length once the body is written.
func appendHeader(b []byte, o op, id uint64, nfds int) []byte {
	var h [headerSize]byte
	h[4], h[5] = byte(o), byte(nfds)
	binary.LittleEndian.PutUint64(h[8:], id)
	return append(b, h[:]...)
}

// finish sets the length of the frame that starts at start in b.
func finish(b []byte, start int) []byte {
	binary.LittleEndian.PutUint32(b[start:], uint32(len(b)-start-lenSize))
	return b
}

var (
	errProtocol = errors.New("ipc: malformed message")
	errTooLarge = errors.New("ipc: message too large")
)

// ---- encoding helpers ----

func putU8(b []byte, v uint8) []byte   { return append(b, v) }
func putU16(b []byte, v uint16) []byte { return binary.LittleEndian.AppendUint16(b, v) }
func putU32(b []byte, v uint32) []byte { return binary.LittleEndian.AppendUint32(b, v) }
func putU64(b []byte, v uint64) []byte { return binary.LittleEndian.AppendUint64(b, v) }
func putID(b []byte, id trove.ObjectID) []byte {
	return append(b, id[:]...)
}
func putIDs(b []byte, ids []trove.ObjectID) []byte {
	b = putU32(b, uint32(len(ids)))
	for _, id := range ids {
		b = putID(b, id)
	}
	return b
}
func putStr(b []byte, s string) []byte {
	b = putU32(b, uint32(len(s)))
	return append(b, s...)
}

// reader decodes a message body. Every read checks the bounds; the first failure
// sticks, so a decoder reads its fields and checks err once at the end.
type reader struct {
	b   []byte
	err error
}

func (r *reader) fail(format string, args ...any) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: "+format, append([]any{errProtocol}, args...)...)
	}
}

func (r *reader) take(n int) []byte {
	if r.err != nil {
		return nil
	}
	if n < 0 || n > len(r.b) {
		r.fail("field of %d bytes, %d left", n, len(r.b))
		return nil
	}
	v := r.b[:n:n]
	r.b = r.b[n:]
	return v
}

func (r *reader) u8() uint8 {
	if b := r.take(1); b != nil {
		return b[0]
	}
	return 0
}
func (r *reader) u16() uint16 {
	if b := r.take(2); b != nil {
		return binary.LittleEndian.Uint16(b)
	}
	return 0
}
func (r *reader) u32() uint32 {
	if b := r.take(4); b != nil {
		return binary.LittleEndian.Uint32(b)
	}
	return 0
}
func (r *reader) u64() uint64 {
	if b := r.take(8); b != nil {
		return binary.LittleEndian.Uint64(b)
	}
	return 0
}
func (r *reader) id() trove.ObjectID {
	var id trove.ObjectID
	copy(id[:], r.take(len(id)))
	return id
}

// count reads a count of items of size bytes each, checking they can all be there
// before anything is allocated for them.
func (r *reader) count(size, max int) int {
	n := r.u32()
	if r.err != nil {
		return 0
	}
	if int64(n) > int64(max) || int64(n)*int64(size) > int64(len(r.b)) {
		r.fail("count %d of %d-byte items with %d bytes left (limit %d)", n, size, len(r.b), max)
		return 0
	}
	return int(n)
}

func (r *reader) ids(max int) []trove.ObjectID { return r.appendIDs(nil, max) }

// appendIDs reads a count and that many IDs, appending them to dst.
func (r *reader) appendIDs(dst []trove.ObjectID, max int) []trove.ObjectID {
	n := r.count(16, max)
	if r.err != nil || n == 0 {
		return dst
	}
	dst = append(dst, make([]trove.ObjectID, n)...)
	ids := dst[len(dst)-n:]
	for i := range ids {
		ids[i] = r.id()
	}
	return dst
}

func (r *reader) str(max int) string {
	n := r.count(1, max)
	return string(r.take(n))
}

// rest returns the remaining bytes (not copied).
func (r *reader) rest() []byte {
	v := r.b
	r.b = nil
	return v
}

// done fails if bytes are left over: a message is exactly its fields.
func (r *reader) done() error {
	if r.err == nil && len(r.b) != 0 {
		r.fail("%d bytes left over", len(r.b))
	}
	return r.err
}

// ---- requests ----

type helloReq struct {
	version uint16
	pid     uint32
	name    string
}

func (m *helloReq) decode(r *reader) {
	m.version, m.pid, m.name = r.u16(), r.u32(), r.str(maxName)
}
func (m *helloReq) encode(b []byte) []byte {
	return putStr(putU32(putU16(b, m.version), m.pid), m.name)
}

type helloReply struct {
	version   uint16
	node      trove.NodeID
	arenaSize uint64
	inline    uint64 // the daemon's inline threshold
	maxMsg    uint32
	pid       uint32
}

func (m *helloReply) decode(r *reader) {
	m.version = r.u16()
	copy(m.node[:], r.take(len(m.node)))
	m.arenaSize, m.inline, m.maxMsg, m.pid = r.u64(), r.u64(), r.u32(), r.u32()
	if m.arenaSize > math.MaxInt64/2 || m.inline > math.MaxInt32 {
		r.fail("arena of %d bytes, inline threshold %d", m.arenaSize, m.inline)
	}
}
func (m *helloReply) encode(b []byte) []byte {
	b = append(putU16(b, m.version), m.node[:]...)
	return putU32(putU32(putU64(putU64(b, m.arenaSize), m.inline), m.maxMsg), m.pid)
}

// putReq stores a small object whose bytes travel in the message.
type putReq struct {
	deadline int64
	contains []trove.ObjectID
	data     []byte // aliases the read buffer
}

func (m *putReq) decode(r *reader) {
	m.deadline, m.contains, m.data = int64(r.u64()), r.ids(math.MaxInt32), r.rest()
}
func (m *putReq) encode(b []byte) []byte {
	return append(putIDs(putU64(b, uint64(m.deadline)), m.contains), m.data...)
}

type createReq struct {
	deadline int64
	size     uint64
	contains []trove.ObjectID
}

func (m *createReq) decode(r *reader) {
	m.deadline, m.size, m.contains = int64(r.u64()), r.u64(), r.ids(math.MaxInt32)
	if m.size > math.MaxInt64/2 {
		r.fail("object of %d bytes", m.size)
	}
}
func (m *createReq) encode(b []byte) []byte {
	return putIDs(putU64(putU64(b, uint64(m.deadline)), m.size), m.contains)
}

// createResultReq creates the result id of a remote call (opCreateResult).
type createResultReq struct {
	deadline int64
	id       trove.ObjectID
	size     uint64
	contains []trove.ObjectID
}

func (m *createResultReq) decode(r *reader) {
	m.deadline, m.id, m.size, m.contains = int64(r.u64()), r.id(), r.u64(), r.ids(math.MaxInt32)
	if m.size > math.MaxInt64/2 {
		r.fail("object of %d bytes", m.size)
	}
	if r.err == nil && m.id.IsZero() {
		r.fail("result of the zero ID")
	}
}
func (m *createResultReq) encode(b []byte) []byte {
	return putIDs(putU64(putID(putU64(b, uint64(m.deadline)), m.id), m.size), m.contains)
}

type createReply struct {
	id  trove.ObjectID
	off int64 // arena offset, or -1: send the bytes with Seal
}

func (m *createReply) decode(r *reader) {
	m.id, m.off = r.id(), int64(r.u64())
	if m.off < -1 {
		r.fail("arena offset %d", m.off)
	}
}
func (m *createReply) encode(b []byte) []byte { return putU64(putID(b, m.id), uint64(m.off)) }

// sealReq seals a builder; data is its bytes if they are not in the arena.
type sealReq struct {
	id   trove.ObjectID
	data []byte
}

func (m *sealReq) decode(r *reader)       { m.id, m.data = r.id(), r.rest() }
func (m *sealReq) encode(b []byte) []byte { return append(putID(b, m.id), m.data...) }

// idsReq is the body of get, borrow and release: a deadline (get only) and IDs.
type idsReq struct {
	deadline int64
	n        uint32 // wait: numReturns
	ids      []trove.ObjectID
}

func (m *idsReq) decode(r *reader, withDeadline, withN bool) {
	if withDeadline {
		m.deadline = int64(r.u64())
	}
	if withN {
		m.n = r.u32()
	}
	m.ids = r.ids(math.MaxInt32)
}
func (m *idsReq) encode(b []byte, withDeadline, withN bool) []byte {
	if withDeadline {
		b = putU64(b, uint64(m.deadline))
	}
	if withN {
		b = putU32(b, m.n)
	}
	return putIDs(b, m.ids)
}

// Where a Get reply's object is.
const (
	placeInline = 1 // bytes follow in the reply
	placeArena  = 2 // at offset in the arena
	placeFile   = 3 // at offset in the file whose descriptor came with the reply, in order
)

// getItem is one object of a Get reply.
type getItem struct {
	place  uint8
	view   uint64 // the server's pin, released by releaseView; 0 for inline objects
	offset uint64
	size   uint64
	data   []byte // inline bytes, aliasing the read buffer
}

func decodeGetReply(r *reader, want int) []getItem {
	n := r.count(1+8+8+8, maxBatch)
	if r.err == nil && n != want {
		r.fail("get reply with %d objects for %d asked", n, want)
	}
	if r.err != nil {
		return nil
	}
	items := make([]getItem, n)
	for i := range items {
		it := &items[i]
		it.place, it.view, it.offset, it.size = r.u8(), r.u64(), r.u64(), r.u64()
		switch {
		case r.err != nil:
		case it.size > math.MaxInt64/2 || it.offset > math.MaxInt64/2:
			r.fail("object of %d bytes at %d", it.size, it.offset)
		case it.place == placeInline:
			it.data = r.take(int(it.size))
		case it.place != placeArena && it.place != placeFile:
			r.fail("unknown place %d", it.place)
		}
	}
	return items
}

func (it *getItem) encode(b []byte) []byte {
	b = putU64(putU64(putU64(putU8(b, it.place), it.view), it.offset), it.size)
	if it.place == placeInline {
		b = append(b, it.data...)
	}
	return b
}

// decodeIndices decodes a wait reply: the ready refs' positions in the request,
// ascending, each below n.
func decodeIndices(r *reader, n int) []int {
	k := r.count(4, n)
	if r.err != nil {
		return nil
	}
	idx := make([]int, k)
	for i := range idx {
		v := int(r.u32())
		if r.err == nil && (v >= n || (i > 0 && v <= idx[i-1])) {
			r.fail("ready index %d of %d refs, after %v", v, n, idx[:i])
		}
		idx[i] = v
	}
	return idx
}

func decodeViews(r *reader) []uint64 {
	n := r.count(8, math.MaxInt32)
	if r.err != nil {
		return nil
	}
	v := make([]uint64, n)
	for i := range v {
		v[i] = r.u64()
	}
	return v
}

// ---- errors across the socket ----

// A reply starts with a code: 0 for success, else the error's kind, followed by
// its message. Known kinds become the same sentinel errors on the client, so
// errors.Is works as in process.
var errorCodes = []error{
	1: trove.ErrInvalidRef, 2: trove.ErrObjectFreed, 3: trove.ErrUnknownObject,
	4: trove.ErrGetTimeout, 5: trove.ErrObjectAborted, 6: trove.ErrObjectEvicted,
	7: trove.ErrSpillCorrupt, 8: trove.ErrStoreFull, 9: trove.ErrOutOfDisk,
	10: trove.ErrObjectTooLarge, 11: trove.ErrSealed, 12: trove.ErrClosed,
	13: errProtocol, 14: ErrServerClosed,
	// A cluster node's errors: a foreign object's owner or holders failed.
	15: trove.ErrOwnerDied, 16: trove.ErrObjectLost, 17: trove.ErrNodeUnreachable,
	// A remote call's failure (its result's Gets): the function failed.
	18: trove.ErrTaskFailed,
}

// clusterCodes are tried before the others, most specific first (a remote
// call's failure, then the cluster's errors): a cluster
// error may wrap what ended it (an unreachable owner that then died, a closed
// connection), and the client should see what it means for the object.
var clusterCodes = []uint8{18, 15, 16, 17}

const (
	codeOK       = 0
	codeCanceled = 100
	codeOther    = 255
)

func errorCode(err error) uint8 {
	for _, code := range clusterCodes {
		if errors.Is(err, errorCodes[code]) {
			return code
		}
	}
	for code, e := range errorCodes {
		if e != nil && errors.Is(err, e) {
			return uint8(code)
		}
	}
	if errors.Is(err, errCanceled) {
		return codeCanceled
	}
	return codeOther
}

// remoteError is an error the daemon returned.
type remoteError struct {
	code uint8
	msg  string
}

func (e *remoteError) Error() string { return e.msg }

func (e *remoteError) Is(target error) bool {
	if int(e.code) < len(errorCodes) && errorCodes[e.code] != nil {
		return errors.Is(errorCodes[e.code], target)
	}
	return e.code == codeCanceled && target == errCanceled
}

var errCanceled = errors.New("request cancelled")

func appendError(b []byte, err error) []byte {
	return putStr(putU8(b, errorCode(err)), err.Error())
}

// decodeStatus reads a reply's status; a non-nil error is the daemon's.
func decodeStatus(r *reader) error {
	code := r.u8()
	if r.err != nil || code == codeOK {
		return nil
	}
	msg := r.str(1 << 20)
	if r.err != nil {
		return nil
	}
	return &remoteError{code: code, msg: msg}
}

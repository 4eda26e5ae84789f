package quic

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/trovedb/trove"
)

// The wire format. Every exchange is one bidirectional QUIC stream: the opener
// writes one frame and closes its side, the other side answers with one frame
// (and, for a chunk, the chunk's bytes) and closes its side. Integers are big
// endian.
//
//	request:       kind=1 (1) | op (2) | body length (4) | body
//	chunk request: kind=2 (1) | object ID (16) | offset (8) | length (8)
//	tagged stream: kind=3 (1) | tag (1) | another protocol's bytes (tagged.go)
//	reply:         status (1) | length (4) | body, or the error's message if status != 0
//	chunk reply:   status (1) | length (4) | length bytes of the chunk if status == 0,
//	               else the error's message
//
// A chunk server that fails after it started sending resets the stream
// (codeChunkFailed); the puller sees a short read and reports the reset.

const (
	kindRequest = 1
	kindChunk   = 2
	kindTagged  = 3 // a stream of another protocol (tagged.go)

	requestHeaderLen = 1 + 2 + 4
	chunkRequestLen  = 1 + trove.ObjectIDLen + 8 + 8
	replyHeaderLen   = 1 + 4

	// maxErrorMessage bounds an error reply's message (longer ones are cut).
	maxErrorMessage = 4 << 10
)

// errProtocol marks bytes from a peer that break the wire format: the peer is
// disconnected.
var errProtocol = errors.New("protocol violation")

// Op names a control request. Ops are the caller's (the cluster's) to define;
// the transport only carries them. Op 0 is invalid.
type Op uint16

// requestHeader is a request's first requestHeaderLen bytes.
type requestHeader struct {
	op  Op
	len uint32
}

func appendRequestHeader(b []byte, op Op, n int) []byte {
	b = append(b, kindRequest)
	b = binary.BigEndian.AppendUint16(b, uint16(op))
	return binary.BigEndian.AppendUint32(b, uint32(n))
}

// decodeRequestHeader decodes a request header (kind byte included) and checks
// the body fits in maxMessage.
func decodeRequestHeader(b []byte, maxMessage int) (requestHeader, error) {
	if len(b) < requestHeaderLen {
		return requestHeader{}, fmt.Errorf("%w: request header of %d bytes, want %d", errProtocol, len(b), requestHeaderLen)
	}
	if b[0] != kindRequest {
		return requestHeader{}, fmt.Errorf("%w: stream kind %d is not a request", errProtocol, b[0])
	}
	h := requestHeader{op: Op(binary.BigEndian.Uint16(b[1:])), len: binary.BigEndian.Uint32(b[3:])}
	if h.op == 0 {
		return requestHeader{}, fmt.Errorf("%w: request op 0", errProtocol)
	}
	if int64(h.len) > int64(maxMessage) {
		return requestHeader{}, fmt.Errorf("%w: request body of %d bytes exceeds the %d-byte message bound (Config.MaxMessage)", errProtocol, h.len, maxMessage)
	}
	return h, nil
}

// chunkRequest names the bytes [off, off+n) of an object.
type chunkRequest struct {
	id  trove.ObjectID
	off int64
	n   int64
}

func appendChunkRequest(b []byte, c chunkRequest) []byte {
	b = append(b, kindChunk)
	b = append(b, c.id[:]...)
	b = binary.BigEndian.AppendUint64(b, uint64(c.off))
	return binary.BigEndian.AppendUint64(b, uint64(c.n))
}

// decodeChunkRequest decodes a chunk request (kind byte included). The range's
// bound against Config.MaxChunk is checked by the server, which answers a
// too-large range with an error rather than disconnecting.
func decodeChunkRequest(b []byte) (chunkRequest, error) {
	if len(b) < chunkRequestLen {
		return chunkRequest{}, fmt.Errorf("%w: chunk request of %d bytes, want %d", errProtocol, len(b), chunkRequestLen)
	}
	if b[0] != kindChunk {
		return chunkRequest{}, fmt.Errorf("%w: stream kind %d is not a chunk request", errProtocol, b[0])
	}
	var c chunkRequest
	copy(c.id[:], b[1:])
	off := binary.BigEndian.Uint64(b[1+trove.ObjectIDLen:])
	n := binary.BigEndian.Uint64(b[1+trove.ObjectIDLen+8:])
	if off > 1<<62 || n > 1<<62 || n == 0 {
		return chunkRequest{}, fmt.Errorf("%w: chunk range offset %d length %d", errProtocol, off, n)
	}
	c.off, c.n = int64(off), int64(n)
	if c.id.IsZero() {
		return chunkRequest{}, fmt.Errorf("%w: chunk request for the zero object ID", errProtocol)
	}
	return c, nil
}

// replyHeader is the first replyHeaderLen bytes of a reply or chunk reply.
type replyHeader struct {
	status status
	len    uint32
}

func appendReplyHeader(b []byte, st status, n int) []byte {
	b = append(b, byte(st))
	return binary.BigEndian.AppendUint32(b, uint32(n))
}

// decodeReplyHeader decodes a reply header. A success's length must fit in
// maxBody (the message bound for replies, the chunk's length for chunks, checked
// by the caller); an error's message must fit in maxErrorMessage.
func decodeReplyHeader(b []byte, maxBody int) (replyHeader, error) {
	if len(b) < replyHeaderLen {
		return replyHeader{}, fmt.Errorf("%w: reply header of %d bytes, want %d", errProtocol, len(b), replyHeaderLen)
	}
	h := replyHeader{status: status(b[0]), len: binary.BigEndian.Uint32(b[1:])}
	if h.status >= statusCount {
		return replyHeader{}, fmt.Errorf("%w: reply status %d", errProtocol, h.status)
	}
	limit := int64(maxBody)
	if h.status != statusOK {
		limit = maxErrorMessage
	}
	if int64(h.len) > limit {
		return replyHeader{}, fmt.Errorf("%w: reply of %d bytes exceeds the %d-byte bound", errProtocol, h.len, limit)
	}
	return h, nil
}

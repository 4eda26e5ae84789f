package quic

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"

	quicgo "github.com/quic-go/quic-go"

	"github.com/trovedb/trove"
)

const fuzzMaxMessage = 1 << 12

// FuzzDecode feeds arbitrary bytes to every frame decoder: none may panic, a
// length beyond its bound must be refused, and whatever decodes re-encodes to
// the bytes it was decoded from.
func FuzzDecode(f *testing.F) {
	id := trove.NewObjectID(trove.NodeID{1}, 7)
	seeds := [][]byte{
		appendRequestHeader(nil, 3, 100),
		appendChunkRequest(nil, chunkRequest{id: id, off: 8 << 20, n: 8 << 20}),
		appendReplyHeader(nil, statusOK, 10),
		appendReplyHeader(nil, statusUnknownObject, 20),
		appendRequestHeader(nil, 1, fuzzMaxMessage+1),
	}
	for i, s := range seeds {
		f.Add(uint8(i), s)
	}
	f.Fuzz(func(t *testing.T, which uint8, b []byte) {
		var out []byte
		switch which % 3 {
		case 0:
			h, err := decodeRequestHeader(b, fuzzMaxMessage)
			if err != nil {
				if !errors.Is(err, errProtocol) {
					t.Fatalf("request header error %v is not a protocol error", err)
				}
				return
			}
			if h.len > fuzzMaxMessage || h.op == 0 {
				t.Fatalf("decoded %+v past its bounds", h)
			}
			out = appendRequestHeader(nil, h.op, int(h.len))
		case 1:
			c, err := decodeChunkRequest(b)
			if err != nil {
				if !errors.Is(err, errProtocol) {
					t.Fatalf("chunk request error %v is not a protocol error", err)
				}
				return
			}
			if c.n <= 0 || c.off < 0 || c.id.IsZero() {
				t.Fatalf("decoded %+v past its bounds", c)
			}
			out = appendChunkRequest(nil, c)
		case 2:
			h, err := decodeReplyHeader(b, fuzzMaxMessage)
			if err != nil {
				if !errors.Is(err, errProtocol) {
					t.Fatalf("reply header error %v is not a protocol error", err)
				}
				return
			}
			if h.status >= statusCount || (h.status == statusOK && h.len > fuzzMaxMessage) || (h.status != statusOK && h.len > maxErrorMessage) {
				t.Fatalf("decoded %+v past its bounds", h)
			}
			out = appendReplyHeader(nil, h.status, int(h.len))
		}
		if !bytes.Equal(out, b[:len(out)]) {
			t.Fatalf("re-encoded %x, decoded from %x", out, b[:len(out)])
		}
	})
}

// fakeStream is a stream whose input is fixed bytes and whose output is kept.
type fakeStream struct {
	in        io.Reader
	out       bytes.Buffer
	closed    bool
	cancelled bool
}

func (s *fakeStream) Read(p []byte) (int, error)  { return s.in.Read(p) }
func (s *fakeStream) Write(p []byte) (int, error) { return s.out.Write(p) }
func (s *fakeStream) Close() error                { s.closed = true; return nil }
func (s *fakeStream) CancelWrite(quicgo.StreamErrorCode) {
	s.cancelled = true
}
func (s *fakeStream) CancelRead(quicgo.StreamErrorCode) {}
func (s *fakeStream) Context() context.Context          { return context.Background() }
func (s *fakeStream) SetPriority(int8, bool)            {}

// fuzzHandler echoes requests, and serves chunks of a 64 KiB object, or fails
// for other objects.
type fuzzHandler struct{ obj []byte }

var fuzzID = trove.NewObjectID(trove.NodeID{1}, 1)

func (h fuzzHandler) HandleRequest(_ context.Context, _ Peer, op Op, body, reply []byte) ([]byte, error) {
	if op == 2 {
		return nil, trove.ErrUnknownObject
	}
	return append(reply, body...), nil
}

func (h fuzzHandler) ServeChunk(_ context.Context, _ Peer, id trove.ObjectID, off, n int64, w io.Writer) error {
	if id != fuzzID || off+n > int64(len(h.obj)) {
		return trove.ErrUnknownObject
	}
	_, err := w.Write(h.obj[off : off+n])
	return err
}

// FuzzServeStream feeds arbitrary bytes to the serving side of a stream, as a
// peer would send them: it must not panic; it either answers with a well-formed
// reply (a request's echo, a chunk of the right length, or an error reply) or
// refuses the stream; and it never reads a body longer than MaxMessage.
func FuzzServeStream(f *testing.F) {
	f.Add(append(appendRequestHeader(nil, 1, 5), "hello"...))
	f.Add(appendRequestHeader(nil, 2, 0))
	f.Add(appendChunkRequest(nil, chunkRequest{id: fuzzID, off: 10, n: 100}))
	f.Add(appendChunkRequest(nil, chunkRequest{id: fuzzID, off: 0, n: 1 << 20}))
	f.Add(append(appendRequestHeader(nil, 1, 1), 1, 2))
	cfg := Config{MaxMessage: fuzzMaxMessage, MaxChunk: 32 << 10}
	h := fuzzHandler{obj: bytes.Repeat([]byte{1, 2, 3}, 64<<10/3)}
	f.Fuzz(func(t *testing.T, in []byte) {
		s := &fakeStream{in: bytes.NewReader(in)}
		err := serve(Peer{Name: "fuzz"}, s, cfg, h)
		if err != nil {
			if !errors.Is(err, errProtocol) {
				t.Fatalf("serve failed with %v, not a protocol error, on input without I/O errors", err)
			}
			return
		}
		if !s.closed {
			t.Fatal("served a stream without closing it")
		}
		out := s.out.Bytes()
		hdr, err := decodeReplyHeader(out, 1<<20)
		if err != nil {
			t.Fatalf("reply %x does not decode: %v", out, err)
		}
		if int(hdr.len) != len(out)-replyHeaderLen {
			t.Fatalf("reply says %d bytes, carries %d", hdr.len, len(out)-replyHeaderLen)
		}
		if in[0] == kindRequest && hdr.status == statusOK && !bytes.Equal(out[replyHeaderLen:], in[requestHeaderLen:]) {
			t.Fatal("echo differs from the request body")
		}
	})
}

// FuzzReadReply feeds arbitrary bytes to the calling side's reply and chunk
// readers, as a peer would send them: no panic, nothing read past the bounds,
// and a success fills exactly what was asked.
func FuzzReadReply(f *testing.F) {
	f.Add(false, append(appendReplyHeader(nil, statusOK, 3), "abc"...))
	f.Add(false, append(appendReplyHeader(nil, statusUnknownObject, 3), "msg"...))
	f.Add(true, append(appendReplyHeader(nil, statusOK, 16), make([]byte, 16)...))
	f.Add(true, append(appendReplyHeader(nil, statusStoreFull, 4), "full"...))
	f.Fuzz(func(t *testing.T, chunk bool, in []byte) {
		r := bytes.NewReader(in)
		if chunk {
			dst := make([]byte, 16)
			st, msg, err := readChunk(r, dst)
			if err == nil && st == statusOK && !bytes.Equal(dst, in[replyHeaderLen:replyHeaderLen+16]) {
				t.Fatal("chunk bytes differ from the input")
			}
			if len(msg) > maxErrorMessage {
				t.Fatalf("error message of %d bytes read", len(msg))
			}
			return
		}
		st, reply, err := readReply(r, fuzzMaxMessage, []byte("prefix"))
		if string(reply[:6]) != "prefix" {
			t.Fatal("readReply overwrote the buffer's prefix")
		}
		if err == nil {
			if st >= statusCount || len(reply)-6 > fuzzMaxMessage {
				t.Fatalf("status %d, %d bytes past the bounds", st, len(reply)-6)
			}
		}
	})
}

// FuzzReadPacket feeds arbitrary streams to the packet reader: it must not
// panic, must refuse what breaks the format as a protocol error, and must
// never return more than a tag byte and MaxPacket bytes.
func FuzzReadPacket(f *testing.F) {
	f.Add([]byte{1, 'h', 'i'})
	f.Add([]byte{0, 1})
	f.Add([]byte{})
	f.Add(append([]byte{3}, make([]byte, MaxPacket+1)...))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := readPacket(bytes.NewReader(b))
		if err != nil {
			if !errors.Is(err, errProtocol) {
				t.Fatalf("error %v is not a protocol error", err)
			}
			return
		}
		if len(p) == 0 || len(p) > 1+MaxPacket || p[0] == 0 || !bytes.Equal(p, b) {
			t.Fatalf("read %d bytes from %d", len(p), len(b))
		}
	})
}

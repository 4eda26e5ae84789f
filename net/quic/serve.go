package quic

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"

	quicgo "github.com/quic-go/quic-go"
	"github.com/valyala/bytebufferpool"

	"github.com/trovedb/trove"
)

// bufs holds the buffers control messages are read into and encoded in. The
// pool calibrates to the sizes in use and drops buffers far above them, so a
// rare large message does not stay allocated.
var bufs bytebufferpool.Pool

// stream is the part of a *quicgo.Stream the serving side uses, so that tests
// and fuzz targets can drive it without a network.
type stream interface {
	io.Reader
	io.Writer
	Close() error
	CancelWrite(quicgo.StreamErrorCode)
	CancelRead(quicgo.StreamErrorCode)
	Context() context.Context
	SetPriority(urgency int8, incremental bool)
}

// Stream priorities (RFC 9218 urgency, 0 most urgent): control replies go out
// before chunk bytes queued on the same connection, so a small request is never
// held behind a large pull.
const (
	urgencyControl = 1
	urgencyChunk   = 4
)

func (t *Transport) serveStream(pc *peerConn, s *quicgo.Stream) {
	defer t.wg.Done()
	kind, err := readKind(s)
	if err == nil {
		if kind == kindTagged {
			err = t.serveTagged(pc, s)
		} else {
			err = serveKind(pc.peer, s, t.cfg, t.handler(), kind)
		}
	}
	switch {
	case errors.Is(err, errProtocol):
		s.CancelRead(codeCanceled)
		s.CancelWrite(codeCanceled)
		t.disconnect(pc, err)
	case err != nil:
		// Quiet if the caller gave up (its STOP_SENDING ended s.Context())
		// or the connection is closing; checked before our own cancel ends it.
		if !isClosed(err) && s.Context().Err() == nil {
			t.log.Warn("quic: serving a peer's stream failed", "peer", pc.peer.Name, "addr", pc.peer.Addr, "err", err)
		}
		s.CancelRead(codeCanceled)
		s.CancelWrite(codeChunkFailed)
	}
}

func (t *Transport) handler() Handler {
	if t.cfg.Handler == nil {
		return noHandler{}
	}
	return t.cfg.Handler
}

// noHandler answers for a transport without a Handler.
type noHandler struct{}

var errNoHandler = errors.New("this node's transport has no handler; it serves no requests")

func (noHandler) HandleRequest(context.Context, Peer, Op, []byte, []byte) ([]byte, error) {
	return nil, errNoHandler
}
func (noHandler) ServeChunk(context.Context, Peer, trove.ObjectID, int64, int64, io.Writer) error {
	return errNoHandler
}

// serve reads one request or chunk request from s and answers it. An error
// wrapping errProtocol means the peer broke the wire format (the caller
// disconnects it); any other error means the stream failed (the caller resets
// it). Nothing is allocated from a length the peer sent before it is checked.
func serve(peer Peer, s stream, cfg Config, h Handler) error {
	kind, err := readKind(s)
	if err != nil {
		return err
	}
	if kind == kindTagged {
		return fmt.Errorf("%w: a tagged stream outside a transport", errProtocol)
	}
	return serveKind(peer, s, cfg, h, kind)
}

// readKind reads a stream's first byte, which says what it carries.
func readKind(s io.Reader) (byte, error) {
	var b [1]byte
	if _, err := io.ReadFull(s, b[:]); err != nil {
		return 0, readError(err, "stream kind")
	}
	return b[0], nil
}

// serveKind serves a request or chunk stream whose kind byte was read.
func serveKind(peer Peer, s stream, cfg Config, h Handler, kind byte) error {
	in := bufs.Get()
	defer bufs.Put(in)
	in.B = slices.Grow(in.B[:0], chunkRequestLen)[:1]
	in.B[0] = kind
	switch kind {
	case kindRequest:
		in.B = in.B[:requestHeaderLen]
		if _, err := io.ReadFull(s, in.B[1:]); err != nil {
			return readError(err, "request header")
		}
		hdr, err := decodeRequestHeader(in.B, cfg.MaxMessage)
		if err != nil {
			return err
		}
		in.B = slices.Grow(in.B[:0], int(hdr.len))[:hdr.len]
		if _, err := io.ReadFull(s, in.B); err != nil {
			return readError(err, "request body")
		}
		if err := readEOF(s); err != nil {
			return err
		}
		return serveRequest(peer, s, cfg, h, hdr.op, in.B)
	case kindChunk:
		in.B = in.B[:chunkRequestLen]
		if _, err := io.ReadFull(s, in.B[1:]); err != nil {
			return readError(err, "chunk request")
		}
		req, err := decodeChunkRequest(in.B)
		if err != nil {
			return err
		}
		if err := readEOF(s); err != nil {
			return err
		}
		return serveChunk(peer, s, cfg, h, req)
	default:
		return fmt.Errorf("%w: unknown stream kind %d", errProtocol, kind)
	}
}

func serveRequest(peer Peer, s stream, cfg Config, h Handler, op Op, body []byte) error {
	s.SetPriority(urgencyControl, false)
	out := bufs.Get()
	defer bufs.Put(out)
	reply, err := h.HandleRequest(s.Context(), peer, op, body, out.B[:0])
	if err == nil && len(reply) > cfg.MaxMessage {
		err = fmt.Errorf("%w: reply of %d bytes to op %d exceeds this node's %d-byte Config.MaxMessage", ErrTooLarge, len(reply), op, cfg.MaxMessage)
	}
	var hdr [replyHeaderLen]byte
	if err != nil {
		return writeErrorReply(s, err)
	}
	if _, err := s.Write(appendReplyHeader(hdr[:0], statusOK, len(reply))); err != nil {
		return err
	}
	if _, err := s.Write(reply); err != nil {
		return err
	}
	return s.Close()
}

// writeErrorReply answers with err's status and message, and closes.
func writeErrorReply(s stream, err error) error {
	msg := err.Error()
	if len(msg) > maxErrorMessage {
		msg = msg[:maxErrorMessage]
	}
	out := bufs.Get()
	defer bufs.Put(out)
	out.B = appendReplyHeader(out.B[:0], statusOf(err), len(msg))
	out.B = append(out.B, msg...)
	if _, err := s.Write(out.B); err != nil {
		return err
	}
	return s.Close()
}

func serveChunk(peer Peer, s stream, cfg Config, h Handler, req chunkRequest) error {
	if req.n > int64(cfg.MaxChunk) {
		return writeErrorReply(s, fmt.Errorf("%w: a chunk of %d bytes exceeds this node's %d-byte Config.MaxChunk", ErrTooLarge, req.n, cfg.MaxChunk))
	}
	s.SetPriority(urgencyChunk, true)
	w := &chunkWriter{s: s, left: req.n}
	err := h.ServeChunk(s.Context(), peer, req.id, req.off, req.n, w)
	switch {
	case err != nil && !w.started:
		return writeErrorReply(s, err)
	case err != nil:
		return fmt.Errorf("serve bytes [%d, +%d) of object %s: failed after %d bytes: %w", req.off, req.n, req.id, req.n-w.left, err)
	case w.left != 0:
		return fmt.Errorf("serve bytes [%d, +%d) of object %s: the handler wrote %d bytes short", req.off, req.n, req.id, w.left)
	}
	return s.Close()
}

// chunkWriter is the io.Writer a chunk handler writes to: the reply header goes
// before the first byte, and at most the chunk's length is accepted.
type chunkWriter struct {
	s       stream
	left    int64
	started bool
	hdr     [replyHeaderLen]byte
}

func (w *chunkWriter) Write(p []byte) (int, error) {
	if int64(len(p)) > w.left {
		return 0, fmt.Errorf("chunk handler wrote %d bytes with %d left of the chunk", len(p), w.left)
	}
	if !w.started {
		w.started = true
		if _, err := w.s.Write(appendReplyHeader(w.hdr[:0], statusOK, int(w.left))); err != nil {
			return 0, err
		}
	}
	n, err := w.s.Write(p)
	w.left -= int64(n)
	return n, err
}

// readEOF checks the opener ended its frame: nothing follows it but the end of
// the stream.
func readEOF(s io.Reader) error {
	var b [1]byte
	n, err := s.Read(b[:])
	if n > 0 {
		return fmt.Errorf("%w: bytes after the end of the frame", errProtocol)
	}
	if err == io.EOF {
		return nil
	}
	if err == nil {
		return readEOF(s) // a Read may return 0, nil; try again
	}
	return err
}

// readError reports a read that ended early: the peer closed its side before a
// frame's end is a protocol violation; a reset or broken connection is not.
func readError(err error, what string) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("%w: the stream ended inside the %s", errProtocol, what)
	}
	return err
}

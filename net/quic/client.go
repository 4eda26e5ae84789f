package quic

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	quicgo "github.com/quic-go/quic-go"

	"github.com/trovedb/trove"
)

// Request sends a control request to the node at addr on a stream of its own
// over the connection to it (dialled if there is none), and appends the reply's
// body to reply (pass a pooled buffer's bytes, or nil). body must fit in
// Config.MaxMessage.
//
// A handler's error comes back as a *RemoteError. A peer that cannot be
// dialled, vanishes, or does not answer before ctx's deadline gives a
// *trove.NodeError matching trove.ErrNodeUnreachable (and, for the deadline,
// trove.ErrGetTimeout and context.DeadlineExceeded); a canceled ctx gives its cause.
func (t *Transport) Request(ctx context.Context, addr string, op Op, body, reply []byte) ([]byte, error) {
	if op == 0 {
		return reply, errors.New("quic: request op 0 is invalid")
	}
	if len(body) > t.cfg.MaxMessage {
		return reply, fmt.Errorf("quic: request op %d of %d bytes exceeds Config.MaxMessage (%d): %w", op, len(body), t.cfg.MaxMessage, ErrTooLarge)
	}
	pc, err := t.conn(ctx, addr)
	if err != nil {
		return reply, err
	}
	s, stop, err := t.open(ctx, pc)
	if err != nil {
		return reply, t.callError(ctx, pc, "request", trove.ObjectID{}, err)
	}
	defer stop()
	s.SetPriority(urgencyControl, false)
	reply, err = t.request(s, pc, op, body, reply)
	if err != nil {
		s.CancelRead(codeCanceled)
		s.CancelWrite(codeCanceled)
		return reply, t.callError(ctx, pc, "request", trove.ObjectID{}, err)
	}
	return reply, nil
}

func (t *Transport) request(s *quicgo.Stream, pc *peerConn, op Op, body, reply []byte) ([]byte, error) {
	out := bufs.Get()
	out.B = appendRequestHeader(out.B[:0], op, len(body))
	out.B = append(out.B, body...)
	_, err := s.Write(out.B)
	bufs.Put(out)
	if err != nil {
		return reply, err
	}
	if err := s.Close(); err != nil {
		return reply, err
	}
	start := len(reply)
	st, reply, err := readReply(s, t.cfg.MaxMessage, reply)
	if err != nil {
		return reply, err
	}
	if st != statusOK {
		return reply[:start], &RemoteError{Peer: pc.peer.Name, Addr: pc.peer.Addr, Op: op, Msg: string(reply[start:]), status: st}
	}
	return reply, nil
}

// readReply reads a reply from r: its status, and its body (or, for an error,
// its message) appended to reply. A reply that breaks the wire format, or whose
// body exceeds maxMessage, is an errProtocol error.
func readReply(r io.Reader, maxMessage int, reply []byte) (status, []byte, error) {
	hdr, err := readReplyHeader(r, maxMessage)
	if err != nil {
		return 0, reply, err
	}
	start := len(reply)
	reply = slices.Grow(reply, int(hdr.len))[:start+int(hdr.len)]
	if _, err := io.ReadFull(r, reply[start:]); err != nil {
		return 0, reply[:start], readError(err, "reply")
	}
	if err := readEOF(r); err != nil {
		return 0, reply[:start], err
	}
	return hdr.status, reply, nil
}

// Pull reads the bytes [off, off+len(dst)) of object id from the node at addr
// straight into dst (one copy: network → dst; dst is typically an engine
// builder's arena bytes). A range longer than Config.ChunkSize is split into
// chunks pulled on up to Config.Streams parallel streams over the one
// connection. Any node holding the range may serve it. On error, dst's
// contents are unspecified; errors are those of Request, and a holder that
// failed mid-chunk gives a *RemoteError.
func (t *Transport) Pull(ctx context.Context, addr string, id trove.ObjectID, off int64, dst []byte) error {
	if id.IsZero() {
		return fmt.Errorf("quic: pull of the zero object ID: %w", trove.ErrUnknownObject)
	}
	if len(dst) == 0 {
		return nil
	}
	pc, err := t.conn(ctx, addr)
	if err != nil {
		return withObject(err, id)
	}
	chunk := t.cfg.ChunkSize
	n := (len(dst) + chunk - 1) / chunk
	if n == 1 {
		return t.pullChunk(ctx, pc, id, off, dst)
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var (
		next     atomic.Int64
		wg       sync.WaitGroup
		firstErr error
		errOnce  sync.Once
	)
	for range min(n, t.cfg.Streams) {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil {
					return
				}
				lo, hi := i*chunk, min((i+1)*chunk, len(dst))
				if err := t.pullChunk(ctx, pc, id, off+int64(lo), dst[lo:hi]); err != nil {
					errOnce.Do(func() { firstErr = err })
					cancel(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if firstErr == nil && ctx.Err() != nil {
		// The caller's ctx ended between chunks.
		return unreachable(ctx, "pull", pc.peer.Name, pc.peer.Addr, id, ctx.Err())
	}
	return firstErr
}

// withObject adds the object to a dial's NodeError.
func withObject(err error, id trove.ObjectID) error {
	var ne *trove.NodeError
	if errors.As(err, &ne) {
		c := *ne
		c.Object, c.Op = id, "pull"
		return &c
	}
	return err
}

func (t *Transport) pullChunk(ctx context.Context, pc *peerConn, id trove.ObjectID, off int64, dst []byte) error {
	s, stop, err := t.open(ctx, pc)
	if err != nil {
		return t.callError(ctx, pc, "pull", id, err)
	}
	defer stop()
	if err := t.chunk(s, pc, id, off, dst); err != nil {
		s.CancelRead(codeCanceled)
		s.CancelWrite(codeCanceled)
		if errors.Is(err, os.ErrDeadlineExceeded) && ctx.Err() == nil {
			// StallTimeout: this stream is stuck, not the connection.
			return &trove.NodeError{Kind: trove.ErrNodeUnreachable, Node: pc.peer.Name, Addr: pc.peer.Addr, Object: id, Op: "pull",
				Err: fmt.Errorf("no byte of the chunk [%d, +%d) arrived for %v (Config.StallTimeout): %w", off, len(dst), t.cfg.StallTimeout, context.DeadlineExceeded)}
		}
		return t.callError(ctx, pc, "pull", id, err)
	}
	return nil
}

// stallReader reads from a stream, pushing its read deadline StallTimeout
// past each read that returns bytes (at most every quarter of it, so that a
// chunk of many small reads does not reset a timer per read).
type stallReader struct {
	s     *quicgo.Stream
	stall time.Duration
	next  time.Time // when the deadline is pushed again
}

func (r *stallReader) Read(p []byte) (int, error) {
	if now := time.Now(); !now.Before(r.next) {
		if err := r.s.SetReadDeadline(now.Add(r.stall)); err != nil {
			return 0, err
		}
		r.next = now.Add(r.stall / 4)
	}
	return r.s.Read(p)
}

func (t *Transport) chunk(s *quicgo.Stream, pc *peerConn, id trove.ObjectID, off int64, dst []byte) error {
	out := bufs.Get()
	out.B = appendChunkRequest(out.B[:0], chunkRequest{id: id, off: off, n: int64(len(dst))})
	_, err := s.Write(out.B)
	bufs.Put(out)
	if err != nil {
		return err
	}
	if err := s.Close(); err != nil {
		return err
	}
	var r io.Reader = s
	if t.cfg.StallTimeout > 0 {
		r = &stallReader{s: s, stall: t.cfg.StallTimeout}
	}
	st, msg, err := readChunk(r, dst)
	var se *quicgo.StreamError
	switch {
	case errors.As(err, &se) && se.Remote && se.ErrorCode == codeChunkFailed:
		return &RemoteError{Peer: pc.peer.Name, Addr: pc.peer.Addr, Object: id, status: statusError,
			Msg: fmt.Sprintf("the holder failed after sending part of bytes [%d, +%d) (its log says why); pull the chunk again, from another holder if there is one", off, len(dst))}
	case err != nil:
		return err
	case st != statusOK:
		return &RemoteError{Peer: pc.peer.Name, Addr: pc.peer.Addr, Object: id, Msg: string(msg), status: st}
	}
	return nil
}

// readChunk reads a chunk reply from r: the chunk's bytes into dst, which
// must be filled exactly, or the holder's error status and message.
func readChunk(r io.Reader, dst []byte) (status, []byte, error) {
	hdr, err := readReplyHeader(r, len(dst))
	if err != nil {
		return 0, nil, err
	}
	if hdr.status != statusOK {
		msg := make([]byte, hdr.len) // bounded by maxErrorMessage
		if _, err := io.ReadFull(r, msg); err != nil {
			return 0, nil, readError(err, "error reply")
		}
		return hdr.status, msg, readEOF(r)
	}
	if int(hdr.len) != len(dst) {
		return 0, nil, fmt.Errorf("%w: chunk reply of %d bytes for a request of %d", errProtocol, hdr.len, len(dst))
	}
	if _, err := io.ReadFull(r, dst); err != nil {
		return 0, nil, readError(err, "chunk")
	}
	return statusOK, nil, readEOF(r)
}

// open opens a stream on pc and ties it to ctx: when ctx ends, the stream is
// reset both ways, so a blocked read or write returns. stop unties it.
func (t *Transport) open(ctx context.Context, pc *peerConn) (*quicgo.Stream, func() bool, error) {
	s, err := pc.conn.OpenStreamSync(ctx)
	if err != nil {
		return nil, nil, err
	}
	stop := context.AfterFunc(ctx, func() {
		s.CancelRead(codeCanceled)
		s.CancelWrite(codeCanceled)
	})
	return s, stop, nil
}

func readReplyHeader(s io.Reader, maxBody int) (replyHeader, error) {
	var b [replyHeaderLen]byte
	if _, err := io.ReadFull(s, b[:]); err != nil {
		return replyHeader{}, readError(err, "reply header")
	}
	return decodeReplyHeader(b[:], maxBody)
}

// callError turns a failed call's error into what the caller gets: a peer's
// protocol violation disconnects it; a remote handler's error passes through;
// anything else is the node being unreachable (or the caller's ctx).
func (t *Transport) callError(ctx context.Context, pc *peerConn, op string, id trove.ObjectID, err error) error {
	var re *RemoteError
	switch {
	case errors.As(err, &re):
		return err
	case errors.Is(err, errProtocol):
		t.disconnect(pc, err)
	}
	var se *quicgo.StreamError
	if !errors.As(err, &se) && ctx.Err() == nil {
		t.forget(pc) // the connection failed: the next call dials afresh
	}
	return unreachable(ctx, op, pc.peer.Name, pc.peer.Addr, id, err)
}

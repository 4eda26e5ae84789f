package quic

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	quicgo "github.com/quic-go/quic-go"

	"github.com/trovedb/trove"
)

// Tagged streams and packets carry another protocol of the node over the
// transport's connections, so that it gets the same peers, the same mutual TLS
// and the same one address: the cluster's membership gossip (memberlist) is
// one. A Tag says which protocol; tags are the caller's to define, as ops are,
// and the transport only routes them to the TagHandler registered with
// HandleTag.
//
//	tagged stream: kind=3 (1) | tag (1) | the protocol's bytes, both ways, until either side closes
//	packet:        a unidirectional stream: tag (1) | payload (≤ MaxPacket bytes) | end of stream
//
// A packet is one-way and best effort: SendPacket returns at once, and a
// packet that cannot be sent (no connection could be dialled, too many queued
// for one peer) is dropped, as a datagram would be. It rides a stream of its
// own, so it has no size limit of a path's MTU and is never held behind
// another packet or call. A tagged stream's bytes are the protocol's own: the
// transport does not bound them (the handler must), but a stream for a tag
// with no handler is reset at once, and the dialler's reads say so.

// Tag names a protocol carried in tagged streams and packets. Tag 0 is invalid.
type Tag uint8

// MaxPacket bounds a packet's payload. A peer that sends a larger one is
// disconnected, as for any frame beyond its bound.
const MaxPacket = 64 << 10

// maxQueuedPackets bounds the packets waiting for one peer's connection (while
// it is dialled); more are dropped.
const maxQueuedPackets = 64

// TagHandler receives a protocol's streams and packets. Either may be nil: that
// kind is refused.
type TagHandler struct {
	// Stream takes a peer's tagged stream. The handler owns conn and MUST
	// close it; it is called on the stream's goroutine and should hand conn
	// to a goroutine of its own and return. conn ends (its reads and writes
	// fail) when the connection or the transport closes.
	Stream func(peer Peer, conn net.Conn)

	// Packet takes a peer's packet. b is the handler's to keep. It is called
	// on the packet's goroutine and should return promptly.
	Packet func(peer Peer, b []byte)
}

// HandleTag routes tag's streams and packets to h until remove is called.
// Streams and packets that arrive for a tag without a handler are refused
// (reset) and dropped. It fails if tag is 0 or already handled.
func (t *Transport) HandleTag(tag Tag, h TagHandler) (remove func(), err error) {
	if tag == 0 {
		return nil, errors.New("quic: tag 0 is invalid")
	}
	t.tags.Lock()
	defer t.tags.Unlock()
	if t.tags.m == nil {
		t.tags.m = map[Tag]*TagHandler{}
	}
	if _, ok := t.tags.m[tag]; ok {
		return nil, fmt.Errorf("quic: tag %d already has a handler on this transport", tag)
	}
	hp := &h
	t.tags.m[tag] = hp
	return func() {
		t.tags.Lock()
		if t.tags.m[tag] == hp {
			delete(t.tags.m, tag)
		}
		t.tags.Unlock()
	}, nil
}

func (t *Transport) tagHandler(tag Tag) *TagHandler {
	t.tags.Lock()
	defer t.tags.Unlock()
	return t.tags.m[tag]
}

// DialStream opens a tagged stream to the node at addr, on the connection to it
// (dialled if there is none, within ctx and Config.DialTimeout), and returns it
// as a net.Conn: reads and writes are the stream's, deadlines work, Close ends
// both directions. ctx bounds the dial only. A node with no handler for tag
// resets the stream: the first read fails with an error that says so.
func (t *Transport) DialStream(ctx context.Context, addr string, tag Tag) (net.Conn, error) {
	if tag == 0 {
		return nil, errors.New("quic: tag 0 is invalid")
	}
	pc, err := t.conn(ctx, addr)
	if err != nil {
		return nil, err
	}
	s, err := pc.conn.OpenStreamSync(ctx)
	if err != nil {
		return nil, t.callError(ctx, pc, "stream", trove.ObjectID{}, err)
	}
	s.SetPriority(urgencyControl, false)
	if _, err := s.Write([]byte{kindTagged, byte(tag)}); err != nil {
		s.CancelRead(codeCanceled)
		s.CancelWrite(codeCanceled)
		return nil, t.callError(ctx, pc, "stream", trove.ObjectID{}, err)
	}
	return &streamConn{s: s, pc: pc, tag: tag}, nil
}

// serveTagged hands a peer's tagged stream (its kind byte read) to its handler.
func (t *Transport) serveTagged(pc *peerConn, s *quicgo.Stream) error {
	var b [1]byte
	if _, err := io.ReadFull(s, b[:]); err != nil {
		return readError(err, "stream tag")
	}
	h := t.tagHandler(Tag(b[0]))
	if h == nil || h.Stream == nil {
		s.CancelRead(codeNoHandler)
		s.CancelWrite(codeNoHandler)
		return nil
	}
	s.SetPriority(urgencyControl, false)
	h.Stream(pc.peer, &streamConn{s: s, pc: pc, tag: Tag(b[0])})
	return nil
}

// SendPacket sends b to the node at addr as a packet of tag, best effort: it
// returns at once (b may be reused when it does), and a packet that cannot be
// sent is dropped (the transport's log does not record drops; the protocol on
// top, gossip, expects losses). It fails only for a packet that could never be
// sent: tag 0, or more than MaxPacket bytes.
func (t *Transport) SendPacket(addr string, tag Tag, b []byte) error {
	if tag == 0 {
		return errors.New("quic: tag 0 is invalid")
	}
	if len(b) > MaxPacket {
		return fmt.Errorf("quic: packet of %d bytes exceeds MaxPacket (%d): %w", len(b), MaxPacket, ErrTooLarge)
	}
	p := make([]byte, 1+len(b))
	p[0] = byte(tag)
	copy(p[1:], b)
	t.packets.Lock()
	if t.packets.queues == nil {
		t.packets.queues = map[string]*packetQueue{}
	}
	q, ok := t.packets.queues[addr]
	if !ok {
		q = &packetQueue{}
		t.packets.queues[addr] = q
	}
	if len(q.pending) < maxQueuedPackets {
		q.pending = append(q.pending, p)
	}
	start := !q.running
	q.running = true
	t.packets.Unlock()
	if start && t.track() {
		go t.sendPackets(addr, q)
	}
	return nil
}

// packetQueue holds the packets for one peer address while its sender runs.
type packetQueue struct {
	pending [][]byte // guarded by Transport.packets
	running bool     // a sendPackets goroutine owns the queue; guarded by Transport.packets
}

// sendPackets sends q's packets until it is empty, then ends (no goroutine
// idles for a peer with nothing to send). A packet whose connection cannot be
// had is dropped with the ones queued behind it.
func (t *Transport) sendPackets(addr string, q *packetQueue) {
	defer t.wg.Done()
	for {
		t.packets.Lock()
		batch := q.pending
		q.pending = nil
		if len(batch) == 0 {
			q.running = false
			delete(t.packets.queues, addr)
			t.packets.Unlock()
			return
		}
		t.packets.Unlock()
		ctx, cancel := context.WithTimeout(t.ctx, t.cfg.DialTimeout)
		pc, err := t.conn(ctx, addr)
		if err == nil {
			for _, p := range batch {
				if err := t.sendPacket(ctx, pc, p); err != nil {
					break
				}
			}
		}
		cancel()
	}
}

func (t *Transport) sendPacket(ctx context.Context, pc *peerConn, p []byte) error {
	s, err := pc.conn.OpenUniStreamSync(ctx)
	if err != nil {
		var se *quicgo.StreamError
		if !errors.As(err, &se) && ctx.Err() == nil {
			t.forget(pc) // the connection failed: the next packet dials afresh
		}
		return err
	}
	s.SetPriority(urgencyControl, false)
	if _, err := s.Write(p); err != nil {
		s.CancelWrite(codeCanceled)
		return err
	}
	return s.Close()
}

// servePackets accepts pc's unidirectional streams, each a packet, until the
// connection ends.
func (t *Transport) servePackets(pc *peerConn) {
	defer t.wg.Done()
	for {
		s, err := pc.conn.AcceptUniStream(t.ctx)
		if err != nil {
			return
		}
		t.wg.Add(1)
		go func() {
			defer t.wg.Done()
			if err := t.receivePacket(pc, s); err != nil {
				s.CancelRead(codeCanceled)
				if errors.Is(err, errProtocol) {
					t.disconnect(pc, err)
				}
			}
		}()
	}
}

// receivePacket reads one packet and hands it to its tag's handler. A packet
// beyond MaxPacket is a protocol violation; one for a tag without a handler is
// dropped.
func (t *Transport) receivePacket(pc *peerConn, s *quicgo.ReceiveStream) error {
	// A peer that opens a packet and never ends it holds a goroutine until
	// the connection ends; bound it as a handshake is.
	_ = s.SetReadDeadline(time.Now().Add(t.cfg.DialTimeout))
	p, err := readPacket(s)
	if err != nil {
		return err
	}
	h := t.tagHandler(Tag(p[0]))
	if h == nil || h.Packet == nil {
		return nil
	}
	h.Packet(pc.peer, p[1:])
	return nil
}

// readPacket reads a packet (tag byte and payload) to the end of its stream,
// refusing one beyond MaxPacket before reading past the bound.
func readPacket(r io.Reader) ([]byte, error) {
	p, err := io.ReadAll(io.LimitReader(r, 1+MaxPacket+1))
	switch {
	case err != nil:
		return nil, err
	case len(p) == 0:
		return nil, fmt.Errorf("%w: an empty packet", errProtocol)
	case len(p) > 1+MaxPacket:
		return nil, fmt.Errorf("%w: a packet beyond MaxPacket (%d bytes)", errProtocol, MaxPacket)
	case p[0] == 0:
		return nil, fmt.Errorf("%w: a packet of tag 0", errProtocol)
	}
	return p, nil
}

// streamConn is a tagged stream as a net.Conn.
type streamConn struct {
	s    *quicgo.Stream
	pc   *peerConn
	tag  Tag
	once sync.Once
}

func (c *streamConn) Read(p []byte) (int, error) {
	n, err := c.s.Read(p)
	if err != nil && err != io.EOF {
		err = c.explain(err)
	}
	return n, err
}

func (c *streamConn) Write(p []byte) (int, error) {
	n, err := c.s.Write(p)
	if err != nil {
		err = c.explain(err)
	}
	return n, err
}

func (c *streamConn) explain(err error) error {
	var se *quicgo.StreamError
	if errors.As(err, &se) && se.Remote && se.ErrorCode == codeNoHandler {
		return fmt.Errorf("quic: node %s (%s) does not serve stream tag %d (the protocol is not running there): %w", c.pc.peer.Name, c.pc.peer.Addr, c.tag, err)
	}
	return fmt.Errorf("quic: stream tag %d with node %s (%s): %w", c.tag, c.pc.peer.Name, c.pc.peer.Addr, explain(err))
}

// Close ends both directions: what was written is still delivered, what the
// peer sends from now on is refused.
func (c *streamConn) Close() error {
	var err error
	c.once.Do(func() {
		c.s.CancelRead(codeCanceled)
		err = c.s.Close()
	})
	return err
}

func (c *streamConn) LocalAddr() net.Addr                { return c.pc.conn.LocalAddr() }
func (c *streamConn) RemoteAddr() net.Addr               { return c.pc.conn.RemoteAddr() }
func (c *streamConn) SetDeadline(d time.Time) error      { return c.s.SetDeadline(d) }
func (c *streamConn) SetReadDeadline(d time.Time) error  { return c.s.SetReadDeadline(d) }
func (c *streamConn) SetWriteDeadline(d time.Time) error { return c.s.SetWriteDeadline(d) }

// Peer is the node at the other end of the stream.
func (c *streamConn) Peer() Peer { return c.pc.peer }

package quic

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/trovedb/trove"
)

// Defaults for Config's zero fields.
const (
	DefaultAddr        = "127.0.0.1:0"
	DefaultMaxMessage  = 4 << 20  // a control request or reply: inline objects (≤ 100 KiB) and batches fit
	DefaultChunkSize   = 8 << 20  // a pull's unit; see perf.md for the measurement
	DefaultMaxChunk    = 64 << 20 // the largest chunk this node serves in one stream
	DefaultStreams     = 4        // parallel streams per Pull
	DefaultDialTimeout = 5 * time.Second
	DefaultIdleTimeout = 10 * time.Second
	// Flow-control windows (the most a peer may send ahead of what is read):
	// large enough that one stream fills a loopback or LAN pipe.
	DefaultStreamWindow = 16 << 20
	DefaultConnWindow   = 64 << 20

	// maxChunkLimit bounds MaxChunk and ChunkSize: a chunk reply's length is 32 bits.
	maxChunkLimit = 1 << 30
)

// Config configures a Transport. Exactly one of CertsDir and Insecure must be set.
type Config struct {
	// Addr is the UDP address to listen on, "host:port"; port 0 picks a free
	// one (Transport.Addr says which). The same socket dials peers, so a peer
	// sees this node at this address. Default DefaultAddr.
	Addr string

	// CertsDir holds this node's credentials: CAFile, CertFile and KeyFile
	// (cluster.CreateCA and cluster.CreateNodeCert write them). Both sides of
	// every connection present their certificate and verify the other's
	// against the CA; a peer without one from the CA is refused at the
	// handshake, and the refusing side logs why. The node's name is its
	// certificate's common name.
	CertsDir string

	// Insecure runs without certificates: a throwaway self-signed certificate
	// naming Name, no verification of peers. Any host that can reach Addr can
	// call this node. For a laptop; never a default.
	Insecure bool

	// Name is the node's name under Insecure (default "trove"). With CertsDir
	// the name is the certificate's; a Name that differs is an error.
	Name string

	// Handler serves peers' requests and chunks. Nil: the transport only calls
	// out, and answers every incoming call with an error.
	Handler Handler

	// MaxMessage bounds a request's and a reply's body, both ways. A peer that
	// sends a larger request is disconnected (and logged); a handler's larger
	// reply is replaced by an ErrTooLarge error. Default DefaultMaxMessage.
	MaxMessage int

	// ChunkSize is the unit Pull splits a range into, one stream each. Default
	// DefaultChunkSize.
	ChunkSize int

	// MaxChunk is the largest chunk this node serves in one stream; larger
	// requests are answered with ErrTooLarge. Default DefaultMaxChunk.
	MaxChunk int

	// Streams is how many chunks one Pull has in flight at once. Default
	// DefaultStreams.
	Streams int

	// DialTimeout bounds a connection's handshake. Default DefaultDialTimeout.
	DialTimeout time.Duration

	// IdleTimeout closes a connection that heard nothing from its peer for
	// this long (keep-alives are sent at a third of it), so a vanished peer's
	// calls end with trove.ErrNodeUnreachable even without a deadline.
	// Default DefaultIdleTimeout.
	IdleTimeout time.Duration

	// StallTimeout fails a chunk's pull that receives no byte for this long
	// (a holder that stopped sending while its connection lives on), with a
	// *trove.NodeError matching trove.ErrNodeUnreachable and
	// context.DeadlineExceeded; the connection is kept. A chunk that arrives
	// slowly but steadily (a link shared by many streams) is never cut. Zero:
	// no bound but the caller's ctx and IdleTimeout.
	StallTimeout time.Duration

	// StreamWindow and ConnWindow are the flow-control windows for receiving,
	// per stream and per connection. Defaults DefaultStreamWindow and
	// DefaultConnWindow.
	StreamWindow, ConnWindow int

	// Logger receives refused handshakes, disconnected peers and the UDP
	// buffer warning. Default slog.Default().
	Logger *slog.Logger
}

func (c Config) withDefaults() (Config, error) {
	if c.Addr == "" {
		c.Addr = DefaultAddr
	}
	switch {
	case c.CertsDir == "" && !c.Insecure:
		return c, errors.New("quic: no credentials: set CertsDir to a directory made by `trove cert create-node`, or Insecure for an unauthenticated cluster")
	case c.CertsDir != "" && c.Insecure:
		return c, errors.New("quic: both CertsDir and Insecure set; choose one")
	}
	if c.Insecure && c.Name == "" {
		c.Name = "trove"
	}
	if c.MaxMessage <= 0 {
		c.MaxMessage = DefaultMaxMessage
	}
	if c.MaxMessage > maxChunkLimit {
		return c, fmt.Errorf("quic: MaxMessage %d exceeds %d", c.MaxMessage, maxChunkLimit)
	}
	if c.ChunkSize <= 0 {
		c.ChunkSize = DefaultChunkSize
	}
	if c.MaxChunk <= 0 {
		c.MaxChunk = max(DefaultMaxChunk, c.ChunkSize)
	}
	if c.ChunkSize > maxChunkLimit || c.MaxChunk > maxChunkLimit {
		return c, fmt.Errorf("quic: ChunkSize %d or MaxChunk %d exceeds %d", c.ChunkSize, c.MaxChunk, maxChunkLimit)
	}
	if c.Streams <= 0 {
		c.Streams = DefaultStreams
	}
	if c.DialTimeout <= 0 {
		c.DialTimeout = DefaultDialTimeout
	}
	if c.IdleTimeout <= 0 {
		c.IdleTimeout = DefaultIdleTimeout
	}
	if c.StreamWindow <= 0 {
		c.StreamWindow = DefaultStreamWindow
	}
	if c.ConnWindow <= 0 {
		c.ConnWindow = max(DefaultConnWindow, c.StreamWindow)
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c, nil
}

// Peer is the other end of a connection as its certificate names it.
type Peer struct {
	Name string // the certificate's common name (verified, unless Insecure)
	Addr string // the peer's UDP address
}

// Handler serves a node's peers. The cluster layer implements it; the transport
// knows nothing of what requests mean. Methods are called concurrently, one
// goroutine per stream, and must return once ctx ends (the caller gave up, the
// connection broke, or the transport is closing): Close waits for them.
type Handler interface {
	// HandleRequest answers a control request. body is valid only during the
	// call (it is a pooled buffer): copy what must outlive it. The reply is
	// appended to reply (an empty pooled buffer) and returned. A returned error
	// reaches the caller as a *RemoteError that matches, with errors.Is, the
	// trove error err matched (trove.ErrUnknownObject...).
	HandleRequest(ctx context.Context, peer Peer, op Op, body, reply []byte) ([]byte, error)

	// ServeChunk writes the bytes [off, off+n) of object id to w, exactly n of
	// them. An error before the first write reaches the puller as a
	// *RemoteError; after it, the stream is reset and the puller's error says
	// the chunk failed mid-way. Any holder of any part of the object may serve.
	ServeChunk(ctx context.Context, peer Peer, id trove.ObjectID, off, n int64, w io.Writer) error
}

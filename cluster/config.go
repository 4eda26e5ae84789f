package cluster

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/trovedb/trove/engine"
)

// Defaults for Config's zero timing fields.
const (
	DefaultRequestTimeout  = 5 * time.Second        // a control request other than a locate (which waits for the seal)
	DefaultReleaseDelay    = 2 * time.Millisecond   // how long releases gather before they are sent as one batch
	DefaultSmallCacheBytes = 64 << 20               // the cache of small fetched objects
	DefaultRetryDelay      = 200 * time.Millisecond // between attempts to send a batch an owner did not take
	DefaultPullRefresh     = 100 * time.Millisecond // how often a pull tells the owner its chunks and learns the locations
	// DefaultPullChunkSize is a pull's unit when Config.ChunkSize is 0: a
	// node that has a chunk can serve it, so small chunks let pullers that
	// start together trade sooner. With net/quic's 8 MiB, a 16-node
	// broadcast of 256 MiB had 60 chunks (480 MiB, ~2 copies) in flight
	// from the origin before any puller held one whole (tools/netcluster).
	DefaultPullChunkSize    = 1 << 20
	DefaultServeSlots       = 8                // chunks this node serves at once...
	DefaultServeQueue       = 8                // ...and chunk requests that wait for a slot; more are refused (quic.ErrBusy)
	DefaultPullChunkTimeout = 10 * time.Second // a chunk pull that received no byte for this long is asked of another holder
)

// Config configures a Node. Exactly one of CertsDir and Insecure must be set.
type Config struct {
	// Store configures the local store. Its Remote is the node's own: leave it
	// nil. Store.Node is the node's ID; zero picks a random one per Open.
	Store engine.Config

	// Name is the node's name in the cluster, unique in it. With CertsDir it is
	// the certificate's common name (empty takes it from the certificate; a
	// different one is an error). Default: the host name and the pid.
	Name string

	// Listen is the node's one cluster address, "host:port" (UDP; port 0 picks
	// a free one, Addr says which). Default "127.0.0.1:0".
	Listen string

	// Join holds addresses of any members of the cluster to join; empty
	// starts a new cluster.
	Join []string

	// CertsDir holds ca.crt, node.crt and node.key (CreateCA,
	// CreateNodeCert): mutual TLS between nodes, and gossip only among them.
	CertsDir string

	// Insecure runs without certificates: self-signed TLS that verifies no
	// one and unauthenticated gossip. For a laptop; never a default.
	Insecure bool

	// RequestTimeout bounds every control request but a locate, which waits
	// for the owner to seal the object, bounded by the caller's context and
	// by the owner's death. Default DefaultRequestTimeout.
	RequestTimeout time.Duration

	// ReleaseDelay is how long this node gathers releases of borrowed objects
	// before telling their owners, one batch per owner. Default DefaultReleaseDelay.
	ReleaseDelay time.Duration

	// SmallCacheBytes bounds the cache of small objects fetched from their
	// owners (answered inline), which lets a node fetch one again without
	// asking the owner. Default DefaultSmallCacheBytes; negative disables it.
	SmallCacheBytes int64

	// Membership timing (memberlist's; zero keeps the membership's defaults,
	// which declare a killed node dead within about 6 s). Tests shorten them.
	ProbeInterval, ProbeTimeout, GossipInterval, PushPullInterval, DeadNodeReclaimTime time.Duration
	SuspicionMult                                                                      int
	// StatsInterval is how often the node's figures (capacity, used, the
	// resources it offers remote functions) are gossiped when they changed.
	// Zero keeps the membership's default (3 s).
	StatsInterval time.Duration
	// RejoinInterval is how often a node started with Join resolves those
	// addresses again and joins those it knows no member at (two clusters
	// formed by nodes started at once, each seeing only itself behind a
	// seed name, merge). Zero keeps the default (10 s); negative: never.
	RejoinInterval time.Duration

	// Transport tuning, passed to net/quic (zero: its defaults). ChunkSize is
	// also a pull's unit, the bytes asked of one holder at a time (zero:
	// DefaultPullChunkSize).
	ChunkSize, Streams int
	IdleTimeout        time.Duration

	// PullSources is how many holders one pull of a large object takes
	// chunks from at once: 0 (the default) every holder the owner names,
	// nodes still pulling it included (a swarm: each serves the chunks it
	// has); 1 one holder at a time, a sealed copy (copies first, the
	// primary last), the next only when it fails, and no partial copies
	// served or used (Ray's PullFromRandomLocation); k > 1 at most k at once.
	PullSources int

	// PullRefresh is how often a swarm pull tells the owner which chunks it
	// holds and learns the object's locations anew (peers that started
	// later, chunks they got). Default DefaultPullRefresh.
	PullRefresh time.Duration

	// PullChunkTimeout bounds how long one chunk's pull from one holder may
	// go without receiving a byte (net/quic's StallTimeout); a holder that
	// stalls so long is passed over and the chunk asked of another. A chunk
	// arriving slowly but steadily is not cut. Default DefaultPullChunkTimeout.
	PullChunkTimeout time.Duration

	// ServeSlots is how many chunks this node serves at once, and ServeQueue
	// how many more chunk requests wait for a slot; a request beyond both is
	// refused at once with quic.ErrBusy, and its puller asks another holder
	// (or this one after a back-off). This keeps a node everyone pulls from
	// (the origin of a broadcast) from splitting its uplink among every
	// puller's requests, so that each chunk it sends arrives whole soon and
	// its pullers trade it, instead of receiving the same chunks from it many
	// times over (tools/swarmsim's model; docs/scale.md). Defaults
	// DefaultServeSlots and DefaultServeQueue; negative ServeQueue: none wait.
	ServeSlots, ServeQueue int

	// Logger receives the node's events. Default slog.Default().
	Logger *slog.Logger
}

func (c Config) withDefaults() (Config, error) {
	switch {
	case c.CertsDir == "" && !c.Insecure:
		return c, errors.New("cluster: no credentials: set Config.CertsDir to a directory made by `trove cert create-node` (cluster.CreateNodeCert), or Config.Insecure for an unauthenticated cluster on a laptop")
	case c.CertsDir != "" && c.Insecure:
		return c, errors.New("cluster: both Config.CertsDir and Config.Insecure set; choose one")
	case c.Store.Remote != nil:
		return c, errors.New("cluster: Config.Store.Remote is the node's own; leave it nil")
	}
	if c.Name == "" && c.Insecure {
		host, err := os.Hostname()
		if err != nil {
			host = "trove"
		}
		c.Name = fmt.Sprintf("%s-%d", host, os.Getpid())
	}
	if c.Listen == "" {
		c.Listen = "127.0.0.1:0"
	}
	if c.RequestTimeout <= 0 {
		c.RequestTimeout = DefaultRequestTimeout
	}
	if c.ReleaseDelay <= 0 {
		c.ReleaseDelay = DefaultReleaseDelay
	}
	if c.PullSources < 0 {
		return c, fmt.Errorf("cluster: Config.PullSources %d: want 0 (every holder), 1 (one at a time) or more", c.PullSources)
	}
	if c.PullRefresh <= 0 {
		c.PullRefresh = DefaultPullRefresh
	}
	if c.ServeSlots <= 0 {
		c.ServeSlots = DefaultServeSlots
	}
	if c.ServeQueue == 0 {
		c.ServeQueue = DefaultServeQueue
	}
	c.ServeQueue = max(c.ServeQueue, 0)
	if c.PullChunkTimeout <= 0 {
		c.PullChunkTimeout = DefaultPullChunkTimeout
	}
	if c.SmallCacheBytes == 0 {
		c.SmallCacheBytes = DefaultSmallCacheBytes
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c, nil
}

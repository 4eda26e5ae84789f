package cluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/trovedb/trove/net/quic"
)

// gossipTag is the net/quic tag membership's packets and streams ride under.
const gossipTag quic.Tag = 1

// gossipTransport is memberlist's Transport over the node's QUIC transport:
// memberlist's packets (probes, acks, gossip) are the transport's packets, and
// its streams (joins, push-pull, fallback probes) are tagged streams. So gossip
// goes only between peers that passed the mutual-TLS handshake: a node without
// the cluster's credentials can neither send gossip nor receive it, and never
// becomes a member. memberlist's own encryption and labels are off: TLS does
// that work.
type gossipTransport struct {
	tr      *quic.Transport
	packets chan *memberlist.Packet
	streams chan net.Conn
	done    chan struct{} // closed by Shutdown
	remove  func()        // unregisters the tag
	snoop   func(b []byte, in bool)

	once sync.Once

	mu       sync.Mutex
	lastErr  error // the last dial failure, for a join's error; a refusal is kept over others
	refusals int   // dials refused at the TLS handshake since resetRefusals
}

func newGossipTransport(tr *quic.Transport, snoop func(b []byte, in bool)) (*gossipTransport, error) {
	g := &gossipTransport{
		tr:      tr,
		packets: make(chan *memberlist.Packet, 256),
		streams: make(chan net.Conn, 16),
		done:    make(chan struct{}),
		snoop:   snoop,
	}
	remove, err := tr.HandleTag(gossipTag, quic.TagHandler{Stream: g.acceptStream, Packet: g.acceptPacket})
	if err != nil {
		return nil, fmt.Errorf("cluster: membership on %s: %w (is a membership already running on this transport?)", tr.Addr(), err)
	}
	g.remove = remove
	return g, nil
}

func (g *gossipTransport) acceptPacket(peer quic.Peer, b []byte) {
	from, err := net.ResolveUDPAddr("udp", peer.Addr)
	if err != nil {
		return
	}
	g.snoop(b, true)
	select {
	case g.packets <- &memberlist.Packet{Buf: b, From: from, Timestamp: time.Now()}:
	case <-g.done:
	default: // memberlist is behind: drop, as a full socket buffer would
	}
}

func (g *gossipTransport) acceptStream(_ quic.Peer, conn net.Conn) {
	select {
	case g.streams <- conn:
	case <-g.done:
		conn.Close()
	case <-time.After(5 * time.Second):
		conn.Close() // memberlist is not taking streams; the dialler retries
	}
}

// FinalAdvertiseAddr is the transport's address: the one address peers reach
// this node at. A transport listening on an unspecified IP (0.0.0.0, ::) has
// no single address to advertise, and is refused.
func (g *gossipTransport) FinalAdvertiseAddr(string, int) (net.IP, int, error) {
	host, port, err := net.SplitHostPort(g.tr.Addr())
	if err != nil {
		return nil, 0, err
	}
	ip := net.ParseIP(host)
	if ip == nil || ip.IsUnspecified() {
		return nil, 0, fmt.Errorf("cluster: the node listens on %s, which names no one address for peers to reach it at: listen on the node's own IP (Config.Listen)", g.tr.Addr())
	}
	p, err := strconv.Atoi(port)
	if err != nil {
		return nil, 0, err
	}
	if ip4 := ip.To4(); ip4 != nil {
		ip = ip4
	}
	return ip, p, nil
}

func (g *gossipTransport) WriteTo(b []byte, addr string) (time.Time, error) {
	g.snoop(b, false)
	return time.Now(), g.tr.SendPacket(addr, gossipTag, b)
}

func (g *gossipTransport) PacketCh() <-chan *memberlist.Packet { return g.packets }

func (g *gossipTransport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	conn, err := g.tr.DialStream(ctx, addr, gossipTag)
	if err != nil {
		g.mu.Lock()
		refused := errors.Is(err, quic.ErrHandshakeRefused)
		if refused {
			g.refusals++
		}
		if refused || !errors.Is(g.lastErr, quic.ErrHandshakeRefused) {
			g.lastErr = err
		}
		g.mu.Unlock()
	}
	return conn, err
}

// resetRefusals starts counting refused dials afresh, and returns how many
// there were.
func (g *gossipTransport) resetRefusals() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	n := g.refusals
	g.refusals = 0
	return n
}

// lastDialError is the last failed dial's error, or nil.
func (g *gossipTransport) lastDialError() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.lastErr
}

func (g *gossipTransport) StreamCh() <-chan net.Conn { return g.streams }

// Shutdown stops taking packets and streams; the QUIC transport is the
// node's, and stays open.
func (g *gossipTransport) Shutdown() error {
	g.once.Do(func() {
		g.remove()
		close(g.done)
	})
	return nil
}

var errNoMembers = errors.New("no member answered")

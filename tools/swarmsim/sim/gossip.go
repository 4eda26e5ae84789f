package sim

import (
	"bytes"
	"fmt"
	"math"
	"time"

	"github.com/hashicorp/go-msgpack/v2/codec"
)

// Gossip is memberlist's traffic per node in a cluster of N, derived from
// hashicorp/memberlist v0.7.0's own constants and message encodings (the
// structs below mirror its net.go types field for field, encoded with the
// msgpack handle its util.go encode uses), with trove's settings
// (cluster/membership.go: DefaultLANConfig, compression off, no
// PingDelegate payload, no LocalState, a 38-byte node meta, stats gossiped
// every StatsInterval).
//
// What each term is, per node, in bytes per second sent (a node receives
// about as much, by symmetry):
//
//   - Probe: one ping per ProbeInterval to a random member and one ack for
//     the ping some member sends it (state.go probeNode; on average each node
//     is probed once per interval). Indirect probes only on failures: left
//     out.
//   - PushPull: one full-state exchange per pushPullScale(PushPullInterval,
//     N) initiated (util.go: ×(⌈log2 N − log2 32⌉+1) above 32 nodes), and on
//     average one accepted: each sends its whole node table, N pushNodeState
//     entries (net.go sendLocalState), both ways.
//   - Gossip: memberlist sends gossip only when it has broadcasts queued
//     (state.go gossip: "if len(msgs) == 0 return"). trove queues one alive
//     message per node per StatsInterval while its store's used bytes change
//     (as during a broadcast: cluster/membership.go UpdateNode); each node
//     that takes it queues it again (state.go aliveNode →
//     encodeBroadcastNotify), to be sent retransmitLimit = RetransmitMult ×
//     ⌈log10(N+1)⌉ times (util.go). Demand is N/StatsInterval × limit ×
//     message bytes; memberlist sends at most GossipNodes packets of
//     UDPBufferSize per GossipInterval (state.go gossip: bytesAvail), so what
//     is sent is the smaller, and Backlog says how far demand exceeds it.
//   - Each packet costs PacketOverhead more on the wire: trove carries
//     memberlist packets as QUIC unidirectional streams (net/quic tagged.go:
//     1 tag byte), here IPv4+UDP 28, QUIC short header ~7, STREAM frame ~6,
//     AEAD tag 16; the receiver's ACK packets are left out.
type Gossip struct {
	N int

	PingBytes, AckBytes, AliveBytes, EntryBytes int // one message each, as memberlist encodes it

	Retransmit       int           // retransmitLimit(RetransmitMult, N)
	PushPullInterval time.Duration // pushPullScale(PushPullInterval, N)

	ProbeBps, PushPullBps     float64 // bytes/s per node
	GossipDemandBps           float64 // stats updates' retransmissions asked for
	GossipCapBps              float64 // the most memberlist sends per node
	GossipBps                 float64 // min(demand, cap)
	Backlog                   float64 // demand / cap
	TotalBps                  float64 // Probe + PushPull + Gossip
	PushPullBytes             int     // one push-pull's state, one way
	StatsInterval, ProbeEvery time.Duration
}

// memberlist v0.7.0 DefaultLANConfig (config.go) and net.go constants.
const (
	mlProbeInterval     = time.Second
	mlGossipInterval    = 200 * time.Millisecond
	mlGossipNodes       = 3
	mlPushPullInterval  = 30 * time.Second
	mlRetransmitMult    = 4
	mlUDPBufferSize     = 1400
	mlCompoundHeader    = 2 // compoundHeaderOverhead
	mlCompoundPerMsg    = 2 // compoundOverhead
	mlPushPullThreshold = 32
	// message types (net.go: iota from pingMsg)
	mlPingMsg     = 0
	mlAckRespMsg  = 2
	mlAliveMsg    = 4
	mlPushPullMsg = 6

	// trove's side
	troveMetaLen       = 38 // cluster/membership_meta.go metaLen
	troveStatsInterval = 3 * time.Second
	PacketOverhead     = 28 + 7 + 6 + 16 + 1
)

// The mirrors of memberlist's messages (net.go); field names and tags must
// match, since msgpack encodes a struct as a map keyed by field name.
type (
	mlPing struct {
		SeqNo      uint32
		Node       string
		SourceAddr []byte `codec:",omitempty"`
		SourcePort uint16 `codec:",omitempty"`
		SourceNode string `codec:",omitempty"`
	}
	mlAck struct {
		SeqNo   uint32
		Payload []byte
	}
	mlAlive struct {
		Incarnation uint32
		Node        string
		Addr        []byte
		Port        uint16
		Meta        []byte
		Vsn         []uint8
	}
	mlPushPullHeader struct {
		Nodes        int
		UserStateLen int
		Join         bool
	}
	mlPushNodeState struct {
		Name        string
		Addr        []byte
		Port        uint16
		Meta        []byte
		Incarnation uint32
		State       int
		Vsn         []uint8
	}
)

// encodeML is memberlist's util.go encode: the type byte, then msgpack.
func encodeML(msgType byte, v any) int {
	var buf bytes.Buffer
	buf.WriteByte(msgType)
	hd := codec.MsgpackHandle{}
	hd.TimeNotBuiltin = true
	if err := codec.NewEncoder(&buf, &hd).Encode(v); err != nil {
		panic(fmt.Sprintf("sim: encoding a memberlist %T: %v", v, err)) // fixed types: cannot fail
	}
	return buf.Len()
}

// GossipAt is memberlist's traffic per node at n nodes with trove's
// settings; node names like "node-0999", IPv4 addresses.
func GossipAt(n int) Gossip {
	name := "node-0999"
	addr := []byte{10, 0, 3, 231}
	vsn := []uint8{1, 5, 2, 0, 0, 0}
	meta := make([]byte, troveMetaLen)
	for i := range meta {
		meta[i] = 0xa5 // incompressible-looking, and compression is off anyway
	}
	g := Gossip{N: n, StatsInterval: troveStatsInterval, ProbeEvery: mlProbeInterval}
	g.PingBytes = encodeML(mlPingMsg, &mlPing{SeqNo: 123456, Node: name, SourceAddr: addr, SourcePort: 7946, SourceNode: name})
	g.AckBytes = encodeML(mlAckRespMsg, &mlAck{SeqNo: 123456})
	g.AliveBytes = encodeML(mlAliveMsg, &mlAlive{Incarnation: 12, Node: name, Addr: addr, Port: 7946, Meta: meta, Vsn: vsn})
	var entry bytes.Buffer
	hd := codec.MsgpackHandle{}
	hd.TimeNotBuiltin = true
	if err := codec.NewEncoder(&entry, &hd).Encode(&mlPushNodeState{Name: name, Addr: addr, Port: 7946, Meta: meta, Incarnation: 12, State: 0, Vsn: vsn}); err != nil {
		panic(err)
	}
	g.EntryBytes = entry.Len()
	header := encodeML(mlPushPullMsg, &mlPushPullHeader{Nodes: n})

	g.Retransmit = mlRetransmitMult * int(math.Ceil(math.Log10(float64(n+1))))
	g.PushPullInterval = mlPushPullInterval
	if n > mlPushPullThreshold {
		g.PushPullInterval *= time.Duration(math.Ceil(math.Log2(float64(n))-math.Log2(mlPushPullThreshold)) + 1)
	}

	probe := float64(g.PingBytes+PacketOverhead) + float64(g.AckBytes+PacketOverhead)
	g.ProbeBps = probe / mlProbeInterval.Seconds()
	g.PushPullBytes = header + n*g.EntryBytes
	// one initiated and one accepted per interval, each sending its state
	g.PushPullBps = 2 * float64(g.PushPullBytes) / g.PushPullInterval.Seconds()

	perMsg := float64(g.AliveBytes + mlCompoundPerMsg)
	g.GossipDemandBps = float64(n) / troveStatsInterval.Seconds() * float64(g.Retransmit) * perMsg
	g.GossipCapBps = mlGossipNodes * float64(mlUDPBufferSize+PacketOverhead) / mlGossipInterval.Seconds()
	// packets carry whole messages: the demand in packets' bytes
	perPacket := math.Floor(float64(mlUDPBufferSize-mlCompoundHeader) / perMsg)
	demandPackets := float64(n) / troveStatsInterval.Seconds() * float64(g.Retransmit) / perPacket
	demandWire := g.GossipDemandBps + demandPackets*(PacketOverhead+mlCompoundHeader)
	g.GossipDemandBps = demandWire
	g.GossipBps = min(demandWire, g.GossipCapBps)
	g.Backlog = demandWire / g.GossipCapBps
	g.TotalBps = g.ProbeBps + g.PushPullBps + g.GossipBps
	return g
}

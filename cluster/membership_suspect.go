package cluster

import (
	"encoding/binary"
	"net"
	"strconv"

	"github.com/hashicorp/go-msgpack/v2/codec"
)

// memberlist tells its delegates when a node joins, leaves, dies or changes
// its meta, but not when it is suspected or refutes a suspicion. Membership
// reports those too (StateSuspect, EventSuspect), so it reads them from the
// gossip itself: snoop sees every packet this node's memberlist sends or
// receives, and queues a note for each suspect and alive message in it.
//
// This reads memberlist's packet format (message type byte, compound and
// checksummed packets, msgpack bodies: memberlist's net.go and util.go at
// v0.7.0, protocol versions 2–5, unchanged since 2015). Should it change,
// suspicions go unreported (membership_test.go's suspect test fails) while
// joins, deaths and leaves, which come from memberlist's delegates, still work.

// memberlist's message types (net.go) that snoop reads.
const (
	mlSuspectMsg  = 3
	mlAliveMsg    = 4
	mlCompoundMsg = 7
	mlHasCrcMsg   = 12
)

// gossipHeader is the part of memberlist's suspect and alive messages snoop
// needs (msgpack maps by field name; other fields are skipped).
type gossipHeader struct {
	Incarnation uint32
	Node        string
	Addr        []byte // alive
	Port        uint16 // alive
}

var msgpackHandle codec.MsgpackHandle

// snoop reads the suspect and alive messages in a memberlist packet. Packets
// come from members (authenticated) but are parsed as untrusted bytes: what
// does not parse is ignored (memberlist itself logs it).
func (m *membership) snoop(b []byte, _ bool) {
	m.snoopMsg(b, 0)
}

func (m *membership) snoopMsg(b []byte, depth int) {
	if len(b) == 0 || depth > 2 {
		return
	}
	switch b[0] {
	case mlHasCrcMsg:
		if len(b) >= 5 {
			m.snoopMsg(b[5:], depth+1)
		}
	case mlCompoundMsg:
		if len(b) < 2 {
			return
		}
		n := int(b[1])
		body := b[2:]
		if len(body) < 2*n {
			return
		}
		lens, body := body[:2*n], body[2*n:]
		for i := range n {
			l := int(binary.BigEndian.Uint16(lens[2*i:]))
			if l > len(body) {
				return
			}
			m.snoopMsg(body[:l], depth+1)
			body = body[l:]
		}
	case mlSuspectMsg, mlAliveMsg:
		var h gossipHeader
		if err := codec.NewDecoderBytes(b[1:], &msgpackHandle).Decode(&h); err != nil || h.Node == "" {
			return
		}
		n := note{kind: noteSuspect, name: h.Node, inc: h.Incarnation}
		if b[0] == mlAliveMsg {
			n.kind = noteAlive
			n.addr = net.JoinHostPort(net.IP(h.Addr).String(), strconv.Itoa(int(h.Port)))
		}
		m.push(n)
	}
}

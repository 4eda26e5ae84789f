package cluster

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/trovedb/trove"
)

// nodeMeta is what a node gossips about itself beside its name and address
// (memberlist's node meta): its store's ID and figures.
//
//	version (1) = 1 | node ID (8) | boot (8) | capacity (8) | used (8) | slots (4) | flags (1)
//
// Integers are big endian. Later versions only append fields: a decoder reads
// the fields it knows and ignores the rest, so nodes of two versions can share
// a cluster. boot is random at every start of a membership, so a node
// restarted under its old name is told from its previous run even if its
// store kept its ID. Flag metaLeaving is gossiped just before a Leave:
// memberlist tells its delegates of a death and a departure alike, and the
// flag is how the others tell them apart.
type nodeMeta struct {
	ID             trove.NodeID
	Boot           uint64
	Capacity, Used int64
	Slots          int
	Leaving        bool
}

const (
	metaVersion = 1
	metaLen     = 1 + 8 + 8 + 8 + 8 + 4 + 1
	metaLeaving = 1 << 0 // flags: the node is leaving (Leave)
	// maxMetaLen bounds what a decoder accepts: memberlist's own bound
	// (memberlist.MetaMaxSize), which gossip never exceeds.
	maxMetaLen = 512
	maxSlots   = 1 << 20
)

var errMeta = errors.New("cluster: bad node meta")

func (m nodeMeta) append(b []byte) []byte {
	b = append(b, metaVersion)
	b = append(b, m.ID[:]...)
	b = binary.BigEndian.AppendUint64(b, m.Boot)
	b = binary.BigEndian.AppendUint64(b, uint64(m.Capacity))
	b = binary.BigEndian.AppendUint64(b, uint64(m.Used))
	b = binary.BigEndian.AppendUint32(b, uint32(m.Slots))
	var flags byte
	if m.Leaving {
		flags |= metaLeaving
	}
	return append(b, flags)
}

// decodeNodeMeta decodes a node's meta as gossiped by any member (bytes from
// the network: every field is checked).
func decodeNodeMeta(b []byte) (nodeMeta, error) {
	var m nodeMeta
	switch {
	case len(b) == 0:
		return m, fmt.Errorf("%w: empty (the node runs no trove membership)", errMeta)
	case b[0] < metaVersion:
		return m, fmt.Errorf("%w: version %d", errMeta, b[0])
	case len(b) < metaLen:
		return m, fmt.Errorf("%w: %d bytes, want at least %d", errMeta, len(b), metaLen)
	case len(b) > maxMetaLen:
		return m, fmt.Errorf("%w: %d bytes, more than %d", errMeta, len(b), maxMetaLen)
	}
	copy(m.ID[:], b[1:9])
	m.Boot = binary.BigEndian.Uint64(b[9:])
	capacity, used := binary.BigEndian.Uint64(b[17:]), binary.BigEndian.Uint64(b[25:])
	slots := binary.BigEndian.Uint32(b[33:])
	flags := b[37]
	switch {
	case m.ID == (trove.NodeID{}):
		return nodeMeta{}, fmt.Errorf("%w: zero node ID", errMeta)
	case capacity > 1<<62 || used > 1<<62:
		return nodeMeta{}, fmt.Errorf("%w: capacity %d, used %d", errMeta, capacity, used)
	case slots > maxSlots:
		return nodeMeta{}, fmt.Errorf("%w: %d slots", errMeta, slots)
	case flags&^metaLeaving != 0:
		return nodeMeta{}, fmt.Errorf("%w: unknown flags %#x", errMeta, flags)
	}
	m.Capacity, m.Used, m.Slots, m.Leaving = int64(capacity), int64(used), int(slots), flags&metaLeaving != 0
	return m, nil
}

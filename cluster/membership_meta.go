package cluster

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/trovedb/trove"
)

// nodeMeta is what a node gossips about itself beside its name and address
// (memberlist's node meta): its store's ID and figures.
//
//	version (1) = 1 | node ID (8) | boot (8) | capacity (8) | used (8) | slots (4) | flags (1)
//	version 2 appends: n (1, ≤ maxMetaResources) | n × (name length (1, 1..maxMetaName) | name | total (8) | free (8))
//
// (the resources a node offers the layers above, remote functions: CPUs and
// custom ones; amounts are float64 bits, finite, 0 to 2^40, names in
// increasing order).
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
	NRes           int                        // version 2: how many of Res are set
	Res            [maxMetaResources]Resource // version 2: the resources offered, sorted by name
}

// Resource is an amount a node offers to the layers above cluster (remote
// functions' CPU slots and custom resources), gossiped with its meta
// (Node.SetResources) and listed in its Member.
type Resource struct {
	Name        string
	Total, Free float64
}

const (
	metaVersion = 2
	metaLen     = 1 + 8 + 8 + 8 + 8 + 4 + 1
	metaLeaving = 1 << 0 // flags: the node is leaving (Leave)
	// maxMetaLen bounds what a decoder accepts: memberlist's own bound
	// (memberlist.MetaMaxSize), which gossip never exceeds.
	maxMetaLen = 512
	maxSlots   = 1 << 20

	maxMetaResources = 8  // resources a node's meta carries
	maxMetaName      = 32 // bytes of a resource's name
	maxMetaAmount    = 1 << 40
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
	b = append(b, flags)
	b = append(b, byte(m.NRes))
	for _, r := range m.Res[:m.NRes] {
		b = append(b, byte(len(r.Name)))
		b = append(b, r.Name...)
		b = binary.BigEndian.AppendUint64(b, math.Float64bits(r.Total))
		b = binary.BigEndian.AppendUint64(b, math.Float64bits(r.Free))
	}
	return b
}

// decodeNodeMeta decodes a node's meta as gossiped by any member (bytes from
// the network: every field is checked).
func decodeNodeMeta(b []byte) (nodeMeta, error) {
	var m nodeMeta
	switch {
	case len(b) == 0:
		return m, fmt.Errorf("%w: empty (the node runs no trove membership)", errMeta)
	case b[0] < 1:
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
	if b[0] < 2 {
		return m, nil
	}
	rest := b[metaLen:]
	if len(rest) < 1 || rest[0] > maxMetaResources {
		return nodeMeta{}, fmt.Errorf("%w: version %d without its resource count, or over %d", errMeta, b[0], maxMetaResources)
	}
	m.NRes = int(rest[0])
	rest = rest[1:]
	for i := range m.NRes {
		if len(rest) < 1 || rest[0] == 0 || rest[0] > maxMetaName || len(rest) < 1+int(rest[0])+16 {
			return nodeMeta{}, fmt.Errorf("%w: resource %d truncated, or its name empty or over %d bytes", errMeta, i, maxMetaName)
		}
		k := int(rest[0])
		r := Resource{Name: string(rest[1 : 1+k]),
			Total: math.Float64frombits(binary.BigEndian.Uint64(rest[1+k:])),
			Free:  math.Float64frombits(binary.BigEndian.Uint64(rest[9+k:]))}
		rest = rest[17+k:]
		if i > 0 && r.Name <= m.Res[i-1].Name {
			return nodeMeta{}, fmt.Errorf("%w: resource names repeated or unsorted", errMeta)
		}
		for _, v := range []float64{r.Total, r.Free} {
			if math.IsNaN(v) || math.IsInf(v, 0) || v < 0 || v > maxMetaAmount {
				return nodeMeta{}, fmt.Errorf("%w: resource %s amount %v out of bounds", errMeta, r.Name, v)
			}
		}
		m.Res[i] = r
	}
	return m, nil
}

// metaResources sorts rs into a meta's fixed array, keeping the first
// maxMetaResources names (CPU first is the caller's to put) and cutting none:
// names longer than maxMetaName are dropped.
func metaResources(rs []Resource) (n int, out [maxMetaResources]Resource) {
	rs = slices.Clone(rs)
	rs = slices.DeleteFunc(rs, func(r Resource) bool {
		return r.Name == "" || len(r.Name) > maxMetaName || math.IsNaN(r.Total) || math.IsNaN(r.Free)
	})
	slices.SortFunc(rs, func(a, b Resource) int { return strings.Compare(a.Name, b.Name) })
	rs = slices.CompactFunc(rs, func(a, b Resource) bool { return a.Name == b.Name })
	for i, r := range rs {
		if i == maxMetaResources {
			break
		}
		r.Total = min(max(r.Total, 0), maxMetaAmount)
		r.Free = min(max(r.Free, 0), maxMetaAmount)
		out[i] = r
		n++
	}
	return n, out
}

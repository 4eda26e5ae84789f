package cluster

import (
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"fmt"
	"slices"
	"sync"

	"github.com/trovedb/trove"
)

// A node's object listing, asked of every member by ClusterObjects (`trove
// memory -cluster`). It is for inspection: bounded by a limit per node, never
// on a hot path.
//
//	opObjects request = header, limit uvarint (1..MaxListing)
//	reply = version u8, total uvarint (objects on the node), n uvarint (≤ limit),
//	        n × (id(16), size uvarint, refs uvarint, pins uvarint, flags u8, len u8, where)
//
// flags bit 0: the entry is a copy of an object another node owns.

const opObjects = 4 // list the node's objects (see above)

// MaxListing bounds the objects one node lists in reply to ClusterObjects.
const MaxListing = 10000

const (
	maxWhere     = 32
	flagCopy     = 1
	maxListCount = 1 << 31 // refs and pins above this are refused as garbage
)

// ObjectEntry is one object a node holds.
type ObjectEntry struct {
	ID         trove.ObjectID
	Size       int64
	Refs, Pins int
	Copy       bool   // a secondary copy of an object another node owns
	Where      string // heap, memory, spilled, mapped from disk, or "-"
}

// NodeObjects is one member's listing.
type NodeObjects struct {
	Member  Member
	Total   int           // objects on the node; more than len(Objects) if the limit cut the list
	Objects []ObjectEntry // at most the limit, largest first
	Err     error         // the member could not be asked (its listing is empty)
}

func appendListRequest(b []byte, from trove.NodeID, limit int) []byte {
	return binary.AppendUvarint(appendHeader(b, from), uint64(limit))
}

func decodeListRequest(b []byte) (trove.NodeID, int, error) {
	if len(b) < headerLen || b[0] != wireVersion {
		return trove.NodeID{}, 0, fmt.Errorf("%w: listing request header", errMessage)
	}
	from := trove.NodeID(b[1:headerLen])
	v, k := uvarint(b[headerLen:])
	if k <= 0 || v == 0 || v > MaxListing || headerLen+k != len(b) {
		return from, 0, fmt.Errorf("%w: listing limit invalid, zero or over %d", errMessage, MaxListing)
	}
	return from, int(v), nil
}

func appendListReply(b []byte, total int, es []ObjectEntry) []byte {
	b = append(b, wireVersion)
	b = binary.AppendUvarint(b, uint64(total))
	b = binary.AppendUvarint(b, uint64(len(es)))
	for _, e := range es {
		b = append(b, e.ID[:]...)
		b = binary.AppendUvarint(b, uint64(e.Size))
		b = binary.AppendUvarint(b, uint64(e.Refs))
		b = binary.AppendUvarint(b, uint64(e.Pins))
		var f byte
		if e.Copy {
			f = flagCopy
		}
		w := e.Where
		if len(w) > maxWhere {
			w = w[:maxWhere]
		}
		b = append(b, f, byte(len(w)))
		b = append(b, w...)
	}
	return b
}

// decodeListReply decodes a listing of at most limit entries.
func decodeListReply(b []byte, limit int) (total int, es []ObjectEntry, err error) {
	bad := func(what string) (int, []ObjectEntry, error) {
		return 0, nil, fmt.Errorf("%w: listing reply: %s", errMessage, what)
	}
	if len(b) < 1 || b[0] != wireVersion {
		return bad("version")
	}
	b = b[1:]
	t, k := uvarint(b)
	if k <= 0 || t > maxListCount {
		return bad("total")
	}
	b = b[k:]
	n, k := uvarint(b)
	if k <= 0 || n > uint64(limit) || n > t {
		return bad(fmt.Sprintf("count over the limit %d or the total", limit))
	}
	b = b[k:]
	// Each entry is at least 16+1+1+1+1+1 bytes: refuse a count the body cannot hold before allocating.
	if n > uint64(len(b))/21 {
		return bad("count larger than the body")
	}
	es = make([]ObjectEntry, 0, n)
	for i := uint64(0); i < n; i++ {
		if len(b) < idLen {
			return bad("truncated entry")
		}
		e := ObjectEntry{ID: trove.ObjectID(b[:idLen])}
		b = b[idLen:]
		var vs [3]uint64
		for j := range vs {
			v, k := uvarint(b)
			if k <= 0 || v > maxObjectSize || j > 0 && v > maxListCount {
				return bad("entry field")
			}
			vs[j], b = v, b[k:]
		}
		e.Size, e.Refs, e.Pins = int64(vs[0]), int(vs[1]), int(vs[2])
		if len(b) < 2 || b[0]&^flagCopy != 0 || int(b[1]) > maxWhere || len(b) < 2+int(b[1]) {
			return bad("entry flags or where")
		}
		e.Copy, e.Where = b[0] == flagCopy, string(b[2:2+int(b[1])])
		b = b[2+int(b[1]):]
		es = append(es, e)
	}
	if len(b) != 0 {
		return bad(fmt.Sprintf("%d bytes after the entries", len(b)))
	}
	return int(t), es, nil
}

// localObjects lists this node's objects, the largest limit of them.
func (n *Node) localObjects(limit int) (int, []ObjectEntry) {
	var es []ObjectEntry
	for info := range n.local.Objects() {
		es = append(es, ObjectEntry{ID: info.ID, Size: info.Size, Refs: info.Refs, Pins: info.Pins, Copy: info.Secondary, Where: info.Where})
	}
	slices.SortFunc(es, func(a, b ObjectEntry) int {
		return cmp.Or(cmp.Compare(b.Size, a.Size), bytes.Compare(a.ID[:], b.ID[:]))
	})
	return len(es), es[:min(len(es), limit)]
}

// ClusterObjects lists the objects of every member alive now, this node
// included, at most limit (1..MaxListing) per node, asking the others in
// parallel, each bounded by Config.RequestTimeout. A member that cannot be
// asked has its Err set; the others are listed anyway.
func (n *Node) ClusterObjects(ctx context.Context, limit int) ([]NodeObjects, error) {
	if limit <= 0 || limit > MaxListing {
		return nil, fmt.Errorf("cluster: listing limit %d: want 1 to %d", limit, MaxListing)
	}
	var out []NodeObjects
	for _, m := range n.members.Members() {
		if m.State == StateAlive || m.ID == n.self {
			out = append(out, NodeObjects{Member: m})
		}
	}
	var wg sync.WaitGroup
	for i := range out {
		no := &out[i]
		if no.Member.ID == n.self {
			no.Total, no.Objects = n.localObjects(limit)
			continue
		}
		wg.Go(func() {
			rctx, cancel := context.WithTimeout(ctx, n.cfg.RequestTimeout)
			defer cancel()
			req, rep := bufs.Get(), bufs.Get()
			defer bufs.Put(req)
			defer bufs.Put(rep)
			req.B = appendListRequest(req.B[:0], n.self, limit)
			var err error
			rep.B, err = n.tr.Request(rctx, no.Member.Addr, opObjects, req.B, rep.B[:0])
			if err == nil {
				no.Total, no.Objects, err = decodeListReply(rep.B, limit)
			}
			if err != nil {
				no.Err = fmt.Errorf("list the objects of node %s (%s): %w", no.Member.Name, no.Member.Addr, err)
			}
		})
	}
	wg.Wait()
	slices.SortFunc(out, func(a, b NodeObjects) int { return cmp.Compare(a.Member.Name, b.Member.Name) })
	return out, nil
}

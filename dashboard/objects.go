package dashboard

import (
	"bytes"
	"cmp"
	"container/heap"
	"fmt"
	"slices"
	"strings"

	"github.com/trovedb/trove"
	"github.com/trovedb/trove/cluster"
	"github.com/trovedb/trove/engine"
)

// MaxWindow bounds offset+limit of an object listing: the rows each node
// sorts out of its table and sends. Deeper pages are refused; filters
// (node, owner, kind) narrow a listing instead.
const MaxWindow = 10000

// MaxLimit bounds the rows of one page.
const MaxLimit = 1000

// Sort keys of an object listing.
var sortKeys = []string{"size", "id", "node", "owner", "where", "local_refs", "views", "captured_in", "borrowers"}

// Kinds an object listing filters on: the row's role, what holds the
// object, or where its bytes are.
var kinds = []string{
	"primary", "copy", "ref", // role: the owner's copy, another node's, a ref with no bytes here
	"local_ref", "pinned", "captured", "borrowed", "pending", "call_arg", // what holds it
	"spilled", // where
}

// ObjectRow is one object on one node, like a line of `ray memory`: a
// primary on its owner, a copy elsewhere, or a ref a node holds to an object
// it has no bytes of yet.
type ObjectRow struct {
	ID    string `json:"id" cbor:"1,keyasint"`
	Node  string `json:"node" cbor:"2,keyasint"`  // the node this row is on
	Owner string `json:"owner" cbor:"3,keyasint"` // the node that created it and keeps its metadata
	Role  string `json:"role" cbor:"4,keyasint"`  // primary, copy or ref
	Size  int64  `json:"size" cbor:"5,keyasint"`
	State string `json:"state" cbor:"6,keyasint"` // pending, sealed, spilled, evicted, remote
	Where string `json:"where" cbor:"7,keyasint"` // heap, memory, spilled, mapped from disk, -

	// What holds it on this node.
	LocalRefs  int `json:"local_refs" cbor:"8,keyasint"`   // handles of processes on the node (and an open builder)
	Views      int `json:"views" cbor:"9,keyasint"`        // unreleased views (pins)
	CapturedIn int `json:"captured_in" cbor:"10,keyasint"` // stored objects containing its ref
	// On the owner's primary: nodes borrowing it, and how many of them hold a
	// sealed copy.
	Borrowers int `json:"borrowers" cbor:"11,keyasint"`
	Copies    int `json:"copies" cbor:"12,keyasint"`
	// Calls are the live calls made on this node that hold it as an
	// argument (Config.CallArgs), CallFunction the function of one of them.
	Calls        int    `json:"calls" cbor:"13,keyasint"`
	CallFunction string `json:"call_function,omitempty" cbor:"14,keyasint"`

	// oid is ID before it is spelled out: a listing formats the IDs of the
	// rows it keeps only, not of every object it walks.
	oid trove.ObjectID
}

// compareIDs orders rows by ID (hex sorts as the bytes do).
func compareIDs(a, b *ObjectRow) int {
	if a.ID == "" && b.ID == "" {
		return bytes.Compare(a.oid[:], b.oid[:])
	}
	return cmp.Compare(a.idString(), b.idString())
}

func (r *ObjectRow) idString() string {
	if r.ID == "" {
		return r.oid.String()
	}
	return r.ID
}

// heldBy lists the kinds that hold r.
func (r *ObjectRow) heldBy() []string {
	var ks []string
	for _, k := range []struct {
		name string
		on   bool
	}{{"local_ref", r.LocalRefs > 0}, {"pinned", r.Views > 0}, {"captured", r.CapturedIn > 0},
		{"borrowed", r.Borrowers > 0}, {"pending", r.State == "pending"}, {"call_arg", r.Calls > 0}} {
		if k.on {
			ks = append(ks, k.name)
		}
	}
	return ks
}

func (r *ObjectRow) is(kind string) bool {
	switch kind {
	case "":
		return true
	case "primary", "copy", "ref":
		return r.Role == kind
	case "spilled":
		return r.Where == "spilled"
	}
	return slices.Contains(r.heldBy(), kind)
}

// Totals sum a listing over the rows that match its filters (all of them,
// not only the page's).
type Totals struct {
	Rows     int   `json:"rows" cbor:"1,keyasint"`
	Bytes    int64 `json:"bytes" cbor:"2,keyasint"`
	InMemory int64 `json:"in_memory" cbor:"3,keyasint"` // heap, memory or mapped from disk
	Spilled  int64 `json:"spilled" cbor:"4,keyasint"`
	Pinned   int64 `json:"pinned" cbor:"5,keyasint"`
}

func (t *Totals) add(r *ObjectRow) {
	t.Rows++
	t.Bytes += r.Size
	switch r.Where {
	case "heap", "memory", "mapped from disk":
		t.InMemory += r.Size
	case "spilled":
		t.Spilled += r.Size
	}
	if r.Views > 0 {
		t.Pinned += r.Size
	}
}

func (t *Totals) sum(o Totals) {
	t.Rows += o.Rows
	t.Bytes += o.Bytes
	t.InMemory += o.InMemory
	t.Spilled += o.Spilled
	t.Pinned += o.Pinned
}

// query is what one node is asked to list: its rows that match, sorted, the
// first Window of them.
type query struct {
	Owner  string `cbor:"1,keyasint"` // the owner's node ID (hex), "" for any
	Kind   string `cbor:"2,keyasint"`
	Sort   string `cbor:"3,keyasint"`
	Desc   bool   `cbor:"4,keyasint"`
	Window int    `cbor:"5,keyasint"` // rows wanted: the page's offset+limit
}

func (q query) check() error {
	switch {
	case q.Window < 1 || q.Window > MaxWindow:
		return fmt.Errorf("window %d: want 1 to %d", q.Window, MaxWindow)
	case !slices.Contains(sortKeys, q.Sort):
		return fmt.Errorf("sort %q: want one of %s", q.Sort, strings.Join(sortKeys, ", "))
	case q.Kind != "" && !slices.Contains(kinds, q.Kind):
		return fmt.Errorf("kind %q: want one of %s", q.Kind, strings.Join(kinds, ", "))
	case q.Owner != "" && !isNodeID(q.Owner):
		return fmt.Errorf("owner %q: not a node ID (16 hex digits)", q.Owner)
	}
	return nil
}

func isNodeID(s string) bool {
	if len(s) != 2*len(trove.NodeID{}) {
		return false
	}
	_, err := trove.ParseObjectID(s + strings.Repeat("0", len(s)))
	return err == nil
}

// compare orders rows by q's key, then by ID and node, so that pages of a
// listing neither repeat nor skip rows while nothing changes.
func (q query) compare(a, b *ObjectRow) int {
	var c int
	switch q.Sort {
	case "size":
		c = cmp.Compare(a.Size, b.Size)
	case "id":
		c = compareIDs(a, b)
	case "node":
		c = cmp.Compare(a.Node, b.Node)
	case "owner":
		c = cmp.Compare(a.Owner, b.Owner)
	case "where":
		c = cmp.Compare(a.Where, b.Where)
	case "local_refs":
		c = cmp.Compare(a.LocalRefs, b.LocalRefs)
	case "views":
		c = cmp.Compare(a.Views, b.Views)
	case "captured_in":
		c = cmp.Compare(a.CapturedIn, b.CapturedIn)
	case "borrowers":
		c = cmp.Compare(a.Borrowers, b.Borrowers)
	}
	if q.Desc {
		c = -c
	}
	return cmp.Or(c, compareIDs(a, b), cmp.Compare(a.Node, b.Node))
}

// page is one node's answer to a query.
type page struct {
	Rows   []ObjectRow `cbor:"1,keyasint"` // at most the query's window, in its order
	Totals Totals      `cbor:"2,keyasint"`
}

// rowHeap keeps the first Window rows of a listing: the root is the last
// of them in the query's order, replaced when a row that sorts before it
// comes.
type rowHeap struct {
	q    query
	rows []ObjectRow
}

func (h *rowHeap) Len() int           { return len(h.rows) }
func (h *rowHeap) Less(i, j int) bool { return h.q.compare(&h.rows[i], &h.rows[j]) > 0 }
func (h *rowHeap) Swap(i, j int)      { h.rows[i], h.rows[j] = h.rows[j], h.rows[i] }
func (h *rowHeap) Push(x any)         { h.rows = append(h.rows, x.(ObjectRow)) }
func (h *rowHeap) Pop() any {
	r := h.rows[len(h.rows)-1]
	h.rows = h.rows[:len(h.rows)-1]
	return r
}

func (h *rowHeap) offer(r ObjectRow) {
	if len(h.rows) < h.q.Window {
		heap.Push(h, r)
		return
	}
	if h.q.compare(&r, &h.rows[0]) < 0 {
		h.rows[0] = r
		heap.Fix(h, 0)
	}
}

// source is what a node's dashboard reads its objects from: the local store
// and, on a cluster node, the cluster (owners' borrowers, members' names).
type source struct {
	st   *engine.Store
	node *cluster.Node  // nil for a store that is no cluster node
	name string         // this node's name
	args CallArgsSource // nil: no task runtime marks call arguments
}

// callArgs is what live calls hold as arguments now (nil without a source).
func (s source) callArgs() map[trove.ObjectID]CallArg {
	if s.args == nil {
		return nil
	}
	return s.args.CallArgs()
}

// ownerName names the node that owns id.
func (s source) ownerName(id trove.ObjectID) string { return s.nodeName(id.Node()) }

// nodeName names a node: a member's name, or its ID if it is none now.
func (s source) nodeName(node trove.NodeID) string {
	if node == s.st.Node() {
		return s.name
	}
	if s.node != nil {
		if m, ok := s.node.Lookup(node); ok && m.Name != "" {
			return m.Name
		}
	}
	return node.String()
}

// names caches nodeName over one listing (a membership lookup per object
// would take the membership's lock a million times for a million objects).
type names struct {
	s source
	m map[trove.NodeID]string
}

func (n *names) of(node trove.NodeID) string {
	name, ok := n.m[node]
	if !ok {
		name = n.s.nodeName(node)
		n.m[node] = name
	}
	return name
}

// row describes one object of this node.
func (s source) row(info engine.ObjectInfo) ObjectRow {
	return s.rowNamed(info, s.ownerName(info.ID), s.callArgs())
}

func (s source) rowNamed(info engine.ObjectInfo, owner string, args map[trove.ObjectID]CallArg) ObjectRow {
	r := ObjectRow{oid: info.ID, Node: s.name, Owner: owner, Size: info.Size,
		State: info.State, Where: info.Where, Views: info.Pins, CapturedIn: info.Captured, Role: "primary"}
	switch {
	case info.State == "remote":
		r.Role = "ref"
	case info.Secondary:
		r.Role = "copy"
	case info.ID.Node() != s.st.Node():
		r.Role = "copy" // a future's result written here for its owner elsewhere
	}
	held := info.Captured
	if s.node != nil && info.ID.Node() == s.st.Node() {
		r.Borrowers, r.Copies = s.node.BorrowerCounts(info.ID)
		if r.Borrowers > 0 {
			held++ // the owner's one hold for all its borrowers
		}
	}
	if a, ok := args[info.ID]; ok {
		r.Calls, r.CallFunction = a.Calls, a.Function
		held += a.Calls // each call's handle on its argument
	}
	r.LocalRefs = max(info.Refs-held, 0)
	return r
}

// list answers q from this node's table, walking all of it with at most
// q.Window rows kept.
func (s source) list(q query) page {
	h := &rowHeap{q: q, rows: make([]ObjectRow, 0, min(q.Window, 1024))}
	var p page
	var owner trove.NodeID
	if q.Owner != "" {
		id, err := trove.ParseObjectID(q.Owner + strings.Repeat("0", 2*len(owner)))
		if err != nil {
			return p // check refuses such an owner; nothing matches it
		}
		owner = id.Node()
	}
	nm := names{s: s, m: map[trove.NodeID]string{}}
	args := s.callArgs()
	for info := range s.st.Objects() {
		if q.Owner != "" && info.ID.Node() != owner {
			continue
		}
		r := s.rowNamed(info, nm.of(info.ID.Node()), args)
		if !r.is(q.Kind) {
			continue
		}
		p.Totals.add(&r)
		h.offer(r)
	}
	p.Rows = h.rows
	for i := range p.Rows {
		p.Rows[i].ID = p.Rows[i].oid.String()
	}
	slices.SortFunc(p.Rows, func(a, b ObjectRow) int { return q.compare(&a, &b) })
	return p
}

// merge combines the nodes' pages of q and cuts [offset, offset+limit).
func merge(q query, pages []page, offset, limit int) ([]ObjectRow, Totals) {
	var rows []ObjectRow
	var t Totals
	for _, p := range pages {
		rows = append(rows, p.Rows...)
		t.sum(p.Totals)
	}
	slices.SortFunc(rows, func(a, b ObjectRow) int { return q.compare(&a, &b) })
	if offset >= len(rows) {
		return []ObjectRow{}, t
	}
	return rows[offset:min(len(rows), offset+limit)], t
}

// ObjectCopy is one node's entry for an object, in its detail.
type ObjectCopy struct {
	Node       string `json:"node" cbor:"1,keyasint"`
	Role       string `json:"role" cbor:"2,keyasint"` // primary, copy or ref
	State      string `json:"state" cbor:"3,keyasint"`
	Where      string `json:"where" cbor:"4,keyasint"`
	Size       int64  `json:"size" cbor:"5,keyasint"`
	LocalRefs  int    `json:"local_refs" cbor:"6,keyasint"`
	Views      int    `json:"views" cbor:"7,keyasint"`
	CapturedIn int    `json:"captured_in" cbor:"8,keyasint"`
	// Calls and CallFunction: as ObjectRow's (live calls holding it as an
	// argument).
	Calls        int    `json:"calls" cbor:"9,keyasint"`
	CallFunction string `json:"call_function,omitempty" cbor:"10,keyasint"`
}

// Holding is a node holding some or all of an object's bytes, as its owner
// knows it: a sealed copy, or one still being pulled (chunks of of).
type Holding struct {
	Node   string `json:"node" cbor:"1,keyasint"`
	Full   bool   `json:"full" cbor:"2,keyasint"`
	Chunks int    `json:"chunks,omitempty" cbor:"3,keyasint"`
	Of     int    `json:"of,omitempty" cbor:"4,keyasint"`
}

// BorrowingNode is a node that borrows an object from its owner.
type BorrowingNode struct {
	Node          string `json:"node" cbor:"1,keyasint"`
	Registrations int    `json:"registrations" cbor:"2,keyasint"`
	Copy          bool   `json:"copy" cbor:"3,keyasint"`
}

// here is what one node knows of one object.
type here struct {
	Found            bool            `cbor:"1,keyasint"`
	Copy             ObjectCopy      `cbor:"2,keyasint"`
	Contains         []string        `cbor:"3,keyasint"` // IDs, at most engine.MaxInspectRefs
	ContainsCount    int             `cbor:"4,keyasint"`
	ContainedBy      []string        `cbor:"5,keyasint"`
	ContainedByCount int             `cbor:"6,keyasint"`
	Owner            bool            `cbor:"7,keyasint"` // this node owns it: Holders and Borrowers are set
	Holders          []Holding       `cbor:"8,keyasint"`
	Borrowers        []BorrowingNode `cbor:"9,keyasint"`
}

// inspect says what this node knows of id.
func (s source) inspect(id trove.ObjectID) here {
	d, ok := s.st.Inspect(id)
	if !ok {
		return here{}
	}
	r := s.row(d.ObjectInfo)
	h := here{Found: true, Copy: ObjectCopy{Node: s.name, Role: r.Role, State: r.State, Where: r.Where, Size: r.Size,
		LocalRefs: r.LocalRefs, Views: r.Views, CapturedIn: r.CapturedIn, Calls: r.Calls, CallFunction: r.CallFunction},
		ContainsCount: d.ContainsCount, ContainedByCount: d.ContainedByCount}
	for _, c := range d.Contains {
		h.Contains = append(h.Contains, c.String())
	}
	for _, c := range d.ContainedBy {
		h.ContainedBy = append(h.ContainedBy, c.String())
	}
	if id.Node() == s.st.Node() {
		h.Owner = true
		if s.node == nil {
			h.Holders = []Holding{{Node: s.name, Full: d.State != "pending"}}
		} else {
			for _, x := range s.node.Holders(id) {
				h.Holders = append(h.Holders, Holding{Node: x.Node, Full: x.Full, Chunks: x.Chunks, Of: x.Of})
			}
			for _, b := range s.node.Borrowers(id) {
				h.Borrowers = append(h.Borrowers, BorrowingNode{Node: cmp.Or(b.Node, b.ID.String()), Registrations: b.Registrations, Copy: b.Copy})
			}
		}
	}
	return h
}

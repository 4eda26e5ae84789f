package cluster

import (
	"github.com/trovedb/trove"
)

// What a node knows of the objects it owns, for displays (the dashboard):
// which nodes borrow each. Not for hot paths: each call takes one shard lock
// of the owner table.

// Borrower is a node that borrows an object this node owns.
type Borrower struct {
	Node, Addr    string // its name and cluster address, as the membership knows them ("" if gone)
	ID            trove.NodeID
	Registrations int  // its borrows not yet released
	Copy          bool // it told the owner it holds a sealed copy
}

// Borrowers lists the nodes borrowing id, an object this node owns (nil for
// one no other node borrows, or one it does not own).
func (n *Node) Borrowers(id trove.ObjectID) []Borrower {
	if id.Node() != n.self {
		return nil
	}
	var bs []borrower
	sh := n.own.shard(id)
	sh.mu.Lock()
	if m := sh.m[id]; m != nil {
		m.each(func(b *borrower) { bs = append(bs, *b) })
	}
	sh.mu.Unlock()
	out := make([]Borrower, 0, len(bs))
	for _, b := range bs {
		m, _ := n.members.Lookup(b.node)
		out = append(out, Borrower{Node: m.Name, Addr: m.Addr, ID: b.node, Registrations: int(b.count), Copy: b.copy})
	}
	return out
}

// BorrowerCounts reports, for id (an object this node owns), how many nodes
// borrow it and how many of them hold a sealed copy; zeros for any other.
// It allocates nothing, for listings that ask it of every object.
func (n *Node) BorrowerCounts(id trove.ObjectID) (borrowers, copies int) {
	if id.Node() != n.self {
		return 0, 0
	}
	sh := n.own.shard(id)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if m := sh.m[id]; m != nil {
		m.each(func(b *borrower) {
			borrowers++
			if b.copy {
				copies++
			}
		})
	}
	return borrowers, copies
}

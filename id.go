package trove

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"fmt"
)

// NodeID names a node: the store that creates an object is its owner, and its
// NodeID is part of every ObjectID it mints. A store picks a random NodeID when it
// opens, so IDs from different stores, or from one store opened twice, never collide.
type NodeID [8]byte

// NewNodeID returns a random, non-zero NodeID.
func NewNodeID() NodeID {
	var n NodeID
	for n == (NodeID{}) {
		_, _ = rand.Read(n[:]) // crypto/rand.Read never fails on Linux (Go ≥ 1.24).
	}
	return n
}

// String returns the node ID as 16 hex digits.
func (n NodeID) String() string { return hex.EncodeToString(n[:]) }

// ObjectID names one object, cluster-wide: the owner node's ID followed by a
// sequence number unique within that node's lifetime. The zero ObjectID names nothing.
type ObjectID [16]byte

// ObjectIDLen is the length of an ObjectID in bytes; its String form is twice that.
const ObjectIDLen = len(ObjectID{})

// NewObjectID builds the ID of the seq'th object owned by node.
func NewObjectID(node NodeID, seq uint64) ObjectID {
	var id ObjectID
	copy(id[:8], node[:])
	binary.BigEndian.PutUint64(id[8:], seq)
	return id
}

// Node returns the ID of the node that owns the object.
func (id ObjectID) Node() NodeID { return NodeID(id[:8]) }

// Seq returns the object's sequence number within its owner node.
func (id ObjectID) Seq() uint64 { return binary.BigEndian.Uint64(id[8:]) }

// IsZero reports whether id is the zero ObjectID, which names no object.
func (id ObjectID) IsZero() bool { return id == ObjectID{} }

// String returns the ID as 32 lower-case hex digits, the form ParseObjectID reads.
func (id ObjectID) String() string { return hex.EncodeToString(id[:]) }

// ParseObjectID parses the 32-hex-digit form printed by ObjectID.String.
func ParseObjectID(s string) (ObjectID, error) {
	var id ObjectID
	if len(s) != 2*ObjectIDLen {
		return id, fmt.Errorf("parse object ID %q: want %d hex digits, got %d", s, 2*ObjectIDLen, len(s))
	}
	if _, err := hex.Decode(id[:], []byte(s)); err != nil {
		return ObjectID{}, fmt.Errorf("parse object ID %q: %w", s, err)
	}
	return id, nil
}

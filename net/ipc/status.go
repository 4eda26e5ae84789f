package ipc

import (
	"cmp"
	"context"
	"fmt"
	"os"
	"slices"
	"time"

	"github.com/trovedb/trove"
	"github.com/trovedb/trove/engine"
)

// Status is the daemon's state, as `trove status` shows it.
type Status struct {
	Daemon  DaemonInfo
	Store   engine.Stats
	Server  ServerStats
	Clients []ClientInfo
	// Members lists the cluster's members when the daemon is a cluster node
	// (ServerConfig.Cluster); nil for a single-node daemon. Added in the same
	// protocol version: an older client ignores it.
	Members []MemberInfo `cbor:",omitempty"`
	// ClusterStats are the node's cluster counters and gauges (cluster.Stats,
	// field by field, in its order) when the daemon is a cluster node; nil
	// otherwise. Added in the same protocol version: an older client ignores
	// it.
	ClusterStats []ClusterStat `cbor:",omitempty"`
	// Workers lists the worker processes attached to the daemon that run
	// remote functions (a cluster node's task runtime, through
	// Server.SetWorkers), by connection ID; nil when none is attached or
	// the daemon runs no task runtime. Added in the same protocol version:
	// an older client ignores it.
	Workers []WorkerInfo `cbor:",omitempty"`
}

// WorkerInfo is one worker process attached to the daemon.
type WorkerInfo struct {
	ConnID    uint64 // its connection (ClientInfo.ID)
	PID       int
	Name      string
	Functions int // functions it registered
	Slots     int // calls it runs at once
	Busy      int // calls given to it and not yet reported
}

// ClusterStat is one field of a cluster node's counters.
type ClusterStat struct {
	Name    string // snake_case: remote_gets, bytes_in, ...
	Value   int64
	Counter bool // a count since the node started; otherwise a figure of now
}

// MemberInfo is one cluster member as the daemon's node sees it.
type MemberInfo struct {
	Name     string
	ID       string // its node ID, the owner part of the object IDs it mints
	Addr     string // its cluster address, host:port
	State    string // alive, suspect, dead or left
	Capacity int64
	Used     int64
	Updated  time.Time // when this view of the member last changed
	Self     bool      // the daemon's own node
	// Slots and Resources: what it offers remote functions (its CPU slots,
	// and each resource's total and free amounts), as gossiped; zero and
	// nil when it runs none. Added in the same protocol version.
	Slots     int            `cbor:",omitempty"`
	Resources []ResourceInfo `cbor:",omitempty"`
}

// ResourceInfo is one resource a member offers remote functions.
type ResourceInfo struct {
	Name        string
	Total, Free float64
}

// Cluster is what the server of a cluster node's store asks of the cluster
// (troved passes its cluster.Node through an adapter; ipc does not import
// cluster).
type Cluster interface {
	Members() []MemberInfo
	// Stats are the node's cluster counters, for Status.
	Stats() []ClusterStat
	// Objects lists every alive member's objects, at most limit per node.
	Objects(ctx context.Context, limit int) (ClusterMemory, error)
}

// ClusterMemory is `trove memory -cluster`: every member's objects.
type ClusterMemory struct {
	Nodes []NodeMemory
}

// NodeMemory is one member's objects, largest first.
type NodeMemory struct {
	Name, ID, Addr string
	Self           bool
	Total          int   // objects on the node; more than len(Objects) when the limit cut the list
	Bytes          int64 // of the objects listed
	Objects        []ClusterObject
	Err            string // why the member could not be asked ("" if it was)
}

// ClusterObject is one object a member holds.
type ClusterObject struct {
	ID         string
	Size       int64
	Refs, Pins int
	Copy       bool   // a secondary copy of an object another node owns
	Where      string // heap, memory, spilled, mapped from disk, or -
}

// DaemonInfo identifies the daemon.
type DaemonInfo struct {
	PID     int
	Socket  string
	Version string
	Started time.Time
	Node    string // the node ID minted into its objects' IDs
	// HTTP is the host:port of the daemon's /metrics and /debug/pprof/
	// (ServerConfig.HTTP; "" when it serves none). Added in the same
	// protocol version: an older daemon leaves it empty.
	HTTP string `cbor:",omitempty"`
}

// ClientInfo is one connected client.
type ClientInfo struct {
	ID        uint64
	PID       int
	Name      string
	Connected time.Time
	Refs      int // objects it references
	Views     int // views it has not released
	Builders  int // objects it is writing
}

// MemoryReport is `trove memory`: what holds each object, like `ray memory`.
type MemoryReport struct {
	Rows   []MemoryRow
	Totals MemoryTotals
}

// Reference kinds in a MemoryRow.
const (
	KindLocalRef = "local ref"          // a process holds a ref
	KindPinned   = "pinned by view"     // a process reads it (a view from Get)
	KindCaptured = "captured in object" // another stored object contains its ref
	KindPending  = "pending"            // being written (Create before Seal)
	KindKept     = "kept"               // kept by the daemon for `trove put`
	KindStore    = "store"              // held inside the store only (e.g. an embedded user)
)

// MemoryRow is one holder of one object.
type MemoryRow struct {
	ID    string // the object's ID, hex
	PID   int    // the process holding it; 0 for the daemon or the store
	Owner string // "1234 loadgen", "troved", "store"
	Kind  string // one of the Kind constants
	Count int    // handles, views or containing objects of that kind
	Size  int64
	Where string // heap (small, inline), memory, spilled, mapped from disk, or -
}

// MemoryTotals sums a MemoryReport over objects (not rows: an object held in
// several ways has several rows).
type MemoryTotals struct {
	Objects  int
	Rows     int
	Bytes    int64 // of all objects
	InMemory int64 // of objects in memory (heap, arena or mapped)
	Spilled  int64 // of objects on disk only
	Pinned   int64 // of objects some view pins
}

func (s *Server) status() Status {
	st := Status{
		Daemon: DaemonInfo{PID: os.Getpid(), Version: s.cfg.Version, Started: s.started, Node: s.st.Node().String(), HTTP: s.cfg.HTTP},
		Store:  s.st.Stats(),
		Server: s.Stats(),
	}
	if s.cfg.Cluster != nil {
		st.Members = s.cfg.Cluster.Members()
		st.ClusterStats = s.cfg.Cluster.Stats()
	}
	s.mu.Lock()
	st.Daemon.Socket = s.mu.path
	workers := s.mu.workers
	conns := make([]*conn, 0, len(s.mu.conns))
	for c := range s.mu.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	for _, c := range conns {
		if !c.hello.Load() {
			continue
		}
		c.mu.Lock()
		ci := ClientInfo{ID: c.id, PID: c.pid, Name: c.name, Connected: c.connected,
			Refs: len(c.mu.refs), Views: len(c.mu.views), Builders: len(c.mu.builders)}
		c.mu.Unlock()
		st.Clients = append(st.Clients, ci)
	}
	slices.SortFunc(st.Clients, func(a, b ClientInfo) int { return cmp.Compare(a.ID, b.ID) })
	if workers != nil {
		st.Workers = workers()
		slices.SortFunc(st.Workers, func(a, b WorkerInfo) int { return cmp.Compare(a.ConnID, b.ConnID) })
	}
	return st
}

// SetWorkers makes f the source of Status's workers (the task runtime
// serving workers on this server; nil: none). f is called without the
// server's locks held and must not block for long.
func (s *Server) SetWorkers(f func() []WorkerInfo) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.mu.workers = f
}

// memory lists every object and what holds it.
func (s *Server) memory() MemoryReport {
	var rep MemoryReport
	objects := make(map[trove.ObjectID]engine.ObjectInfo)
	for info := range s.st.Objects() {
		objects[info.ID] = info
		rep.Totals.Objects++
		rep.Totals.Bytes += info.Size
		switch info.Where {
		case "heap", "memory", "mapped from disk":
			rep.Totals.InMemory += info.Size
		case "spilled":
			rep.Totals.Spilled += info.Size
		}
		if info.Pins > 0 {
			rep.Totals.Pinned += info.Size
		}
	}
	// accounted counts the refs and pins the rows explain, so that what is left
	// (an embedding program's own refs) shows as held by the store.
	type counts struct{ refs, pins int }
	accounted := make(map[trove.ObjectID]*counts)
	account := func(id trove.ObjectID) *counts {
		a := accounted[id]
		if a == nil {
			a = &counts{}
			accounted[id] = a
		}
		return a
	}
	row := func(id trove.ObjectID, pid int, owner, kind string, n int) {
		info, ok := objects[id]
		if !ok {
			return // freed since the listing
		}
		rep.Rows = append(rep.Rows, MemoryRow{ID: id.String(), PID: pid, Owner: owner, Kind: kind, Count: n, Size: info.Size, Where: info.Where})
	}
	s.mu.Lock()
	conns := make([]*conn, 0, len(s.mu.conns))
	for c := range s.mu.conns {
		conns = append(conns, c)
	}
	for id := range s.mu.kept {
		row(id, os.Getpid(), "troved", KindKept, 1)
		account(id).refs++
	}
	s.mu.Unlock()
	for _, c := range conns {
		if !c.hello.Load() {
			continue // nothing held before the handshake
		}
		owner := fmt.Sprintf("%d %s", c.pid, c.name)
		c.mu.Lock()
		for id, h := range c.mu.refs {
			kind := KindLocalRef
			if c.mu.builders[id] != nil {
				kind = KindPending
			}
			row(id, c.pid, owner, kind, h.n)
			a := account(id)
			a.refs++ // one engine ref for all of the client's handles
			if kind == KindPending {
				a.refs++ // the open builder's
			}
		}
		pins := make(map[trove.ObjectID]int)
		for _, v := range c.mu.views {
			pins[v.ID()]++
		}
		c.mu.Unlock()
		for id, n := range pins {
			row(id, c.pid, owner, KindPinned, n)
			account(id).pins += n
		}
	}
	for id, info := range objects {
		if info.Captured > 0 {
			row(id, 0, "store", KindCaptured, info.Captured)
			account(id).refs += info.Captured
		}
		a := account(id)
		if rest := info.Refs - a.refs; rest > 0 {
			row(id, 0, "store", KindStore, rest)
		}
		if rest := info.Pins - a.pins; rest > 0 {
			row(id, 0, "store", KindPinned, rest)
		}
	}
	slices.SortFunc(rep.Rows, func(a, b MemoryRow) int {
		return cmp.Or(cmp.Compare(a.ID, b.ID), cmp.Compare(a.PID, b.PID), cmp.Compare(a.Kind, b.Kind))
	})
	rep.Totals.Rows = len(rep.Rows)
	return rep
}

package main

import (
	"strings"
	"time"

	"github.com/trovedb/trove/engine"
	"github.com/trovedb/trove/net/ipc"
)

// The --json outputs. They are the CLI's own types, not ipc's or engine's
// marshalled as they are, so that every key is snake_case and the schema
// (docs/cli.md) changes only when the CLI means it to. Sizes are bytes,
// durations seconds, times RFC 3339.

// statusJSON is `trove status --json`.
type statusJSON struct {
	Daemon  daemonJSON   `json:"daemon"`
	Store   storeJSON    `json:"store"`
	Server  serverJSON   `json:"server"`
	Clients []clientJSON `json:"clients"`
	// Members is the cluster's members when the daemon is a cluster node
	// (troved -listen); absent for a single-node daemon.
	Members []memberJSON `json:"members,omitempty"`
	// Cluster is the node's cluster counters and gauges by name (every field
	// of cluster.Stats) when the daemon is a cluster node; absent otherwise.
	Cluster map[string]int64 `json:"cluster,omitempty"`
	// Workers is the worker processes attached to the daemon that run
	// remote functions (a cluster node's); absent when there are none.
	Workers []workerJSON `json:"workers,omitempty"`
}

type workerJSON struct {
	ConnID    uint64 `json:"conn_id"` // its client's id (clients[].id)
	PID       int    `json:"pid"`
	Name      string `json:"name"`
	Functions int    `json:"functions"` // functions it registered
	Slots     int    `json:"slots"`     // calls it runs at once
	Busy      int    `json:"busy"`      // calls given to it, not yet reported
}

type memberJSON struct {
	Name     string    `json:"name"`
	ID       string    `json:"id"`
	Addr     string    `json:"addr"`
	State    string    `json:"state"`
	Capacity int64     `json:"capacity"`
	Used     int64     `json:"used"`
	Updated  time.Time `json:"updated"`
	Self     bool      `json:"self"`
	// Slots and Resources: what the member offers remote functions (task.Config).
	Slots     int                  `json:"slots"`
	Resources []memberResourceJSON `json:"resources,omitempty"`
}

type memberResourceJSON struct {
	Name  string  `json:"name"`
	Total float64 `json:"total"`
	Free  float64 `json:"free"`
}

type daemonJSON struct {
	PID           int       `json:"pid"`
	Socket        string    `json:"socket"`
	Version       string    `json:"version"`
	Node          string    `json:"node"`
	HTTP          string    `json:"http,omitempty"`
	Started       time.Time `json:"started"`
	UptimeSeconds float64   `json:"uptime_seconds"`
}

// storeJSON is engine.Stats, field for field.
type storeJSON struct {
	Objects        int64 `json:"objects"`
	PendingObjects int64 `json:"pending_objects"`
	ObjectBytes    int64 `json:"object_bytes"`
	InlineObjects  int64 `json:"inline_objects"`
	InlineBytes    int64 `json:"inline_bytes"`
	PinnedObjects  int64 `json:"pinned_objects"`
	PinnedBytes    int64 `json:"pinned_bytes"`
	Views          int64 `json:"views"`
	RemoteObjects  int64 `json:"remote_objects"`

	Capacity      int64   `json:"capacity"`
	Used          int64   `json:"used"`
	Free          int64   `json:"free"`
	LargestFree   int64   `json:"largest_free"`
	Fragmentation float64 `json:"fragmentation"`
	SlabBytes     int64   `json:"slab_bytes"`
	SlabFree      int64   `json:"slab_free"`
	Populated     int64   `json:"populated"`

	Puts      uint64 `json:"puts"`
	Gets      uint64 `json:"gets"`
	Frees     uint64 `json:"frees"`
	FullWaits uint64 `json:"full_waits"`
	Fetches   uint64 `json:"fetches"`

	InMemoryBytes       int64   `json:"in_memory_bytes"`
	SpilledObjects      int64   `json:"spilled_objects"`
	SpilledBytes        int64   `json:"spilled_bytes"`
	SpillFiles          int64   `json:"spill_files"`
	SpillFilesWritten   int64   `json:"spill_files_written"`
	SpillDiskBytes      int64   `json:"spill_disk_bytes"`
	Spills              int64   `json:"spills"`
	SpillBytesTotal     int64   `json:"spill_bytes_total"`
	SpillSeconds        float64 `json:"spill_seconds"`
	SpillBytesPerSec    float64 `json:"spill_bytes_per_sec"`
	Restores            int64   `json:"restores"`
	RestoreBytesTotal   int64   `json:"restore_bytes_total"`
	RestoreSeconds      float64 `json:"restore_seconds"`
	RestoreBytesPerSec  float64 `json:"restore_bytes_per_sec"`
	Evictions           int64   `json:"evictions"`
	EvictedBytes        int64   `json:"evicted_bytes"`
	FallbackAllocations int64   `json:"fallback_allocations"`
	FallbackBytes       int64   `json:"fallback_bytes"`
}

type serverJSON struct {
	Clients        int    `json:"clients"`
	Accepted       uint64 `json:"accepted"`
	Requests       uint64 `json:"requests"`
	ProtocolErrors uint64 `json:"protocol_errors"`
	BytesIn        uint64 `json:"bytes_in"`
	BytesOut       uint64 `json:"bytes_out"`
	Refs           int64  `json:"refs"`
	Views          int64  `json:"views"`
	Builders       int64  `json:"builders"`
	Kept           int    `json:"kept"`
}

type clientJSON struct {
	ID        uint64    `json:"id"`
	PID       int       `json:"pid"`
	Name      string    `json:"name"`
	Connected time.Time `json:"connected"`
	Refs      int       `json:"refs"`
	Views     int       `json:"views"`
	Builders  int       `json:"builders"`
}

func newStatusJSON(st ipc.Status, now time.Time) statusJSON {
	d, sv := st.Daemon, st.Server
	out := statusJSON{
		Daemon: daemonJSON{PID: d.PID, Socket: d.Socket, Version: d.Version, Node: d.Node, HTTP: d.HTTP, Started: d.Started,
			UptimeSeconds: now.Sub(d.Started).Seconds()},
		Store: newStoreJSON(st.Store),
		Server: serverJSON{Clients: sv.Clients, Accepted: sv.Accepted, Requests: sv.Requests, ProtocolErrors: sv.ProtocolErrors,
			BytesIn: sv.BytesIn, BytesOut: sv.BytesOut, Refs: sv.Refs, Views: sv.Views, Builders: sv.Builders, Kept: sv.Kept},
		Clients: []clientJSON{},
	}
	for _, c := range st.Clients {
		out.Clients = append(out.Clients, clientJSON{ID: c.ID, PID: c.PID, Name: c.Name, Connected: c.Connected,
			Refs: c.Refs, Views: c.Views, Builders: c.Builders})
	}
	for _, m := range st.Members {
		out.Members = append(out.Members, memberJSON{Name: m.Name, ID: m.ID, Addr: m.Addr, State: m.State,
			Capacity: m.Capacity, Used: m.Used, Updated: m.Updated, Self: m.Self, Slots: m.Slots})
		for _, r := range m.Resources {
			last := &out.Members[len(out.Members)-1]
			last.Resources = append(last.Resources, memberResourceJSON{Name: r.Name, Total: r.Total, Free: r.Free})
		}
	}
	for _, w := range st.Workers {
		out.Workers = append(out.Workers, workerJSON{ConnID: w.ConnID, PID: w.PID, Name: w.Name,
			Functions: w.Functions, Slots: w.Slots, Busy: w.Busy})
	}
	if st.ClusterStats != nil {
		out.Cluster = make(map[string]int64, len(st.ClusterStats))
		for _, s := range st.ClusterStats {
			out.Cluster[s.Name] = s.Value
		}
	}
	return out
}

func newStoreJSON(s engine.Stats) storeJSON {
	return storeJSON{
		Objects: s.Objects, PendingObjects: s.PendingObjects, ObjectBytes: s.ObjectBytes,
		InlineObjects: s.InlineObjects, InlineBytes: s.InlineBytes,
		PinnedObjects: s.PinnedObjects, PinnedBytes: s.PinnedBytes, Views: s.Views, RemoteObjects: s.RemoteObjects,

		Capacity: s.Capacity, Used: s.Used, Free: s.Free, LargestFree: s.LargestFree, Fragmentation: s.Fragmentation,
		SlabBytes: s.SlabBytes, SlabFree: s.SlabFree, Populated: s.Populated,

		Puts: s.Puts, Gets: s.Gets, Frees: s.Frees, FullWaits: s.FullWaits, Fetches: s.Fetches,

		InMemoryBytes: s.InMemoryBytes, SpilledObjects: s.SpilledObjects, SpilledBytes: s.SpilledBytes,
		SpillFiles: s.SpillFiles, SpillFilesWritten: s.SpillFilesWritten, SpillDiskBytes: s.SpillDiskBytes,
		Spills: s.Spills, SpillBytesTotal: s.SpillBytesTotal, SpillSeconds: s.SpillTime.Seconds(), SpillBytesPerSec: s.SpillThroughput,
		Restores: s.Restores, RestoreBytesTotal: s.RestoreBytesTotal, RestoreSeconds: s.RestoreTime.Seconds(),
		RestoreBytesPerSec: s.RestoreThroughput,
		Evictions:          s.Evictions, EvictedBytes: s.EvictedBytes,
		FallbackAllocations: s.FallbackAllocations, FallbackBytes: s.FallbackBytes,
	}
}

// memoryJSON is `trove memory --json`: every row (-limit shortens the table
// only) and the totals.
type memoryJSON struct {
	Rows   []memoryRowJSON `json:"rows"`
	Totals memoryTotalJSON `json:"totals"`
}

type memoryRowJSON struct {
	ID    string `json:"id"`
	PID   int    `json:"pid"`   // 0: the store itself
	Owner string `json:"owner"` // as the table shows it: "1234 loadgen", "troved", "store"
	Kind  string `json:"kind"`  // local_ref, pinned_by_view, captured_in_object, pending, kept, store
	Count int    `json:"count"`
	Size  int64  `json:"size"`
	Where string `json:"where"` // heap, memory, spilled, mapped_from_disk, none
}

type memoryTotalJSON struct {
	Objects  int   `json:"objects"`
	Rows     int   `json:"rows"`
	Bytes    int64 `json:"bytes"`
	InMemory int64 `json:"in_memory"`
	Spilled  int64 `json:"spilled"`
	Pinned   int64 `json:"pinned"`
}

func newMemoryJSON(rep ipc.MemoryReport) memoryJSON {
	out := memoryJSON{Rows: []memoryRowJSON{}}
	for _, r := range rep.Rows {
		out.Rows = append(out.Rows, memoryRowJSON{ID: r.ID, PID: r.PID, Owner: ownerOf(r), Kind: token(r.Kind),
			Count: r.Count, Size: r.Size, Where: token(r.Where)})
	}
	t := rep.Totals
	out.Totals = memoryTotalJSON{Objects: t.Objects, Rows: t.Rows, Bytes: t.Bytes, InMemory: t.InMemory, Spilled: t.Spilled, Pinned: t.Pinned}
	return out
}

// token turns a value the table prints ("pinned by view", "mapped from disk",
// "-") into a JSON word ("pinned_by_view", "mapped_from_disk", "none").
func token(s string) string {
	if s == "-" || s == "" {
		return "none"
	}
	return strings.ReplaceAll(strings.ToLower(strings.TrimSpace(s)), " ", "_")
}

// The outputs of put, get and drop.
type putJSON struct {
	ID   string `json:"id"`
	Size int64  `json:"size"`
}

type getJSON struct {
	ID   string `json:"id"`
	Size int64  `json:"size"`
	File string `json:"file"`
}

type dropJSON struct {
	ID      string `json:"id"`
	Dropped bool   `json:"dropped"`
}

// clusterMemoryJSON is `trove memory -cluster --json`.
type clusterMemoryJSON struct {
	Nodes []nodeMemoryJSON `json:"nodes"`
}

type nodeMemoryJSON struct {
	Name        string              `json:"name"`
	ID          string              `json:"id"`
	Addr        string              `json:"addr"`
	Self        bool                `json:"self"`
	Objects     int                 `json:"objects"`
	ListedBytes int64               `json:"listed_bytes"`
	Error       string              `json:"error,omitempty"`
	Listed      []clusterObjectJSON `json:"listed"`
}

type clusterObjectJSON struct {
	ID    string `json:"id"`
	Size  int64  `json:"size"`
	Copy  bool   `json:"copy"`
	Refs  int    `json:"refs"`
	Pins  int    `json:"pins"`
	Where string `json:"where"`
}

func newClusterMemoryJSON(rep ipc.ClusterMemory) clusterMemoryJSON {
	out := clusterMemoryJSON{Nodes: []nodeMemoryJSON{}}
	for _, n := range rep.Nodes {
		nj := nodeMemoryJSON{Name: n.Name, ID: n.ID, Addr: n.Addr, Self: n.Self, Objects: n.Total,
			ListedBytes: n.Bytes, Error: n.Err, Listed: []clusterObjectJSON{}}
		for _, o := range n.Objects {
			nj.Listed = append(nj.Listed, clusterObjectJSON{ID: o.ID, Size: o.Size, Copy: o.Copy, Refs: o.Refs, Pins: o.Pins,
				Where: token(o.Where)})
		}
		out.Nodes = append(out.Nodes, nj)
	}
	return out
}

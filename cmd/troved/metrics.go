package main

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/trovedb/trove/engine"
	"github.com/trovedb/trove/net/ipc"
)

// metric is one figure of the store's or the server's, read at scrape time.
type metric struct {
	desc  *prometheus.Desc
	kind  prometheus.ValueType
	value func(st *engine.Stats, srv *ipc.ServerStats) float64
}

func gauge(name, help string, v func(*engine.Stats, *ipc.ServerStats) float64) metric {
	return metric{prometheus.NewDesc(name, help, nil, nil), prometheus.GaugeValue, v}
}

func counter(name, help string, v func(*engine.Stats, *ipc.ServerStats) float64) metric {
	return metric{prometheus.NewDesc(name, help, nil, nil), prometheus.CounterValue, v}
}

// storeMetrics are engine.Stats and ipc.ServerStats as Prometheus metrics.
var storeMetrics = []metric{
	gauge("trove_capacity_bytes", "Size of the shared-memory arena.",
		func(s *engine.Stats, _ *ipc.ServerStats) float64 { return float64(s.Capacity) }),
	gauge("trove_used_bytes", "Arena bytes reserved by objects, with allocator rounding.",
		func(s *engine.Stats, _ *ipc.ServerStats) float64 { return float64(s.Used) }),
	gauge("trove_free_bytes", "Arena bytes not reserved (capacity - used).",
		func(s *engine.Stats, _ *ipc.ServerStats) float64 { return float64(s.Free) }),
	gauge("trove_largest_free_bytes", "The largest object that fits in the arena right now.",
		func(s *engine.Stats, _ *ipc.ServerStats) float64 { return float64(s.LargestFree) }),
	gauge("trove_fragmentation_ratio", "1 - largest free run / free bytes in page runs.",
		func(s *engine.Stats, _ *ipc.ServerStats) float64 { return s.Fragmentation }),
	gauge("trove_populated_bytes", "Arena bytes pre-faulted so far.",
		func(s *engine.Stats, _ *ipc.ServerStats) float64 { return float64(s.Populated) }),
	gauge("trove_objects", "Live objects, pending ones included.",
		func(s *engine.Stats, _ *ipc.ServerStats) float64 { return float64(s.Objects) }),
	gauge("trove_pending_objects", "Objects created and not yet sealed or aborted.",
		func(s *engine.Stats, _ *ipc.ServerStats) float64 { return float64(s.PendingObjects) }),
	gauge("trove_object_bytes", "Bytes of live objects, as asked for.",
		func(s *engine.Stats, _ *ipc.ServerStats) float64 { return float64(s.ObjectBytes) }),
	gauge("trove_inline_objects", "Small objects kept in the daemon's Go heap rather than the arena.",
		func(s *engine.Stats, _ *ipc.ServerStats) float64 { return float64(s.InlineObjects) }),
	gauge("trove_inline_bytes", "Bytes of inline objects.",
		func(s *engine.Stats, _ *ipc.ServerStats) float64 { return float64(s.InlineBytes) }),
	gauge("trove_in_memory_bytes", "Bytes of live objects in memory (not only on disk).",
		func(s *engine.Stats, _ *ipc.ServerStats) float64 { return float64(s.InMemoryBytes) }),
	gauge("trove_pinned_objects", "Objects with at least one unreleased view.",
		func(s *engine.Stats, _ *ipc.ServerStats) float64 { return float64(s.PinnedObjects) }),
	gauge("trove_pinned_bytes", "Bytes of objects pinned by views (they cannot be spilled).",
		func(s *engine.Stats, _ *ipc.ServerStats) float64 { return float64(s.PinnedBytes) }),
	gauge("trove_views", "Unreleased views, in the daemon and its clients.",
		func(s *engine.Stats, _ *ipc.ServerStats) float64 { return float64(s.Views) }),
	gauge("trove_spilled_objects", "Live objects only on disk.",
		func(s *engine.Stats, _ *ipc.ServerStats) float64 { return float64(s.SpilledObjects) }),
	gauge("trove_spilled_bytes", "Bytes of live objects only on disk.",
		func(s *engine.Stats, _ *ipc.ServerStats) float64 { return float64(s.SpilledBytes) }),
	gauge("trove_spill_files", "Spill files on disk.",
		func(s *engine.Stats, _ *ipc.ServerStats) float64 { return float64(s.SpillFiles) }),
	gauge("trove_spill_disk_bytes", "Bytes in spill files, live or not yet deleted.",
		func(s *engine.Stats, _ *ipc.ServerStats) float64 { return float64(s.SpillDiskBytes) }),
	gauge("trove_fallback_bytes", "Bytes of restored objects mapped from their spill files because memory was full.",
		func(s *engine.Stats, _ *ipc.ServerStats) float64 { return float64(s.FallbackBytes) }),

	counter("trove_puts_total", "Objects created (Put, PutFunc, Create).",
		func(s *engine.Stats, _ *ipc.ServerStats) float64 { return float64(s.Puts) }),
	counter("trove_gets_total", "Views handed out.",
		func(s *engine.Stats, _ *ipc.ServerStats) float64 { return float64(s.Gets) }),
	counter("trove_frees_total", "Objects freed.",
		func(s *engine.Stats, _ *ipc.ServerStats) float64 { return float64(s.Frees) }),
	counter("trove_full_waits_total", "Times a creator had to wait for room.",
		func(s *engine.Stats, _ *ipc.ServerStats) float64 { return float64(s.FullWaits) }),
	counter("trove_spills_total", "Objects written out to spill files.",
		func(s *engine.Stats, _ *ipc.ServerStats) float64 { return float64(s.Spills) }),
	counter("trove_spill_bytes_total", "Bytes written out to spill files.",
		func(s *engine.Stats, _ *ipc.ServerStats) float64 { return float64(s.SpillBytesTotal) }),
	counter("trove_spill_seconds_total", "Time spent writing spill files.",
		func(s *engine.Stats, _ *ipc.ServerStats) float64 { return s.SpillTime.Seconds() }),
	counter("trove_spill_files_written_total", "Spill files written, one per batch.",
		func(s *engine.Stats, _ *ipc.ServerStats) float64 { return float64(s.SpillFilesWritten) }),
	counter("trove_restores_total", "Objects read back from spill files.",
		func(s *engine.Stats, _ *ipc.ServerStats) float64 { return float64(s.Restores) }),
	counter("trove_restore_bytes_total", "Bytes read back from spill files.",
		func(s *engine.Stats, _ *ipc.ServerStats) float64 { return float64(s.RestoreBytesTotal) }),
	counter("trove_restore_seconds_total", "Time spent reading spill files.",
		func(s *engine.Stats, _ *ipc.ServerStats) float64 { return s.RestoreTime.Seconds() }),
	counter("trove_evictions_total", "Secondary copies evicted.",
		func(s *engine.Stats, _ *ipc.ServerStats) float64 { return float64(s.Evictions) }),
	counter("trove_evicted_bytes_total", "Bytes of secondary copies evicted.",
		func(s *engine.Stats, _ *ipc.ServerStats) float64 { return float64(s.EvictedBytes) }),
	counter("trove_fallback_allocations_total", "Restores that mapped a spill file because memory was full.",
		func(s *engine.Stats, _ *ipc.ServerStats) float64 { return float64(s.FallbackAllocations) }),

	gauge("trove_clients", "Processes connected to the daemon now.",
		func(_ *engine.Stats, c *ipc.ServerStats) float64 { return float64(c.Clients) }),
	gauge("trove_client_refs", "Objects referenced on behalf of clients now.",
		func(_ *engine.Stats, c *ipc.ServerStats) float64 { return float64(c.Refs) }),
	gauge("trove_client_views", "Views pinned on behalf of clients now.",
		func(_ *engine.Stats, c *ipc.ServerStats) float64 { return float64(c.Views) }),
	gauge("trove_client_builders", "Unsealed objects clients are writing now.",
		func(_ *engine.Stats, c *ipc.ServerStats) float64 { return float64(c.Builders) }),
	gauge("trove_kept_objects", "Objects the daemon keeps for `trove put` until `trove drop`.",
		func(_ *engine.Stats, c *ipc.ServerStats) float64 { return float64(c.Kept) }),
	counter("trove_ipc_connections_total", "Client connections accepted.",
		func(_ *engine.Stats, c *ipc.ServerStats) float64 { return float64(c.Accepted) }),
	counter("trove_ipc_requests_total", "Requests received from clients.",
		func(_ *engine.Stats, c *ipc.ServerStats) float64 { return float64(c.Requests) }),
	counter("trove_ipc_protocol_errors_total", "Client connections closed for a malformed or oversized message.",
		func(_ *engine.Stats, c *ipc.ServerStats) float64 { return float64(c.ProtocolErrors) }),
	counter("trove_ipc_stalled_frames_total", "Client connections closed for stopping in the middle of a frame for longer than the frame timeout.",
		func(_ *engine.Stats, c *ipc.ServerStats) float64 { return float64(c.StalledFrames) }),
	counter("trove_ipc_bytes_in_total", "Bytes received on the socket (object bytes in shared memory never cross it).",
		func(_ *engine.Stats, c *ipc.ServerStats) float64 { return float64(c.BytesIn) }),
	counter("trove_ipc_bytes_out_total", "Bytes sent on the socket (object bytes in shared memory never cross it).",
		func(_ *engine.Stats, c *ipc.ServerStats) float64 { return float64(c.BytesOut) }),
}

// collector reads the store's and the server's figures at each scrape, so the
// metrics cost nothing between scrapes and are never stale.
type collector struct {
	st        *engine.Store
	srv       *ipc.Server
	buildInfo *prometheus.Desc
	version   string
}

func newCollector(st *engine.Store, srv *ipc.Server, version string) *collector {
	return &collector{st: st, srv: srv, version: version,
		buildInfo: prometheus.NewDesc("trove_build_info", "Always 1; the daemon's version and node ID are labels.", []string{"version", "node"}, nil)}
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, m := range storeMetrics {
		ch <- m.desc
	}
	ch <- c.buildInfo
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	st, srv := c.st.Stats(), c.srv.Stats()
	for _, m := range storeMetrics {
		ch <- prometheus.MustNewConstMetric(m.desc, m.kind, m.value(&st, &srv))
	}
	ch <- prometheus.MustNewConstMetric(c.buildInfo, prometheus.GaugeValue, 1, c.version, c.st.Node().String())
}

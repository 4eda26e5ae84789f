package main

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/trovedb/trove/cluster"
	"github.com/trovedb/trove/engine"
	"github.com/trovedb/trove/net/ipc"
)

// openNode opens the cluster node troved runs with -listen: its local store
// (what the ipc server serves; its Remote is the cluster, so foreign IDs work
// through the socket) is configured as the single-node daemon's would be.
// certs is the credentials directory (nodeCredentials).
func openNode(ctx context.Context, cfg config, certs string, scfg engine.Config, logger *slog.Logger) (*cluster.Node, error) {
	n, err := cluster.Open(ctx, cluster.Config{
		Store: scfg, Name: cfg.Name, Listen: cfg.Listen, Join: cfg.Join,
		CertsDir: certs, Insecure: cfg.Insecure,
		RequestTimeout: cfg.RequestTimeout, ProbeInterval: cfg.ProbeInterval, ProbeTimeout: cfg.ProbeTimeout,
		GossipInterval: cfg.GossipInterval, SuspicionMult: cfg.SuspicionMult,
		PullSources: cfg.PullSources, Logger: logger,
	})
	if err != nil {
		return nil, fmt.Errorf("cluster node on %s (-listen): %w", cfg.Listen, err)
	}
	return n, nil
}

// clusterView is a cluster.Node as the ipc server's ipc.Cluster.
type clusterView struct{ n *cluster.Node }

func (v clusterView) Members() []ipc.MemberInfo {
	ms := v.n.Members()
	out := make([]ipc.MemberInfo, len(ms))
	for i, m := range ms {
		out[i] = ipc.MemberInfo{Name: m.Name, ID: m.ID.String(), Addr: m.Addr, State: m.State.String(),
			Capacity: m.Capacity, Used: m.Used, Updated: m.Updated, Self: m.ID == v.n.ID(),
			Slots: m.Slots, Resources: resourceInfos(m.Resources)}
	}
	return out
}

// resourceInfos is what a member offers remote functions, for ipc.MemberInfo.
func resourceInfos(rs cluster.Resources) []ipc.ResourceInfo {
	var out []ipc.ResourceInfo
	for _, r := range rs.All() {
		out = append(out, ipc.ResourceInfo{Name: r.Name, Total: r.Total, Free: r.Free})
	}
	return out
}

// Stats are the node's cluster.Stats, every field by name, for trove status.
func (v clusterView) Stats() []ipc.ClusterStat {
	fs := v.n.Stats().Fields()
	out := make([]ipc.ClusterStat, len(fs))
	for i, f := range fs {
		out[i] = ipc.ClusterStat{Name: f.Name, Value: f.Value, Counter: f.Counter}
	}
	return out
}

// clusterMetrics are cluster.Stats as Prometheus metrics, one per field
// (TestClusterMetricsCoverStats checks that none is missing): counters are
// trove_cluster_*_total.
var clusterMetrics = []struct {
	desc  *prometheus.Desc
	kind  prometheus.ValueType
	value func(*cluster.Stats) float64
}{
	{prometheus.NewDesc("trove_cluster_members_alive", "Cluster members this node sees alive, itself included.", nil, nil),
		prometheus.GaugeValue, func(s *cluster.Stats) float64 { return float64(s.MembersAlive) }},
	{prometheus.NewDesc("trove_cluster_owned_borrowed_objects", "Objects this node owns that other nodes borrow.", nil, nil),
		prometheus.GaugeValue, func(s *cluster.Stats) float64 { return float64(s.OwnedBorrowed) }},
	{prometheus.NewDesc("trove_cluster_remote_gets_total", "Fetches of objects owned by other nodes (concurrent Gets of one object share one).", nil, nil),
		prometheus.CounterValue, func(s *cluster.Stats) float64 { return float64(s.RemoteGets) }},
	{prometheus.NewDesc("trove_cluster_remote_inline_total", "Remote fetches answered inline by the owner (small objects).", nil, nil),
		prometheus.CounterValue, func(s *cluster.Stats) float64 { return float64(s.RemoteInline) }},
	{prometheus.NewDesc("trove_cluster_small_cache_hits_total", "Remote fetches of small objects served from the node's small-object cache, asking nobody.", nil, nil),
		prometheus.CounterValue, func(s *cluster.Stats) float64 { return float64(s.CacheHits) }},
	{prometheus.NewDesc("trove_cluster_pulls_total", "Remote fetches pulled in chunks from holders (large objects).", nil, nil),
		prometheus.CounterValue, func(s *cluster.Stats) float64 { return float64(s.Pulls) }},
	{prometheus.NewDesc("trove_cluster_fetch_errors_total", "Remote fetches that failed (owner died, object lost, node unreachable, caller's deadline passed).", nil, nil),
		prometheus.CounterValue, func(s *cluster.Stats) float64 { return float64(s.FetchErrors) }},
	{prometheus.NewDesc("trove_cluster_fetches_cancelled_total", "Remote fetches abandoned because every Get waiting on them was cancelled (Wait's num_returns met): not errors.", nil, nil),
		prometheus.CounterValue, func(s *cluster.Stats) float64 { return float64(s.FetchesCancelled) }},
	{prometheus.NewDesc("trove_cluster_bytes_in_total", "Object bytes received from other nodes.", nil, nil),
		prometheus.CounterValue, func(s *cluster.Stats) float64 { return float64(s.BytesIn) }},
	{prometheus.NewDesc("trove_cluster_bytes_out_total", "Object bytes served to other nodes.", nil, nil),
		prometheus.CounterValue, func(s *cluster.Stats) float64 { return float64(s.BytesOut) }},
	{prometheus.NewDesc("trove_cluster_borrowing_objects", "Objects owned by other nodes that this node borrows.", nil, nil),
		prometheus.GaugeValue, func(s *cluster.Stats) float64 { return float64(s.Borrowing) }},
	{prometheus.NewDesc("trove_cluster_owed_updates", "Releases and new copies not yet sent to their owners.", nil, nil),
		prometheus.GaugeValue, func(s *cluster.Stats) float64 { return float64(s.OwedUpdates) }},
	{prometheus.NewDesc("trove_cluster_futures", "This node's futures (task results) still referenced.", nil, nil),
		prometheus.GaugeValue, func(s *cluster.Stats) float64 { return float64(s.Futures) }},
	{prometheus.NewDesc("trove_cluster_results", "Results this node stores for other nodes' futures.", nil, nil),
		prometheus.GaugeValue, func(s *cluster.Stats) float64 { return float64(s.Results) }},
	{prometheus.NewDesc("trove_cluster_chunks_pulled_total", "Chunks of large objects pulled into this node.", nil, nil),
		prometheus.CounterValue, func(s *cluster.Stats) float64 { return float64(s.ChunksPulled) }},
	{prometheus.NewDesc("trove_cluster_partial_chunks_served_total", "Chunks served from copies this node was still pulling.", nil, nil),
		prometheus.CounterValue, func(s *cluster.Stats) float64 { return float64(s.PartialChunksServed) }},
	{prometheus.NewDesc("trove_cluster_multi_source_pulls_total", "Pulls that took chunks from more than one holder.", nil, nil),
		prometheus.CounterValue, func(s *cluster.Stats) float64 { return float64(s.MultiSourcePulls) }},
	{prometheus.NewDesc("trove_cluster_chunks_refused_busy_total", "Chunk requests this node refused while serving ServeSlots chunks with ServeQueue more waiting.", nil, nil),
		prometheus.CounterValue, func(s *cluster.Stats) float64 { return float64(s.ChunksRefusedBusy) }},
	{prometheus.NewDesc("trove_cluster_pulls_busy_refusals_total", "Chunk pulls a busy holder refused; the chunk was asked again of another holder or later.", nil, nil),
		prometheus.CounterValue, func(s *cluster.Stats) float64 { return float64(s.PullsBusyRefusals) }},
	{prometheus.NewDesc("trove_cluster_pull_holder_failures_total", "Chunk pulls that failed (a holder died, slowed or failed mid-chunk); the chunk was asked of another.", nil, nil),
		prometheus.CounterValue, func(s *cluster.Stats) float64 { return float64(s.PullHolderFailures) }},
	{prometheus.NewDesc("trove_cluster_pull_refreshes_total", "As an owner: pulls' refreshes of their objects' locations served.", nil, nil),
		prometheus.CounterValue, func(s *cluster.Stats) float64 { return float64(s.PullRefreshes) }},
	{prometheus.NewDesc("trove_cluster_pulls_in_progress", "Swarm pulls under way on this node (serving the chunks they have).", nil, nil),
		prometheus.GaugeValue, func(s *cluster.Stats) float64 { return float64(s.PullsInProgress) }},
}

// clusterCollector reads the node's cluster.Stats at each scrape.
type clusterCollector struct{ n *cluster.Node }

func (c clusterCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, m := range clusterMetrics {
		ch <- m.desc
	}
}

func (c clusterCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.n.Stats()
	for _, m := range clusterMetrics {
		ch <- prometheus.MustNewConstMetric(m.desc, m.kind, m.value(&s))
	}
}

func (v clusterView) Objects(ctx context.Context, limit int) (ipc.ClusterMemory, error) {
	list, err := v.n.ClusterObjects(ctx, min(limit, cluster.MaxListing))
	if err != nil {
		return ipc.ClusterMemory{}, err
	}
	var rep ipc.ClusterMemory
	for _, no := range list {
		nm := ipc.NodeMemory{Name: no.Member.Name, ID: no.Member.ID.String(), Addr: no.Member.Addr,
			Self: no.Member.ID == v.n.ID(), Total: no.Total}
		if no.Err != nil {
			nm.Err = no.Err.Error()
		}
		for _, e := range no.Objects {
			nm.Bytes += e.Size
			nm.Objects = append(nm.Objects, ipc.ClusterObject{ID: e.ID.String(), Size: e.Size, Refs: e.Refs, Pins: e.Pins, Copy: e.Copy, Where: e.Where})
		}
		rep.Nodes = append(rep.Nodes, nm)
	}
	return rep, nil
}

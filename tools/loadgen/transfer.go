package main

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/HdrHistogram/hdrhistogram-go"

	"github.com/trovedb/trove"
	"github.com/trovedb/trove/cluster"
	"github.com/trovedb/trove/net/ipc"
)

// nodeInfo is what loadgen reads of a cluster node besides its store's
// figures: its name, where its pprof is, and its cluster counters now.
type nodeInfo struct {
	Name  string              // its cluster name ("" if the daemon is no cluster node)
	HTTP  string              // host:port of its /debug/pprof/ ("" if none, or in-process)
	Stats []cluster.StatField // every field of its cluster.Stats (nil if no cluster node)
}

// daemonNodeInfo is a daemon's nodeInfo, from its status.
func daemonNodeInfo(st ipc.Status) nodeInfo {
	ni := nodeInfo{HTTP: st.Daemon.HTTP}
	for _, m := range st.Members {
		if m.Self {
			ni.Name = m.Name
		}
	}
	for _, s := range st.ClusterStats {
		ni.Stats = append(ni.Stats, cluster.StatField{Name: s.Name, Value: s.Value, Counter: s.Counter})
	}
	return ni
}

// nodeInfos reads every target's nodeInfo (nil for a target that has none,
// with the error, if any, in errs).
func (ts targetSet) nodeInfos(ctx context.Context) (infos []*nodeInfo, errs []error) {
	infos, errs = make([]*nodeInfo, len(ts)), make([]error, len(ts))
	for i, t := range ts {
		if t.info == nil {
			continue
		}
		ni, err := t.info(ctx)
		if err != nil {
			errs[i] = err
			continue
		}
		infos[i] = &ni
	}
	return infos, errs
}

// Transfer names: the cluster.Stats fields the per-node table has a column
// for, in its order; any other field is listed after the table.
var transferColumns = []struct{ field, title string }{
	{"bytes_in", "bytes in"},
	{"bytes_out", "bytes out"},
	{"remote_gets", "remote gets"},
	{"remote_inline", "inline"},
	{"cache_hits", "cache hits"},
	{"pulls", "pulls"},
	{"fetch_errors", "fetch errors"},
}

// TransferReport (cluster runs) sets the gets that crossed nodes against
// those on the node that put the object, and sums the nodes' cluster
// counters over the run.
type TransferReport struct {
	// RemoteGet: gets on a node other than the one that put the object
	// (Borrow by ID, then Get: a transfer, inline or pulled, unless a copy
	// was there already); LocalGet: gets on the node that put it
	// (-local-gets), the same calls with no transfer. Latencies to 2
	// significant digits.
	RemoteGet OpReport `json:"remote_get"`
	LocalGet  OpReport `json:"local_get"`
	// Totals are the nodes' transfer figures (NodeReport.Transfer) summed:
	// in a cluster whose every node loadgen ran on, bytes_in equals
	// bytes_out, what borrowers received is what holders served.
	Totals map[string]int64 `json:"totals,omitempty"`
	// Errors says why a node's counters could not be read (omitted if all were).
	Errors []string `json:"errors,omitempty"`
}

// transferReport merges the workers' gets by where they ran.
func (r *runner) transferReport(secs float64) *TransferReport {
	tr := &TransferReport{}
	remote, local := hdrhistogram.New(1, r.latMax, 2), hdrhistogram.New(1, r.latMax, 2)
	for _, w := range r.workers {
		for t := range w.per {
			p := &w.per[t]
			remote.Merge(p.hist[opGet])
			local.Merge(p.localHist)
			tr.RemoteGet.Bytes += p.bytes[opGet]
			tr.RemoteGet.Errors += p.errs[opGet]
			tr.LocalGet.Bytes += p.localBytes
			tr.LocalGet.Errors += p.localErrs
		}
	}
	fillOp(&tr.RemoteGet, remote, secs)
	fillOp(&tr.LocalGet, local, secs)
	return tr
}

// addTransfers fills each node row's Transfer with its cluster counters over
// the run (after minus before; gauges as they are after) and the totals.
// before and after are nodeInfos of the same targets, in rep.Nodes order.
func (rep *Report) addTransfers(before, after []*nodeInfo, errs []error) {
	if rep.Transfer == nil {
		return
	}
	for i := range rep.Nodes {
		n := &rep.Nodes[i]
		if i < len(errs) && errs[i] != nil {
			rep.Transfer.Errors = append(rep.Transfer.Errors, fmt.Sprintf("%s: %v", n.Target, errs[i]))
		}
		if i >= len(after) || after[i] == nil || after[i].Stats == nil {
			continue
		}
		n.Node = after[i].Name
		prev := map[string]int64{}
		if i < len(before) && before[i] != nil {
			for _, f := range before[i].Stats {
				prev[f.Name] = f.Value
			}
		}
		n.Transfer = map[string]int64{}
		if rep.Transfer.Totals == nil {
			rep.Transfer.Totals = map[string]int64{}
		}
		for _, f := range after[i].Stats {
			v := f.Value
			if f.Counter {
				v -= prev[f.Name]
				rep.Transfer.Totals[f.Name] += v
			}
			n.Transfer[f.Name] = v
		}
	}
}

// writeTransfers is the table's part for TransferReport and the nodes'
// transfer figures.
func (rep *Report) writeTransfers(b *strings.Builder) {
	tr := rep.Transfer
	if tr == nil {
		return
	}
	b.WriteString("gets crossing nodes (on another node than the one that put the object) and local (on that node, -local-gets)\n")
	tw := tabwriter.NewWriter(b, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "get\tgets\tbytes\tbytes/s\tp50\tp90\tp99\tmax\terrors\t")
	for _, row := range []struct {
		name string
		o    *OpReport
	}{{"crossing", &tr.RemoteGet}, {"local", &tr.LocalGet}} {
		o := row.o
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s/s\t%s\t%s\t%s\t%s\t%d\t\n", row.name, o.Count, trove.HumanBytes(o.Bytes), trove.HumanBytes(int64(o.BytesPerSec)),
			fmtNs(o.Latency.P50, o.Count), fmtNs(o.Latency.P90, o.Count), fmtNs(o.Latency.P99, o.Count), fmtNs(o.Latency.Max, o.Count), o.Errors)
	}
	tw.Flush()
	if tr.Totals == nil {
		for _, e := range tr.Errors {
			fmt.Fprintf(b, "transfers: counters unavailable: %s\n", e)
		}
		return
	}
	b.WriteString("transfers per node (its cluster counters over the run)\n")
	tw = tabwriter.NewWriter(b, 0, 0, 2, ' ', tabwriter.AlignRight)
	head := "node\t"
	for _, c := range transferColumns {
		head += c.title + "\t"
	}
	fmt.Fprintln(tw, head)
	row := func(name string, m map[string]int64) {
		line := name + "\t"
		for _, c := range transferColumns {
			v, ok := m[c.field]
			switch {
			case !ok:
				line += "-\t"
			case strings.HasPrefix(c.field, "bytes_"):
				line += trove.HumanBytes(v) + "\t"
			default:
				line += fmt.Sprintf("%d\t", v)
			}
		}
		fmt.Fprintln(tw, line)
	}
	for _, n := range rep.Nodes {
		if n.Transfer != nil {
			row(cmp.Or(n.Node, n.Target), n.Transfer)
		}
	}
	row("total", tr.Totals)
	tw.Flush()
	// The fields with no column (a counter added to cluster.Stats, the gauges).
	known := map[string]bool{}
	for _, c := range transferColumns {
		known[c.field] = true
	}
	for _, n := range rep.Nodes {
		var extra []string
		for k, v := range n.Transfer {
			if !known[k] {
				extra = append(extra, fmt.Sprintf("%s %d", k, v))
			}
		}
		if len(extra) > 0 {
			slices.Sort(extra)
			fmt.Fprintf(b, "  %s: %s\n", cmp.Or(n.Node, n.Target), strings.Join(extra, ", "))
		}
	}
	for _, e := range tr.Errors {
		fmt.Fprintf(b, "transfers: counters unavailable: %s\n", e)
	}
}

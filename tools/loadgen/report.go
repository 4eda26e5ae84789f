package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"

	"github.com/trovedb/trove"
)

// Report is the result of a run: what the table shows, and the JSON of -json.
type Report struct {
	Targets        []string     `json:"targets"`
	Config         ReportConfig `json:"config"`
	StoppedBy      string       `json:"stopped_by"` // "duration", "ops", "interrupt", "abort"
	ElapsedSeconds float64      `json:"elapsed_seconds"`
	Ops            OpsReport    `json:"ops"`
	Errors         ErrorReport  `json:"errors"`
	Stores         []StoreState `json:"stores,omitempty"`
	// Nodes (cluster mode only) has a row per node: the puts through it, and
	// the gets and waits on it of refs other nodes own.
	Nodes []NodeReport `json:"nodes,omitempty"`
	// Transfer (cluster mode only): gets that crossed nodes against local
	// ones, and the nodes' transfer counters summed.
	Transfer *TransferReport `json:"transfer,omitempty"`
	// Profile (-profile only): the merged CPU profile written, and its top
	// functions.
	Profile *ProfileReport `json:"profile,omitempty"`
}

// NodeReport is one node's share of a cluster-mode run. Its latencies keep two
// significant digits.
type NodeReport struct {
	Target   string   `json:"target"`
	Node     string   `json:"node,omitempty"` // its cluster name, when its counters could be read
	Put      OpReport `json:"put"`            // puts through this node: it owns those objects
	Get      OpReport `json:"get"`            // gets here of objects other nodes own (Borrow by ID, Get: a transfer), verified
	LocalGet OpReport `json:"local_get"`      // gets here of objects this node put (-local-gets), verified
	Wait     OpReport `json:"wait"`           // waits here on refs other nodes own
	Errors   int64    `json:"errors"`
	// Transfer is the node's cluster counters over the run (every field of
	// cluster.Stats by name, snake_case: bytes_in, bytes_out, remote_gets,
	// remote_inline, cache_hits, pulls, fetch_errors, ...; a counter is its
	// increase during the run, a gauge its value after). Absent if they
	// could not be read (TransferReport.Errors says why).
	Transfer map[string]int64 `json:"transfer,omitempty"`
}

// ReportConfig echoes the settings of the run.
type ReportConfig struct {
	Sizes           []sizeWeight   `json:"sizes"`
	Mix             map[string]int `json:"mix"`
	Concurrency     int            `json:"concurrency"`
	DurationSeconds float64        `json:"duration_seconds"` // 0: no time limit
	OpsLimit        int64          `json:"ops_limit"`        // 0: no op limit
	WorkingSet      int64          `json:"working_set"`
	OpTimeoutSecs   float64        `json:"op_timeout_seconds"`
	WaitRefs        int            `json:"wait_refs"`
	Seed            uint64         `json:"seed"`
	Cluster         bool           `json:"cluster,omitempty"`
	LocalGets       int            `json:"local_gets,omitempty"` // cluster runs: -local-gets, percent
}

// OpsReport has a row per op kind and one for all of them.
type OpsReport struct {
	Put   OpReport `json:"put"`
	Get   OpReport `json:"get"`
	Wait  OpReport `json:"wait"`
	Total OpReport `json:"total"`
}

func (o *OpsReport) kind(k opKind) *OpReport {
	return [numOps]*OpReport{&o.Put, &o.Get, &o.Wait}[k]
}

// OpReport is the throughput and latency of one op kind. Count and the latencies
// are of successful ops; failed ones are in Errors.
type OpReport struct {
	Count       int64   `json:"count"`
	Bytes       int64   `json:"bytes"` // payload bytes written (put) or read and verified (get)
	OpsPerSec   float64 `json:"ops_per_sec"`
	BytesPerSec float64 `json:"bytes_per_sec"`
	Errors      int64   `json:"errors"`
	Latency     Latency `json:"latency_ns"`
}

// Latency percentiles in nanoseconds (to three significant digits).
type Latency struct {
	P50  int64   `json:"p50"`
	P90  int64   `json:"p90"`
	P99  int64   `json:"p99"`
	P999 int64   `json:"p99_9"`
	Max  int64   `json:"max"`
	Mean float64 `json:"mean"`
}

// ErrorReport counts failed ops by cause.
type ErrorReport struct {
	Total   int64    `json:"total"`
	Verify  int64    `json:"verify"`  // wrong bytes read back, or a wrong Wait result
	Timeout int64    `json:"timeout"` // the op's deadline passed
	Other   int64    `json:"other"`
	Aborted int64    `json:"aborted"` // ops cut short by a second SIGINT: not counted as errors
	Drain   int64    `json:"drain"`   // stores where loadgen's objects were left after the run
	Samples []string `json:"samples,omitempty"`
}

// StoreState is a store's figures after the run.
type StoreState struct {
	Target        string `json:"target"`
	Error         string `json:"error,omitempty"` // the figures could not be read
	Objects       int64  `json:"objects"`
	Used          int64  `json:"used"`
	PinnedObjects int64  `json:"pinned_objects"`
	Views         int64  `json:"views"`
	Capacity      int64  `json:"capacity"`
	Spills        int64  `json:"spills"`
	SpillBytes    int64  `json:"spill_bytes"`
	Restores      int64  `json:"restores"`
	RestoreBytes  int64  `json:"restore_bytes"`
	Fallbacks     int64  `json:"fallback_allocations"`
	FullWaits     uint64 `json:"full_waits"`
	// Drained: nothing of loadgen's is left after the run. For the embedded store,
	// the store is empty; for a daemon (whose figures include other clients'
	// objects), loadgen's connections hold no refs, views or builders there.
	Drained *bool `json:"drained,omitempty"`
	// Settled (daemons only): the figures above stopped changing within 5 s of
	// the run's end, so they are not a snapshot of the daemon still freeing.
	Settled *bool `json:"settled,omitempty"`

	// Daemons only: what loadgen's own connections still held there after the run
	// (views include builders). Both should be 0.
	ClientRefs  int64 `json:"client_refs,omitempty"`
	ClientViews int64 `json:"client_views,omitempty"`
}

// report builds the report of a finished run.
func (r *runner) report(elapsed time.Duration, stoppedBy string) *Report {
	rep := &Report{
		StoppedBy:      stoppedBy,
		ElapsedSeconds: elapsed.Seconds(),
		Config: ReportConfig{
			Sizes:           r.cfg.Sizes,
			Mix:             map[string]int{},
			Concurrency:     r.cfg.Concurrency,
			DurationSeconds: r.cfg.Duration.Seconds(),
			OpsLimit:        r.cfg.Ops,
			WorkingSet:      r.cfg.WorkingSet,
			OpTimeoutSecs:   r.cfg.OpTimeout.Seconds(),
			WaitRefs:        r.cfg.WaitRefs,
			Seed:            r.cfg.Seed,
			Cluster:         r.cfg.Cluster,
		},
	}
	if r.cfg.Cluster {
		rep.Config.LocalGets = r.cfg.LocalGets
	}
	for _, t := range r.targets {
		rep.Targets = append(rep.Targets, t.Name)
	}
	for k, w := range r.cfg.Mix {
		rep.Config.Mix[opNames[k]] = w
	}
	secs := max(elapsed.Seconds(), 1e-9)
	all := hdrhistogram.New(1, r.latMax, 3)
	for k := range numOps {
		h := hdrhistogram.New(1, r.latMax, 3)
		o := rep.Ops.kind(k)
		for _, w := range r.workers {
			h.Merge(w.hist[k])
			o.Bytes += w.bytes[k].Load()
			for c := range numErrClasses {
				n := w.errs[k][c].Load()
				o.Errors += n
				switch c {
				case errVerify:
					rep.Errors.Verify += n
				case errTimeout:
					rep.Errors.Timeout += n
				default:
					rep.Errors.Other += n
				}
			}
		}
		all.Merge(h)
		fillOp(o, h, secs)
		rep.Ops.Total.Bytes += o.Bytes
		rep.Ops.Total.Errors += o.Errors
	}
	fillOp(&rep.Ops.Total, all, secs)
	if r.cfg.Cluster {
		rep.Nodes = r.nodeReports(secs)
		rep.Transfer = r.transferReport(secs)
	}
	rep.Errors.Total = rep.Ops.Total.Errors
	rep.Errors.Aborted = r.errAborted.Load()
	r.errMu.Lock()
	rep.Errors.Samples = append([]string(nil), r.samples...)
	r.errMu.Unlock()
	return rep
}

// nodeReports merges the workers' per-target figures into a row per node.
func (r *runner) nodeReports(secs float64) []NodeReport {
	out := make([]NodeReport, len(r.targets))
	for t := range out {
		n := &out[t]
		n.Target = r.targets[t].Name
		for k := range numOps {
			h := hdrhistogram.New(1, r.latMax, 2)
			o := n.op(k)
			for _, w := range r.workers {
				h.Merge(w.per[t].hist[k])
				o.Bytes += w.per[t].bytes[k]
				o.Errors += w.per[t].errs[k]
			}
			fillOp(o, h, secs)
			n.Errors += o.Errors
		}
		h := hdrhistogram.New(1, r.latMax, 2)
		for _, w := range r.workers {
			h.Merge(w.per[t].localHist)
			n.LocalGet.Bytes += w.per[t].localBytes
			n.LocalGet.Errors += w.per[t].localErrs
		}
		fillOp(&n.LocalGet, h, secs)
		n.Errors += n.LocalGet.Errors
	}
	return out
}

func (n *NodeReport) op(k opKind) *OpReport {
	return [numOps]*OpReport{&n.Put, &n.Get, &n.Wait}[k]
}

func fillOp(o *OpReport, h *hdrhistogram.Histogram, secs float64) {
	o.Count = h.TotalCount()
	o.OpsPerSec = float64(o.Count) / secs
	o.BytesPerSec = float64(o.Bytes) / secs
	if o.Count == 0 {
		return
	}
	o.Latency = Latency{
		P50:  h.ValueAtQuantile(50),
		P90:  h.ValueAtQuantile(90),
		P99:  h.ValueAtQuantile(99),
		P999: h.ValueAtQuantile(99.9),
		Max:  h.Max(),
		Mean: h.Mean(),
	}
}

// addStore adds a store's figures after the run; a store that was expected to
// drain and did not counts as an error.
func (rep *Report) addStore(s StoreState) {
	if s.Drained != nil && !*s.Drained {
		rep.Errors.Drain++
		rep.Errors.Total++
	}
	rep.Stores = append(rep.Stores, s)
}

// addError counts an error outside the ops (closing a store, a node's
// profile) as "other", with its message.
func (rep *Report) addError(msg string) {
	rep.Errors.Other++
	rep.Errors.Total++
	rep.Errors.Samples = append(rep.Errors.Samples, msg)
}

// Failed reports whether the run had any error.
func (rep *Report) Failed() bool { return rep.Errors.Total > 0 }

func (rep *Report) writeJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(rep)
}

func (rep *Report) writeTable(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "loadgen: %d ops in %s against %s (stopped by %s); %d workers, working set %s\n",
		rep.Ops.Total.Count+rep.Errors.Total-rep.Errors.Drain, fmtSeconds(rep.ElapsedSeconds), strings.Join(rep.Targets, ", "),
		rep.StoppedBy, rep.Config.Concurrency, trove.HumanBytes(rep.Config.WorkingSet))
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "op\tops\tops/s\tbytes\tbytes/s\tp50\tp90\tp99\tp99.9\tmax\terrors\t")
	rows := []struct {
		name string
		o    *OpReport
	}{{"put", &rep.Ops.Put}, {"get", &rep.Ops.Get}, {"wait", &rep.Ops.Wait}, {"total", &rep.Ops.Total}}
	for _, row := range rows {
		o := row.o
		bytes, rate := "-", "-"
		if row.name != "wait" {
			bytes, rate = trove.HumanBytes(o.Bytes), trove.HumanBytes(int64(o.BytesPerSec))+"/s"
		}
		fmt.Fprintf(tw, "%s\t%d\t%.0f\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t\n", row.name, o.Count, o.OpsPerSec, bytes, rate,
			fmtNs(o.Latency.P50, o.Count), fmtNs(o.Latency.P90, o.Count), fmtNs(o.Latency.P99, o.Count),
			fmtNs(o.Latency.P999, o.Count), fmtNs(o.Latency.Max, o.Count), o.Errors)
	}
	tw.Flush()
	e := rep.Errors
	fmt.Fprintf(&b, "errors: %d (verify %d, timeout %d, other %d, objects left in a store %d)", e.Total, e.Verify, e.Timeout, e.Other, e.Drain)
	if e.Aborted > 0 {
		fmt.Fprintf(&b, "; %d ops aborted by a second interrupt", e.Aborted)
	}
	b.WriteString("\n")
	for _, s := range e.Samples {
		fmt.Fprintf(&b, "  %s\n", s)
	}
	if len(rep.Nodes) > 0 {
		b.WriteString("per node: puts through it; gets (Borrow by ID, then Get: a transfer) and waits on it of refs other nodes own; local gets of its own\n")
		tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "node\tputs\tput bytes/s\tgets\tget bytes\tget bytes/s\tget p50\tget p99\tlocal gets\tlocal p50\twaits\twait p50\terrors\t")
		for _, n := range rep.Nodes {
			fmt.Fprintf(tw, "%s\t%d\t%s/s\t%d\t%s\t%s/s\t%s\t%s\t%d\t%s\t%d\t%s\t%d\t\n", n.Target,
				n.Put.Count, trove.HumanBytes(int64(n.Put.BytesPerSec)),
				n.Get.Count, trove.HumanBytes(n.Get.Bytes), trove.HumanBytes(int64(n.Get.BytesPerSec)),
				fmtNs(n.Get.Latency.P50, n.Get.Count), fmtNs(n.Get.Latency.P99, n.Get.Count),
				n.LocalGet.Count, fmtNs(n.LocalGet.Latency.P50, n.LocalGet.Count),
				n.Wait.Count, fmtNs(n.Wait.Latency.P50, n.Wait.Count), n.Errors)
		}
		tw.Flush()
		rep.writeTransfers(&b)
	}
	rep.writeProfile(&b)
	for _, s := range rep.Stores {
		if s.Error != "" {
			fmt.Fprintf(&b, "store %s: figures unavailable: %s\n", s.Target, s.Error)
			continue
		}
		fmt.Fprintf(&b, "store %s: %d objects, %s of %s used, %d pinned, %d views; spilled %d (%s), restored %d (%s), fallback allocations %d, full waits %d",
			s.Target, s.Objects, trove.HumanBytes(s.Used), trove.HumanBytes(s.Capacity), s.PinnedObjects, s.Views,
			s.Spills, trove.HumanBytes(s.SpillBytes), s.Restores, trove.HumanBytes(s.RestoreBytes), s.Fallbacks, s.FullWaits)
		switch {
		case s.Drained == nil:
		case s.Settled == nil && *s.Drained: // the embedded store
			b.WriteString("; empty")
		case s.Settled == nil:
			b.WriteString("; NOT EMPTY after every ref was dropped")
		case *s.Drained:
			b.WriteString("; loadgen holds nothing there")
		default:
			fmt.Fprintf(&b, "; LOADGEN STILL HOLDS %d refs, %d views/builders there", s.ClientRefs, s.ClientViews)
		}
		if s.Settled != nil && !*s.Settled {
			fmt.Fprintf(&b, " (figures still changing %v after the run)", settleTimeout)
		}
		b.WriteString("\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// fmtNs formats a latency to three significant digits ("-" if nothing was measured).
func fmtNs(ns, count int64) string {
	if count == 0 {
		return "-"
	}
	d := time.Duration(ns)
	switch {
	case d < time.Microsecond:
		return fmt.Sprintf("%dns", ns)
	case d < time.Millisecond:
		return fmt.Sprintf("%.3gµs", float64(ns)/1e3)
	case d < time.Second:
		return fmt.Sprintf("%.3gms", float64(ns)/1e6)
	default:
		return fmt.Sprintf("%.3gs", float64(ns)/1e9)
	}
}

func fmtSeconds(s float64) string {
	return time.Duration(s * float64(time.Second)).Round(time.Millisecond).String()
}

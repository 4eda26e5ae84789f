package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/trovedb/trove/swarm"
	"github.com/trovedb/trove/tools/swarmsim/sim"
)

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "swarmsim:", err)
		os.Exit(1)
	}
}

// Variant is one way of running the broadcast, applied to the base Config.
type Variant struct {
	Name  string
	Apply func(*sim.Config)
}

// variants are the runs at every N. "swarm" is the cluster's pull as built
// (the flags' defaults are its Config: 1 MiB chunks, ServeSlots 8 with
// ServeQueue 8, 64 locations per reply, a chunk given up only when it
// stalls), "swarm-allholders" the next fix docs/scale.md argues for (every
// holder listed), "swarm-before" the build this model first described
// (2026-12-01: 8 MiB chunks, no admission, a chunk given up 10 s after it
// was asked, however fast it was arriving) and "single" single source
// (PullSources 1, Ray's behaviour).
var variants = []Variant{
	{"swarm", func(*sim.Config) {}},
	{"swarm-allholders", func(c *sim.Config) { c.MaxHolders = -1 }},
	{"swarm-before", func(c *sim.Config) {
		c.Sched.ChunkSize = 8 << 20
		c.ServeSlots, c.ServeQueue = 0, 0
		c.ChunkTimeout = sim.DefaultChunkTimeout
	}},
	{"single", func(c *sim.Config) { c.SingleSource = true; c.ChunkTimeout = -1 }},
}

// The cluster's serving admission (cluster.DefaultServeSlots and
// DefaultServeQueue), copied: the model imports nothing of the cluster but
// its scheduler (lint_test.go), so keep these in step by hand.
const clusterServeSlots, clusterServeQueue = 8, 8

// variantNames lists the variants, for flags' help and errors.
func variantNames() string {
	var names []string
	for _, v := range variants {
		names = append(names, v.Name)
	}
	return strings.Join(names, ", ")
}

// Row is one (variant, N) of the sweep, as the JSON file holds it.
type Row struct {
	Variant         string  `json:"variant"`
	N               int     `json:"n"`
	Error           string  `json:"error,omitempty"` // e.g. the broadcast stalled
	P50, P99, Max   float64 `json:"-"`
	P50s            float64 `json:"p50_seconds"`
	P99s            float64 `json:"p99_seconds"`
	Maxs            float64 `json:"max_seconds"`
	RatioToN2       float64 `json:"ratio_to_n2"`
	EgressPerS      float64 `json:"origin_egress_copies"`
	ServedMean      float64 `json:"chunks_served_mean"`
	ServedMax       float64 `json:"chunks_served_max"`
	OwnerMsgs       int64   `json:"owner_messages"`
	OwnerMsgsPerS   float64 `json:"owner_messages_per_second"`
	OwnerUtil       float64 `json:"owner_utilisation"`
	OwnerMaxWaitS   float64 `json:"owner_max_wait_seconds"`
	OwnerReplyBytes int64   `json:"owner_reply_bytes"`
	TimedOut        int64   `json:"chunks_timed_out"`
	Busy            int64   `json:"requests_refused_busy"`
	AbortedBytes    int64   `json:"aborted_bytes"`
	WallSeconds     float64 `json:"wall_seconds"`
}

// Output is the whole run.
type Output struct {
	Date     string        `json:"date"`
	Command  string        `json:"command"`
	Note     string        `json:"note"`
	Config   string        `json:"config"`
	Rows     []Row         `json:"rows"`
	Failures []Row         `json:"failures"`
	Stagger  []Row         `json:"staggered"`
	Gossip   []sim.Gossip  `json:"gossip"`
	Owner    []OwnerSweep  `json:"owner_rate_sweep"`
	Compare  []ComparePair `json:"compare,omitempty"`
}

// OwnerSweep is the swarm-allholders broadcast at one owner message rate.
type OwnerSweep struct {
	Rate float64 `json:"owner_messages_per_second_capacity"`
	Row  Row     `json:"row"`
}

func run(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("swarmsim", flag.ContinueOnError)
	nodes := fs.String("n", "2,4,8,16,32,64,128,256,512,1000", "cluster sizes N (origin included), comma-separated")
	size := fs.String("size", "256MiB", "object size S")
	rate := fs.Float64("rate", 200, "every node's uplink and downlink in Mbit/s (the namespace cluster's tbf cap)")
	rtt := fs.Duration("rtt", sim.DefaultRTT, "round trip between nodes")
	refresh := fs.Duration("refresh", sim.DefaultRefresh, "PullRefresh: how often a pull reports its chunks to the owner and learns the locations (opPulling)")
	ownerRate := fs.Float64("owner-rate", sim.DefaultOwnerRate, "directory messages the owner handles per second (one at a time)")
	chunk := fs.String("chunk", "1MiB", "chunk size (the cluster's pull chunk: cluster.DefaultPullChunkSize)")
	perPeer := fs.Int("per-peer", swarm.DefaultPerPeer, "scheduler PerPeer: chunks in flight to one holder")
	perPull := fs.Int("per-pull", swarm.DefaultPerPull, "scheduler PerPull: chunks in flight per pull")
	timeout := fs.Duration("chunk-timeout", -1, "a chunk not arrived this long after it was asked is given up and asked again (negative: never). The cluster's PullChunkTimeout now bounds a stall (no byte for 10 s), which a modelled link that is up never hits: so never, by default; swarm-before sets 10 s")
	serveSlots := fs.Int("serve-slots", clusterServeSlots, "ServeSlots: chunks a node serves at once (0: no bound)")
	serveQueue := fs.Int("serve-queue", clusterServeQueue, "ServeQueue: chunk requests waiting for a slot; more are refused busy")
	detect := fs.Duration("detect", sim.DefaultDetect, "how long after a node's death its peers and the owner act on it")
	failN := fs.Int("fail-n", 64, "cluster size of the failure runs (0: none)")
	stagger := fs.Duration("stagger", 10*time.Second, "start window of the staggered runs (0: none)")
	seed := fs.Int64("seed", 1, "seed (the model is deterministic given it)")
	only := fs.String("variants", "", "comma-separated variants to run (default all: "+variantNames()+")")
	out := fs.String("out", "bench/out/swarmsim.json", "JSON output file ('' for none)")
	plot := fs.String("plot", "docs/swarmsim.png", "PNG plot of broadcast time against N ('' for none)")
	compare := fs.String("compare", "", "a tools/netcluster bench JSON (bench/out/netcluster.json) to compare the model with at its N")
	ownerN := fs.Int("owner-n", 256, "cluster size of the owner-rate sweep (swarm-allholders at several -owner-rate; 0: none)")
	plotFrom := fs.String("plot-from", "", "only draw -plot from these JSON outputs of earlier runs (comma-separated), e.g. sweeps run in parallel")
	cpuprofile := fs.String("cpuprofile", "", "write the simulator's own CPU profile to this file")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	if *plotFrom != "" {
		var rows []Row
		for _, path := range strings.Split(*plotFrom, ",") {
			b, err := os.ReadFile(path)
			if err != nil {
				return fmt.Errorf("-plot-from: %w", err)
			}
			var o Output
			if err := json.Unmarshal(b, &o); err != nil {
				return fmt.Errorf("-plot-from %s: not a swarmsim JSON output: %w", path, err)
			}
			for _, r := range o.Rows {
				r.Max = r.Maxs
				rows = append(rows, r)
			}
		}
		if err := plotTimes(*plot, rows); err != nil {
			return err
		}
		fmt.Fprintln(stdout, "wrote", *plot)
		return nil
	}
	S, err := parseBytes(*size)
	if err != nil {
		return fmt.Errorf("-size: %w", err)
	}
	C, err := parseBytes(*chunk)
	if err != nil {
		return fmt.Errorf("-chunk: %w", err)
	}
	var ns []int
	for _, f := range strings.Split(*nodes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 2 {
			return fmt.Errorf("-n %q: want cluster sizes of at least 2, comma-separated", *nodes)
		}
		ns = append(ns, n)
	}
	base := sim.Config{
		Size: S, Sched: swarm.Config{ChunkSize: C, PerPeer: *perPeer, PerPull: *perPull},
		Uplink: *rate * 1e6 / 8, RTT: *rtt, Refresh: *refresh, OwnerRate: *ownerRate,
		ChunkTimeout: *timeout, Detect: *detect, Seed: *seed,
		ServeSlots: *serveSlots, ServeQueue: *serveQueue,
	}
	vs := variants
	if *only != "" {
		vs = nil
		for _, name := range strings.Split(*only, ",") {
			v, ok := variantByName(name)
			if !ok {
				return fmt.Errorf("-variants: no variant %q (have %s)", name, variantNames())
			}
			vs = append(vs, v)
		}
	}
	o := Output{
		Date:    time.Now().UTC().Format(time.RFC3339),
		Command: "go run ./tools/swarmsim " + strings.Join(args, " "),
		Note:    "a discrete-event MODEL (simulated times), not a measurement; see docs/scale.md for what it models and what it does not",
		Config: fmt.Sprintf("S=%s links=%.0f Mbit/s up and down RTT=%v chunk=%s PerPeer=%d PerPull=%d serve=%d+%d refresh=%v owner=%.0f msg/s chunk-timeout=%v detect=%v seed=%d",
			*size, *rate, *rtt, *chunk, *perPeer, *perPull, *serveSlots, *serveQueue, *refresh, *ownerRate, *timeout, *detect, *seed),
	}
	fmt.Fprintln(stdout, "model:", o.Config)
	for _, v := range vs {
		var t2 float64
		for _, n := range ns {
			cfg := base
			cfg.Nodes = n
			v.Apply(&cfg)
			r := runOne(v.Name, cfg)
			if n == 2 {
				t2 = r.Maxs
			}
			if t2 > 0 && r.Error == "" {
				r.RatioToN2 = r.Maxs / t2
			}
			o.Rows = append(o.Rows, r)
			fmt.Fprintf(stdout, "  %-16s N=%-5d %s\n", v.Name, n, brief(r))
		}
	}
	if *failN > 0 {
		for _, v := range vs {
			if v.Name == "single" {
				continue
			}
			cfg := base
			cfg.Nodes = *failN
			v.Apply(&cfg)
			// the puller that serves most, dying a third of the way through
			// the same broadcast without failures
			if clean, err := sim.Run(cfg); err == nil {
				busiest := 1
				for i := 1; i < len(clean.Served); i++ {
					if clean.Served[i] > clean.Served[busiest] {
						busiest = i
					}
				}
				cfg.Fail = []sim.Failure{{Node: busiest, At: clean.End / 3}}
			} else {
				cfg.Fail = []sim.Failure{{Node: 1, At: 5 * time.Second}}
			}
			r := runOne(v.Name+"+fail", cfg)
			o.Failures = append(o.Failures, r)
			fmt.Fprintf(stdout, "  %-16s N=%-5d %s (node %d dies at %v)\n", r.Variant, cfg.Nodes, brief(r), cfg.Fail[0].Node, cfg.Fail[0].At.Round(time.Millisecond))
		}
	}
	if *stagger > 0 {
		for _, v := range vs {
			for _, n := range []int{16, 256} {
				cfg := base
				cfg.Nodes, cfg.Stagger = n, *stagger
				v.Apply(&cfg)
				r := runOne(v.Name+"+stagger", cfg)
				o.Stagger = append(o.Stagger, r)
				fmt.Fprintf(stdout, "  %-16s N=%-5d %s (starts over %v)\n", r.Variant, n, brief(r), *stagger)
			}
		}
	}
	if *ownerN > 0 {
		for _, rate := range []float64{1000, 2000, 5000, 20000} {
			cfg := base
			cfg.Nodes = *ownerN
			variants[1].Apply(&cfg)
			cfg.OwnerRate = rate
			r := runOne("swarm-allholders", cfg)
			o.Owner = append(o.Owner, OwnerSweep{rate, r})
			fmt.Fprintf(stdout, "  owner %6.0f msg/s N=%d swarm-allholders %s\n", rate, *ownerN, brief(r))
		}
	}
	for _, n := range []int{2, 16, 64, 128, 256, 512, 1000} {
		o.Gossip = append(o.Gossip, sim.GossipAt(n))
	}
	printTable(stdout, o)
	if *compare != "" {
		pairs, err := compareWith(*compare, base)
		if err != nil {
			return err
		}
		o.Compare = pairs
		printCompare(stdout, pairs)
	}
	if *out != "" {
		if err := writeJSON(*out, o); err != nil {
			return err
		}
		fmt.Fprintln(stdout, "wrote", *out)
	}
	if *plot != "" {
		if err := plotTimes(*plot, o.Rows); err != nil {
			return err
		}
		fmt.Fprintln(stdout, "wrote", *plot)
	}
	return nil
}

func variantByName(name string) (Variant, bool) {
	for _, v := range variants {
		if v.Name == strings.TrimSpace(name) {
			return v, true
		}
	}
	return Variant{}, false
}

func runOne(name string, cfg sim.Config) Row {
	start := time.Now()
	res, err := sim.Run(cfg)
	row := Row{Variant: name, N: cfg.Nodes, WallSeconds: time.Since(start).Seconds()}
	if err != nil {
		if !errors.Is(err, sim.ErrStalled) {
			row.Error = err.Error()
		} else {
			row.Error = "stalled: " + err.Error()
		}
		return row
	}
	row.P50, row.P99, row.Max = res.P50.Seconds(), res.P99.Seconds(), res.Max.Seconds()
	row.P50s, row.P99s, row.Maxs = row.P50, row.P99, row.Max
	row.EgressPerS = res.EgressPerS
	row.ServedMean, row.ServedMax = res.ServedMean, res.ServedMax
	row.OwnerMsgs = res.OwnerMsgs
	if res.End > 0 {
		row.OwnerMsgsPerS = float64(res.OwnerMsgs) / res.End.Seconds()
	}
	row.OwnerUtil, row.OwnerMaxWaitS = res.OwnerUtil, res.OwnerMaxWait.Seconds()
	row.OwnerReplyBytes = res.OwnerReplyBytes
	row.TimedOut, row.AbortedBytes, row.Busy = res.TimedOut, res.AbortedBytes, res.Busy
	return row
}

func brief(r Row) string {
	if r.Error != "" {
		return r.Error
	}
	return fmt.Sprintf("p50 %.1fs p99 %.1fs max %.1fs  egress %.2f S  served mean %.1f max %.0f chunks  owner %d msgs (%.0f/s, util %.2f)  timeouts %d",
		r.P50, r.P99, r.Max, r.EgressPerS, r.ServedMean, r.ServedMax, r.OwnerMsgs, r.OwnerMsgsPerS, r.OwnerUtil, r.TimedOut)
}

func printTable(w io.Writer, o Output) {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w, "\nbroadcast (simulated seconds from each puller's start)")
	fmt.Fprintln(tw, "variant\tN\tp50 s\tp99 s\tmax s\tmax/N=2\torigin egress/S\tserved mean\tserved max\towner msgs\towner msgs/s\towner util\ttimeouts\t")
	for _, r := range o.Rows {
		if r.Error != "" {
			fmt.Fprintf(tw, "%s\t%d\t%s\t\t\t\t\t\t\t\t\t\t\t\n", r.Variant, r.N, firstWords(r.Error, 3))
			continue
		}
		fmt.Fprintf(tw, "%s\t%d\t%.1f\t%.1f\t%.1f\t%.2f\t%.2f\t%.1f\t%.0f\t%d\t%.0f\t%.3f\t%d\t\n",
			r.Variant, r.N, r.P50, r.P99, r.Max, r.RatioToN2, r.EgressPerS, r.ServedMean, r.ServedMax, r.OwnerMsgs, r.OwnerMsgsPerS, r.OwnerUtil, r.TimedOut)
	}
	tw.Flush()
	fmt.Fprintln(w, "\nmemberlist traffic per node (bytes/s sent; derived from memberlist v0.7.0's constants and encodings)")
	fmt.Fprintln(tw, "N\tprobe\tpush-pull\tpush-pull every\tgossip demand\tgossip cap\tgossip sent\tbacklog\ttotal\t")
	for _, g := range o.Gossip {
		fmt.Fprintf(tw, "%d\t%.0f\t%.0f\t%v\t%.0f\t%.0f\t%.0f\t%.1fx\t%.0f\t\n", g.N, g.ProbeBps, g.PushPullBps, g.PushPullInterval, g.GossipDemandBps, g.GossipCapBps, g.GossipBps, g.Backlog, g.TotalBps)
	}
	tw.Flush()
}

func firstWords(s string, n int) string {
	f := strings.Fields(s)
	return strings.Join(f[:min(n, len(f))], " ")
}

func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// parseBytes reads 256MiB, 8MiB, 1GiB, 4096.
func parseBytes(s string) (int64, error) {
	units := []struct {
		suffix string
		mult   int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"B", 1}}
	for _, u := range units {
		if strings.HasSuffix(s, u.suffix) {
			v, err := strconv.ParseInt(strings.TrimSuffix(s, u.suffix), 10, 64)
			if err != nil || v <= 0 {
				return 0, fmt.Errorf("%q: want a positive size such as 256MiB", s)
			}
			return v * u.mult, nil
		}
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil || v <= 0 {
		return 0, fmt.Errorf("%q: want a positive size such as 256MiB", s)
	}
	return v, nil
}

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/trovedb/trove/tools/netcluster/netns"
)

// BenchConfig is one broadcast benchmark: for each N and mode, a fresh
// cluster and Count broadcasts on it.
type BenchConfig struct {
	Ns       []int
	Count    int
	Size     int
	Rate     string
	Prefault bool
	Troved   string
	Args     []string
	Log      func(format string, args ...any) // progress
	StepLog  func(format string, args ...any) // every troved started; nil: none
}

// Mode is how nodes pull: a troved -pull-sources value and its name.
type Mode struct {
	Name        string // swarm, single, or current (a troved without the knob)
	PullSources int    // -1: the flag is not passed
}

// Modes are the modes troved offers: swarm and single source where it has
// -pull-sources, else only its current behaviour.
func Modes(troved string) []Mode {
	if HasPullSources(troved) {
		return []Mode{{"swarm", 0}, {"single", 1}}
	}
	return []Mode{{"current", -1}}
}

// Run is one broadcast's figures.
type Run struct {
	Seconds           float64   `json:"seconds"`     // the Gets' start to the last one's end
	GetSeconds        []float64 `json:"get_seconds"` // each getter's Get
	OriginEgressBytes uint64    `json:"origin_egress_bytes"`
	ServedBytes       []int64   `json:"served_bytes"` // per node, its cluster stats' bytes out
	// CPUShare is the troveds' CPU time during the Gets over the wall time
	// times the machine's cores: near 1, the CPU bound the run.
	CPUShare float64 `json:"cpu_share"`
}

// Point is one (N, mode) of the benchmark.
type Point struct {
	N                       int     `json:"n"`
	Mode                    string  `json:"mode"`
	Runs                    []Run   `json:"runs"`
	MedianSeconds           float64 `json:"median_seconds"`
	MedianOriginEgressBytes float64 `json:"median_origin_egress_bytes"`
	OriginEgressCopies      float64 `json:"origin_egress_copies"` // median egress / object size
	RatioToN2               float64 `json:"ratio_to_n2"`          // median time / the same mode's at N=2
	// LinkShare is the origin's median egress rate over the link rate: near 1,
	// the origin's link bound the run.
	LinkShare      float64 `json:"origin_link_share"`
	MedianCPUShare float64 `json:"median_cpu_share"`
	Bound          string  `json:"bound"` // what bound it, from the two shares
}

// BenchResult is the whole benchmark, as bench/out/netcluster.json holds it.
type BenchResult struct {
	Date       string  `json:"date"`
	Machine    string  `json:"machine"`
	Cores      int     `json:"cores"`
	Size       int     `json:"size_bytes"`
	Rate       string  `json:"rate"`
	RateBits   int64   `json:"rate_bits_per_second"`
	Count      int     `json:"count"`
	Note       string  `json:"note"`
	TCPSeconds float64 `json:"tcp_baseline_seconds"` // median raw TCP copy of Size over one capped link, same run
	Points     []Point `json:"points"`
}

// RunBench runs the benchmark.
func RunBench(ctx context.Context, cfg BenchConfig) (*BenchResult, error) {
	bits, err := netns.ParseRate(cfg.Rate)
	if err != nil {
		return nil, err
	}
	res := &BenchResult{Date: time.Now().UTC().Format(time.RFC3339), Machine: cpuModel(), Cores: runtime.NumCPU(),
		Size: cfg.Size, Rate: cfg.Rate, RateBits: bits, Count: cfg.Count}
	modes := Modes(cfg.Troved)
	if len(modes) == 1 {
		res.Note = "troved has no -pull-sources flag (multi-source pulls not on this build): only its current behaviour, one holder per pull, was measured"
		cfg.Log("%s", res.Note)
	}
	capacity := strconv.Itoa(cfg.Size + 64<<20) // bytes: the copy and room for nothing else large
	var tcp []float64
	for _, mode := range modes {
		for _, n := range cfg.Ns {
			cfg.Log("N=%d mode=%s: starting the cluster", n, mode.Name)
			c, err := Start(ctx, Options{Nodes: n, Rate: cfg.Rate, Capacity: capacity, Prefault: cfg.Prefault,
				PullSources: mode.PullSources, Troved: cfg.Troved, Args: cfg.Args, Log: cfg.StepLog})
			if err != nil {
				return res, fmt.Errorf("N=%d %s: %w", n, mode.Name, err)
			}
			p := Point{N: n, Mode: mode.Name}
			for i := range cfg.Count {
				if n == cfg.Ns[0] && mode == modes[0] {
					s, err := tcpCopy(ctx, c.Net.Hosts[0], c.Net.Hosts[1], cfg.Size)
					if err != nil {
						c.Close()
						return res, err
					}
					cfg.Log("raw TCP copy of %d bytes over one link: %.2fs", cfg.Size, s)
					tcp = append(tcp, s)
				}
				r, err := Broadcast(ctx, c, BroadcastOptions{Size: cfg.Size, Seed: uint64(i + 1), Timeout: 20 * time.Minute})
				if err != nil {
					c.Close()
					return res, fmt.Errorf("N=%d %s run %d: %w", n, mode.Name, i+1, err)
				}
				run := Run{Seconds: r.Overall.Seconds(), OriginEgressBytes: r.OriginEgress(), ServedBytes: r.ServedBytes,
					CPUShare: r.CPUSeconds / (r.Overall.Seconds() * float64(runtime.NumCPU()))}
				for _, g := range r.Gets {
					run.GetSeconds = append(run.GetSeconds, g.Duration.Seconds())
				}
				cfg.Log("N=%d %s run %d: %.2fs, origin egress %d bytes (%.2f copies), CPU %.0f%%", n, mode.Name, i+1,
					run.Seconds, run.OriginEgressBytes, float64(run.OriginEgressBytes)/float64(cfg.Size), 100*run.CPUShare)
				p.Runs = append(p.Runs, run)
			}
			if err := c.Close(); err != nil {
				return res, err
			}
			p.MedianSeconds = median(p.Runs, func(r Run) float64 { return r.Seconds })
			p.MedianOriginEgressBytes = median(p.Runs, func(r Run) float64 { return float64(r.OriginEgressBytes) })
			p.MedianCPUShare = median(p.Runs, func(r Run) float64 { return r.CPUShare })
			p.OriginEgressCopies = p.MedianOriginEgressBytes / float64(cfg.Size)
			p.LinkShare = p.MedianOriginEgressBytes * 8 / p.MedianSeconds / float64(bits)
			switch {
			case p.MedianCPUShare >= 0.8 && p.LinkShare >= 0.8:
				p.Bound = "origin link (CPU near full too)"
			case p.MedianCPUShare >= 0.8:
				p.Bound = "cpu"
			case p.LinkShare >= 0.8:
				p.Bound = "origin link"
			default:
				p.Bound = "neither (latency/protocol)"
			}
			res.Points = append(res.Points, p)
		}
	}
	if len(tcp) > 0 {
		slices.Sort(tcp)
		res.TCPSeconds = tcp[len(tcp)/2]
	}
	for i := range res.Points {
		for _, q := range res.Points {
			if q.Mode == res.Points[i].Mode && q.N == 2 {
				res.Points[i].RatioToN2 = res.Points[i].MedianSeconds / q.MedianSeconds
			}
		}
	}
	return res, nil
}

func median(runs []Run, f func(Run) float64) float64 {
	v := make([]float64, len(runs))
	for i, r := range runs {
		v[i] = f(r)
	}
	slices.Sort(v)
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

// tcpCopy is the baseline: size bytes over one plain TCP connection from a to
// b, across the same capped links, timed until b has read the last byte.
func tcpCopy(ctx context.Context, a, b *netns.Host, size int) (float64, error) {
	l, err := b.ListenTCP(b.IP + ":7200")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	got := make(chan error, 1)
	var end time.Time
	go func() {
		c, err := l.Accept()
		if err != nil { // closed by the caller's return
			got <- err
			return
		}
		defer c.Close()
		n, err := io.Copy(io.Discard, c)
		end = time.Now()
		if err == nil && n != int64(size) {
			err = fmt.Errorf("tcp baseline: received %d of %d bytes", n, size)
		}
		got <- err
	}()
	c, err := a.DialTCP(ctx, b.IP+":7200")
	if err != nil {
		return 0, err
	}
	stop := context.AfterFunc(ctx, func() { c.Close() }) // an interrupt ends the copy
	defer stop()
	buf := make([]byte, 1<<20)
	fill(buf, 9)
	start := time.Now()
	for left := size; left > 0; left -= len(buf) {
		if _, err := c.Write(buf[:min(left, len(buf))]); err != nil {
			c.Close()
			return 0, fmt.Errorf("tcp baseline: %w", err)
		}
	}
	c.Close()
	if err := <-got; err != nil {
		return 0, err
	}
	return end.Sub(start).Seconds(), nil
}

// cpuSeconds is the user and system CPU time of the cluster's live troveds
// (a killed node's time since the last read is lost: the figure is a floor).
func (c *Cluster) cpuSeconds() float64 {
	var total float64
	for _, n := range c.Nodes {
		if n.Alive() {
			total += procCPU(n.cmd.Process.Pid)
		}
	}
	return total
}

// procCPU reads utime+stime of pid from /proc (clock ticks of 1/100 s on
// Linux); 0 if it cannot.
func procCPU(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')') // the command name may hold spaces
	if i < 0 {
		return 0
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (ut + st) / 100
}

func cpuModel() string {
	b, _ := os.ReadFile("/proc/cpuinfo")
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return runtime.GOARCH
}

// WriteTable prints the result as a table.
func (r *BenchResult) WriteTable(w io.Writer) {
	fmt.Fprintf(w, "broadcast of %d MiB, links %s (%d bit/s) both ways, %d runs per point, %d cores (%s)\n",
		r.Size>>20, r.Rate, r.RateBits, r.Count, r.Cores, r.Machine)
	if r.TCPSeconds > 0 {
		fmt.Fprintf(w, "baseline: raw TCP copy of the object over one capped link: %.2fs (%.1f MB/s)\n", r.TCPSeconds, float64(r.Size)/r.TCPSeconds/1e6)
	}
	if r.Note != "" {
		fmt.Fprintln(w, "note:", r.Note)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "N\tmode\tmedian time\tvs TCP copy\tratio to N=2\torigin egress\tcopies\torigin link\tCPU\tbound")
	for _, p := range r.Points {
		vsTCP := "-"
		if r.TCPSeconds > 0 {
			vsTCP = fmt.Sprintf("%.2fx", p.MedianSeconds/r.TCPSeconds)
		}
		fmt.Fprintf(tw, "%d\t%s\t%.2fs\t%s\t%.2fx\t%d\t%.2f\t%.0f%%\t%.0f%%\t%s\n", p.N, p.Mode, p.MedianSeconds, vsTCP, p.RatioToN2,
			int64(p.MedianOriginEgressBytes), p.OriginEgressCopies, 100*p.LinkShare, 100*p.MedianCPUShare, p.Bound)
	}
	tw.Flush()
}

// WriteJSON writes the result to path, making its directory.
func (r *BenchResult) WriteJSON(path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// ReadBench reads what WriteJSON wrote.
func ReadBench(path string) (*BenchResult, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var r BenchResult
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &r, nil
}

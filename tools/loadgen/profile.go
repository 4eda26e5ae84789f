package main

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/google/pprof/profile"
)

// inProcessNode is the "node" label of the samples of loadgen's own process:
// the -embedded store or the -embedded-cluster nodes all run in it, so its
// profile cannot be split by node.
const inProcessNode = "loadgen"

// profileTopN is how many functions the report lists, by flat and by cum.
const profileTopN = 10

// profileSlack bounds how long after its seconds a node may take to send its
// profile (a loaded daemon writes it after the profiling period).
const profileSlack = 30 * time.Second

// ProfileReport is -profile's part of the report: where the merged CPU
// profile went, each node's share, and the functions that took the most CPU
// over the cluster.
type ProfileReport struct {
	File    string        `json:"file"`    // the merged profile (gzipped protobuf: go tool pprof FILE)
	Seconds float64       `json:"seconds"` // how long each node was profiled
	Nodes   []ProfileNode `json:"nodes"`
	// CPUSeconds is the CPU time sampled over every node merged.
	CPUSeconds float64 `json:"cpu_seconds"`
	// TopFlat and TopCum are the top functions by the CPU spent in them
	// (flat) and in them and what they called (cum), over every node.
	TopFlat []ProfileFunc `json:"top_flat"`
	TopCum  []ProfileFunc `json:"top_cum"`
	Note    string        `json:"note,omitempty"` // what the profile covers, when it is not one per node
}

// ProfileNode is one node's profile.
type ProfileNode struct {
	Node       string  `json:"node"`            // the "node" label of its samples
	URL        string  `json:"url,omitempty"`   // where it was fetched (absent for loadgen's own process)
	Samples    int     `json:"samples"`         // samples it contributed
	CPUSeconds float64 `json:"cpu_seconds"`     // CPU time sampled on it
	Error      string  `json:"error,omitempty"` // why it is not in the merged profile
}

// ProfileFunc is one function's CPU time over the cluster.
type ProfileFunc struct {
	Function string  `json:"function"`
	FlatSecs float64 `json:"flat_seconds"`
	FlatPct  float64 `json:"flat_percent"` // of cpu_seconds
	CumSecs  float64 `json:"cum_seconds"`
	CumPct   float64 `json:"cum_percent"`
}

// profileSource is one process whose CPU profile is taken: a daemon's
// pprof endpoint, or loadgen's own process (url "").
type profileSource struct {
	node string
	url  string
}

// profiler takes the CPU profiles of one run: a GET of every daemon's
// /debug/pprof/profile?seconds=S at once, and runtime/pprof of loadgen's own
// process when stores run in it.
type profiler struct {
	path    string
	seconds int
	sources []profileSource

	inProc bytes.Buffer // loadgen's own profile while it runs
	procOn bool         // runtime/pprof is profiling this process for it

	cancel context.CancelFunc
	wg     sync.WaitGroup
	mu     sync.Mutex // guards got
	got    []fetched  // in sources order
}

type fetched struct {
	raw []byte
	err error
}

// profileSources lists the processes to profile: every daemon by its
// status's HTTP address (named by its cluster name, else its socket), and
// loadgen's own process when a store runs in it. A daemon that serves no
// /debug/pprof/ is an error: the user asked for every node's profile.
func profileSources(ts targetSet, infos []*nodeInfo, errs []error) ([]profileSource, error) {
	var out []profileSource
	inProc := false
	for i, t := range ts {
		if t.inProcess {
			inProc = true
			continue
		}
		if errs[i] != nil {
			return nil, fmt.Errorf("-profile: -socket %s: %w", t.Name, errs[i])
		}
		ni := infos[i]
		if ni.HTTP == "" {
			return nil, fmt.Errorf("-profile: the daemon on -socket %s serves no /debug/pprof/ (troved -http off, or an older troved that does not say where): start it with -http 127.0.0.1:0 (the default is 127.0.0.1:9464), or drop -profile", t.Name)
		}
		out = append(out, profileSource{node: cmp.Or(ni.Name, t.Name), url: "http://" + ni.HTTP + "/debug/pprof/profile"})
	}
	if inProc {
		out = append(out, profileSource{node: inProcessNode})
	}
	return out, nil
}

// startProfiler begins every source's profile, S seconds long. loadgen's own
// is stopped by finish.
func startProfiler(path string, seconds int, sources []profileSource) (*profiler, error) {
	p := &profiler{path: path, seconds: seconds, sources: sources, got: make([]fetched, len(sources))}
	ctx, cancel := context.WithCancel(context.Background())
	p.cancel = cancel
	client := &http.Client{Timeout: time.Duration(seconds)*time.Second + profileSlack}
	for i, src := range sources {
		if src.url == "" {
			if err := pprof.StartCPUProfile(&p.inProc); err != nil {
				cancel()
				return nil, fmt.Errorf("-profile: profiling loadgen's process (where its stores run): %w", err)
			}
			p.procOn = true
			continue
		}
		p.wg.Go(func() {
			raw, err := fetchProfile(ctx, client, fmt.Sprintf("%s?seconds=%d", src.url, seconds))
			p.mu.Lock()
			p.got[i] = fetched{raw, err}
			p.mu.Unlock()
		})
	}
	return p, nil
}

func fetchProfile(ctx context.Context, client *http.Client, url string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 256<<20))
	if err != nil {
		return nil, fmt.Errorf("GET %s: reading the profile: %w", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		// net/http/pprof says why in the body ("cpu profiling already in use").
		return nil, fmt.Errorf("GET %s: %s: %s", url, resp.Status, strings.TrimSpace(string(body)))
	}
	return body, nil
}

// finish stops loadgen's own profile, waits for the daemons' (unless
// interrupted is closed first: their profiles are then lost), labels every
// sample with its node, merges them into p.path and returns the report's
// part. err is set when no profile could be written; a node whose profile
// is missing is named in its ProfileNode.Error.
func (p *profiler) finish(interrupted <-chan struct{}) (*ProfileReport, error) {
	if p.procOn {
		pprof.StopCPUProfile()
	}
	done := make(chan struct{})
	go func() { p.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-interrupted:
		p.cancel()
		<-done
	}
	p.cancel()

	rep := &ProfileReport{File: p.path, Seconds: float64(p.seconds)}
	var profs []*profile.Profile
	var first *profile.Profile
	for i, src := range p.sources {
		pn := ProfileNode{Node: src.node, URL: src.url}
		raw, err := p.got[i].raw, p.got[i].err
		if src.url == "" {
			raw = p.inProc.Bytes()
			rep.Note = fmt.Sprintf("the in-process stores run in loadgen's own process: its one CPU profile (runtime/pprof, over the run) is labelled node=%s, not split by node, and includes loadgen's own work", inProcessNode)
		}
		var prof *profile.Profile
		if err == nil {
			prof, err = profile.ParseData(raw)
		}
		if err == nil && first != nil {
			err = sameShape(first, prof)
		}
		if err != nil {
			pn.Error = err.Error()
			rep.Nodes = append(rep.Nodes, pn)
			continue
		}
		if first == nil {
			first = prof
		}
		for _, s := range prof.Sample {
			if s.Label == nil {
				s.Label = map[string][]string{}
			}
			s.Label["node"] = []string{src.node}
		}
		pn.Samples = len(prof.Sample)
		pn.CPUSeconds = cpuSeconds(prof)
		rep.Nodes = append(rep.Nodes, pn)
		profs = append(profs, prof)
	}
	if len(profs) == 0 {
		return rep, errors.New("-profile: no node's CPU profile could be taken (each one's error is in the report)")
	}
	merged, err := profile.Merge(profs)
	if err != nil {
		return rep, fmt.Errorf("-profile: merging the nodes' profiles: %w", err)
	}
	var names []string
	for _, n := range rep.Nodes {
		if n.Error == "" {
			names = append(names, n.Node)
		}
	}
	merged.Comments = append(merged.Comments, "loadgen -profile: CPU profiles of "+strings.Join(names, ", ")+", each sample labelled node=NAME")
	if err := writeProfile(p.path, merged); err != nil {
		return rep, err
	}
	rep.CPUSeconds = cpuSeconds(merged)
	rep.TopFlat, rep.TopCum = topFunctions(merged, profileTopN)
	return rep, nil
}

// sameShape checks that b can be merged with a: profile.Merge needs the same
// sample and period types. Every Go CPU profile has them (samples/count,
// cpu/nanoseconds; period type cpu/nanoseconds); a profile that does not is
// left out of the merged file, and its node's row says why.
func sameShape(a, b *profile.Profile) error {
	same := func(x, y *profile.ValueType) bool {
		return (x == nil) == (y == nil) && (x == nil || (x.Type == y.Type && x.Unit == y.Unit))
	}
	ok := same(a.PeriodType, b.PeriodType) && len(a.SampleType) == len(b.SampleType)
	for i := 0; ok && i < len(a.SampleType); i++ {
		ok = same(a.SampleType[i], b.SampleType[i])
	}
	if !ok {
		return fmt.Errorf("its profile's sample types %s are not the first node's, %s: not merged", valueTypes(b), valueTypes(a))
	}
	return nil
}

func valueTypes(p *profile.Profile) string {
	var s []string
	for _, t := range p.SampleType {
		s = append(s, t.Type+"/"+t.Unit)
	}
	return "[" + strings.Join(s, " ") + "]"
}

func writeProfile(path string, p *profile.Profile) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("-profile: %w", err)
	}
	if err := p.Write(f); err != nil {
		f.Close()
		return fmt.Errorf("-profile: writing %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("-profile: writing %s: %w", path, err)
	}
	return nil
}

// cpuIndex is the index of the CPU time in p's sample values: the value of
// type cpu (nanoseconds), else the last one (pprof's default).
func cpuIndex(p *profile.Profile) int {
	for i, t := range p.SampleType {
		if t.Type == "cpu" {
			return i
		}
	}
	return len(p.SampleType) - 1
}

// cpuSeconds is p's sampled CPU time.
func cpuSeconds(p *profile.Profile) float64 {
	i := cpuIndex(p)
	if i < 0 {
		return 0
	}
	var ns int64
	for _, s := range p.Sample {
		ns += s.Value[i]
	}
	return float64(ns) / 1e9
}

// topFunctions are p's n functions of most flat CPU time (the innermost
// frame of each sample, inlined frames included) and of most cum (every
// function on the stack, once per sample), as go tool pprof -top counts them.
func topFunctions(p *profile.Profile, n int) (flat, cum []ProfileFunc) {
	vi := cpuIndex(p)
	if vi < 0 {
		return nil, nil
	}
	flatNs, cumNs := map[string]int64{}, map[string]int64{}
	var total int64
	for _, s := range p.Sample {
		v := s.Value[vi]
		total += v
		seen := map[string]bool{}
		for li, loc := range s.Location {
			for ln, line := range loc.Line {
				name := "?"
				if line.Function != nil {
					name = line.Function.Name
				}
				if li == 0 && ln == 0 {
					flatNs[name] += v
				}
				if !seen[name] {
					seen[name] = true
					cumNs[name] += v
				}
			}
		}
	}
	row := func(name string) ProfileFunc {
		pct := func(ns int64) float64 {
			if total == 0 {
				return 0
			}
			return 100 * float64(ns) / float64(total)
		}
		return ProfileFunc{Function: name, FlatSecs: float64(flatNs[name]) / 1e9, FlatPct: pct(flatNs[name]),
			CumSecs: float64(cumNs[name]) / 1e9, CumPct: pct(cumNs[name])}
	}
	top := func(by map[string]int64) []ProfileFunc {
		names := make([]string, 0, len(by))
		for name := range by {
			names = append(names, name)
		}
		slices.SortFunc(names, func(a, b string) int { return cmp.Or(cmp.Compare(by[b], by[a]), cmp.Compare(a, b)) })
		out := []ProfileFunc{}
		for _, name := range names[:min(n, len(names))] {
			out = append(out, row(name))
		}
		return out
	}
	return top(flatNs), top(cumNs)
}

// writeProfile is the table's part for -profile.
func (rep *Report) writeProfile(b *strings.Builder) {
	pr := rep.Profile
	if pr == nil {
		return
	}
	fmt.Fprintf(b, "profile: %s (go tool pprof %s), %gs of CPU over %s, each node profiled %gs\n",
		pr.File, pr.File, round3(pr.CPUSeconds), plural(len(pr.Nodes), "node"), pr.Seconds)
	for _, n := range pr.Nodes {
		if n.Error != "" {
			fmt.Fprintf(b, "  %s: NOT IN THE PROFILE: %s\n", n.Node, n.Error)
			continue
		}
		fmt.Fprintf(b, "  %s: %d samples, %gs of CPU\n", n.Node, n.Samples, round3(n.CPUSeconds))
	}
	if pr.Note != "" {
		fmt.Fprintf(b, "  (%s)\n", pr.Note)
	}
	for _, part := range []struct {
		title string
		fs    []ProfileFunc
	}{{"top functions by flat CPU, over the cluster", pr.TopFlat}, {"top functions by cum CPU, over the cluster", pr.TopCum}} {
		if len(part.fs) == 0 {
			continue
		}
		b.WriteString(part.title + "\n")
		tw := tabwriter.NewWriter(b, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "  flat\tflat%\tcum\tcum%\tfunction")
		for _, f := range part.fs {
			fmt.Fprintf(tw, "  %gs\t%.1f%%\t%gs\t%.1f%%\t%s\n", round3(f.FlatSecs), f.FlatPct, round3(f.CumSecs), f.CumPct, f.Function)
		}
		tw.Flush()
	}
}

func round3(s float64) float64 { return float64(int64(s*1000+0.5)) / 1000 }

// plural is "1 node", "2 nodes".
func plural(n int, noun string) string {
	if n == 1 {
		return fmt.Sprintf("%d %s", n, noun)
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

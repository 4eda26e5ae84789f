package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/trovedb/trove"
	"github.com/trovedb/trove/tools/netcluster/netns"
)

const usage = `usage:
  netcluster broadcast [flags]   one node puts an object, the others Get it at once
  netcluster bench [flags]       the broadcast benchmark over several N, a table, JSON and a PNG
  netcluster plot -json F -png P draw P again from the figures a bench wrote to F
  netcluster up [flags]          start the cluster, print its sockets, hold it until SIGINT
  netcluster -cleanup            remove the namespaces, veths and bridge a killed run left

Needs root and iproute2. Every namespace is trove-nc-<i> at 10.77.0.<i+1> on bridge
trovebr0; all of it is removed at the end, also on SIGINT/SIGTERM.
`

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 1 && (args[0] == "-cleanup" || args[0] == "--cleanup" || args[0] == "cleanup") {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := netns.Cleanup(ctx, func(c string) { fmt.Fprintln(stderr, "netcluster:", c) }); err != nil {
			fmt.Fprintln(stderr, "netcluster: cleanup:", err)
			return 1
		}
		// The sockets, spill directories and troved builds of killed runs.
		for _, pat := range []string{"trove-netcluster-*", "netcluster-bin-*"} {
			dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), pat))
			for _, d := range dirs {
				fmt.Fprintln(stderr, "netcluster: rm -r", d)
				os.RemoveAll(d)
			}
		}
		return 0
	}
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		fmt.Fprint(stderr, usage)
		return 2
	}
	cmd, args := args[0], args[1:]
	fs := flag.NewFlagSet("netcluster "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		n        = fs.Int("n", 4, "nodes, the origin included (broadcast, up)")
		ns       = fs.String("ns", "2,4,8,16", "comma list of N (bench)")
		count    = fs.Int("count", 3, "broadcasts per point (bench) or in a row (broadcast)")
		sizeS    = fs.String("size", "256MiB", "the object's SIZE")
		rate     = fs.String("rate", "200mbit", `each link's cap, both directions, in tc's syntax ("" uncapped)`)
		pullSrc  = fs.Int("pull-sources", -1, "troved -pull-sources (0 swarm, 1 single source); -1 passes none (broadcast, up)")
		loss     = fs.String("loss", "", "NODE:SHARE,... drop SHARE (0-1) of NODE's packets both ways with the eBPF program (broadcast, up)")
		slow     = fs.String("slow", "", "NODE:RATE,... NODE's link at RATE instead (broadcast, up)")
		part     = fs.String("partition", "", "NODE,... cut these nodes' links once the Gets have started (broadcast)")
		timeout  = fs.Duration("timeout", 20*time.Minute, "bound on each Get (broadcast)")
		troved   = fs.String("troved", "", "a troved binary (default: go build ./cmd/troved into a temporary directory)")
		prefault = fs.Bool("prefault", true, "start troved with -prefault, so pulls write warm memory")
		jsonOut  = fs.String("json", "bench/out/netcluster.json", "where bench writes its figures")
		pngOut   = fs.String("png", "docs/broadcast.png", "where bench draws time against N")
		verbose  = fs.Bool("v", false, "log every step")
	)
	if err := fs.Parse(args); err != nil {
		return 2
	}
	size, err := trove.ParseBytes(*sizeS)
	if err != nil || size <= 0 {
		fmt.Fprintf(stderr, "netcluster: -size %q: want a SIZE such as 256MiB\n", *sizeS)
		return 2
	}
	logf := func(format string, a ...any) {
		fmt.Fprintf(stderr, "netcluster: %s %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, a...))
	}
	quiet := func(string, ...any) {}
	stepLog := quiet
	if *verbose {
		stepLog = logf
	}

	// The first SIGINT/SIGTERM cancels the run, whose deferred Close removes
	// everything; a second one exits at once after a best-effort cleanup.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sig := make(chan os.Signal, 2)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sig)
	go func() {
		s := <-sig
		logf("%v: stopping and tearing down (again to force)", s)
		cancel()
		<-sig
		cctx, ccancel := context.WithTimeout(context.Background(), 30*time.Second)
		netns.Cleanup(cctx, nil)
		ccancel()
		os.Exit(130)
	}()

	if cmd == "plot" {
		res, err := ReadBench(*jsonOut)
		if err == nil {
			err = res.WritePNG(*pngOut)
		}
		if err != nil {
			logf("%v", err)
			return 1
		}
		res.WriteTable(stdout)
		return 0
	}

	bin := *troved
	if bin == "" {
		dir, err := os.MkdirTemp("", "netcluster-bin-")
		if err != nil {
			logf("%v", err)
			return 1
		}
		defer os.RemoveAll(dir)
		if bin, err = BuildTroved(ctx, dir); err != nil {
			logf("%v", err)
			return 1
		}
	}

	switch cmd {
	case "bench":
		var list []int
		for _, f := range strings.Split(*ns, ",") {
			v, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || v < 2 || v > netns.MaxHosts {
				fmt.Fprintf(stderr, "netcluster: -ns %q: want a comma list of N from 2 to %d\n", *ns, netns.MaxHosts)
				return 2
			}
			list = append(list, v)
		}
		if *count < 1 {
			fmt.Fprintln(stderr, "netcluster: -count: want at least 1")
			return 2
		}
		res, err := RunBench(ctx, BenchConfig{Ns: list, Count: *count, Size: int(size), Rate: *rate, Prefault: *prefault,
			Troved: bin, Log: logf, StepLog: stepLog})
		if res != nil && len(res.Points) > 0 {
			res.WriteTable(stdout)
			if jerr := res.WriteJSON(*jsonOut); jerr != nil {
				logf("write %s: %v", *jsonOut, jerr)
			} else {
				logf("wrote %s", *jsonOut)
			}
			if perr := res.WritePNG(*pngOut); perr != nil {
				logf("draw %s: %v", *pngOut, perr)
			} else {
				logf("wrote %s", *pngOut)
			}
		}
		if err != nil {
			logf("%v", err)
			return 1
		}
		return 0
	case "broadcast", "up":
	default:
		fmt.Fprint(stderr, usage)
		return 2
	}

	ps := *pullSrc
	if ps >= 0 && !HasPullSources(bin) {
		logf("troved has no -pull-sources flag (multi-source pulls are not on this build); -pull-sources %d ignored: nodes pull from one holder each", ps)
		ps = -1
	}
	losses, err := parseNodeValues(*loss, *n)
	if err != nil {
		fmt.Fprintln(stderr, "netcluster: -loss:", err)
		return 2
	}
	slows, err := parseNodeValues(*slow, *n)
	if err != nil {
		fmt.Fprintln(stderr, "netcluster: -slow:", err)
		return 2
	}
	var parts []int
	if *part != "" {
		for _, f := range strings.Split(*part, ",") {
			v, err := strconv.Atoi(f)
			if err != nil || v < 1 || v >= *n {
				fmt.Fprintf(stderr, "netcluster: -partition %q: want node indexes from 1 to %d\n", *part, *n-1)
				return 2
			}
			parts = append(parts, v)
		}
	}
	capacity := strconv.FormatInt(size+64<<20, 10)
	c, err := Start(ctx, Options{Nodes: *n, Rate: *rate, Capacity: capacity, Prefault: *prefault, PullSources: ps,
		Troved: bin, Log: stepLog})
	if err != nil {
		logf("%v", err)
		return 1
	}
	defer func() {
		if err := c.Close(); err != nil {
			logf("teardown: %v", err)
		}
	}()
	for node, v := range losses {
		share, err := strconv.ParseFloat(v, 64)
		if err == nil {
			err = c.Nodes[node].Host.SetLoss(share)
		}
		if err != nil {
			logf("loss on node %d: %v", node, err)
			return 1
		}
	}
	for node, v := range slows {
		if err := c.Nodes[node].Host.SetRate(ctx, v); err != nil {
			logf("slow node %d: %v", node, err)
			return 1
		}
	}
	logf("%d nodes up on %s links", *n, *rate)
	for _, nd := range c.Nodes {
		fmt.Fprintf(stdout, "%s\t%s\t%s:%d\tunix://%s\n", nd.Name, nd.Host.Namespace, nd.Host.IP, clusterPort, nd.Socket)
	}
	if cmd == "up" {
		logf("holding the cluster until SIGINT")
		<-ctx.Done()
		return 0
	}
	status := 0
	for i := range *count {
		res, err := Broadcast(ctx, c, BroadcastOptions{Size: int(size), Seed: uint64(i + 1), Timeout: *timeout, Started: func() {
			for _, p := range parts {
				if err := c.Nodes[p].Host.Partition(ctx); err != nil {
					logf("partition node %d: %v", p, err)
				}
			}
		}, Ended: func() {
			for _, p := range parts {
				if err := c.Nodes[p].Host.Heal(ctx); err != nil {
					logf("heal node %d: %v", p, err)
				}
			}
		}})
		if res != nil {
			printBroadcast(stdout, c, res)
		}
		if err != nil {
			logf("broadcast %d: %v", i+1, err)
			status = 1
			if errors.Is(err, context.Canceled) {
				break
			}
		}
	}
	return status
}

func printBroadcast(w io.Writer, c *Cluster, r *BroadcastResult) {
	fmt.Fprintf(w, "broadcast of %d bytes: %.2fs overall; origin egress %d bytes (%.2f copies)\n",
		r.Size, r.Overall.Seconds(), r.OriginEgress(), float64(r.OriginEgress())/float64(r.Size))
	for _, g := range r.Gets {
		state := "ok, every byte verified"
		if g.Err != nil {
			state = g.Err.Error()
		}
		fmt.Fprintf(w, "  %s: %.2fs, link in %d bytes, %s\n", c.Nodes[g.Node].Name, g.Duration.Seconds(), r.LinkIn[g.Node], state)
	}
	for i, n := range c.Nodes {
		fmt.Fprintf(w, "  %s: served %d object bytes (cluster stats), link out %d bytes", n.Name, r.ServedBytes[i], r.LinkOut[i])
		if d := r.Drops[i]; d != (netns.Drops{}) {
			fmt.Fprintf(w, ", eBPF dropped %d sent and %d received packets", d.Out, d.In)
		}
		fmt.Fprintln(w)
	}
}

// parseNodeValues reads "1:0.05,3:0.1" into node → value, nodes 0 to n-1.
func parseNodeValues(s string, n int) (map[int]string, error) {
	out := map[int]string{}
	if s == "" {
		return out, nil
	}
	for _, f := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(f, ":")
		node, err := strconv.Atoi(k)
		if !ok || err != nil || node < 0 || node >= n || v == "" {
			return nil, fmt.Errorf("%q: want NODE:VALUE pairs, NODE from 0 to %d", f, n-1)
		}
		out[node] = v
	}
	return out, nil
}

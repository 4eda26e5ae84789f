package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"
)

// Exit statuses.
const (
	exitOK    = 0
	exitFail  = 1 // any error or verification mismatch during the run, or a target that could not be opened
	exitUsage = 2 // bad flags: nothing was run
)

func main() {
	os.Exit(realMain(os.Args[1:], os.Stdout, os.Stderr, signals()))
}

// signals delivers SIGINT and SIGTERM; the first stops the run, the second aborts
// the ops in flight.
func signals() <-chan os.Signal {
	c := make(chan os.Signal, 2)
	signal.Notify(c, os.Interrupt, syscall.SIGTERM)
	return c
}

// options is everything the flags set.
type options struct {
	load loadConfig

	sockets         listFlag
	embedded        bool
	embeddedCluster int // nodes of an in-process cluster (0: none)
	capacity        bytesFlag
	inline          signedBytesFlag
	spillDirs       listFlag
	dialTimeout     time.Duration

	profile        string        // -profile FILE ("": none)
	profileSeconds time.Duration // -profile-seconds (0: the -duration)

	quiet       bool
	jsonStdout  bool
	jsonOut     string
	statusEvery time.Duration
}

const (
	defaultSizes = "1KiB:70,1MiB:25,16MiB:5"
	defaultMix   = "put:40,get:50,wait:10"
)

// parseOptions parses the command line. -h prints the help to stdout and
// returns flag.ErrHelp; any other error is a usage error, already printed to
// stderr as one line.
func parseOptions(args []string, stdout, stderr io.Writer) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("loadgen", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	printUsage := func() {
		fs.SetOutput(stdout)
		defer fs.SetOutput(io.Discard)
		fmt.Fprintf(stdout, `usage: loadgen [-socket PATH]... [-embedded] [-cluster] [-embedded-cluster N] [flags]

Puts load on trove daemons (one client per -socket, workers round-robin over
them) or on an in-process store (-embedded), verifies every byte it reads back,
and reports throughput, latency percentiles and errors. With -cluster the
daemons are nodes of one cluster: worker i puts through node i mod N and gets
and waits on the others, passing refs by ID, and the report has a row per
node; -embedded-cluster N does the same on N nodes in this process. Exit
status: 0 no errors, 1 any error or mismatch, or a store that could not be
reached, 2 bad flags.

A SIZE is a number of bytes with an optional unit, B, KiB, MiB, GiB, TiB (also
K, M, G, T) or decimal KB, MB, GB, TB; a DURATION is Go's (500ms, 10s, 1m30s).

flags:
`)
		fs.PrintDefaults()
	}
	var sizes, mix string
	workingSet := bytesFlag(512 << 20)
	var seed uint64
	fs.Var(&o.sockets, "socket", "a daemon's unix socket `PATH`; repeatable or comma-separated (default: $TROVE_SOCKET, else troved's default, unless -embedded)")
	fs.BoolVar(&o.embedded, "embedded", false, "also (or, without -socket, only) run against an in-process engine store")
	fs.BoolVar(&o.load.Cluster, "cluster", false, "the -socket daemons are nodes of one cluster (one socket per node, at least 2): put on one node, get and wait on the others (refs passed by ID), report per node")
	fs.IntVar(&o.load.LocalGets, "local-gets", 10, "with -cluster: the `PERCENT` of gets run on the node that put the object (no transfer), the baseline of the crossing gets' latency in the report")
	fs.StringVar(&o.profile, "profile", "", "take a CPU profile of every node during the run (each daemon's /debug/pprof/profile, found from its status; loadgen's own process for in-process stores), label each sample node=NAME, merge them into `FILE` (go tool pprof FILE) and list the top functions in the report")
	fs.DurationVar(&o.profileSeconds, "profile-seconds", 0, "how long (a `DURATION`, whole seconds) each node is profiled (default: -duration; needed with -ops and no -duration)")
	fs.IntVar(&o.embeddedCluster, "embedded-cluster", 0, "run against an in-process cluster of `N` nodes (at least 2; Insecure, on 127.0.0.1), as -cluster does against daemons; -capacity, -inline-threshold and -spill-dir apply to each node (default capacity 256MiB each)")
	fs.Var(&o.capacity, "capacity", "the embedded store's shared memory, a `SIZE` (default: the engine's, 30% of RAM; each -embedded-cluster node: 256MiB)")
	fs.Var(&o.inline, "inline-threshold", "the embedded store's largest object kept in the Go heap, a `SIZE` (0: the engine's default, -1: none)")
	fs.Var(&o.spillDirs, "spill-dir", "a `DIR` the embedded store spills to; repeatable (default: the engine's, under the OS temp dir)")
	fs.DurationVar(&o.dialTimeout, "dial-timeout", 0, "how long (a `DURATION`) to keep dialling a daemon that is not up yet (0: fail at once if none is listening)")
	fs.StringVar(&sizes, "sizes", defaultSizes, "object sizes and their weights, a `LIST` of SIZE:WEIGHT")
	fs.StringVar(&mix, "mix", defaultMix, "the operations and their weights, a `LIST` of OP:WEIGHT, OP one of put, get, wait")
	fs.IntVar(&o.load.Concurrency, "concurrency", 8, "`N` concurrent workers, round-robin over the targets")
	fs.DurationVar(&o.load.Duration, "duration", 10*time.Second, "stop after this `DURATION` (0: no time limit; then -ops is needed)")
	fs.Int64Var(&o.load.Ops, "ops", 0, "stop after `N` ops (0: no op limit); with -duration, whichever comes first")
	fs.Var(&workingSet, "working-set", "the `SIZE` of live objects to keep, over all workers (may exceed the store's memory, which then spills); at least the largest -sizes per worker")
	fs.DurationVar(&o.load.OpTimeout, "op-timeout", 30*time.Second, "the deadline of each op, a `DURATION`")
	fs.IntVar(&o.load.WaitRefs, "wait-refs", 3, "`N` refs per Wait (num_returns 1)")
	fs.Uint64Var(&seed, "seed", 0, "the `SEED` of op choices and payloads (0: from the clock)")
	fs.BoolVar(&o.quiet, "quiet", false, "no progress display")
	fs.BoolVar(&o.jsonStdout, "json", false, "print the report as JSON to stdout instead of the table (schema in docs/cli.md)")
	fs.StringVar(&o.jsonOut, "json-out", "", "also write the JSON report to `FILE`")
	fs.DurationVar(&o.statusEvery, "status-every", 5*time.Second, "the `DURATION` between status lines when stderr is not a terminal")
	fail := func(err error) (*options, error) {
		fmt.Fprintf(stderr, "loadgen: %v\n", err)
		return nil, err
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			printUsage()
			return nil, err
		}
		return fail(fmt.Errorf("%w (loadgen -h lists the flags)", err))
	}
	if fs.NArg() > 0 {
		return fail(fmt.Errorf("unexpected arguments %q (all settings are flags)", fs.Args()))
	}
	var err error
	if o.load.Sizes, err = parseSizes(sizes); err != nil {
		return fail(err)
	}
	if o.load.Mix, err = parseMix(mix); err != nil {
		return fail(err)
	}
	o.load.WorkingSet = int64(workingSet)
	o.load.Seed = seed
	if o.load.Seed == 0 {
		o.load.Seed = uint64(time.Now().UnixNano())
	}
	if err := o.load.validate(); err != nil {
		return fail(err)
	}
	if o.statusEvery <= 0 {
		return fail(fmt.Errorf("-status-every %v: need a positive interval", o.statusEvery))
	}
	switch {
	case o.embeddedCluster < 0 || o.embeddedCluster == 1:
		return fail(fmt.Errorf("-embedded-cluster %d: need at least 2 nodes (0: none)", o.embeddedCluster))
	case o.embeddedCluster > 0 && (o.embedded || len(o.sockets) > 0):
		return fail(errors.New("-embedded-cluster runs on its own nodes: drop -socket and -embedded, or use -cluster with the sockets of a cluster's daemons"))
	case o.embeddedCluster > 0:
		o.load.Cluster = true
	case o.load.Cluster && o.embedded:
		return fail(errors.New("-cluster with -embedded: the embedded store is no node of a cluster; use -embedded-cluster N for an in-process cluster"))
	case o.load.Cluster && len(o.sockets) < 2:
		return fail(fmt.Errorf("-cluster needs the sockets of at least 2 nodes of one cluster (repeat -socket, or comma-separate them), got %d; or use -embedded-cluster N", len(o.sockets)))
	}
	if o.profile != "" {
		if o.profileSeconds == 0 {
			o.profileSeconds = o.load.Duration
		}
		switch {
		case o.profileSeconds < 0:
			return fail(fmt.Errorf("-profile-seconds %v: need a positive duration", o.profileSeconds))
		case o.profileSeconds == 0:
			return fail(errors.New("-profile with no -duration: say how long to profile each node with -profile-seconds (the run's length is not known in advance with -ops)"))
		case o.profileSeconds < time.Second:
			return fail(fmt.Errorf("-profile-seconds %v: pprof profiles whole seconds; need at least 1s", o.profileSeconds))
		}
	} else if o.profileSeconds != 0 {
		return fail(errors.New("-profile-seconds without -profile: give -profile FILE too"))
	}
	if !o.embedded && o.embeddedCluster == 0 && len(o.sockets) == 0 {
		o.sockets = listFlag{defaultSocket()}
	}
	return o, nil
}

// realMain runs loadgen with args and returns the exit status. sig delivers
// interrupts (nil: none).
func realMain(args []string, stdout, stderr io.Writer, sig <-chan os.Signal) int {
	o, err := parseOptions(args, stdout, stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}

	ctx, abort := context.WithCancel(context.Background()) // cancelled by a second interrupt
	defer abort()
	stop := make(chan struct{}) // closed by the first interrupt
	finished := make(chan struct{})
	var sigDone sync.WaitGroup
	defer sigDone.Wait()
	defer close(finished)
	sigDone.Go(func() {
		for n := 0; ; n++ {
			select {
			case <-sig:
			case <-finished:
				return
			}
			switch n {
			case 0:
				fmt.Fprintln(stderr, "\nloadgen: interrupted: stopping; the report follows (interrupt again to abort ops in flight)")
				close(stop)
			default:
				abort()
			}
		}
	})

	// Dialling stops at the first interrupt.
	dialCtx, dialCancel := context.WithCancel(ctx)
	go func() {
		select {
		case <-stop:
		case <-dialCtx.Done():
		}
		dialCancel()
	}()
	targets, closeAll, err := openTargets(dialCtx, o, stderr)
	dialCancel()
	if err != nil {
		fmt.Fprintf(stderr, "loadgen: %v\n", err)
		return exitFail
	}
	r, err := newRunner(o.load, targets.list(), stderr)
	if err != nil {
		closeAll()
		fmt.Fprintf(stderr, "loadgen: %v\n", err)
		return exitFail
	}
	// The nodes' counters before the run, for their increase over it.
	var infosBefore []*nodeInfo
	var prof *profiler
	if o.load.Cluster || o.profile != "" {
		var errs []error
		infosBefore, errs = targets.nodeInfos(ctx)
		if o.profile != "" {
			srcs, err := profileSources(targets, infosBefore, errs)
			if err == nil {
				prof, err = startProfiler(o.profile, int(o.profileSeconds/time.Second), srcs)
			}
			if err != nil {
				closeAll()
				fmt.Fprintf(stderr, "loadgen: %v\n", err)
				return exitFail
			}
		}
	}

	r.start = time.Now() // the run begins now, after the reads above
	prog := startProgress(r, o, stderr)
	r.run(ctx, stop)
	elapsed := time.Since(r.start)
	prog.stop()
	var profRep *ProfileReport
	var profErr error
	if prof != nil {
		if elapsed < o.profileSeconds {
			fmt.Fprintf(stderr, "loadgen: waiting for the nodes' %v CPU profiles\n", o.profileSeconds)
		}
		profRep, profErr = prof.finish(stop)
	}

	stoppedBy := "duration"
	select {
	case <-stop:
		stoppedBy = "interrupt"
	default:
	}
	switch {
	case ctx.Err() != nil:
		stoppedBy = "abort"
	case r.opsReached.Load():
		stoppedBy = "ops"
	}
	rep := r.report(elapsed, stoppedBy)
	for _, s := range targets.states(ctx) {
		rep.addStore(s)
	}
	if o.load.Cluster {
		after, errs := targets.nodeInfos(ctx)
		rep.addTransfers(infosBefore, after, errs)
	}
	if prof != nil {
		rep.Profile = profRep
		for _, n := range profRep.Nodes {
			if n.Error != "" {
				rep.addError("profile of " + n.Node + ": " + n.Error)
			}
		}
		if profErr != nil {
			fmt.Fprintf(stderr, "loadgen: %v\n", profErr)
			rep.addError(profErr.Error())
		}
	}
	if err := closeAll(); err != nil {
		fmt.Fprintf(stderr, "loadgen: closing: %v\n", err)
		rep.addError("close: " + err.Error())
	}

	status := exitOK
	if o.jsonOut != "" {
		if err := writeJSONFile(o.jsonOut, rep); err != nil {
			fmt.Fprintf(stderr, "loadgen: %v\n", err)
			status = exitFail
		}
	}
	if o.jsonStdout {
		err = rep.writeJSON(stdout)
	} else {
		err = rep.writeTable(stdout)
	}
	if err != nil {
		fmt.Fprintf(stderr, "loadgen: writing the report: %v\n", err)
		status = exitFail
	}
	if rep.Failed() {
		status = exitFail
	}
	return status
}

func writeJSONFile(path string, rep *Report) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("-json-out: %w", err)
	}
	if err := rep.writeJSON(f); err != nil {
		f.Close()
		return fmt.Errorf("-json-out: writing %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("-json-out: writing %s: %w", path, err)
	}
	return nil
}

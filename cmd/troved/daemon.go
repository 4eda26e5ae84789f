package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"path/filepath"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/trovedb/trove"
	"github.com/trovedb/trove/cluster"
	"github.com/trovedb/trove/dashboard"
	"github.com/trovedb/trove/engine"
	"github.com/trovedb/trove/internal/version"
	"github.com/trovedb/trove/net/ipc"
	"github.com/trovedb/trove/task"
)

// run is the daemon: it serves until ctx ends (main cancels it on SIGTERM or
// SIGINT, with the signal as the cause), then shuts down cleanly and returns
// nil. lookup reads the environment. The line scripts wait for goes to stdout;
// logs go to stderr.
func run(ctx context.Context, args []string, lookup func(string) (string, bool), stdout, stderr io.Writer) (err error) {
	cfg, err := loadConfig(args, lookup, stdout)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		if errors.Is(err, errVersion) {
			fmt.Fprintln(stdout, "troved", buildVersion())
			return nil
		}
		return &usageError{err}
	}
	logger := newLogger(cfg, stderr)
	version := buildVersion()

	// A daemon already on the socket is the real cause of whatever else would
	// clash (the -http port, most likely): say so before opening anything.
	if err := checkSocketFree(cfg.Socket); err != nil {
		return err
	}
	if err := checkSpillDirs(cfg); err != nil {
		return err
	}
	ecfg := engine.Config{Capacity: cfg.Capacity, SpillDirs: cfg.SpillDirs, PrefaultAll: cfg.Prefault}
	var (
		st        *engine.Store
		node      *cluster.Node
		closeNode func() error
	)
	if cfg.Listen == "" {
		if st, err = engine.Open(ecfg); err != nil {
			return openError(cfg, err)
		}
		closeNode = st.Close
	} else {
		certs, certsDone, err := nodeCredentials(cfg)
		if err != nil {
			return &usageError{err}
		}
		node, err = openNode(ctx, cfg, certs, ecfg, logger)
		certsDone() // the node has read them
		if err != nil {
			return err
		}
		st, closeNode = node.Local(), node.Close // Close leaves the cluster, then closes the store
		logger.Info("cluster node up", "name", node.Name(), "addr", node.Addr(), "join", cfg.Join,
			"members", len(node.Members()), "insecure", cfg.Insecure, "certs_dir", cfg.CertsDir)
	}
	defer func() {
		if cerr := closeNode(); cerr != nil {
			logger.Error("closing the store", "err", cerr)
			err = errors.Join(err, fmt.Errorf("close the store: %w", cerr))
			return
		}
		logger.Info("store closed")
	}()
	scfg := st.Config()
	logger.Info("store open", "node", st.Node().String(), "capacity", trove.HumanBytes(scfg.Capacity),
		"inline_threshold", trove.HumanBytes(scfg.InlineThreshold), "spill_dirs", scfg.SpillDirs,
		"prefault", scfg.PrefaultAll, "config_file", cfg.ConfigFile)
	if left := st.SpillLeftovers(); left.Files > 0 || left.Kept > 0 || left.Err != nil {
		// A daemon that crashed or was killed left spill files: they are gone now.
		logger.Info("removed spill files left by stores that did not close", "files", left.Files,
			"bytes", left.Bytes, "reclaimed", trove.HumanBytes(left.Bytes), "dirs", left.Dirs,
			"kept_unproven", left.Kept, "err", left.Err)
	}

	// HTTP before the socket, so that a refused address leaves no socket behind.
	var (
		hl      net.Listener
		hs      *http.Server
		httpErr = make(chan error, 1)
		metrics = "metrics off"
	)
	if cfg.HTTP != "" {
		if hl, err = net.Listen("tcp", cfg.HTTP); err != nil {
			return fmt.Errorf("metrics and pprof on %s: %w (choose another -http, or -http off)", cfg.HTTP, err)
		}
	}

	icfg := ipc.ServerConfig{Logger: logger, Version: version}
	if node != nil {
		icfg.Cluster = clusterView{node}
		icfg.Results = node // workers write calls' results in place
	}
	if hl != nil {
		icfg.HTTP = hl.Addr().String() // in status: loadgen -profile finds the node's pprof from its socket
	}
	srv := ipc.NewServer(st, icfg)
	probes := &health{socket: cfg.Socket, joining: cfg.Join}
	if node != nil {
		probes.node = nodeHealth(node)
	}
	var calls dashboard.CallsSource // nil: the dashboard says the node runs no remote functions
	var callArgs dashboard.CallArgsSource
	if node != nil {
		// The node's task runtime: troved Defines no functions; the worker
		// processes attached to its socket run the calls placed here.
		rt, err := task.Start(node, task.Config{CPUs: cfg.CPUs, Resources: cfg.Resources, WorkersOnly: true})
		if err != nil {
			return fmt.Errorf("the task runtime (-cpus, -resources): %w", err)
		}
		defer rt.Close() // before the node closes: calls queued here go back to their callers
		if err := rt.ServeWorkers(srv); err != nil {
			return err
		}
		srv.SetWorkers(rt.Workers) // trove status lists them
		calls, callArgs = runtimeCalls{rt}, runtimeCallArgs{rt}
		logger.Info("task runtime up: workers attached to the socket run remote functions", "cpus", cfg.CPUs, "resources", cfg.Resources)
	}

	if hl != nil {
		reg := prometheus.NewRegistry()
		cs := []prometheus.Collector{
			newCollector(st, srv, version),
			collectors.NewGoCollector(),
			collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		}
		if node != nil {
			cs = append(cs, clusterCollector{node})
		}
		for _, c := range cs {
			if err := reg.Register(c); err != nil {
				hl.Close()
				return fmt.Errorf("metrics: %w", err)
			}
		}
		// The dashboard (before the node closes: the deferred Close runs first).
		dash, err := dashboard.New(dashboard.Config{Store: st, Node: node, Version: version, Logger: logger, Calls: calls, CallArgs: callArgs})
		if err != nil {
			hl.Close()
			return err
		}
		defer dash.Close()
		errLog := slog.NewLogLogger(logger.Handler(), slog.LevelWarn)
		hs = &http.Server{Handler: httpMux(reg, errLog, probes, dash), ReadHeaderTimeout: 10 * time.Second, ErrorLog: errLog}
		// The goroutine gets its own copy of the server: stopHTTP clears hs, and
		// a daemon told to stop at once can get there before Serve begins
		// (Serve then returns ErrServerClosed).
		go func(hs *http.Server) { httpErr <- hs.Serve(hl) }(hs)
		metrics = "metrics http://" + hl.Addr().String() + "/metrics"
		logger.Info("http listening", "addr", hl.Addr().String(), "endpoints", "/ (dashboard) /api/ /metrics /debug/pprof/ /healthz /readyz")
	}
	stopHTTP := func() {
		if hs == nil {
			return
		}
		sctx, cancel := context.WithTimeout(context.Background(), max(cfg.ShutdownGrace, time.Second))
		defer cancel()
		if err := hs.Shutdown(sctx); err != nil {
			logger.Warn("http server shutdown", "err", err)
			hs.Close()
		}
		hs = nil
		logger.Info("http server stopped")
	}
	defer stopHTTP()

	ln, err := ipc.Listen(cfg.Socket)
	if err != nil {
		return err
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	probes.serving.Store(true)
	logger.Info("listening", "socket", cfg.Socket, "pid", os.Getpid(), "version", version)
	fmt.Fprintf(stdout, "troved: listening on unix://%s (%s)\n", cfg.Socket, metrics)
	if node != nil {
		// Scripts (and tests) read the node's cluster address (what others
		// -join) from this second line.
		fmt.Fprintf(stdout, "troved: cluster node %s on %s\n", node.Name(), node.Addr())
	}

	// Serve until told to stop, or until a server fails.
	var failure error
	select {
	case <-ctx.Done():
		logger.Info("shutting down", "reason", context.Cause(ctx), "grace", cfg.ShutdownGrace.String())
	case err := <-serveErr:
		failure = fmt.Errorf("serving the socket: %w", err)
		serveErr <- err // for the wait below
		logger.Error("socket server failed; shutting down", "err", err)
	case err := <-httpErr:
		failure = fmt.Errorf("serving http: %w", err)
		hs = nil
		logger.Error("http server failed; shutting down", "err", err)
	}

	probes.serving.Store(false) // /readyz: 503 from here on
	sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownGrace)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		// Requests still running at the deadline were failed with
		// ipc.ErrServerClosed; the shutdown itself completed.
		logger.Warn("socket server stopped after the grace period", "err", err)
	} else {
		logger.Info("socket server stopped: socket removed, clients disconnected, their refs and views released", "socket", cfg.Socket)
	}
	if err := <-serveErr; err != nil && !errors.Is(err, ipc.ErrServerClosed) && failure == nil {
		failure = fmt.Errorf("serving the socket: %w", err)
	}
	stopHTTP()
	return failure // the deferred Close closes the store
}

// httpMux serves /metrics, /debug/pprof/, the probes (/healthz, /readyz:
// health.go) and the dashboard (/ and /api/) on a mux of troved's own (not
// http.DefaultServeMux, which any imported package could add to).
func httpMux(reg *prometheus.Registry, errLog *log.Logger, probes *health, dash http.Handler) *http.ServeMux {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorLog: errLog, Registry: reg}))
	mux.HandleFunc("GET /debug/pprof/", pprof.Index)
	mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("POST /debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	mux.HandleFunc("GET /healthz", probes.healthz)
	mux.HandleFunc("GET /readyz", probes.readyz)
	mux.Handle("/", dash) // the dashboard's pages at / and its API under /api/
	return mux
}

func newLogger(cfg config, w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: cfg.LogLevel}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// buildVersion is the version stamped in by make dist, else the module
// version and VCS revision the binary was built from (internal/version).
func buildVersion() string { return version.String() }

// checkSocketFree fails if a process already serves the unix socket at path,
// naming it by its pid (SO_PEERCRED). A missing socket, or a stale one left by
// a daemon that died (ipc.Listen replaces it), is free.
func checkSocketFree(path string) error {
	nc, err := net.DialTimeout("unix", path, time.Second)
	if err != nil {
		return nil
	}
	defer nc.Close()
	who := "a daemon"
	if uc, ok := nc.(*net.UnixConn); ok {
		if pid := ipc.PeerPID(uc); pid > 0 {
			who = fmt.Sprintf("a daemon (pid %d)", pid)
		}
	}
	return fmt.Errorf("%s is already listening on %s: stop it, or give this one another -socket (or $TROVE_SOCKET)", who, path)
}

// spillDirKnobs names where spill directories are set, for error messages.
const spillDirKnobs = `-spill-dir, $TROVE_SPILL_DIR or "spill-dir" in the -config file`

// checkSpillDirs fails for a -spill-dir that exists and is not a directory
// (the spiller would accept it and fail at the first spill).
func checkSpillDirs(cfg config) error {
	for _, d := range cfg.SpillDirs {
		if fi, err := os.Stat(d); err == nil && !fi.IsDir() {
			return fmt.Errorf("spill directory %s (from %s) is not a directory: choose another with %s", d, cfg.SpillDirsFrom, spillDirKnobs)
		}
	}
	return nil
}

// openError explains a store that would not open. A spill directory that
// cannot be made is named with the knob that set it (the engine's message
// speaks of its Config).
func openError(cfg config, err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		bad := filepath.Clean(pe.Path)
		for _, d := range cfg.SpillDirs {
			if filepath.Clean(d) == bad {
				return fmt.Errorf("spill directory %s (from %s): %w; create it, or choose another with %s", d, cfg.SpillDirsFrom, pe, spillDirKnobs)
			}
		}
		if len(cfg.SpillDirs) == 0 && filepath.Dir(bad) == filepath.Clean(os.TempDir()) {
			return fmt.Errorf("no spill directory given, and none could be made under the OS temp dir: %w; choose one with %s (or set TMPDIR)", pe, spillDirKnobs)
		}
	}
	return fmt.Errorf("open the store: %w", err)
}

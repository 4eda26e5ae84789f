package dashboard

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/trovedb/trove/cluster"
	"github.com/trovedb/trove/engine"
	"github.com/trovedb/trove/net/quic"
)

//go:embed static
var static embed.FS

// Config says what a Dashboard shows.
type Config struct {
	// Store is the node's store (a cluster node's Local()); required.
	Store *engine.Store
	// Node is the cluster node, nil for a single-node daemon: the pages then
	// show this store alone.
	Node *cluster.Node
	// Name is this node's name on the pages when Node is nil; default "local".
	Name string
	// Calls lists remote calls for the calls page; nil: the node runs none.
	Calls CallsSource
	// CallArgs says which objects live calls made on this node hold as
	// arguments (the memory page marks them); nil: none are marked.
	CallArgs CallArgsSource
	// Interval is how often the sampler records the node's figures; default
	// 1 s (the activity plots lag by at most this plus the page's poll).
	Interval time.Duration
	// History is how many samples the sampler keeps; default 600 (10
	// minutes at 1 s), at most 3600.
	History int
	// Version is shown in the pages' header.
	Version string
	// Logger receives warnings (a node that could not be asked); nil
	// discards them.
	Logger *slog.Logger
}

// Dashboard serves the pages and the API. Close stops its sampler and
// unregisters its op.
type Dashboard struct {
	cfg   Config
	src   source
	hist  *ring
	lists listCache
	mux   *http.ServeMux

	stop chan struct{}
	done chan struct{}
	once sync.Once
}

// New starts a dashboard: its sampler, and on a cluster node the op that
// the other nodes' dashboards ask (so every node of a cluster should run
// one; a node that does not shows on the others' pages with an error).
func New(cfg Config) (*Dashboard, error) {
	if cfg.Store == nil {
		return nil, errors.New("dashboard: Config.Store is required")
	}
	if cfg.Interval <= 0 {
		cfg.Interval = time.Second
	}
	if cfg.History <= 0 {
		cfg.History = 600
	}
	if cfg.History > maxSamples {
		return nil, fmt.Errorf("dashboard: Config.History %d: at most %d samples", cfg.History, maxSamples)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	name := cfg.Name
	if cfg.Node != nil {
		name = cfg.Node.Name()
	}
	if name == "" {
		name = "local"
	}
	d := &Dashboard{cfg: cfg, src: source{st: cfg.Store, node: cfg.Node, name: name, args: cfg.CallArgs}, hist: newRing(cfg.History),
		stop: make(chan struct{}), done: make(chan struct{})}
	if cfg.Node != nil {
		if err := cfg.Node.Handle(opDashboard, d.serveOp); err != nil {
			return nil, fmt.Errorf("dashboard: %w", err)
		}
	}
	d.hist.add(sample(cfg.Store, cfg.Node, time.Now()))
	go d.sampleLoop()
	d.mux = d.routes()
	return d, nil
}

// Close stops the sampler and, on a cluster node, stops serving the op.
func (d *Dashboard) Close() error {
	d.once.Do(func() {
		close(d.stop)
		<-d.done
		if d.cfg.Node != nil {
			d.cfg.Node.Handle(opDashboard, nil) // cannot fail for an op above FirstLayerOp
		}
	})
	return nil
}

func (d *Dashboard) sampleLoop() {
	defer close(d.done)
	t := time.NewTicker(d.cfg.Interval)
	defer t.Stop()
	for {
		select {
		case <-d.stop:
			return
		case now := <-t.C:
			d.hist.add(sample(d.cfg.Store, d.cfg.Node, now))
		}
	}
}

// ServeHTTP serves the pages at / and the API under /api/.
func (d *Dashboard) ServeHTTP(w http.ResponseWriter, r *http.Request) { d.mux.ServeHTTP(w, r) }

func (d *Dashboard) routes() *http.ServeMux {
	mux := http.NewServeMux()
	files, _ := fs.Sub(static, "static") // cannot fail: the directory is embedded
	fileServer := http.FileServerFS(files)
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-cache")
		http.ServeFileFS(w, r, files, "index.html")
	})
	mux.Handle("GET /static/", http.StripPrefix("/static/", fileServer))
	mux.HandleFunc("GET /api/{$}", d.apiIndex)
	mux.HandleFunc("GET /api/nodes", d.apiNodes)
	mux.HandleFunc("GET /api/objects", d.apiObjects)
	mux.HandleFunc("GET /api/objects/{id}", d.apiObject)
	mux.HandleFunc("GET /api/activity", d.apiActivity)
	mux.HandleFunc("GET /api/calls", d.apiCalls)
	mux.HandleFunc("/api/", func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet {
			writeError(w, http.StatusMethodNotAllowed, fmt.Sprintf("%s %s: the API is read-only, use GET", r.Method, r.URL.Path))
			return
		}
		writeError(w, http.StatusNotFound, fmt.Sprintf("no endpoint %s: see /api/ for the list", r.URL.Path))
	})
	return mux
}

// serveOp answers another node's dashboard.
func (d *Dashboard) serveOp(_ context.Context, _ quic.Peer, body, reply []byte) ([]byte, error) {
	return d.answer(body, reply)
}

// answer serves a request of the dashboard op, from another node or this one.
func (d *Dashboard) answer(body, reply []byte) ([]byte, error) {
	_, req, err := decodeRequest(body)
	if err != nil {
		return reply, err
	}
	switch req := req.(type) {
	case reportRequest:
		return appendReply(reply, d.report(req))
	case query:
		return appendReply(reply, d.lists.get(req, d.src.list))
	case objectRequest:
		var id [16]byte
		copy(id[:], req.ID)
		return appendReply(reply, d.src.inspect(id))
	}
	return reply, fmt.Errorf("%w: request %T", errWire, req)
}

// report is this node's figures now and its samples after since.
func (d *Dashboard) report(req reportRequest) report {
	ss := d.hist.since(req.Since)
	if req.Last > 0 && len(ss) > req.Last {
		ss = ss[len(ss)-req.Last:]
	}
	return report{Name: d.src.name, Now: sample(d.cfg.Store, d.cfg.Node, time.Now()), Samples: ss}
}

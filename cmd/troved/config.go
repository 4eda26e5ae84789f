package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/trovedb/trove"
	"github.com/trovedb/trove/net/ipc"
)

// config is troved's configuration after every source has been applied.
type config struct {
	Socket        string
	Capacity      int64 // bytes; 0: the engine's default
	CapacityText  string
	SpillDirs     []string // nil: the engine's default
	SpillDirsFrom string   // where SpillDirs came from: "flag -spill-dir", "$TROVE_SPILL_DIR", "config file x.json"
	HTTP          string   // "" when disabled
	LogLevel      slog.Level
	LogFormat     string // "text" or "json"
	Prefault      bool
	ShutdownGrace time.Duration
	ConfigFile    string // "" if none

	// A cluster node when Listen is set (else the single-node daemon).
	Listen   string
	Join     []string
	CertsDir string
	Insecure bool
	Name     string
	// Membership and request timing (zero: the cluster's defaults).
	ProbeInterval, ProbeTimeout, GossipInterval, RequestTimeout time.Duration
	SuspicionMult                                               int
	PullSources                                                 int // cluster.Config.PullSources

	// The node's task runtime (a cluster node's): what it offers remote
	// functions, run by the worker processes attached to its socket.
	CPUs      float64            // -cpus: CPU slots (default: the machine's CPU count)
	Resources map[string]float64 // -resources: custom resources
}

// errVersion is loadConfig's answer to -version: run prints the version.
var errVersion = errors.New("troved: -version")

// setting is one configuration key: its flag, environment variable and config
// file key, and its default. Every value is held as text until all sources are
// applied, then parsed once, so that an error can name where the value came from.
type setting struct {
	key   string // the flag's name and the config file's key
	env   string
	def   string
	usage string
	multi bool // repeatable flag; values are joined with commas
	bool  bool
}

var settings = []setting{
	{key: "socket", env: "TROVE_SOCKET", usage: "the unix socket `PATH` to listen on (default: $XDG_RUNTIME_DIR/trove/troved.sock, else /tmp/trove-$UID/troved.sock)"},
	{key: "capacity", env: "TROVE_CAPACITY", usage: "shared memory for objects: a `SIZE` (4GiB, 512MiB, or bytes) or a share of RAM (30%) (default 30% of RAM)"},
	{key: "spill-dir", env: "TROVE_SPILL_DIR", multi: true, usage: "a `DIR` to spill objects to; repeat, or give a comma list (default: one under the OS temp dir)"},
	{key: "http", env: "TROVE_HTTP", def: "127.0.0.1:9464", usage: "loopback host:port (`ADDR`) for /metrics and /debug/pprof/; port 0 picks one; off disables"},
	{key: "log-level", env: "TROVE_LOG_LEVEL", def: "info", usage: "log `LEVEL`: debug, info, warn or error"},
	{key: "log-format", env: "TROVE_LOG_FORMAT", def: "text", usage: "log `FORMAT` on stderr: text or json"},
	{key: "prefault", env: "TROVE_PREFAULT", def: "false", bool: true, usage: "populate the whole arena at start (slower start, no page faults later)"},
	{key: "listen", env: "TROVE_LISTEN", usage: "run a cluster node on this UDP `HOST:PORT` (port 0 picks one); without it troved is a single-node store"},
	{key: "join", env: "TROVE_JOIN", multi: true, usage: "an `ADDR` (host:port) of any cluster member to join; repeat, or give a comma list (default: start a cluster)"},
	{key: "certs-dir", env: "TROVE_CERTS_DIR", usage: "the node's credentials `DIR` (ca.crt, node.crt, node.key: trove cert create-node), or every node's (ca.crt, NAME.crt, NAME.key: -name picks); -listen needs it or -insecure"},
	{key: "insecure", env: "TROVE_INSECURE", def: "false", bool: true, usage: "run the cluster node without certificates: unauthenticated peers and gossip (a laptop only)"},
	{key: "name", env: "TROVE_NAME", usage: "the node's `NAME` in the cluster (default: the certificate's name, or host-pid with -insecure)"},
	{key: "probe-interval", env: "TROVE_PROBE_INTERVAL", usage: "membership: how often (a `DURATION`) a member is probed (default: the cluster's, dead within ~6 s)"},
	{key: "probe-timeout", env: "TROVE_PROBE_TIMEOUT", usage: "membership: how long (a `DURATION`) a probe waits for its answer"},
	{key: "gossip-interval", env: "TROVE_GOSSIP_INTERVAL", usage: "membership: how often (a `DURATION`) gossip is sent"},
	{key: "suspicion-mult", env: "TROVE_SUSPICION_MULT", usage: "membership: suspicion timeout as a multiple (a `NUMBER`) of the probe interval"},
	{key: "request-timeout", env: "TROVE_REQUEST_TIMEOUT", usage: "bound (a `DURATION`) on a control request to another node (default 5s)"},
	{key: "pull-sources", env: "TROVE_PULL_SOURCES", usage: "holders (a `NUMBER`) one pull of a large object takes chunks from at once: 0 every holder, nodes still pulling it included (a swarm); 1 one sealed copy at a time (default 0)"},
	{key: "cpus", env: "TROVE_CPUS", usage: "remote functions: the node's CPU slots, a `NUMBER` (calls of 1 CPU each run at once, over all the workers attached to the socket) (default: the machine's CPU count)"},
	{key: "resources", env: "TROVE_RESOURCES", usage: "remote functions: the node's custom resources, a `LIST` such as Custom=2,GPU=1 (calls asking for some run only where they are free)"},
	{key: "shutdown-grace", env: "TROVE_SHUTDOWN_GRACE", def: "10s", usage: "how long (a `DURATION`: 10s, 500ms) requests in progress may run after SIGTERM before they are failed"},
}

// value is a setting's text and where it came from.
type value struct {
	text   string
	source string // "flag -capacity", "$TROVE_CAPACITY", "config file x.json", "default"
}

// multiFlag collects a repeatable flag's values.
type multiFlag struct{ vals []string }

func (m *multiFlag) String() string { return strings.Join(m.vals, ",") }
func (m *multiFlag) Set(s string) error {
	m.vals = append(m.vals, s)
	return nil
}

// textFlag records a flag's text without parsing it (parsing comes after all
// sources are merged). A bool flag accepts "-prefault" alone.
type textFlag struct {
	val    string
	isBool bool
}

func (f *textFlag) String() string     { return f.val }
func (f *textFlag) Set(s string) error { f.val = s; return nil }
func (f *textFlag) IsBoolFlag() bool   { return f.isBool }

// loadConfig builds the configuration from args, the environment (lookup) and
// the config file, with precedence flags > environment > file > defaults.
// -h writes the help to helpOut and returns flag.ErrHelp; flag errors are
// returned, not printed.
func loadConfig(args []string, lookup func(string) (string, bool), helpOut io.Writer) (config, error) {
	fs := flag.NewFlagSet("troved", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	printUsage := func() {
		fs.SetOutput(helpOut)
		defer fs.SetOutput(io.Discard)
		fmt.Fprintf(helpOut, "usage: troved [flags]\n\nRuns the node's object store and serves it on a unix socket. Each flag can also be set\n"+
			"by its environment variable or in the -config file; flags win, then the environment, then\n"+
			"the file. Exit status: 0 after a clean shutdown, 1 failed, 2 bad flags or settings.\n\nflags:\n")
		fs.PrintDefaults()
	}
	configFlag := fs.String("config", "", "a JSON `FILE` whose keys are these flags' names ($TROVE_CONFIG)")
	versionFlag := fs.Bool("version", false, "print troved's version and exit")
	flags := make(map[string]flag.Value, len(settings))
	for _, s := range settings {
		usage := fmt.Sprintf("%s ($%s)", s.usage, s.env)
		if s.multi {
			m := &multiFlag{}
			fs.Var(m, s.key, usage)
			flags[s.key] = m
			continue
		}
		f := &textFlag{val: s.def, isBool: s.bool}
		fs.Var(f, s.key, usage)
		flags[s.key] = f
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			printUsage()
			return config{}, err
		}
		return config{}, fmt.Errorf("%w (troved -h lists the flags)", err)
	}
	if fs.NArg() > 0 {
		return config{}, fmt.Errorf("unexpected argument %q: troved takes only flags (see troved -h)", fs.Arg(0))
	}
	if *versionFlag {
		return config{}, errVersion
	}

	vals := make(map[string]value, len(settings))
	for _, s := range settings {
		if s.def != "" {
			vals[s.key] = value{s.def, "default"}
		}
	}

	// The config file: -config, else $TROVE_CONFIG.
	var cfg config
	cfg.ConfigFile = *configFlag
	if cfg.ConfigFile == "" {
		cfg.ConfigFile, _ = lookup("TROVE_CONFIG")
	}
	if cfg.ConfigFile != "" {
		file, err := readConfigFile(cfg.ConfigFile)
		if err != nil {
			return config{}, err
		}
		for k, v := range file {
			vals[k] = value{v, "config file " + cfg.ConfigFile}
		}
	}
	for _, s := range settings {
		if v, ok := lookup(s.env); ok && v != "" {
			vals[s.key] = value{v, "$" + s.env}
		}
	}
	fs.Visit(func(f *flag.Flag) {
		if _, ok := flags[f.Name]; ok {
			vals[f.Name] = value{f.Value.String(), "flag -" + f.Name}
		}
	})
	return parseConfig(cfg, vals)
}

// readConfigFile reads a JSON object whose keys are settings' keys, each value
// turned into the text a flag would carry: strings as they are, numbers and
// booleans in JSON's spelling, a list of strings (spill-dir) comma-joined.
func readConfigFile(path string) (map[string]string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config file: %w", err)
	}
	var raw map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&raw); err != nil {
		return nil, fmt.Errorf("config file %s: not a JSON object: %w", path, err)
	}
	out := make(map[string]string, len(raw))
	for k, msg := range raw {
		i := slices.IndexFunc(settings, func(s setting) bool { return s.key == k })
		if i < 0 {
			keys := make([]string, len(settings))
			for j, s := range settings {
				keys[j] = s.key
			}
			return nil, fmt.Errorf("config file %s: unknown key %q (known keys: %s)", path, k, strings.Join(keys, ", "))
		}
		var v any
		if err := json.Unmarshal(msg, &v); err != nil {
			return nil, fmt.Errorf("config file %s: key %q: %w", path, k, err)
		}
		switch v := v.(type) {
		case string:
			out[k] = v
		case bool:
			out[k] = strconv.FormatBool(v)
		case float64:
			out[k] = string(bytes.TrimSpace(msg)) // as written: 4294967296, not 4.294967296e+09
		case []any:
			if !settings[i].multi {
				return nil, fmt.Errorf("config file %s: key %q takes one value, not a list", path, k)
			}
			parts := make([]string, len(v))
			for j, e := range v {
				s, ok := e.(string)
				if !ok {
					return nil, fmt.Errorf("config file %s: key %q: a list of strings expected", path, k)
				}
				parts[j] = s
			}
			out[k] = strings.Join(parts, ",")
		default:
			return nil, fmt.Errorf("config file %s: key %q: a string, number or boolean expected, got %s", path, k, msg)
		}
	}
	return out, nil
}

// parseConfig parses the merged settings into cfg.
func parseConfig(cfg config, vals map[string]value) (config, error) {
	bad := func(key string, err error) error {
		v := vals[key]
		return fmt.Errorf("%s %q (from %s): %w", key, v.text, v.source, err)
	}
	var err error

	cfg.Socket = vals["socket"].text
	if cfg.Socket == "" {
		cfg.Socket = ipc.DefaultSocket()
	}

	if v, ok := vals["capacity"]; ok && v.text != "" {
		cfg.CapacityText = v.text
		if cfg.Capacity, err = parseCapacity(v.text, totalRAM); err != nil {
			return config{}, bad("capacity", err)
		}
	}

	if v, ok := vals["spill-dir"]; ok {
		cfg.SpillDirsFrom = v.source
		for _, d := range strings.Split(v.text, ",") {
			if d = strings.TrimSpace(d); d != "" {
				cfg.SpillDirs = append(cfg.SpillDirs, d)
			}
		}
	}

	if cfg.HTTP, err = parseHTTP(vals["http"].text); err != nil {
		return config{}, bad("http", err)
	}

	switch strings.ToLower(vals["log-level"].text) {
	case "debug":
		cfg.LogLevel = slog.LevelDebug
	case "info":
		cfg.LogLevel = slog.LevelInfo
	case "warn", "warning":
		cfg.LogLevel = slog.LevelWarn
	case "error":
		cfg.LogLevel = slog.LevelError
	default:
		return config{}, bad("log-level", errors.New("want debug, info, warn or error"))
	}

	switch cfg.LogFormat = strings.ToLower(vals["log-format"].text); cfg.LogFormat {
	case "text", "json":
	default:
		return config{}, bad("log-format", errors.New("want text or json"))
	}

	if cfg.Prefault, err = strconv.ParseBool(vals["prefault"].text); err != nil {
		return config{}, bad("prefault", errors.New("want true or false"))
	}

	if cfg.ShutdownGrace, err = time.ParseDuration(vals["shutdown-grace"].text); err != nil {
		return config{}, bad("shutdown-grace", errors.New(`want a duration such as "10s" or "500ms"`))
	}
	if cfg.ShutdownGrace < 0 {
		return config{}, bad("shutdown-grace", errors.New("must not be negative"))
	}
	return parseCluster(cfg, vals, bad)
}

// parseCluster parses the cluster settings into cfg.
func parseCluster(cfg config, vals map[string]value, bad func(string, error) error) (config, error) {
	var err error
	cfg.Listen = strings.TrimSpace(vals["listen"].text)
	if v, ok := vals["join"]; ok {
		for _, a := range strings.Split(v.text, ",") {
			if a = strings.TrimSpace(a); a != "" {
				cfg.Join = append(cfg.Join, a)
			}
		}
	}
	cfg.CertsDir = vals["certs-dir"].text
	cfg.Name = vals["name"].text
	if cfg.Insecure, err = strconv.ParseBool(vals["insecure"].text); err != nil {
		return config{}, bad("insecure", errors.New("want true or false"))
	}
	for _, d := range []struct {
		key string
		dst *time.Duration
	}{{"probe-interval", &cfg.ProbeInterval}, {"probe-timeout", &cfg.ProbeTimeout},
		{"gossip-interval", &cfg.GossipInterval}, {"request-timeout", &cfg.RequestTimeout}} {
		v, ok := vals[d.key]
		if !ok || v.text == "" {
			continue
		}
		if *d.dst, err = time.ParseDuration(v.text); err != nil || *d.dst <= 0 {
			return config{}, bad(d.key, errors.New(`want a positive duration such as "1s" or "200ms"`))
		}
	}
	if v, ok := vals["suspicion-mult"]; ok && v.text != "" {
		if cfg.SuspicionMult, err = strconv.Atoi(v.text); err != nil || cfg.SuspicionMult <= 0 {
			return config{}, bad("suspicion-mult", errors.New("want a positive whole number"))
		}
	}
	if v, ok := vals["pull-sources"]; ok && v.text != "" {
		if cfg.PullSources, err = strconv.Atoi(v.text); err != nil || cfg.PullSources < 0 {
			return config{}, bad("pull-sources", errors.New("want 0 (every holder), 1 (one at a time) or more"))
		}
	}
	if cfg, err = parseTasks(cfg, vals, bad); err != nil {
		return config{}, err
	}
	if cfg.Listen == "" {
		for _, k := range []string{"join", "certs-dir", "name", "probe-interval", "probe-timeout", "gossip-interval", "suspicion-mult", "request-timeout", "pull-sources", "cpus", "resources"} {
			if v, ok := vals[k]; ok && v.text != "" {
				return config{}, fmt.Errorf("%s (from %s) is a cluster setting: give -listen HOST:PORT too, or drop it", k, v.source)
			}
		}
		if cfg.Insecure {
			return config{}, fmt.Errorf("insecure (from %s) is a cluster setting: give -listen HOST:PORT too, or drop it", vals["insecure"].source)
		}
		return cfg, nil
	}
	if _, _, err := net.SplitHostPort(cfg.Listen); err != nil {
		return config{}, bad("listen", fmt.Errorf("want host:port, such as 127.0.0.1:7100: %w", err))
	}
	switch {
	case cfg.CertsDir == "" && !cfg.Insecure:
		return config{}, errors.New("-listen runs a cluster node, which needs credentials: give -certs-dir DIR (made by trove cert create-node), or -insecure for an unauthenticated cluster on a laptop")
	case cfg.CertsDir != "" && cfg.Insecure:
		return config{}, errors.New("both -certs-dir and -insecure given: choose one")
	}
	return cfg, nil
}

// parseTasks parses the task runtime's settings into cfg.
func parseTasks(cfg config, vals map[string]value, bad func(string, error) error) (config, error) {
	cfg.CPUs = float64(runtime.NumCPU())
	if v, ok := vals["cpus"]; ok && v.text != "" {
		n, err := strconv.ParseFloat(strings.TrimSpace(v.text), 64)
		if err != nil || n <= 0 || n > maxSlotsAmount || math.IsNaN(n) {
			return config{}, bad("cpus", fmt.Errorf("want a positive number of CPU slots, at most %d", maxSlotsAmount))
		}
		cfg.CPUs = n
	}
	if v, ok := vals["resources"]; ok && strings.TrimSpace(v.text) != "" {
		rs, err := parseResources(v.text)
		if err != nil {
			return config{}, bad("resources", err)
		}
		cfg.Resources = rs
	}
	return cfg, nil
}

// maxSlotsAmount bounds -cpus and each -resources amount (task's own bound).
const maxSlotsAmount = 1 << 40

// parseResources parses "Custom=2,GPU=1": up to 15 names (the runtime's CPU
// is the 16th), each once, with a non-negative amount.
func parseResources(s string) (map[string]float64, error) {
	rs := map[string]float64{}
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		name, amount, ok := strings.Cut(part, "=")
		name, amount = strings.TrimSpace(name), strings.TrimSpace(amount)
		if !ok || name == "" {
			return nil, fmt.Errorf("%q: want NAME=AMOUNT, such as Custom=2", part)
		}
		if len(name) > 64 {
			return nil, fmt.Errorf("resource name %q is longer than 64 bytes", name)
		}
		if strings.EqualFold(name, "CPU") {
			return nil, errors.New("CPU is set by -cpus, not -resources")
		}
		if _, dup := rs[name]; dup {
			return nil, fmt.Errorf("resource %s given twice", name)
		}
		n, err := strconv.ParseFloat(amount, 64)
		if err != nil || n < 0 || n > maxSlotsAmount || math.IsNaN(n) {
			return nil, fmt.Errorf("resource %s: amount %q must be a number from 0 to %d", name, amount, maxSlotsAmount)
		}
		rs[name] = n
	}
	if len(rs) > 15 {
		return nil, fmt.Errorf("%d resources; at most 15 custom resources are allowed", len(rs))
	}
	return rs, nil
}

// parseHTTP checks that addr is a loopback address: the endpoints are
// unauthenticated (pprof can read the process's memory profile), so they are
// never exposed beyond this machine. "off" disables them.
func parseHTTP(addr string) (string, error) {
	if addr == "" || strings.EqualFold(addr, "off") {
		return "", nil
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf(`want host:port on loopback, such as 127.0.0.1:9464, or "off": %w`, err)
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return "", fmt.Errorf("port %q is not a number from 0 to 65535", port)
	}
	if host == "localhost" {
		return addr, nil
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		if host == "" {
			host = "every interface"
		}
		return "", fmt.Errorf("refusing to serve metrics and pprof on %s: they are unauthenticated, so troved serves them on loopback only (127.0.0.1, ::1 or localhost); scrape through a local agent or an SSH tunnel", host)
	}
	return addr, nil
}

// totalRAM is the machine's physical memory in bytes.
func totalRAM() (int64, error) {
	var si unix.Sysinfo_t
	if err := unix.Sysinfo(&si); err != nil {
		return 0, fmt.Errorf("reading the RAM size: %w", err)
	}
	return int64(si.Totalram) * int64(si.Unit), nil
}

// parseCapacity parses "4GiB", "512MiB", "1.5G" (binary), "4GB" (decimal),
// "1073741824" (bytes) or "30%" (of ram()).
func parseCapacity(s string, ram func() (int64, error)) (int64, error) {
	t := strings.TrimSpace(s)
	if pct, ok := strings.CutSuffix(t, "%"); ok {
		p, err := strconv.ParseFloat(strings.TrimSpace(pct), 64)
		if err != nil || p <= 0 || p > 100 || math.IsNaN(p) {
			return 0, errors.New("a percentage of RAM must be a number above 0 and at most 100")
		}
		total, err := ram()
		if err != nil {
			return 0, err
		}
		return int64(float64(total) * p / 100), nil
	}
	if strings.HasPrefix(t, "-") {
		return 0, errors.New("the capacity must be positive")
	}
	b, err := trove.ParseBytes(t)
	if err != nil {
		return 0, errors.New(`want a size such as "4GiB", "512MiB", "30%" of RAM, or a number of bytes`)
	}
	if b <= 0 {
		return 0, errors.New("the capacity must be positive")
	}
	if b > math.MaxInt64/2 {
		return 0, errors.New("the capacity is absurdly large")
	}
	return b, nil
}

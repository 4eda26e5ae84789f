package main

import (
	"errors"
	"flag"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/trovedb/trove/net/ipc"
)

func envOf(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		v, ok := m[k]
		return v, ok
	}
}

func writeFile(t *testing.T, name, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestConfigPrecedence: flags over the environment over the config file over
// the embedded defaults, key by key.
func TestConfigPrecedence(t *testing.T) {
	file := writeFile(t, "troved.json", `{
		"socket": "/file/s.sock",
		"capacity": "1GiB",
		"spill-dir": ["/file/a", "/file/b"],
		"http": "off",
		"log-level": "debug",
		"log-format": "json",
		"prefault": true,
		"shutdown-grace": "3s"
	}`)
	other := writeFile(t, "other.json", `{"capacity": 2147483648}`)
	defaults := config{Socket: ipc.DefaultSocket(), HTTP: "127.0.0.1:9464", LogLevel: slog.LevelInfo,
		LogFormat: "text", ShutdownGrace: 10 * time.Second}
	fromFile := config{Socket: "/file/s.sock", Capacity: 1 << 30, CapacityText: "1GiB", SpillDirs: []string{"/file/a", "/file/b"},
		LogLevel: slog.LevelDebug, LogFormat: "json", Prefault: true, ShutdownGrace: 3 * time.Second, ConfigFile: file}

	tests := []struct {
		name string
		args []string
		env  map[string]string
		want func(c *config)
		base config
	}{
		{name: "defaults", base: defaults, want: func(*config) {}},
		{name: "file over defaults", args: []string{"-config", file}, base: fromFile, want: func(*config) {}},
		{name: "TROVE_CONFIG names the file", env: map[string]string{"TROVE_CONFIG": file}, base: fromFile, want: func(*config) {}},
		{name: "-config over TROVE_CONFIG", args: []string{"-config", other}, env: map[string]string{"TROVE_CONFIG": file}, base: defaults,
			want: func(c *config) { c.Capacity, c.CapacityText, c.ConfigFile = 2<<30, "2147483648", other }},
		{name: "env over file", args: []string{"-config", file}, base: fromFile,
			env: map[string]string{"TROVE_CAPACITY": "512MiB", "TROVE_SOCKET": "/env/s.sock", "TROVE_SPILL_DIR": "/env/a,/env/b",
				"TROVE_HTTP": "127.0.0.1:0", "TROVE_SHUTDOWN_GRACE": "1s", "TROVE_PREFAULT": "false"},
			want: func(c *config) {
				c.Capacity, c.CapacityText, c.Socket, c.SpillDirs = 512<<20, "512MiB", "/env/s.sock", []string{"/env/a", "/env/b"}
				c.HTTP, c.ShutdownGrace, c.Prefault = "127.0.0.1:0", time.Second, false
			}},
		{name: "flags over env over file", base: fromFile,
			args: []string{"-config", file, "-capacity", "256MiB", "-socket", "/flag/s.sock", "-spill-dir", "/flag/a", "-spill-dir", "/flag/b,/flag/c",
				"-http", "[::1]:0", "-log-level", "warn", "-log-format", "text", "-prefault=false", "-shutdown-grace", "250ms"},
			env: map[string]string{"TROVE_CAPACITY": "512MiB", "TROVE_SOCKET": "/env/s.sock", "TROVE_SPILL_DIR": "/env/a", "TROVE_LOG_LEVEL": "error"},
			want: func(c *config) {
				c.Capacity, c.CapacityText, c.Socket, c.SpillDirs = 256<<20, "256MiB", "/flag/s.sock", []string{"/flag/a", "/flag/b", "/flag/c"}
				c.HTTP, c.LogLevel, c.LogFormat, c.Prefault, c.ShutdownGrace = "[::1]:0", slog.LevelWarn, "text", false, 250*time.Millisecond
			}},
		{name: "env over defaults", base: defaults, env: map[string]string{"TROVE_HTTP": "off", "TROVE_LOG_FORMAT": "json", "TROVE_PREFAULT": "1"},
			want: func(c *config) { c.HTTP, c.LogFormat, c.Prefault = "", "json", true }},
		{name: "bool flag alone", base: defaults, args: []string{"-prefault", "-http", "localhost:0"},
			want: func(c *config) { c.Prefault, c.HTTP = true, "localhost:0" }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := loadConfig(tc.args, envOf(tc.env), io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			want := tc.base
			want.SpillDirs = slices.Clone(want.SpillDirs)
			tc.want(&want)
			if !equalConfig(got, want) {
				t.Errorf("got  %+v\nwant %+v", got, want)
			}
		})
	}
}

func equalConfig(a, b config) bool {
	return slices.Equal(a.SpillDirs, b.SpillDirs) && a.Socket == b.Socket && a.Capacity == b.Capacity &&
		a.CapacityText == b.CapacityText && a.HTTP == b.HTTP && a.LogLevel == b.LogLevel && a.LogFormat == b.LogFormat &&
		a.Prefault == b.Prefault && a.ShutdownGrace == b.ShutdownGrace && a.ConfigFile == b.ConfigFile
}

// TestConfigErrors: each bad value names itself, where it came from, and what
// is wanted.
func TestConfigErrors(t *testing.T) {
	unknownKey := writeFile(t, "bad.json", `{"capcity": "1GiB"}`)
	notJSON := writeFile(t, "bad2.json", `capacity = 1GiB`)
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want []string // substrings of the error
	}{
		{"bad capacity unit", []string{"-capacity", "4XB"}, nil, []string{`capacity "4XB" (from flag -capacity)`, `"4GiB"`}},
		{"bad capacity in env", nil, map[string]string{"TROVE_CAPACITY": "lots"}, []string{`capacity "lots" (from $TROVE_CAPACITY)`}},
		{"negative capacity", []string{"-capacity", "-1GiB"}, nil, []string{"must be positive"}},
		{"percentage over 100", []string{"-capacity", "130%"}, nil, []string{"at most 100"}},
		{"unknown config key", []string{"-config", unknownKey}, nil, []string{`unknown key "capcity"`, "known keys: socket, capacity"}},
		{"config not JSON", []string{"-config", notJSON}, nil, []string{"not a JSON object"}},
		{"config missing", []string{"-config", "/nonexistent/troved.json"}, nil, []string{"no such file"}},
		{"http on every interface", []string{"-http", "0.0.0.0:9464"}, nil, []string{"refusing", "loopback only"}},
		{"http without host", []string{"-http", ":9464"}, nil, []string{"refusing", "every interface"}},
		{"http on a LAN address", nil, map[string]string{"TROVE_HTTP": "10.1.2.3:9464"}, []string{"refusing", "(from $TROVE_HTTP)"}},
		{"http on a host name", []string{"-http", "example.com:80"}, nil, []string{"refusing"}},
		{"http without port", []string{"-http", "127.0.0.1"}, nil, []string{"host:port"}},
		{"bad log level", []string{"-log-level", "loud"}, nil, []string{"debug, info, warn or error"}},
		{"bad log format", []string{"-log-format", "xml"}, nil, []string{"text or json"}},
		{"bad grace", []string{"-shutdown-grace", "10"}, nil, []string{`"10s"`}},
		{"stray argument", []string{"serve"}, nil, []string{`unexpected argument "serve"`}},
		{"unknown flag", []string{"-capacty", "1GiB"}, nil, []string{"flag provided but not defined"}},
		{"join without listen", []string{"-join", "127.0.0.1:7100"}, nil, []string{"join (from flag -join) is a cluster setting", "-listen"}},
		{"insecure without listen", nil, map[string]string{"TROVE_INSECURE": "true"}, []string{"insecure (from $TROVE_INSECURE)", "-listen"}},
		{"listen without credentials", []string{"-listen", "127.0.0.1:0"}, nil, []string{"-certs-dir", "-insecure", "trove cert create-node"}},
		{"listen with both", []string{"-listen", "127.0.0.1:0", "-insecure", "-certs-dir", "/x"}, nil, []string{"choose one"}},
		{"listen without port", []string{"-listen", "127.0.0.1", "-insecure"}, nil, []string{`listen "127.0.0.1" (from flag -listen)`, "host:port"}},
		{"bad probe interval", []string{"-listen", ":0", "-insecure", "-probe-interval", "fast"}, nil, []string{`probe-interval "fast"`, "positive duration"}},
		{"bad suspicion mult", []string{"-listen", ":0", "-insecure", "-suspicion-mult", "0"}, nil, []string{"suspicion-mult", "positive whole number"}},
		{"bad pull sources", []string{"-listen", ":0", "-insecure", "-pull-sources", "-1"}, nil, []string{"pull-sources", "0 (every holder)"}},
		{"pull sources without listen", []string{"-pull-sources", "1"}, nil, []string{"pull-sources (from flag -pull-sources) is a cluster setting"}},
		{"cpus without listen", []string{"-cpus", "4"}, nil, []string{"cpus (from flag -cpus) is a cluster setting", "-listen"}},
		{"resources without listen", nil, map[string]string{"TROVE_RESOURCES": "GPU=1"}, []string{"resources (from $TROVE_RESOURCES) is a cluster setting"}},
		{"zero cpus", []string{"-listen", ":0", "-insecure", "-cpus", "0"}, nil, []string{`cpus "0" (from flag -cpus)`, "positive number"}},
		{"cpus not a number", []string{"-listen", ":0", "-insecure", "-cpus", "many"}, nil, []string{`cpus "many"`, "positive number"}},
		{"resource without amount", []string{"-listen", ":0", "-insecure", "-resources", "GPU"}, nil, []string{`resources "GPU"`, "NAME=AMOUNT"}},
		{"resource amount negative", []string{"-listen", ":0", "-insecure", "-resources", "GPU=-1"}, nil, []string{"resource GPU", "from 0 to"}},
		{"resource named CPU", []string{"-listen", ":0", "-insecure", "-resources", "cpu=2"}, nil, []string{"CPU is set by -cpus"}},
		{"resource twice", []string{"-listen", ":0", "-insecure", "-resources", "GPU=1,GPU=2"}, nil, []string{"GPU given twice"}},
		{"resource without name", []string{"-listen", ":0", "-insecure", "-resources", "=2"}, nil, []string{"NAME=AMOUNT"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := loadConfig(tc.args, envOf(tc.env), io.Discard)
			if err == nil {
				t.Fatalf("no error; want one mentioning %q", tc.want)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}

// TestConfigCluster: -listen with its settings makes a cluster node's config.
func TestConfigCluster(t *testing.T) {
	cfg, err := loadConfig([]string{"-listen", "127.0.0.1:7100", "-join", "127.0.0.1:7101,127.0.0.1:7102", "-join", "127.0.0.1:7103",
		"-certs-dir", "/etc/trove/node", "-name", "n1", "-probe-interval", "100ms", "-probe-timeout", "50ms",
		"-gossip-interval", "20ms", "-suspicion-mult", "2", "-request-timeout", "2s", "-pull-sources", "1"}, envOf(nil), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Listen != "127.0.0.1:7100" || !slices.Equal(cfg.Join, []string{"127.0.0.1:7101", "127.0.0.1:7102", "127.0.0.1:7103"}) ||
		cfg.CertsDir != "/etc/trove/node" || cfg.Insecure || cfg.Name != "n1" || cfg.ProbeInterval != 100*time.Millisecond ||
		cfg.ProbeTimeout != 50*time.Millisecond || cfg.GossipInterval != 20*time.Millisecond || cfg.SuspicionMult != 2 ||
		cfg.RequestTimeout != 2*time.Second || cfg.PullSources != 1 {
		t.Fatalf("cluster config: %+v", cfg)
	}
	if cfg.CPUs != float64(runtime.NumCPU()) || cfg.Resources != nil {
		t.Fatalf("task runtime defaults: cpus %v, resources %v; want %d CPUs and none", cfg.CPUs, cfg.Resources, runtime.NumCPU())
	}
	file := writeFile(t, "tasks.json", `{"listen": "127.0.0.1:0", "insecure": true, "cpus": 2.5, "resources": "Custom=2, GPU=1"}`)
	cfg, err = loadConfig([]string{"-config", file}, envOf(nil), io.Discard)
	if err != nil || cfg.CPUs != 2.5 || len(cfg.Resources) != 2 || cfg.Resources["Custom"] != 2 || cfg.Resources["GPU"] != 1 {
		t.Fatalf("cpus and resources from the config file: %+v, %v", cfg, err)
	}
	cfg, err = loadConfig([]string{"-config", file, "-cpus", "8"}, envOf(map[string]string{"TROVE_RESOURCES": "X=3"}), io.Discard)
	if err != nil || cfg.CPUs != 8 || len(cfg.Resources) != 1 || cfg.Resources["X"] != 3 {
		t.Fatalf("the flag and the environment over the file: %+v, %v", cfg, err)
	}
	cfg, err = loadConfig(nil, envOf(nil), io.Discard)
	if err != nil || cfg.Listen != "" || cfg.Join != nil || cfg.Insecure {
		t.Fatalf("no -listen: %+v, %v; want the single-node daemon", cfg, err)
	}
}

func TestConfigHelp(t *testing.T) {
	var out strings.Builder
	_, err := loadConfig([]string{"-h"}, envOf(nil), &out)
	if !errors.Is(err, flag.ErrHelp) || !strings.Contains(out.String(), "TROVE_CAPACITY") {
		t.Fatalf("-h: err %v, usage %q", err, out.String())
	}
}

func TestParseCapacity(t *testing.T) {
	ram := func() (int64, error) { return 16 << 30, nil }
	for _, tc := range []struct {
		in   string
		want int64
	}{
		{"4GiB", 4 << 30}, {"512MiB", 512 << 20}, {"512mib", 512 << 20}, {"1.5GiB", 3 << 29}, {"64 KiB", 64 << 10},
		{"2G", 2 << 30}, {"2GB", 2e9}, {"1TB", 1e12}, {"1048576", 1 << 20}, {"100B", 100},
		{"25%", 4 << 30}, {"50 %", 8 << 30}, {"100%", 16 << 30},
	} {
		got, err := parseCapacity(tc.in, ram)
		if err != nil || got != tc.want {
			t.Errorf("parseCapacity(%q) = %d, %v; want %d", tc.in, got, err, tc.want)
		}
	}
	for _, bad := range []string{"", "GiB", "4XB", "0", "-5MiB", "0%", "101%", "x%", "NaN", "Inf", "1e30TiB"} {
		if got, err := parseCapacity(bad, ram); err == nil {
			t.Errorf("parseCapacity(%q) = %d, want an error", bad, got)
		}
	}
}

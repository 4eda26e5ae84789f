package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/trovedb/trove/cluster"
	"github.com/trovedb/trove/engine"
	"github.com/trovedb/trove/net/ipc"
)

// clusterLoad is a short run for small cluster nodes: objects on both sides of
// the 100 KiB inline threshold, so that gets are answered inline by the owner
// and pulled in chunks.
func clusterLoad(ops int64) loadConfig {
	return loadConfig{
		Sizes:       []sizeWeight{{4 << 10, 40}, {200 << 10, 40}, {512 << 10, 20}},
		Mix:         [numOps]int{40, 50, 10},
		Concurrency: 6,
		Ops:         ops,
		Duration:    time.Minute, // a bound only: -ops ends the run
		WorkingSet:  24 << 20,
		OpTimeout:   30 * time.Second,
		WaitRefs:    3,
		Seed:        1,
		Cluster:     true,
		LocalGets:   10,
	}
}

// checkNodeRows checks a cluster run's per-node rows: every node took puts and
// served gets and waits, and the rows add up to the totals.
func checkNodeRows(t *testing.T, rep *Report, names []string) {
	t.Helper()
	if len(rep.Nodes) != len(names) {
		t.Fatalf("%d node rows, want %d: %+v", len(rep.Nodes), len(names), rep.Nodes)
	}
	var puts, gets, waits, getBytes int64
	for i, n := range rep.Nodes {
		if n.Target != names[i] {
			t.Errorf("node row %d is %q, want %q", i, n.Target, names[i])
		}
		if n.Put.Count == 0 || n.Get.Count == 0 || n.Get.Bytes == 0 || n.Get.Latency.P99 <= 0 {
			t.Errorf("node %s: puts %d, gets %d (%d bytes, p99 %d ns): want each node to put and get", n.Target, n.Put.Count, n.Get.Count, n.Get.Bytes, n.Get.Latency.P99)
		}
		if n.Errors != 0 {
			t.Errorf("node %s: %d errors", n.Target, n.Errors)
		}
		puts += n.Put.Count
		gets += n.Get.Count + n.LocalGet.Count
		waits += n.Wait.Count
		getBytes += n.Get.Bytes + n.LocalGet.Bytes
	}
	if tr := rep.Transfer; tr == nil || tr.RemoteGet.Count == 0 || tr.LocalGet.Count == 0 ||
		tr.RemoteGet.Count+tr.LocalGet.Count != rep.Ops.Get.Count || tr.RemoteGet.Latency.P99 <= 0 || tr.LocalGet.Latency.P50 <= 0 {
		t.Errorf("crossing and local gets: %+v; want both, adding up to the %d gets", tr, rep.Ops.Get.Count)
	}
	if puts != rep.Ops.Put.Count || gets != rep.Ops.Get.Count || waits != rep.Ops.Wait.Count || getBytes != rep.Ops.Get.Bytes {
		t.Errorf("node rows add up to %d puts, %d gets (%d bytes), %d waits; totals %d, %d (%d), %d",
			puts, gets, getBytes, waits, rep.Ops.Put.Count, rep.Ops.Get.Count, rep.Ops.Get.Bytes, rep.Ops.Wait.Count)
	}
	var table bytes.Buffer
	if err := rep.writeTable(&table); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(table.String(), "per node: ") || !strings.Contains(table.String(), "\n  crossing  ") || !strings.Contains(table.String(), "\n     local  ") {
		t.Errorf("table has no per-node rows:\n%s", table.String())
	}
	for _, name := range names {
		if !strings.Contains(table.String(), "\n  "+name+"  ") && !strings.Contains(table.String(), " "+name+"  ") {
			t.Errorf("table has no row for %s:\n%s", name, table.String())
		}
	}
}

// A run against an in-process cluster of three nodes: every get and wait runs
// on another node than the one that put (each node fetched copies from the
// others), every byte verifies, the report has a row per node, and every
// node's store is empty at the end.
func TestEmbeddedClusterRun(t *testing.T) {
	o := &options{capacity: 32 << 20, spillDirs: listFlag{t.TempDir()}}
	ts, err := embeddedCluster(t.Context(), o, 3, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, tg := range ts {
			if err := tg.closer.Close(); err != nil {
				t.Error(err)
			}
		}
	})
	rep := runLoad(t, clusterLoad(400), ts.list()...)
	checkReport(t, rep, 400)
	checkNodeRows(t, rep, []string{"node-1", "node-2", "node-3"})
	for _, s := range ts.states(t.Context()) {
		if s.Drained == nil || !*s.Drained || s.Objects != 0 || s.Used != 0 || s.PinnedObjects != 0 || s.Views != 0 {
			t.Errorf("store %s after the run: %+v, want empty", s.Target, s)
		}
	}
	for _, tg := range ts {
		n := tg.closer.(*cluster.Node)
		if err := n.Local().Check(); err != nil {
			t.Error(err)
		}
		// Puts on a node are its own; every get there is of another node's
		// object, fetched (inline or pulled) into this node's store.
		if st := n.Local().Stats(); st.Fetches == 0 {
			t.Errorf("%s fetched nothing from the other nodes: its gets were not of their objects", n.Name())
		}
	}
}

// realMain with -cluster against three cluster nodes' ipc servers: the path a
// cluster of troved daemons takes, refs passed between daemons by ID.
func TestMainClusterSockets(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	var socks []string
	var nodes []*cluster.Node
	dir := t.TempDir()
	for i := range 3 {
		cfg := cluster.Config{
			Store:    engine.Config{Capacity: 32 << 20, SpillDirs: []string{filepath.Join(dir, fmt.Sprint(i))}},
			Name:     fmt.Sprintf("n%d", i+1),
			Insecure: true, GossipInterval: 20 * time.Millisecond, Logger: log,
		}
		if i > 0 {
			cfg.Join = []string{nodes[0].Addr()}
		}
		n, err := cluster.Open(t.Context(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		nodes = append(nodes, n)
		sock := filepath.Join(dir, fmt.Sprintf("n%d.sock", i+1))
		ln, err := ipc.Listen(sock)
		if err != nil {
			t.Fatal(err)
		}
		srv := ipc.NewServer(n.Local(), ipc.ServerConfig{Logger: log, Cluster: clusterView{n}})
		served := make(chan error, 1)
		go func() { served <- srv.Serve(ln) }()
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := srv.Shutdown(ctx); err != nil {
				t.Errorf("Shutdown: %v", err)
			}
			if err := <-served; err != nil && !errors.Is(err, ipc.ErrServerClosed) {
				t.Errorf("Serve: %v", err)
			}
			if err := n.Close(); err != nil {
				t.Error(err)
			}
		})
		socks = append(socks, sock)
	}
	if err := converge(t.Context(), nodes); err != nil {
		t.Fatal(err)
	}

	var stdout, stderr bytes.Buffer
	code := realMain([]string{
		"-cluster", "-socket", strings.Join(socks, ","), "-sizes", "4KiB:40,200KiB:40,512KiB:20", "-working-set", "24MiB",
		"-ops", "400", "-duration", "5m", "-concurrency", "6", "-json", "-quiet",
	}, &stdout, &stderr, nil)
	if code != exitOK {
		t.Errorf("exit status %d; stderr:\n%s\nstdout:\n%s", code, stderr.String(), stdout.String())
	}
	var rep Report
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		t.Fatalf("JSON does not parse: %v\n%s", err, stdout.Bytes())
	}
	if rep.Errors.Total != 0 || rep.Ops.Total.Count != 400 || !rep.Config.Cluster {
		t.Errorf("%d ops, cluster %v, errors %+v", rep.Ops.Total.Count, rep.Config.Cluster, rep.Errors)
	}
	checkNodeRows(t, &rep, socks)
	checkTransfers(t, &rep, []string{"n1", "n2", "n3"}, false)
	for _, s := range rep.Stores {
		if s.Drained == nil || !*s.Drained {
			t.Errorf("store %s: loadgen's connection still holds something: %+v", s.Target, s)
		}
	}
	// Nothing of loadgen's is left on any node once the releases have
	// travelled to the owners.
	for _, n := range nodes {
		if s := drainedNode(t.Context(), n); !*s.Drained {
			t.Errorf("%s not empty %v after the run: %+v", n.Name(), clusterDrain, s)
		}
		if n.Local().Stats().Fetches == 0 {
			t.Errorf("%s fetched nothing from the other nodes", n.Name())
		}
	}

	// These daemons serve no pprof (troved -http off): -profile says so
	// before any load, and how to give them one.
	stdout.Reset()
	stderr.Reset()
	code = realMain([]string{"-cluster", "-socket", strings.Join(socks, ","), "-duration", "1s", "-profile", filepath.Join(dir, "p.pb.gz"), "-quiet"}, &stdout, &stderr, nil)
	if code != exitFail || !strings.Contains(stderr.String(), "serves no /debug/pprof/") || !strings.Contains(stderr.String(), "-http 127.0.0.1:0") || stdout.Len() != 0 {
		t.Errorf("-profile against daemons without pprof: exit %d, stderr %q, stdout %q; want %d, no run, and what to do", code, stderr.String(), stdout.String(), exitFail)
	}

	// Two sockets of one daemon are not two nodes.
	stdout.Reset()
	stderr.Reset()
	code = realMain([]string{"-cluster", "-socket", socks[0] + "," + socks[0], "-ops", "10", "-quiet"}, &stdout, &stderr, nil)
	if code != exitFail || !strings.Contains(stderr.String(), "are the same node") {
		t.Errorf("-cluster with one daemon's socket twice: exit %d, stderr %q; want %d and \"are the same node\"", code, stderr.String(), exitFail)
	}
}

var transferTotalRow = regexp.MustCompile(`(?m)^ +total +[0-9.]+ [KMGT]?i?B +[0-9.]+ [KMGT]?i?B +[0-9]+`)

// clusterView is a cluster.Node as an ipc server's ipc.Cluster, as troved
// passes it: the members and the node's counters in its status.
type clusterView struct{ n *cluster.Node }

func (v clusterView) Members() []ipc.MemberInfo {
	var out []ipc.MemberInfo
	for _, m := range v.n.Members() {
		out = append(out, ipc.MemberInfo{Name: m.Name, ID: m.ID.String(), Addr: m.Addr, State: m.State.String(), Self: m.ID == v.n.ID()})
	}
	return out
}

func (v clusterView) Stats() []ipc.ClusterStat {
	var out []ipc.ClusterStat
	for _, f := range v.n.Stats().Fields() {
		out = append(out, ipc.ClusterStat{Name: f.Name, Value: f.Value, Counter: f.Counter})
	}
	return out
}

func (v clusterView) Objects(context.Context, int) (ipc.ClusterMemory, error) {
	return ipc.ClusterMemory{}, errors.New("trove memory -cluster is not served in loadgen's tests")
}

// checkTransfers checks a cluster run's transfer figures: every node (by
// its cluster name) fetched from the others, inline and in chunks, and
// served them; over the nodes, what borrowers received is what holders
// served: exactly, with noWaits (a Wait's fetches of the refs it does not
// return are cancelled midway: served and not received), else at most that.
func checkTransfers(t *testing.T, rep *Report, names []string, noWaits bool) {
	t.Helper()
	if rep.Transfer == nil || len(rep.Transfer.Errors) > 0 {
		t.Fatalf("transfer report: %+v", rep.Transfer)
	}
	for i, n := range rep.Nodes {
		tr := n.Transfer
		if n.Node != names[i] || tr == nil {
			t.Errorf("node row %d: node %q, transfer %v; want %s's counters", i, n.Node, tr, names[i])
			continue
		}
		for _, k := range []string{"remote_gets", "remote_inline", "pulls", "bytes_in", "bytes_out"} {
			if tr[k] <= 0 {
				t.Errorf("node %s: %s %d over the run, want > 0 (%v)", n.Node, k, tr[k], tr)
			}
		}
		if tr["members_alive"] != int64(len(names)) {
			t.Errorf("node %s: members_alive %d, want %d", n.Node, tr["members_alive"], len(names))
		}
		if noWaits && tr["fetch_errors"] != 0 {
			t.Errorf("node %s: %d fetch errors", n.Node, tr["fetch_errors"])
		}
	}
	in, out := rep.Transfer.Totals["bytes_in"], rep.Transfer.Totals["bytes_out"]
	if in <= 0 || in > out || (noWaits && in != out) {
		t.Errorf("bytes received by the nodes %d, served %d: want equal (no waits: %v) or fewer received", in, out, noWaits)
	}
	var table bytes.Buffer
	if err := rep.writeTable(&table); err != nil {
		t.Fatal(err)
	}
	for _, want := range append([]string{"transfers per node", "bytes in", "fetch errors"}, names...) {
		if !strings.Contains(table.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, table.String())
		}
	}
	if !transferTotalRow.MatchString(table.String()) {
		t.Errorf("table has no total row of transfers:\n%s", table.String())
	}
}

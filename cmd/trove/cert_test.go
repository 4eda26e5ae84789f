package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/trovedb/trove/net/ipc"
)

// TestCert: trove cert makes a CA and node credentials (text and --json),
// refuses to overwrite them, and explains missing flags.
func TestCert(t *testing.T) {
	root := t.TempDir()
	ca, node := filepath.Join(root, "ca"), filepath.Join(root, "n1")
	if r := runTrove(t, "", "cert", "create-ca", "-dir", ca); r.code != exitOK || !strings.Contains(r.stdout, "created the cluster CA in "+ca) {
		t.Fatalf("create-ca: %+v", r)
	}
	r := runTrove(t, "", "cert", "create-node", "-ca-dir", ca, "-dir", node, "-name", "n1", "-host", "127.0.0.1,localhost", "--json")
	if r.code != exitOK {
		t.Fatalf("create-node: %+v", r)
	}
	var got certJSON
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil || got.Name != "n1" || len(got.Files) != 3 || len(got.Hosts) != 2 {
		t.Fatalf("create-node --json: %q (%v)", r.stdout, err)
	}
	for _, f := range got.Files {
		if _, err := os.Stat(f); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
	if _, err := os.Stat(filepath.Join(node, "ca.key")); err == nil {
		t.Error("the CA's key was written to the node's directory")
	}
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"cert", "create-ca", "-dir", ca}, exitFail, ca},
		{[]string{"cert", "create-ca"}, exitUsage, "-dir DIR is required"},
		{[]string{"cert", "create-node", "-ca-dir", ca, "-dir", node, "-name", "n1", "-host", "127.0.0.1"}, exitFail, node},
		{[]string{"cert", "create-node", "-ca-dir", ca, "-dir", filepath.Join(root, "n2"), "-name", "n2"}, exitUsage, "at least one -host"},
		{[]string{"cert", "create-node", "-dir", filepath.Join(root, "n2"), "-name", "n2", "-host", "h"}, exitUsage, "-ca-dir DIR is required"},
		{[]string{"cert"}, exitUsage, "create-ca or create-node"},
		{[]string{"cert", "make"}, exitUsage, `unknown subcommand "make"`},
	} {
		r := runTrove(t, "", tc.args...)
		if r.code != tc.code || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("trove %v: exit %d, stderr %q; want exit %d mentioning %q", tc.args, r.code, r.stderr, tc.code, tc.want)
		}
	}
	for _, sub := range []string{"create-ca", "create-node"} {
		r := runTrove(t, "", "cert", sub, "-h")
		if r.code != exitOK || !regexp.MustCompile(`^usage: trove cert `+sub+`[^\n]*\n\n[A-Z]`).MatchString(r.stdout) {
			t.Errorf("cert %s -h: exit %d:\n%s", sub, r.code, r.stdout)
		}
	}
}

// TestClusterOutputs: a cluster node's status has a members table and
// members in --json; memory -cluster prints a NODE column and totals per node.
func TestClusterOutputs(t *testing.T) {
	now := time.Now()
	st := ipc.Status{Daemon: ipc.DaemonInfo{Started: now}, Members: []ipc.MemberInfo{
		{Name: "node-a", ID: "00000000000000aa", Addr: "127.0.0.1:7100", State: "alive", Capacity: 1 << 30, Used: 1 << 20, Updated: now, Self: true},
		{Name: "node-b", ID: "00000000000000bb", Addr: "127.0.0.1:7101", State: "dead", Capacity: 1 << 30, Updated: now.Add(-time.Minute)},
	}}
	var out strings.Builder
	printStatus(&out, st, now)
	for _, want := range []string{"cluster   2 members", "NAME    ID                ADDR", "node-a  00000000000000aa  127.0.0.1:7100  alive  1.0 GiB   1.0 MiB",
		"(this node)", "node-b", "dead", "1m0s ago"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("status lacks %q:\n%s", want, out.String())
		}
	}
	b, err := json.Marshal(newStatusJSON(st, now))
	if err != nil {
		t.Fatal(err)
	}
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	checkKeys(t, v, "", seen)
	for _, k := range []string{"members.[].name", "members.[].id", "members.[].addr", "members.[].state", "members.[].capacity", "members.[].used", "members.[].updated", "members.[].self"} {
		if !seen[k] {
			t.Errorf("status --json lacks %s: %s", k, b)
		}
	}

	mem := ipc.ClusterMemory{Nodes: []ipc.NodeMemory{
		{Name: "node-a", Addr: "127.0.0.1:7100", Self: true, Total: 3, Bytes: 2 << 20, Objects: []ipc.ClusterObject{
			{ID: "aa01", Size: 2 << 20, Refs: 1, Where: "memory"}}},
		{Name: "node-b", Addr: "127.0.0.1:7101", Total: 1, Bytes: 2 << 20, Objects: []ipc.ClusterObject{
			{ID: "aa01", Size: 2 << 20, Refs: 1, Pins: 1, Copy: true, Where: "mapped from disk"}}},
		{Name: "node-c", Addr: "127.0.0.1:7102", Err: "node unreachable"},
	}}
	out.Reset()
	printClusterMemory(&out, mem)
	for _, want := range []string{"NODE    OBJECT ID", "node-a  aa01       2.0 MiB  primary", "node-b  aa01       2.0 MiB  copy",
		"2 not listed; raise -limit; this node", "could not be asked: node unreachable"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("memory -cluster lacks %q:\n%s", want, out.String())
		}
	}
	b, err = json.Marshal(newClusterMemoryJSON(mem))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	seen = map[string]bool{}
	checkKeys(t, v, "", seen)
	if !seen["nodes.[].listed.[].copy"] || !seen["nodes.[].listed_bytes"] || !strings.Contains(string(b), `"where":"mapped_from_disk"`) {
		t.Errorf("memory -cluster --json: %s", b)
	}
}

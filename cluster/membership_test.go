package cluster

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/trovedb/trove"
	"github.com/trovedb/trove/net/quic"
)

// liveness bounds every wait for the cluster to converge: generous, since the
// machine may be loaded; the fast knobs make the usual wait well under a second.
const liveness = 20 * time.Second

// fastKnobs are timings for tests: a killed node is dead in about a second.
func fastKnobs(cfg membershipConfig) membershipConfig {
	cfg.ProbeInterval = 400 * time.Millisecond
	cfg.ProbeTimeout = 300 * time.Millisecond
	cfg.SuspicionMult = 3
	cfg.GossipInterval = 50 * time.Millisecond
	cfg.PushPullInterval = time.Minute // nothing may wait for one
	cfg.DeadNodeReclaimTime = 100 * time.Millisecond
	cfg.StatsInterval = 100 * time.Millisecond
	cfg.JoinTimeout = 5 * time.Second
	cfg.RejoinInterval = 200 * time.Millisecond
	return cfg
}

// testNode is a transport and its membership, with the events it saw.
type testNode struct {
	name  string
	tr    *quic.Transport
	m     *membership
	id    trove.NodeID
	stats atomic.Pointer[[2]int64]
	rec   *recorder
}

// nodeOpts say how to start a test node.
type nodeOpts struct {
	certs string // a node directory; "" runs Insecure
	addr  string // default 127.0.0.1:0
	join  []string
}

func quietLog() *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{}, &slog.HandlerOptions{Level: slog.LevelError + 4}))
}

type testWriter struct{}

func (testWriter) Write(p []byte) (int, error) { return len(p), nil }

// startNode starts a node named name; the test's cleanup closes it.
func startNode(t *testing.T, name string, o nodeOpts) (*testNode, error) {
	t.Helper()
	if o.addr == "" {
		o.addr = "127.0.0.1:0"
	}
	qc := quic.Config{Addr: o.addr, CertsDir: o.certs, Insecure: o.certs == "", DialTimeout: 3 * time.Second, Logger: quietLog()}
	if o.certs == "" {
		qc.Name = name
	}
	tr, err := quic.Listen(context.Background(), qc)
	if err != nil {
		return nil, err
	}
	n := &testNode{name: name, tr: tr, id: trove.NewNodeID(), rec: &recorder{}}
	n.stats.Store(&[2]int64{1 << 30, 0})
	m, err := startMembership(context.Background(), fastKnobs(membershipConfig{
		Name: name, ID: n.id, Transport: tr, Join: o.join, Log: quietLog(),
		Stats: func() (int64, int64) { s := n.stats.Load(); return s[0], s[1] },
	}))
	if err != nil {
		tr.Close()
		return nil, err
	}
	n.m = m
	m.Watch(n.rec.add)
	t.Cleanup(n.kill)
	return n, nil
}

func mustStart(t *testing.T, name string, o nodeOpts) *testNode {
	t.Helper()
	n, err := startNode(t, name, o)
	if err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	return n
}

// kill stops the node as a crash would: its transport goes first, so it
// says nothing more to anyone, then its membership.
func (n *testNode) kill() {
	n.tr.Close()
	n.m.Close()
}

// recorder keeps the events a watcher got, in order.
type recorder struct {
	mu  sync.Mutex
	evs []Event
}

func (r *recorder) add(e Event) {
	r.mu.Lock()
	r.evs = append(r.evs, e)
	r.mu.Unlock()
}

func (r *recorder) events() []Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Event(nil), r.evs...)
}

// of lists the kinds of the events about name, in order.
func (r *recorder) of(name string) []EventKind {
	var kinds []EventKind
	for _, e := range r.events() {
		if e.Member.Name == name {
			kinds = append(kinds, e.Kind)
		}
	}
	return kinds
}

// waitEvent waits for an event (after the first from) that ok accepts, and
// returns it with its index.
func (r *recorder) waitEvent(t *testing.T, from int, what string, ok func(Event) bool) (Event, int) {
	t.Helper()
	deadline := time.Now().Add(liveness)
	for {
		evs := r.events()
		for i := from; i < len(evs); i++ {
			if ok(evs[i]) {
				return evs[i], i
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no event %s within %v; events: %v", what, liveness, evs)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitView waits until every node in nodes lists exactly want, alive, with
// their IDs and addresses.
func waitView(t *testing.T, nodes []*testNode, want []*testNode) {
	t.Helper()
	var wantS []string
	for _, w := range want {
		wantS = append(wantS, fmt.Sprintf("%s/%s/%s/alive", w.name, w.id, w.tr.Addr()))
	}
	deadline := time.Now().Add(liveness)
	for _, n := range nodes {
		for {
			var got []string
			for _, mem := range n.m.Members() {
				got = append(got, fmt.Sprintf("%s/%s/%s/%s", mem.Name, mem.ID, mem.Addr, mem.State))
			}
			if strings.Join(got, " ") == strings.Join(wantS, " ") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s lists %v, want %v", n.name, got, wantS)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

func certDirs(t *testing.T, names ...string) map[string]string {
	t.Helper()
	root := t.TempDir()
	ca := filepath.Join(root, "ca")
	if err := CreateCA(ca); err != nil {
		t.Fatal(err)
	}
	dirs := map[string]string{}
	for _, n := range names {
		dirs[n] = filepath.Join(root, n)
		if err := CreateNodeCert(ca, dirs[n], n, "127.0.0.1"); err != nil {
			t.Fatal(err)
		}
	}
	return dirs
}

// Four nodes with certificates join through one seed: every one lists all
// four alive, with their IDs and addresses; changed figures reach the others.
func TestMembershipJoin(t *testing.T) {
	names := []string{"n1", "n2", "n3", "n4"}
	certs := certDirs(t, names...)
	seed := mustStart(t, "n1", nodeOpts{certs: certs["n1"]})
	nodes := []*testNode{seed}
	for _, name := range names[1:] {
		nodes = append(nodes, mustStart(t, name, nodeOpts{certs: certs[name], join: []string{seed.tr.Addr()}}))
	}
	waitView(t, nodes, nodes)
	for _, n := range nodes {
		for _, o := range nodes {
			byID, ok1 := n.m.Lookup(o.id)
			byName, ok2 := n.m.LookupName(o.name)
			if !ok1 || !ok2 || byID != byName || byID.Name != o.name || byID.Capacity != 1<<30 {
				t.Fatalf("%s: Lookup(%s) = %+v %v, LookupName = %+v %v", n.name, o.name, byID, ok1, byName, ok2)
			}
		}
		if self := n.m.Self(); self.Name != n.name || self.ID != n.id || self.Addr != n.tr.Addr() || self.State != StateAlive {
			t.Fatalf("%s: Self() = %+v", n.name, self)
		}
		// Every node's watcher saw each node join first, and none die or
		// leave (a loaded machine may delay a probe's ack: a suspicion,
		// refuted, is no failure).
		for _, o := range nodes {
			k := n.rec.of(o.name)
			if len(k) == 0 || k[0] != EventJoined || strings.Contains(fmt.Sprint(k), "dead") || strings.Contains(fmt.Sprint(k), "left") {
				t.Fatalf("%s saw %s: %v, want [joined ...] and no death", n.name, o.name, k)
			}
		}
	}
	if _, ok := seed.m.Lookup(trove.NewNodeID()); ok {
		t.Fatal("Lookup of an unknown ID found a member")
	}

	// Stats gossip: n3's figures change; every other node hears it.
	nodes[2].stats.Store(&[2]int64{2 << 30, 12345})
	for _, n := range nodes {
		n.rec.waitEvent(t, 0, "n3 updated", func(e Event) bool {
			return e.Kind == EventUpdated && e.Member.Name == "n3" && e.Member.Capacity == 2<<30 && e.Member.Used == 12345
		})
		if mem, _ := n.m.LookupName("n3"); mem.Used != 12345 || mem.State != StateAlive {
			t.Fatalf("%s: n3 is %+v after the update", n.name, mem)
		}
	}

	// A watcher that starts late first gets every member, then changes.
	late := &recorder{}
	cancel := seed.m.Watch(late.add)
	defer cancel()
	late.waitEvent(t, 0, "replay of n4", func(e Event) bool { return e.Member.Name == "n4" })
	var got []string
	for _, e := range late.events()[:4] {
		got = append(got, e.Kind.String()+" "+e.Member.Name)
	}
	if strings.Join(got, ",") != "joined n1,joined n2,joined n3,joined n4" {
		t.Fatalf("late watcher got %v first", got)
	}
}

// A node that leaves is seen as left, not dead, and stays listed as left.
func TestMembershipLeave(t *testing.T) {
	a := mustStart(t, "a", nodeOpts{})
	b := mustStart(t, "b", nodeOpts{join: []string{a.tr.Addr()}})
	c := mustStart(t, "c", nodeOpts{join: []string{b.tr.Addr()}})
	waitView(t, []*testNode{a, b, c}, []*testNode{a, b, c})
	ctx, cancel := context.WithTimeout(context.Background(), liveness)
	defer cancel()
	if err := c.m.Leave(ctx); err != nil {
		t.Fatal(err)
	}
	if c.m.Self().State != StateLeft {
		t.Fatalf("c's Self after Leave: %v", c.m.Self().State)
	}
	c.kill()
	for _, n := range []*testNode{a, b} {
		e, _ := n.rec.waitEvent(t, 0, "c left", func(e Event) bool { return e.Member.Name == "c" && e.Kind >= EventDead })
		if e.Kind != EventLeft || e.Member.State != StateLeft || e.Member.ID != c.id {
			t.Fatalf("%s saw c %v (%+v), want left", n.name, e.Kind, e.Member)
		}
		if mem, ok := n.m.LookupName("c"); !ok || mem.State != StateLeft {
			t.Fatalf("%s lists c as %+v %v after it left", n.name, mem, ok)
		}
		if k := n.rec.of("c"); k[len(k)-1] != EventLeft || strings.Contains(fmt.Sprint(k), "dead") {
			t.Fatalf("%s saw c: %v", n.name, k)
		}
	}
	if err := c.m.Leave(ctx); err == nil {
		t.Fatal("Leave after Close succeeded")
	}
}

// A killed node is suspected, then declared dead; restarted under its old
// name at a new port, and then at the same port, it rejoins at once, with its
// new ID, and its previous run is findable by its old ID as dead. Restarted
// before the cluster noticed the death, at a new port (memberlist refuses the
// name's new address while the old one is alive) or at the same one, the same
// events come: the previous run dead, the new one rejoined. The push-pull
// interval is a minute here: rejoining never waits for one.
func TestMembershipKillAndRestart(t *testing.T) {
	certs := certDirs(t, "a", "b", "c")
	a := mustStart(t, "a", nodeOpts{certs: certs["a"]})
	b := mustStart(t, "b", nodeOpts{certs: certs["b"], join: []string{a.tr.Addr()}})
	c := mustStart(t, "c", nodeOpts{certs: certs["c"], join: []string{a.tr.Addr()}})
	waitView(t, []*testNode{a, b, c}, []*testNode{a, b, c})

	run := c
	for i, tc := range []struct {
		samePort, waitDead bool
	}{{false, true}, {true, true}, {false, false}, {true, false}} {
		oldID, oldAddr := run.id, run.tr.Addr()
		marks := map[*testNode]int{a: len(a.rec.events()), b: len(b.rec.events())}
		run.kill()
		if tc.waitDead {
			for _, n := range []*testNode{a, b} {
				_, si := n.rec.waitEvent(t, marks[n], "c suspect", func(e Event) bool { return e.Member.Name == "c" && e.Kind == EventSuspect })
				e, _ := n.rec.waitEvent(t, si, "c dead", func(e Event) bool { return e.Member.Name == "c" && e.Kind == EventDead })
				if e.Member.State != StateDead || e.Member.ID != oldID || e.Member.Addr != oldAddr {
					t.Fatalf("run %d: %s saw c dead as %+v", i, n.name, e.Member)
				}
			}
		}
		addr := "127.0.0.1:0"
		if tc.samePort {
			addr = oldAddr
		}
		run = mustStart(t, "c", nodeOpts{certs: certs["c"], addr: addr, join: []string{b.tr.Addr()}})
		for _, n := range []*testNode{a, b} {
			_, di := n.rec.waitEvent(t, marks[n], "c's previous run dead", func(e Event) bool {
				return e.Member.Name == "c" && e.Kind == EventDead && e.Member.ID == oldID
			})
			e, _ := n.rec.waitEvent(t, di, "c rejoined", func(e Event) bool {
				return e.Member.Name == "c" && (e.Kind == EventRejoined || e.Kind == EventJoined)
			})
			if e.Member.ID != run.id || e.Member.Addr != run.tr.Addr() || e.Member.State != StateAlive {
				t.Fatalf("run %d: %s saw c rejoin as %+v, want ID %s at %s", i, n.name, e.Member, run.id, run.tr.Addr())
			}
			if prev, ok := n.m.Lookup(oldID); !ok || prev.State != StateDead || prev.Addr != oldAddr {
				t.Fatalf("run %d: %s: Lookup(previous run's ID) = %+v %v, want it dead", i, n.name, prev, ok)
			}
		}
		waitView(t, []*testNode{a, b, run}, []*testNode{a, b, run})
	}
	// What a saw of c, in order: joined, then per restart ... dead, rejoined.
	kinds := fmt.Sprint(a.rec.of("c"))
	if !strings.HasPrefix(kinds, "[joined suspect") || !strings.HasSuffix(kinds, "dead rejoined]") || strings.Count(kinds, "dead rejoined") != 4 {
		t.Fatalf("a saw c: %s", kinds)
	}
}

// A node whose certificate is from another CA cannot join: startMembership
// fails saying why, and no member ever lists it.
func TestMembershipOtherCARefused(t *testing.T) {
	ours := certDirs(t, "a", "b")
	theirs := certDirs(t, "x")
	a := mustStart(t, "a", nodeOpts{certs: ours["a"]})
	b := mustStart(t, "b", nodeOpts{certs: ours["b"], join: []string{a.tr.Addr()}})
	_, err := startNode(t, "x", nodeOpts{certs: theirs["x"], join: []string{a.tr.Addr()}})
	if err == nil {
		t.Fatal("a node with another CA's certificate joined")
	}
	if !strings.Contains(err.Error(), "could not join") || !strings.Contains(err.Error(), "TLS handshake refused") {
		t.Fatalf("join error does not say why: %v", err)
	}
	waitView(t, []*testNode{a, b}, []*testNode{a, b})
	for _, n := range []*testNode{a, b} {
		if _, ok := n.m.LookupName("x"); ok {
			t.Fatalf("%s lists x", n.name)
		}
	}
}

func TestMembershipConfigErrors(t *testing.T) {
	tr, err := quic.Listen(context.Background(), quic.Config{Insecure: true, Name: "a", Logger: quietLog()})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	for _, tc := range []struct {
		cfg  membershipConfig
		want string
	}{
		{membershipConfig{ID: trove.NewNodeID()}, "needs a transport"},
		{membershipConfig{Transport: tr}, "node ID"},
		{membershipConfig{Transport: tr, ID: trove.NewNodeID(), Name: "b"}, "differs from the transport's"},
	} {
		if _, err := startMembership(context.Background(), tc.cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want an error saying %q", tc.cfg, err, tc.want)
		}
	}
	// Two memberships on one transport: the second is refused.
	m, err := startMembership(context.Background(), membershipConfig{Transport: tr, ID: trove.NewNodeID(), Log: quietLog()})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if _, err := startMembership(context.Background(), membershipConfig{Transport: tr, ID: trove.NewNodeID(), Log: quietLog()}); err == nil {
		t.Fatal("a second membership on one transport started")
	}
}

// The view's state machine, note by note: what memberlist's delegates and the
// gossip snooper report, and the events and states that come of it.
func TestMembershipApply(t *testing.T) {
	id1, id2 := trove.NodeID{1}, trove.NodeID{2}
	node := func(id trove.NodeID, boot uint64, port uint16, used int64, leaving bool) memberlist.Node {
		return memberlist.Node{Name: "x", Addr: []byte{127, 0, 0, 1}, Port: port,
			Meta: nodeMeta{ID: id, Boot: boot, Capacity: 100, Used: used, Leaving: leaving}.append(nil)}
	}
	join := func(n memberlist.Node) note { return note{kind: noteJoin, node: n} }
	update := func(n memberlist.Node) note { return note{kind: noteUpdate, node: n} }
	leave := func(n memberlist.Node) note { return note{kind: noteLeave, node: n} }
	suspect := func(inc uint32) note { return note{kind: noteSuspect, name: "x", inc: inc} }
	alive := func(inc uint32) note { return note{kind: noteAlive, name: "x", inc: inc, addr: "127.0.0.1:7"} }
	for _, tc := range []struct {
		name  string
		notes []note
		want  string // events, then the final state of x
	}{
		{"join", []note{join(node(id1, 1, 7, 0, false))}, "joined:01@7 | alive"},
		{"figures", []note{join(node(id1, 1, 7, 0, false)), update(node(id1, 1, 7, 50, false))}, "joined:01@7 updated:01@7 | alive"},
		{"suspect refuted", []note{join(node(id1, 1, 7, 0, false)), alive(3), suspect(3), alive(3), alive(4)}, "joined:01@7 suspect:01@7 updated:01@7 | alive"},
		{"another run's alive ignored", []note{join(node(id1, 1, 7, 0, false)), suspect(1), {kind: noteAlive, name: "x", inc: 9, addr: "127.0.0.1:8"}}, "joined:01@7 suspect:01@7 | suspect"},
		{"stale suspicion ignored", []note{join(node(id1, 1, 7, 0, false)), alive(5), suspect(4)}, "joined:01@7 | alive"},
		{"dies", []note{join(node(id1, 1, 7, 0, false)), suspect(1), leave(node(id1, 1, 7, 0, false))}, "joined:01@7 suspect:01@7 dead:01@7 | dead"},
		{"leaves", []note{join(node(id1, 1, 7, 0, false)), update(node(id1, 1, 7, 0, true)), leave(node(id1, 1, 7, 0, true))}, "joined:01@7 left:01@7 | left"},
		{"dies, restarts elsewhere", []note{join(node(id1, 1, 7, 0, false)), leave(node(id1, 1, 7, 0, false)), join(node(id2, 2, 8, 0, false))}, "joined:01@7 dead:01@7 rejoined:02@8 | alive"},
		{"restart seen as an update", []note{join(node(id1, 1, 7, 0, false)), update(node(id2, 2, 7, 0, false))}, "joined:01@7 dead:01@7 rejoined:02@7 | alive"},
		{"restart, same ID", []note{join(node(id1, 1, 7, 0, false)), update(node(id1, 2, 7, 0, false))}, "joined:01@7 dead:01@7 rejoined:01@7 | alive"},
		{"left, back", []note{join(node(id1, 1, 7, 0, false)), update(node(id1, 1, 7, 0, true)), leave(node(id1, 1, 7, 0, true)), join(node(id1, 1, 7, 0, false))}, "joined:01@7 left:01@7 rejoined:01@7 | alive"},
		{"bad meta ignored", []note{join(memberlist.Node{Name: "x", Meta: []byte{1}})}, "| none"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := &membership{cfg: membershipConfig{Name: "self"}}
			m.mu.byName = map[string]*entry{}
			m.mu.retired = map[trove.NodeID]Member{}
			var got []string
			for _, n := range tc.notes {
				for _, e := range m.apply(n, time.Now()) {
					got = append(got, fmt.Sprintf("%s:%x@%s", e.Kind, e.Member.ID[:1], strings.TrimPrefix(e.Member.Addr, "127.0.0.1:")))
				}
			}
			state := "none"
			if mem, ok := m.LookupName("x"); ok {
				state = mem.State.String()
			}
			if s := strings.TrimSpace(strings.Join(got, " ") + " | " + state); s != tc.want {
				t.Fatalf("got  %s\nwant %s", s, tc.want)
			}
			// A restarted node's previous run stays findable, dead.
			if strings.Contains(tc.name, "restart") {
				if prev, ok := m.Lookup(id1); tc.name != "restart, same ID" && (!ok || prev.State != StateDead || prev.ID != id1) {
					t.Fatalf("Lookup of the previous run: %+v %v", prev, ok)
				}
			}
			// Dead and left members, and previous runs, are forgotten
			// ForgetAfter after they died; alive ones stay.
			m.cfg.ForgetAfter = time.Minute
			m.expire(time.Now().Add(time.Minute / 2))
			_, before := m.LookupName("x")
			m.expire(time.Now().Add(2 * time.Minute))
			_, after := m.LookupName("x")
			final := tc.want[strings.LastIndex(tc.want, " ")+1:]
			if before != (final != "none") || after != (final == "alive" || final == "suspect") {
				t.Fatalf("ending %s: listed %v before ForgetAfter, %v after", final, before, after)
			}
			if _, ok := m.Lookup(id1); ok && m.mu.byName["x"] == nil || len(m.mu.retired) != 0 {
				t.Fatal("a dead member or previous run outlived ForgetAfter")
			}
		})
	}
}

// On memberlist's default timings a killed node is declared dead in about
// 5–6 s (measured here and logged; the assertion is only that it happens).
func TestMembershipDefaultsDetectDeath(t *testing.T) {
	if testing.Short() {
		t.Skip("takes ~6 s")
	}
	var nodes []*testNode
	for i, name := range []string{"a", "b", "c"} {
		o := nodeOpts{}
		if i > 0 {
			o.join = []string{nodes[0].tr.Addr()}
		}
		tr, err := quic.Listen(context.Background(), quic.Config{Addr: "127.0.0.1:0", Insecure: true, Name: name, Logger: quietLog()})
		if err != nil {
			t.Fatal(err)
		}
		n := &testNode{name: name, tr: tr, id: trove.NewNodeID(), rec: &recorder{}}
		n.m, err = startMembership(context.Background(), membershipConfig{Name: name, ID: n.id, Transport: tr, Join: o.join, Log: quietLog()})
		if err != nil {
			t.Fatal(err)
		}
		n.m.Watch(n.rec.add)
		t.Cleanup(n.kill)
		nodes = append(nodes, n)
	}
	waitView(t, nodes, nodes)
	mark := len(nodes[0].rec.events())
	start := time.Now()
	nodes[2].kill()
	nodes[0].rec.waitEvent(t, mark, "c dead", func(e Event) bool { return e.Member.Name == "c" && e.Kind == EventDead })
	t.Logf("a killed node was declared dead %v after it died (memberlist's LAN defaults)", time.Since(start).Round(100*time.Millisecond))
}

// Nodes started at once, each finding only some of the others behind its
// join addresses (a headless Service's name resolves to the pods ready at
// that moment), form separate clusters; RejoinInterval's loop resolves the
// addresses again and merges them.
func TestRejoinMergesSplitClusters(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0") // a's address, before a exists
	if err != nil {
		t.Fatal(err)
	}
	aAddr := pc.LocalAddr().String()
	pc.Close()
	c := mustStart(t, "c", nodeOpts{})
	b := mustStart(t, "b", nodeOpts{join: []string{c.tr.Addr(), aAddr}}) // a is not up: b joins c alone
	waitView(t, []*testNode{b, c}, []*testNode{b, c})
	a := mustStart(t, "a", nodeOpts{addr: aAddr}) // a cluster of its own
	waitView(t, []*testNode{a, b, c}, []*testNode{a, b, c})
}

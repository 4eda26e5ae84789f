package sim

import (
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/trovedb/trove/swarm"
)

// small is a broadcast that runs in milliseconds: 32 MiB in 1 MiB chunks.
func small(n int) Config {
	return Config{Nodes: n, Size: 32 << 20, Sched: swarm.Config{ChunkSize: 1 << 20}, ServeSlots: 4, ServeQueue: 4, SpreadHolders: true, Seed: 7}
}

// checkConserved asserts what every finished broadcast must show: each
// surviving puller holds the whole object, bytes that left holders arrived,
// and each puller kept every chunk once.
func checkConserved(t *testing.T, cfg Config, r *Result) {
	t.Helper()
	survivors := cfg.Nodes - 1 - len(r.Failed)
	if len(r.Finish) != survivors {
		t.Fatalf("%d pullers finished, want %d", len(r.Finish), survivors)
	}
	if r.SentBytes != r.RecvBytes {
		t.Errorf("bytes sent in full %d != bytes received %d", r.SentBytes, r.RecvBytes)
	}
	if r.RecvBytes != r.UsefulBytes+r.DuplicateBytes {
		t.Errorf("received %d != useful %d + duplicate %d", r.RecvBytes, r.UsefulBytes, r.DuplicateBytes)
	}
	// failed pullers kept what they received before dying
	if len(r.Failed) == 0 && r.UsefulBytes != int64(survivors)*cfg.Size {
		t.Errorf("useful bytes %d, want %d pullers × %d", r.UsefulBytes, survivors, cfg.Size)
	}
	if len(r.Failed) > 0 && r.UsefulBytes < int64(survivors)*cfg.Size {
		t.Errorf("useful bytes %d < %d survivors × %d", r.UsefulBytes, survivors, cfg.Size)
	}
	var served int64
	for _, s := range r.Served {
		served += s
	}
	if want := r.SentBytes / (1 << 20); cfg.Size%(1<<20) == 0 && cfg.Sched.ChunkSize == 1<<20 && served != want {
		t.Errorf("chunks served %d, want %d (bytes sent / chunk)", served, want)
	}
	for i, f := range r.Finish {
		if f <= 0 {
			t.Errorf("puller %d finished at %v", i+1, f)
		}
	}
}

func TestDeterministic(t *testing.T) {
	cfg := small(24)
	cfg.Stagger = 2 * time.Second
	cfg.Fail = []Failure{{Node: 3, At: 800 * time.Millisecond}}
	a, err := Run(cfg)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Run(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(a, b) {
		t.Fatalf("two runs with seed %d differ:\n%+v\n%+v", cfg.Seed, a, b)
	}
	cfg.Seed++
	c, err := Run(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if reflect.DeepEqual(a.Finish, c.Finish) {
		t.Errorf("seeds %d and %d gave the same finish times: the seed does nothing", cfg.Seed-1, cfg.Seed)
	}
}

func TestConservation(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  func() Config
	}{
		{"swarm", func() Config { return small(16) }},
		{"single", func() Config { c := small(8); c.SingleSource = true; c.ChunkTimeout = -1; return c }},
		{"staggered", func() Config { c := small(16); c.Stagger = 3 * time.Second; return c }},
		{"cluster-defaults", func() Config { return Config{Nodes: 4, Size: 64 << 20} }},
		{"unbounded-serving", func() Config { c := small(8); c.ServeSlots, c.ServeQueue, c.ChunkTimeout = 0, 0, -1; return c }},
		{"short-last-chunk", func() Config { c := small(6); c.Size = 5<<20 + 12345; return c }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := tc.cfg()
			r, err := Run(cfg)
			if err != nil {
				t.Fatal(err)
			}
			checkConserved(t, cfg.withDefaults(), r)
			if r.OwnerMsgs != r.Locates+r.Reports || r.Locates < int64(cfg.Nodes-1) {
				t.Errorf("owner messages %d = locates %d + reports %d: want a locate per puller at least", r.OwnerMsgs, r.Locates, r.Reports)
			}
		})
	}
}

func TestFailureMidBroadcastCompletes(t *testing.T) {
	cfg := small(16)
	clean, err := Run(cfg)
	if err != nil {
		t.Fatal(err)
	}
	busiest := 1
	for i := 1; i < len(clean.Served); i++ {
		if clean.Served[i] > clean.Served[busiest] {
			busiest = i
		}
	}
	cfg.Fail = []Failure{{Node: busiest, At: clean.End / 3}}
	cfg.Detect = time.Second
	r, err := Run(cfg)
	if err != nil {
		t.Fatalf("broadcast with node %d dying at %v: %v", busiest, clean.End/3, err)
	}
	checkConserved(t, cfg.withDefaults(), r)
	if !reflect.DeepEqual(r.Failed, []int{busiest}) {
		t.Errorf("failed nodes %v, want [%d]", r.Failed, busiest)
	}
	if r.Refailed == 0 || r.AbortedBytes == 0 {
		t.Errorf("the busiest server died mid-broadcast but no transfer failed (refailed %d, aborted %d bytes)", r.Refailed, r.AbortedBytes)
	}
	// pullers wait Detect for the death before asking others: slower
	if r.End <= clean.End {
		t.Errorf("end with a failure %v <= without %v: the detection delay cost nothing", r.End, clean.End)
	}
}

// Single source's time grows with N (the origin's uplink serves N−1
// copies); the swarm's stays near one copy's time. These are simulated
// times: the model's output.
func TestSingleSourceLinearSwarmFlat(t *testing.T) {
	times := func(single bool) map[int]time.Duration {
		m := map[int]time.Duration{}
		for _, n := range []int{2, 8, 32} {
			cfg := small(n)
			cfg.SingleSource, cfg.ChunkTimeout = single, -1
			r, err := Run(cfg)
			if err != nil {
				t.Fatal(err)
			}
			m[n] = r.Max
		}
		return m
	}
	s, w := times(true), times(false)
	for _, n := range []int{8, 32} {
		ratio := float64(s[n]) / float64(s[2])
		if lo, hi := 0.8*float64(n-1), 1.2*float64(n-1); ratio < lo || ratio > hi {
			t.Errorf("single source N=%d: %v, %.2f× N=2, want ~%d× (linear)", n, s[n], ratio, n-1)
		}
		if ratio := float64(w[n]) / float64(w[2]); ratio > 3 || w[n] > s[n]/2 {
			t.Errorf("swarm N=%d: %v, %.2f× N=2, want ≤ 3× (flat) and under half of single source's %v", n, w[n], ratio, s[n])
		}
	}
	// one copy over one link: 32 MiB at 25 MB/s is 1.34 s
	if lo, hi := 1300*time.Millisecond, 1500*time.Millisecond; s[2] < lo || s[2] > hi {
		t.Errorf("N=2: %v, want one link's time for 32 MiB, within [%v, %v]", s[2], lo, hi)
	}
}

// The cluster's settings as built: every puller asks the origin PerPeer
// chunks of 8 MiB at once, the origin's uplink is shared among them all, and
// past a few pullers no chunk arrives within PullChunkTimeout.
func TestClusterDefaultsStall(t *testing.T) {
	_, err := Run(Config{Nodes: 16, Size: 256 << 20})
	if !errors.Is(err, ErrStalled) {
		t.Fatalf("N=16 with the cluster's defaults: %v, want ErrStalled", err)
	}
	if _, err := Run(Config{Nodes: 2, Size: 256 << 20}); err != nil {
		t.Fatalf("N=2 with the cluster's defaults: %v", err)
	}
}

func TestOwnerSaturates(t *testing.T) {
	cfg := small(16)
	fast, err := Run(cfg)
	if err != nil {
		t.Fatal(err)
	}
	cfg.OwnerRate = 50 // below the 15 pullers' 10 refreshes a second each
	slow, err := Run(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if fast.OwnerUtil > 0.5 || slow.OwnerUtil < 0.9 {
		t.Errorf("owner utilisation %.2f at %v msg/s and %.2f at 50: want low, then saturated", fast.OwnerUtil, float64(DefaultOwnerRate), slow.OwnerUtil)
	}
	if slow.OwnerMaxWait <= fast.OwnerMaxWait {
		t.Errorf("owner's longest queueing %v saturated vs %v: want longer", slow.OwnerMaxWait, fast.OwnerMaxWait)
	}
}

func TestBadConfig(t *testing.T) {
	for _, cfg := range []Config{
		{Nodes: 1, Size: 1 << 20},
		{Nodes: 4, Size: 0},
		{Nodes: 4, Size: 1 << 20, Fail: []Failure{{Node: 0}}},
		{Nodes: 4, Size: 1 << 20, Fail: []Failure{{Node: 4}}},
		{Nodes: 4, Size: 1 << 20, Sched: swarm.Config{SlowAfter: time.Second}},
	} {
		if _, err := Run(cfg); err == nil {
			t.Errorf("Run(%+v) = nil error", cfg)
		}
	}
}

func TestGossipFigures(t *testing.T) {
	g16, g1000 := GossipAt(16), GossipAt(1000)
	if g16.PingBytes < 20 || g16.PingBytes > 100 || g16.AliveBytes < troveMetaLen || g16.EntryBytes < troveMetaLen {
		t.Errorf("message sizes ping %d alive %d entry %d: not what memberlist's encoding gives", g16.PingBytes, g16.AliveBytes, g16.EntryBytes)
	}
	if g1000.Retransmit != 16 || g16.Retransmit != 8 {
		t.Errorf("retransmit limits %d at 1000, %d at 16: want 4×⌈log10(N+1)⌉ = 16, 8", g1000.Retransmit, g16.Retransmit)
	}
	if g1000.PushPullInterval != 180*time.Second || g16.PushPullInterval != 30*time.Second {
		t.Errorf("push-pull intervals %v at 1000, %v at 16: want 180s, 30s", g1000.PushPullInterval, g16.PushPullInterval)
	}
	if g1000.Backlog <= 1 || g16.Backlog >= 1 {
		t.Errorf("gossip backlog %.2f at 1000, %.2f at 16: want the stats gossip to exceed memberlist's budget at 1000 only", g1000.Backlog, g16.Backlog)
	}
}

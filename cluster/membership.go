package cluster

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"log"
	"log/slog"
	mrand "math/rand/v2"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/trovedb/trove"
	"github.com/trovedb/trove/net/quic"
)

// Membership: which nodes are in the cluster, at which address, with which
// store, and whether they are alive. It is hashicorp/memberlist (SWIM: random
// probes, indirect probes, suspicion, gossip, periodic push-pull), carried over
// the node's QUIC transport (membership_transport.go), so only nodes holding a
// certificate from the cluster's CA ever exchange gossip.
//
// The interface cluster.Node builds on:
//
//	m, err := startMembership(ctx, membershipConfig{Name: ..., ID: ..., Transport: tr, Join: seeds, Stats: st.Figures})
//	m.Self(); m.Lookup(id); m.LookupName(name); m.Members()
//	cancel := m.Watch(func(e Event) { ... })    // joined, updated, suspect, dead, left, rejoined
//	m.Leave(ctx); m.Close()
//
// How long a member stays listed: a dead or left member stays in Members(),
// Lookup and LookupName, with its State, for membershipConfig.ForgetAfter
// (default DefaultForgetAfter, 10 minutes) after it died or left, then is
// forgotten (no event). A node that restarts under its old name replaces its
// entry; the previous run's Member (its old ID, StateDead) stays findable by
// Lookup(oldID) for ForgetAfter too, so that refs owned by the previous run
// are answered with "owner died", not "unknown node".
//
// A restart is told from an update by the node's ID or boot number changing
// (nodeMeta): whether the cluster had noticed the death or not, Watch gets a
// dead event for the previous run (its old ID) and then rejoined for the new.
//
// How soon a restart is seen: at the same address, at once (the new run
// refutes the old run's incarnation; its QUIC peers' old connections are
// reset or replaced as it redials). At a new address, memberlist refuses the
// name's new address while the old run is listed alive, so the new run is
// taken once the old one is declared dead (the failure-detection time, ~5–7 s
// on defaults) plus DeadNodeReclaimTime; until a member shows this run alive,
// the new run pushes its state to a member every probe interval (upkeep,
// mlMerge), never waiting for a push-pull interval.
//
// Suspicion: memberlist tells its delegates of joins, updates, deaths and
// departures, not of suspicions, so StateSuspect and EventSuspect come from the
// suspect and alive messages in the gossip this node sends and receives
// (membership_suspect.go); a suspicion whose refutation reached this node only
// in a push-pull is cleared after memberlist's longest suspicion timeout. A
// departure and a death also look alike to memberlist's delegates: a node
// gossips a leaving flag in its meta before it leaves, which tells them apart.

// Member is one node as the cluster sees it.
type Member struct {
	Name           string       // node name (unique in the cluster; the name in its certificate)
	ID             trove.NodeID // its store's node ID (the owner part of the ObjectIDs it mints)
	Addr           string       // its one cluster address, host:port (the QUIC transport's)
	State          State        // StateAlive, StateSuspect, StateDead, StateLeft
	Capacity, Used int64        // its store's figures as last gossiped (refreshed every StatsInterval)
	Slots          int          // its CPU slots for remote functions (0: it runs none), as last gossiped
	Resources      Resources    // the resources it offers remote functions (CPU and custom ones), as last gossiped
	Updated        time.Time    // when this view of the member last changed
}

// State is a member's liveness as this node knows it.
type State uint8

const (
	StateAlive   State = iota // answering probes
	StateSuspect              // a probe failed; dead unless it refutes within the suspicion timeout
	StateDead                 // declared dead by the cluster (it stopped answering)
	StateLeft                 // left gracefully (Leave)
)

func (s State) String() string {
	switch s {
	case StateAlive:
		return "alive"
	case StateSuspect:
		return "suspect"
	case StateDead:
		return "dead"
	case StateLeft:
		return "left"
	}
	return fmt.Sprintf("State(%d)", uint8(s))
}

// EventKind says what happened to a member.
type EventKind uint8

const (
	EventJoined   EventKind = iota // a node not listed before is alive
	EventUpdated                   // an alive member's figures or address changed, or a suspect one refuted
	EventSuspect                   // an alive member is suspected
	EventDead                      // a member was declared dead (or restarted: its previous run is dead)
	EventLeft                      // a member left gracefully
	EventRejoined                  // a dead or left member, or a restarted one, is alive again (its ID may be new)
)

func (k EventKind) String() string {
	switch k {
	case EventJoined:
		return "joined"
	case EventUpdated:
		return "updated"
	case EventSuspect:
		return "suspect"
	case EventDead:
		return "dead"
	case EventLeft:
		return "left"
	case EventRejoined:
		return "rejoined"
	}
	return fmt.Sprintf("EventKind(%d)", uint8(k))
}

// Event is a change of a member: Member is its view after the change (for a
// restart's dead event, the previous run's).
type Event struct {
	Member Member
	Kind   EventKind
}

// Defaults of membershipConfig's zero fields. The timing ones are memberlist's
// LAN defaults, under which a killed node is declared dead in about 5–6 s
// (a probe interval and timeout to notice, SuspicionMult × log10(n) probe
// intervals, at least 4 s, for the suspicion to expire; larger clusters
// shorten it with independent confirmations).
const (
	DefaultProbeInterval       = time.Second
	DefaultProbeTimeout        = 500 * time.Millisecond
	DefaultSuspicionMult       = 4
	DefaultGossipInterval      = 200 * time.Millisecond
	DefaultPushPullInterval    = 30 * time.Second
	DefaultDeadNodeReclaimTime = time.Second // memberlist's default is never; see membershipConfig
	DefaultJoinTimeout         = 10 * time.Second
	DefaultStatsInterval       = 3 * time.Second
	DefaultForgetAfter         = 10 * time.Minute
	DefaultRejoinInterval      = 10 * time.Second

	// maxRetired bounds the previous runs of restarted nodes kept for Lookup.
	maxRetired = 1024
)

// membershipConfig configures startMembership.
type membershipConfig struct {
	Name      string       // this node's name; default, and with certificates necessarily, Transport.Name()
	ID        trove.NodeID // this node's store's ID (not zero)
	Transport *quic.Transport
	Join      []string                          // addresses of any members; empty starts a cluster
	Stats     func() (capacity, used int64)     // read every StatsInterval; nil gossips zeros
	Offer     func() (slots int, rs []Resource) // the resources offered the layers above, read with Stats; nil offers none
	Log       *slog.Logger                      // default slog.Default()

	// JoinTimeout bounds startMembership's retries of Join (a seed may be
	// starting too). Default DefaultJoinTimeout.
	JoinTimeout time.Duration
	// StatsInterval is how often Stats is read and, if it changed, gossiped.
	// Default DefaultStatsInterval.
	StatsInterval time.Duration
	// ForgetAfter is how long a dead or left member stays listed. Default
	// DefaultForgetAfter.
	ForgetAfter time.Duration
	// RejoinInterval is how often a node started with Join resolves those
	// addresses again and joins any it does not know: nodes started at once
	// whose seed name (a Kubernetes headless Service) each resolved only to
	// themselves form separate clusters, which this merges. Members it knows
	// in any state (dead ones too, until forgotten) are not joined again.
	// Default DefaultRejoinInterval; negative: never.
	RejoinInterval time.Duration

	// Failure detection (memberlist's knobs, same names): see the defaults.
	ProbeInterval, ProbeTimeout      time.Duration
	SuspicionMult                    int
	GossipInterval, PushPullInterval time.Duration
	// DeadNodeReclaimTime is how long after a member's death its name may be
	// taken by a node at another address: a node restarted at a new port
	// rejoins that long after its previous run is declared dead (memberlist's
	// default, 0, means never: a restarted node would wait for a push-pull of
	// a node that had forgotten it). Names are certificate names, so a quick
	// reclaim takes no name from another node. Default DefaultDeadNodeReclaimTime.
	DeadNodeReclaimTime time.Duration
}

func (c membershipConfig) withDefaults() (membershipConfig, error) {
	if c.Transport == nil {
		return c, errors.New("cluster: membership needs a transport")
	}
	if c.Name == "" {
		c.Name = c.Transport.Name()
	}
	if c.Name != c.Transport.Name() {
		return c, fmt.Errorf("cluster: node name %q differs from the transport's %q (its certificate's name): use one name", c.Name, c.Transport.Name())
	}
	if c.ID == (trove.NodeID{}) {
		return c, errors.New("cluster: membership needs the store's node ID")
	}
	if c.Log == nil {
		c.Log = slog.Default()
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&c.JoinTimeout, DefaultJoinTimeout)
	if c.RejoinInterval == 0 {
		c.RejoinInterval = DefaultRejoinInterval
	}
	def(&c.StatsInterval, DefaultStatsInterval)
	def(&c.ForgetAfter, DefaultForgetAfter)
	def(&c.ProbeInterval, DefaultProbeInterval)
	def(&c.ProbeTimeout, DefaultProbeTimeout)
	def(&c.GossipInterval, DefaultGossipInterval)
	def(&c.PushPullInterval, DefaultPushPullInterval)
	def(&c.DeadNodeReclaimTime, DefaultDeadNodeReclaimTime)
	if c.SuspicionMult <= 0 {
		c.SuspicionMult = DefaultSuspicionMult
	}
	return c, nil
}

// membership is this node's view of the cluster. Its methods are safe for
// concurrent use.
//
// memberlist tells of changes through delegates it calls with its own locks
// held; they only queue a note (notes) and return. One goroutine (run)
// applies the notes in order to the view (mu) and then, with no lock held,
// calls the watchers, so that watchers see changes in the order memberlist
// made them and may call back into the membership.
type membership struct {
	cfg    membershipConfig
	log    *slog.Logger
	ml     *memberlist.Memberlist
	gt     *gossipTransport
	boot   uint64
	meta   atomic.Pointer[[]byte] // this node's encoded nodeMeta, as NodeMeta returns it
	life   sync.Mutex             // serializes Leave and Close (memberlist panics on a Leave after its Shutdown)
	update sync.Mutex             // serializes ml.UpdateNode: memberlist's is not safe to call concurrently (upkeep's gossip of figures, Leave's)
	left   atomic.Bool
	stale  atomic.Bool // the cluster holds a previous run of this node at another address
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup // run, upkeep

	notes struct {
		sync.Mutex
		q    []note
		wake chan struct{} // 1-buffered: notes are queued
	}

	mu struct {
		sync.Mutex
		byName   map[string]*entry
		retired  map[trove.NodeID]Member // previous runs of restarted nodes
		watchers []*watcher
	}
}

// entry is one name's member in the view, with what suspicion tracking needs.
type entry struct {
	Member
	boot       uint64
	leaving    bool      // its meta says it is leaving: its end is a departure
	inc        uint32    // the highest incarnation seen in its alive gossip
	suspectInc uint32    // the incarnation it is suspected at (State == StateSuspect)
	suspectAt  time.Time // when it became suspect
}

type watcher struct {
	fn      func(Event)
	removed atomic.Bool
}

// noteKind says which delegate or gossip a note comes from.
type noteKind uint8

const (
	noteJoin    noteKind = iota // memberlist: a node is alive (new, or after dead/left)
	noteUpdate                  // memberlist: an alive node's meta changed
	noteLeave                   // memberlist: a node died or left
	noteSuspect                 // gossip: a suspect message
	noteAlive                   // gossip: an alive message
	noteReplay                  // Watch: replay the view to a new watcher
)

type note struct {
	kind  noteKind
	node  memberlist.Node // join, update, leave: a copy
	name  string          // suspect, alive
	inc   uint32          // suspect, alive
	addr  string          // alive: the address it claims
	watch *watcher        // replay
}

// startMembership starts this node's membership: it joins the cluster
// through any of cfg.Join (retrying for cfg.JoinTimeout: a seed may be
// starting too) or, with no Join addresses, starts a cluster. A node whose
// certificate is not from the members' CA is refused at every handshake, and
// startMembership fails saying so.
func startMembership(ctx context.Context, cfg membershipConfig) (*membership, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	m := &membership{cfg: cfg, log: cfg.Log.With("node", cfg.Name)}
	var b [8]byte
	_, _ = rand.Read(b[:])
	m.boot = binary.BigEndian.Uint64(b[:])
	m.notes.wake = make(chan struct{}, 1)
	m.mu.byName = map[string]*entry{}
	m.mu.retired = map[trove.NodeID]Member{}
	m.setMeta(m.stats())
	if m.gt, err = newGossipTransport(cfg.Transport, m.snoop); err != nil {
		return nil, err
	}

	mc := memberlist.DefaultLANConfig()
	mc.Name = cfg.Name
	mc.Transport = m.gt
	mc.Delegate = (*mlDelegate)(m)
	mc.Events = (*mlEvents)(m)
	mc.Alive = (*mlAlive)(m)
	mc.Conflict = (*mlConflict)(m)
	mc.Merge = (*mlMerge)(m)
	mc.Logger = log.New(&logWriter{log: m.log}, "", 0)
	mc.EnableCompression = false // the snooper reads packets; and QUIC is not short of bandwidth
	mc.ProbeInterval, mc.ProbeTimeout = cfg.ProbeInterval, cfg.ProbeTimeout
	mc.SuspicionMult = cfg.SuspicionMult
	mc.GossipInterval, mc.PushPullInterval = cfg.GossipInterval, cfg.PushPullInterval
	mc.DeadNodeReclaimTime = cfg.DeadNodeReclaimTime
	mc.TCPTimeout = max(mc.TCPTimeout, 2*cfg.ProbeTimeout)

	m.ctx, m.cancel = context.WithCancel(context.WithoutCancel(ctx))
	// Create calls the delegates (this node joins its own view): their notes
	// wait in the queue for run, which starts once m.ml is set.
	if m.ml, err = memberlist.Create(mc); err != nil {
		m.gt.Shutdown()
		m.cancel()
		return nil, fmt.Errorf("cluster: start membership on %s: %w", cfg.Transport.Addr(), err)
	}
	m.wg.Add(1)
	go m.run()
	if len(cfg.Join) > 0 {
		if err := m.join(ctx); err != nil {
			_ = m.ml.Shutdown()
			m.stop()
			return nil, err
		}
	}
	m.wg.Add(1)
	go m.upkeep()
	return m, nil
}

// join pushes and pulls state with the first of cfg.Join that answers,
// retrying until one does or cfg.JoinTimeout passes.
func (m *membership) join(parent context.Context) error {
	ctx, cancel := context.WithTimeout(parent, m.cfg.JoinTimeout)
	defer cancel()
	delay := 50 * time.Millisecond
	for {
		m.gt.resetRefusals()
		n, err := m.ml.Join(m.cfg.Join)
		if n > 0 {
			return nil
		}
		// Every address refused this node's certificate (or this node
		// theirs): retrying cannot help.
		refusedAll := m.gt.resetRefusals() >= len(m.cfg.Join)
		if !refusedAll {
			select {
			case <-time.After(delay):
				delay = min(2*delay, time.Second)
				continue
			case <-ctx.Done():
			}
		}
		cause := m.gt.lastDialError()
		if cause == nil {
			cause = err
		}
		if cause == nil {
			cause = errNoMembers
		}
		why := fmt.Sprintf("no member answered within %v (membershipConfig.JoinTimeout)", m.cfg.JoinTimeout)
		if refusedAll {
			why = "every address refused the TLS handshake"
		} else if parent.Err() != nil {
			why = fmt.Sprintf("gave up (%v)", context.Cause(parent))
		}
		return fmt.Errorf("cluster: node %s could not join the cluster at %s: %s; check the addresses are members' and that this node's certificate is from their CA: %w",
			m.cfg.Name, strings.Join(m.cfg.Join, ", "), why, cause)
	}
}

func (m *membership) stop() {
	m.cancel()
	m.wg.Wait()
}

func (m *membership) stats() (capacity, used int64) {
	if m.cfg.Stats == nil {
		return 0, 0
	}
	return m.cfg.Stats()
}

func (m *membership) setMeta(capacity, used int64) {
	b := m.buildMeta(capacity, used)
	m.meta.Store(&b)
}

// buildMeta encodes this node's meta with the given figures.
func (m *membership) buildMeta(capacity, used int64) []byte {
	meta := nodeMeta{ID: m.cfg.ID, Boot: m.boot, Capacity: capacity, Used: used, Leaving: m.left.Load()}
	if m.cfg.Offer != nil {
		slots, rs := m.cfg.Offer()
		meta.Slots = min(max(slots, 0), maxSlots)
		meta.NRes, meta.Res = metaResources(rs)
	}
	return meta.append(nil)
}

// Resources are the resources a member offers (Node.SetResources), sorted
// by name; comparable, as Member is.
type Resources struct {
	n int
	r [maxMetaResources]Resource
}

// All lists them.
func (rs Resources) All() []Resource { return slices.Clone(rs.r[:rs.n]) }

// resources is a meta's resources.
func (meta nodeMeta) resources() Resources { return Resources{n: meta.NRes, r: meta.Res} }

// Self is this node as the cluster sees it (StateLeft after Leave).
func (m *membership) Self() Member {
	meta, _ := decodeNodeMeta(*m.meta.Load())
	self := Member{Name: m.cfg.Name, ID: m.cfg.ID, Addr: m.cfg.Transport.Addr(), Capacity: meta.Capacity, Used: meta.Used, Slots: meta.Slots, Resources: meta.resources()}
	if m.left.Load() {
		self.State = StateLeft
	}
	m.mu.Lock()
	if e, ok := m.mu.byName[m.cfg.Name]; ok {
		self.Updated = e.Updated
	}
	m.mu.Unlock()
	return self
}

// Lookup finds the member whose store has node ID id: a current member (in
// any state), or a restarted node's previous run (StateDead), until forgotten.
func (m *membership) Lookup(id trove.NodeID) (Member, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, e := range m.mu.byName {
		if e.ID == id {
			return e.Member, true
		}
	}
	mem, ok := m.mu.retired[id]
	return mem, ok
}

// LookupName finds the member named name (in any state), until forgotten.
func (m *membership) LookupName(name string) (Member, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if e, ok := m.mu.byName[name]; ok {
		return e.Member, true
	}
	return Member{}, false
}

// Members lists the members by name, this node included: alive and suspect
// ones, and dead and left ones for ForgetAfter after they died or left. A
// restarted node is listed once, as its current run.
func (m *membership) Members() []Member {
	m.mu.Lock()
	out := make([]Member, 0, len(m.mu.byName))
	for _, e := range m.mu.byName {
		out = append(out, e.Member)
	}
	m.mu.Unlock()
	slices.SortFunc(out, func(a, b Member) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// Watch calls fn with every change of a member, in the order they happen, from
// one goroutine, with no lock held (fn may call the membership's methods, but
// blocks later events while it runs). fn first gets a joined event for every
// member already alive or suspect (this node included), so Watch alone keeps
// a consumer's copy of the view exact. After cancel, fn is called at most once
// more (an event being delivered as cancel ran).
func (m *membership) Watch(fn func(Event)) (cancel func()) {
	w := &watcher{fn: fn}
	m.push(note{kind: noteReplay, watch: w}) // run adds w, after replaying the view to it
	return func() {
		w.removed.Store(true)
		m.mu.Lock()
		m.mu.watchers = slices.DeleteFunc(m.mu.watchers, func(x *watcher) bool { return x == w })
		m.mu.Unlock()
	}
}

// Leave tells the cluster this node is leaving, and waits (within ctx, or 5 s
// without a deadline) for the news to be gossiped: the others see it as
// StateLeft, not dead. Close it afterwards.
func (m *membership) Leave(ctx context.Context) error {
	timeout := 5 * time.Second
	if d, ok := ctx.Deadline(); ok {
		timeout = max(time.Until(d), time.Millisecond)
	}
	m.life.Lock()
	defer m.life.Unlock()
	if m.ctx.Err() != nil {
		return fmt.Errorf("cluster: node %s leaving the cluster: the membership is closed: %w", m.cfg.Name, trove.ErrClosed)
	}
	m.left.Store(true)
	// The leaving flag first, so that the others record a departure, not a
	// death, when memberlist tells them the node is gone.
	old, _ := decodeNodeMeta(*m.meta.Load())
	m.setMeta(old.Capacity, old.Used)
	start := time.Now()
	m.update.Lock()
	err := m.ml.UpdateNode(max(timeout/2-time.Since(start), time.Millisecond))
	m.update.Unlock()
	if err != nil {
		m.log.Warn("cluster: gossiping that this node is leaving took too long; some members may see it dead", "err", err)
	}
	if err := m.ml.Leave(max(timeout-time.Since(start), time.Millisecond)); err != nil {
		return fmt.Errorf("cluster: node %s leaving the cluster: %w (the others will see it dead instead of left)", m.cfg.Name, err)
	}
	return nil
}

// Close stops the membership. Without a Leave first, the others see this node
// stop answering, and declare it dead. The QUIC transport stays open (it is
// the node's).
func (m *membership) Close() error {
	m.life.Lock()
	defer m.life.Unlock()
	if m.ctx.Err() != nil {
		return nil
	}
	err := m.ml.Shutdown()
	m.stop()
	if err != nil {
		return fmt.Errorf("cluster: close membership: %w", err)
	}
	return nil
}

// upkeep gossips this node's figures when they change, and pushes its state
// to the cluster while a previous run of it is listed at another address.
func (m *membership) upkeep() {
	defer m.wg.Done()
	stats := time.NewTicker(m.cfg.StatsInterval)
	defer stats.Stop()
	probe := time.NewTicker(m.cfg.ProbeInterval)
	defer probe.Stop()
	var rejoin <-chan time.Time
	if len(m.cfg.Join) > 0 && m.cfg.RejoinInterval > 0 {
		t := time.NewTicker(m.cfg.RejoinInterval)
		defer t.Stop()
		rejoin = t.C
	}
	for {
		select {
		case <-m.ctx.Done():
			return
		case <-rejoin:
			if !m.left.Load() {
				m.rejoinUnknown()
			}
		case <-stats.C:
			if m.left.Load() {
				continue
			}
			capacity, used := m.stats()
			if b := m.buildMeta(capacity, used); bytes.Equal(b, *m.meta.Load()) {
				continue
			}
			m.setMeta(capacity, used)
			// UpdateNode waits for the broadcast to go out (forever with a
			// 0 timeout); a slow one is no failure: gossip carries it on.
			m.update.Lock()
			if !m.left.Load() { // Leave may have begun meanwhile: its own meta goes out
				if err := m.ml.UpdateNode(m.cfg.StatsInterval); err != nil {
					m.log.Debug("cluster: gossiping this node's figures is slow", "err", err)
				}
			}
			m.update.Unlock()
		case <-probe.C:
			if m.stale.Swap(false) && !m.left.Load() {
				// A push-pull with a member hands it this run's address;
				// it takes it once the previous run is dead (plus
				// DeadNodeReclaimTime). Until then the conflict recurs and
				// sets stale again.
				if addrs := m.peerAddrs(); len(addrs) > 0 {
					_, _ = m.ml.Join([]string{addrs[mrand.IntN(len(addrs))]})
				}
			}
		}
	}
}

// rejoinUnknown resolves cfg.Join again and joins the addresses it names
// that are no member's this node knows (see RejoinInterval).
func (m *membership) rejoinUnknown() {
	ctx, cancel := context.WithTimeout(m.ctx, 2*time.Second)
	defer cancel()
	known := map[string]bool{m.cfg.Transport.Addr(): true}
	m.mu.Lock()
	for _, e := range m.mu.byName {
		known[e.Addr] = true
	}
	m.mu.Unlock()
	var unknown []string
	for _, a := range m.cfg.Join {
		for _, addr := range resolveJoin(ctx, a) {
			if !known[addr] {
				known[addr] = true
				unknown = append(unknown, addr)
			}
		}
	}
	if len(unknown) == 0 {
		return
	}
	if n, err := m.ml.Join(unknown); n > 0 {
		m.log.Info("cluster: joined nodes the join addresses name that this node did not know (two clusters merged)", "addrs", unknown, "answered", n)
	} else {
		m.log.Debug("cluster: join addresses this node does not know did not answer", "addrs", unknown, "err", err)
	}
}

// resolveJoin is a Join address's host:port addresses: a name resolved to
// every address it has (a headless Service's pods), an IP as it is.
func resolveJoin(ctx context.Context, a string) []string {
	host, port, err := net.SplitHostPort(a)
	if err != nil {
		return nil
	}
	if net.ParseIP(host) != nil {
		return []string{net.JoinHostPort(host, port)}
	}
	ips, err := net.DefaultResolver.LookupHost(ctx, host)
	if err != nil {
		return nil
	}
	out := make([]string, 0, len(ips))
	for _, ip := range ips {
		out = append(out, net.JoinHostPort(ip, port))
	}
	return out
}

// peerAddrs lists alive members' addresses but this node's.
func (m *membership) peerAddrs() []string {
	var addrs []string
	for _, n := range m.ml.Members() {
		if n.Name != m.cfg.Name {
			addrs = append(addrs, n.Address())
		}
	}
	return addrs
}

// push queues a note for run.
func (m *membership) push(n note) {
	m.notes.Lock()
	m.notes.q = append(m.notes.q, n)
	m.notes.Unlock()
	select {
	case m.notes.wake <- struct{}{}:
	default:
	}
}

// run applies notes to the view and delivers events, and forgets members dead
// or left for ForgetAfter.
func (m *membership) run() {
	defer m.wg.Done()
	tick := time.NewTicker(m.cfg.ProbeInterval)
	defer tick.Stop()
	for {
		select {
		case <-m.ctx.Done():
			return
		case <-m.notes.wake:
		case <-tick.C:
			m.deliver(m.expire(time.Now()))
			continue
		}
		m.notes.Lock()
		q := m.notes.q
		m.notes.q = nil
		m.notes.Unlock()
		for _, n := range q {
			if n.kind == noteReplay {
				m.replay(n.watch)
				continue
			}
			m.deliver(m.apply(n, time.Now()))
		}
	}
}

func (m *membership) deliver(evs []Event) {
	if len(evs) == 0 {
		return
	}
	m.mu.Lock()
	ws := slices.Clone(m.mu.watchers)
	m.mu.Unlock()
	for _, e := range evs {
		for _, w := range ws {
			if !w.removed.Load() {
				w.fn(e)
			}
		}
	}
}

// replay adds w to the watchers and gives it the view as joined events: run
// calls it in the order of notes, so that w misses no change and gets none twice.
func (m *membership) replay(w *watcher) {
	var evs []Event
	m.mu.Lock()
	if !w.removed.Load() {
		m.mu.watchers = append(m.mu.watchers, w)
	}
	for _, e := range m.mu.byName {
		if e.State == StateAlive || e.State == StateSuspect {
			evs = append(evs, Event{Member: e.Member, Kind: EventJoined})
		}
	}
	m.mu.Unlock()
	slices.SortFunc(evs, func(a, b Event) int { return strings.Compare(a.Member.Name, b.Member.Name) })
	for _, e := range evs {
		if !w.removed.Load() {
			w.fn(e)
		}
	}
}

// apply changes the view by one note and returns the events it makes.
func (m *membership) apply(n note, now time.Time) []Event {
	m.mu.Lock()
	defer m.mu.Unlock()
	switch n.kind {
	case noteSuspect, noteAlive:
		return m.applyGossipLocked(n, now)
	}
	meta, err := decodeNodeMeta(n.node.Meta)
	if err != nil {
		// mlAlive refuses such nodes; a leave of one never admitted lands here.
		return nil
	}
	mem := Member{Name: n.node.Name, ID: meta.ID, Addr: n.node.Address(), Capacity: meta.Capacity, Used: meta.Used, Slots: meta.Slots, Resources: meta.resources(), Updated: now}
	e, known := m.mu.byName[mem.Name]
	switch n.kind {
	case noteLeave:
		if !known {
			return nil
		}
		e.State = StateDead
		kind := EventDead
		if e.leaving {
			e.State, kind = StateLeft, EventLeft
		}
		e.Updated = now
		return []Event{{Member: e.Member, Kind: kind}}
	case noteJoin, noteUpdate:
		if !known {
			m.mu.byName[mem.Name] = &entry{Member: mem, boot: meta.Boot, leaving: meta.Leaving}
			return []Event{{Member: mem, Kind: EventJoined}}
		}
		var evs []Event
		restarted := e.ID != meta.ID || e.boot != meta.Boot
		if !restarted && meta.Leaving && (e.State == StateAlive || e.State == StateSuspect) {
			e.leaving = true
			if e.Capacity == mem.Capacity && e.Used == mem.Used && e.Addr == mem.Addr {
				return nil // only the flag: the departure's event comes with it
			}
		}
		if restarted {
			prev := e.Member
			if prev.State == StateAlive || prev.State == StateSuspect {
				// The cluster never saw the previous run die: it does now.
				prev.State, prev.Updated = StateDead, now
				evs = append(evs, Event{Member: prev, Kind: EventDead})
			}
			m.retireLocked(prev)
		}
		kind := EventUpdated
		if restarted || e.State == StateDead || e.State == StateLeft {
			kind = EventRejoined
		}
		*e = entry{Member: mem, boot: meta.Boot, inc: e.inc, leaving: meta.Leaving}
		return append(evs, Event{Member: mem, Kind: kind})
	}
	return nil
}

// applyGossipLocked tracks suspicion from the suspect and alive messages this
// node gossips or receives (memberlist tells no delegate of them). m.mu is held.
func (m *membership) applyGossipLocked(n note, now time.Time) []Event {
	e, ok := m.mu.byName[n.name]
	if !ok || n.name == m.cfg.Name {
		return nil
	}
	switch n.kind {
	case noteAlive:
		if n.addr != e.Addr {
			// Another run claiming the name at another address: memberlist
			// refuses it (a conflict) until this one is dead.
			return nil
		}
		e.inc = max(e.inc, n.inc)
		if e.State == StateSuspect && n.inc > e.suspectInc {
			e.State, e.Updated = StateAlive, now
			return []Event{{Member: e.Member, Kind: EventUpdated}}
		}
	case noteSuspect:
		if e.State == StateAlive && n.inc >= e.inc {
			e.State, e.Updated = StateSuspect, now
			e.suspectInc, e.suspectAt = n.inc, now
			return []Event{{Member: e.Member, Kind: EventSuspect}}
		}
	}
	return nil
}

// retireLocked keeps a restarted node's previous run for Lookup. m.mu is held.
func (m *membership) retireLocked(prev Member) {
	if len(m.mu.retired) >= maxRetired {
		var oldest trove.NodeID
		first := true
		for id, r := range m.mu.retired {
			if first || r.Updated.Before(m.mu.retired[oldest].Updated) {
				oldest, first = id, false
			}
		}
		delete(m.mu.retired, oldest)
	}
	m.mu.retired[prev.ID] = prev
}

// expire forgets members dead or left for ForgetAfter, and clears suspicions
// that outlived the longest suspicion timeout: memberlist declares a suspect
// dead within it unless it refuted, and a refutation's alive message may
// reach this node only through a push-pull, which the snooper does not read.
func (m *membership) expire(now time.Time) []Event {
	var evs []Event
	m.mu.Lock()
	defer m.mu.Unlock()
	// memberlist's longest suspicion: SuspicionMaxTimeoutMult (6) × its
	// shortest, SuspicionMult × max(1, log10(n)) probe intervals.
	scale := 1.0
	for x := len(m.mu.byName); x >= 10; x /= 10 {
		scale++
	}
	maxSuspicion := time.Duration(float64(6*m.cfg.SuspicionMult)*scale) * m.cfg.ProbeInterval
	for name, e := range m.mu.byName {
		switch {
		case (e.State == StateDead || e.State == StateLeft) && now.Sub(e.Updated) > m.cfg.ForgetAfter:
			delete(m.mu.byName, name)
		case e.State == StateSuspect && now.Sub(e.suspectAt) > maxSuspicion+2*m.cfg.ProbeInterval:
			if node := m.mlNode(name); node != nil {
				e.State, e.Updated = StateAlive, now
				evs = append(evs, Event{Member: e.Member, Kind: EventUpdated})
			}
		}
	}
	for id, r := range m.mu.retired {
		if now.Sub(r.Updated) > m.cfg.ForgetAfter {
			delete(m.mu.retired, id)
		}
	}
	return evs
}

// mlNode is memberlist's alive (or suspect) node named name, or nil. It takes
// memberlist's lock: callers may hold m.mu (delegates, which hold memberlist's
// lock, never take m.mu).
func (m *membership) mlNode(name string) *memberlist.Node {
	if m.ml == nil {
		return nil
	}
	for _, n := range m.ml.Members() {
		if n.Name == name {
			return n
		}
	}
	return nil
}

// The delegates memberlist calls, with its locks held: they queue and return.
type (
	mlDelegate membership
	mlEvents   membership
	mlAlive    membership
	mlConflict membership
	mlMerge    membership
)

func (d *mlDelegate) NodeMeta(limit int) []byte {
	b := *(*membership)(d).meta.Load()
	if len(b) > limit {
		return nil // cannot happen: metaLen is far below memberlist's limit
	}
	return b
}

// No user messages, broadcasts or state beyond memberlist's own: the cluster's
// requests go over the QUIC transport's own calls.
func (d *mlDelegate) NotifyMsg([]byte)                           {}
func (d *mlDelegate) GetBroadcasts(overhead, limit int) [][]byte { return nil }
func (d *mlDelegate) LocalState(join bool) []byte                { return nil }
func (d *mlDelegate) MergeRemoteState(buf []byte, join bool)     {}

func (e *mlEvents) NotifyJoin(n *memberlist.Node) {
	(*membership)(e).push(note{kind: noteJoin, node: copyNode(n)})
}
func (e *mlEvents) NotifyLeave(n *memberlist.Node) {
	(*membership)(e).push(note{kind: noteLeave, node: copyNode(n)})
}
func (e *mlEvents) NotifyUpdate(n *memberlist.Node) {
	(*membership)(e).push(note{kind: noteUpdate, node: copyNode(n)})
}

func copyNode(n *memberlist.Node) memberlist.Node {
	c := *n
	c.Addr = slices.Clone(n.Addr)
	c.Meta = slices.Clone(n.Meta)
	return c
}

// NotifyAlive refuses nodes whose meta is not a trove node's: they never
// become members.
func (a *mlAlive) NotifyAlive(n *memberlist.Node) error {
	if _, err := decodeNodeMeta(n.Meta); err != nil {
		return fmt.Errorf("node %s (%s): %w", n.Name, n.Address(), err)
	}
	return nil
}

// NotifyConflict: two nodes claim one name at different addresses. For this
// node's own name, the other is its previous run (a restart at another
// address): upkeep pushes this run's address until the cluster takes it.
func (c *mlConflict) NotifyConflict(existing, other *memberlist.Node) {
	m := (*membership)(c)
	if existing.Name == m.cfg.Name && !bytes.Equal(existing.Meta, other.Meta) {
		m.stale.Store(true)
	}
}

// NotifyMerge sees a member's state during a join's push-pull (startMembership's,
// and upkeep's while stale). If the member lists this node's name at another
// address, with another run's meta, or not alive, the cluster has not taken
// this run yet (its previous run is still listed): stale stays set, and upkeep
// pushes again next probe interval, until a member shows this run alive.
func (g *mlMerge) NotifyMerge(peers []*memberlist.Node) error {
	m := (*membership)(g)
	for _, p := range peers {
		if p.Name != m.cfg.Name {
			continue
		}
		meta, err := decodeNodeMeta(p.Meta)
		taken := err == nil && meta.Boot == m.boot && p.State == memberlist.StateAlive && p.Address() == m.cfg.Transport.Addr()
		m.stale.Store(!taken)
	}
	return nil
}

// logWriter passes memberlist's log lines ("[LEVEL] memberlist: ...") to slog
// at their level.
type logWriter struct{ log *slog.Logger }

func (w *logWriter) Write(p []byte) (int, error) {
	line := strings.TrimSpace(string(p))
	level := slog.LevelInfo
	for prefix, l := range map[string]slog.Level{"[DEBUG] ": slog.LevelDebug, "[INFO] ": slog.LevelInfo, "[WARN] ": slog.LevelWarn, "[ERR] ": slog.LevelError} {
		if strings.HasPrefix(line, prefix) {
			line, level = strings.TrimPrefix(line, prefix), l
			break
		}
	}
	w.log.Log(context.Background(), level, line)
	return len(p), nil
}

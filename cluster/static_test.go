package cluster

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/trovedb/trove"
)

// A static membership, a test double of membership.go's: members join a
// registry shared in the process (found by the address of any member), leave
// it, and are declared dead by the test (kill), which is what failure
// detection would do.

// The static membership stands in only while the package has no real one
// (startMembers nil); with membership.go the tests run on it.
func init() {
	if startMembers == nil {
		startMembers = func(ctx context.Context, cfg membershipConfig) (memberView, error) {
			return joinStatic(cfg)
		}
	}
}

type staticCluster struct {
	mu      sync.Mutex
	members map[trove.NodeID]*staticView // guarded by mu
	events  sync.Mutex                   // serialises event delivery, so watchers see events in order
}

// clusters finds a static cluster by the address of any of its members.
var clusters sync.Map // addr → *staticCluster

type staticView struct {
	c  *staticCluster
	mu sync.Mutex
	m  Member              // guarded by c.mu
	w  map[int]func(Event) // guarded by mu
	nw int                 // guarded by mu
}

func joinStatic(cfg membershipConfig) (*staticView, error) {
	var c *staticCluster
	if len(cfg.Join) == 0 {
		c = &staticCluster{members: map[trove.NodeID]*staticView{}}
	} else {
		v, ok := clusters.Load(cfg.Join[0])
		if !ok {
			return nil, fmt.Errorf("no member at %s", cfg.Join[0])
		}
		c = v.(*staticCluster)
	}
	v := &staticView{c: c, w: map[int]func(Event){}}
	v.m = Member{Name: cfg.Name, ID: cfg.ID, Addr: cfg.Transport.Addr(), State: StateAlive, Updated: time.Now()}
	c.mu.Lock()
	c.members[cfg.ID] = v
	c.mu.Unlock()
	clusters.Store(v.m.Addr, c)
	c.notify(v.m.ID, EventJoined, StateAlive)
	return v, nil
}

// notify sets node's state and tells every other member's watchers.
func (c *staticCluster) notify(node trove.NodeID, kind EventKind, st State) {
	c.events.Lock()
	defer c.events.Unlock()
	c.mu.Lock()
	v := c.members[node]
	v.m.State, v.m.Updated = st, time.Now()
	m := v.m
	var fns []func(Event)
	for id, o := range c.members {
		if id == node {
			continue
		}
		o.mu.Lock()
		for _, fn := range o.w {
			fns = append(fns, fn)
		}
		o.mu.Unlock()
	}
	c.mu.Unlock()
	for _, fn := range fns {
		fn(Event{Member: m, Kind: kind})
	}
}

// kill declares node dead, as failure detection would after it stopped answering.
func (c *staticCluster) kill(node trove.NodeID) { c.notify(node, EventDead, StateDead) }

// add lists m as an alive member without a node behind this registry (a node
// of another cluster, in the CA test).
func (c *staticCluster) add(m Member) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.members[m.ID] = &staticView{c: c, m: m, w: map[int]func(Event){}}
}

func (v *staticView) Self() Member {
	v.c.mu.Lock()
	defer v.c.mu.Unlock()
	return v.m
}

func (v *staticView) Lookup(id trove.NodeID) (Member, bool) {
	v.c.mu.Lock()
	defer v.c.mu.Unlock()
	o, ok := v.c.members[id]
	if !ok {
		return Member{}, false
	}
	return o.m, true
}

func (v *staticView) Members() []Member {
	v.c.mu.Lock()
	var ms []Member
	for _, o := range v.c.members {
		ms = append(ms, o.m)
	}
	v.c.mu.Unlock()
	slices.SortFunc(ms, func(a, b Member) int { return strings.Compare(a.Name, b.Name) })
	return ms
}

func (v *staticView) Watch(fn func(Event)) func() {
	v.mu.Lock()
	defer v.mu.Unlock()
	k := v.nw
	v.nw++
	v.w[k] = fn
	return func() {
		v.mu.Lock()
		defer v.mu.Unlock()
		delete(v.w, k)
	}
}

func (v *staticView) Leave(context.Context) error {
	v.c.notify(v.Self().ID, EventLeft, StateLeft)
	return nil
}

func (v *staticView) Close() error { return nil }

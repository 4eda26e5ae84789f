package localcluster

import (
	"context"
	"strings"
	"testing"

	"github.com/trovedb/trove"
	"github.com/trovedb/trove/cluster"
)

// TestOpenDrainClose: Open returns a converged cluster; Busy names what a
// store holds; WaitDrained returns once the refs are dropped; Close closes
// the task runtimes and the nodes.
func TestOpenDrainClose(t *testing.T) {
	ctx := context.Background()
	c, err := Open(ctx, Config{Nodes: 2, Capacity: 16 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if len(c.Nodes) != 2 || c.Nodes[0].Name() != "node-1" || c.Nodes[1].Name() != "node-2" {
		t.Fatalf("nodes %v", c.Nodes)
	}
	if c.Node(c.Nodes[1].ID()) != c.Nodes[1] || c.Node(trove.NodeID{}) != nil {
		t.Error("Node does not find the nodes by ID")
	}
	rts, err := c.StartTasks(nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(rts) != 2 || rts[1].Node() != c.Nodes[1] {
		t.Fatalf("runtimes %v", rts)
	}
	big := make([]byte, 1<<20)
	ref, err := c.Nodes[0].Put(ctx, big)
	if err != nil {
		t.Fatal(err)
	}
	onOther, err := c.Nodes[1].Borrow(ref.ID())
	if err != nil {
		t.Fatal(err)
	}
	obj, err := c.Nodes[1].Get(ctx, onOther)
	if err != nil {
		t.Fatal(err)
	}
	obj.Release()
	if b := Busy(c.Nodes[0]); !strings.HasPrefix(b, "node-1: objects=1 ") {
		t.Errorf("Busy(node-1) = %q, want it to name the object", b)
	}
	// The members' figures catch up with the stores: node-2 sees node-1's
	// arena holding the object.
	if err := c.WaitGossiped(ctx); err != nil {
		t.Fatal(err)
	}
	if used := memberUsed(t, c.Nodes[1], c.Nodes[0]); used == 0 || used != c.Nodes[0].Local().Stats().Used {
		t.Errorf("node-2 sees node-1 using %d bytes, node-1's store says %d", used, c.Nodes[0].Local().Stats().Used)
	}
	onOther.Drop()
	ref.Drop()
	if err := c.WaitDrained(ctx); err != nil {
		t.Fatal(err)
	}
	for _, n := range c.Nodes {
		if b := Busy(n); b != "" {
			t.Errorf("after WaitDrained: %s", b)
		}
	}
	if err := c.WaitGossiped(ctx); err != nil {
		t.Fatal(err)
	}
	for _, n := range c.Nodes {
		for _, o := range c.Nodes {
			if used := memberUsed(t, n, o); used != 0 {
				t.Errorf("after WaitGossiped on drained stores, %s sees %s using %d bytes", n.Name(), o.Name(), used)
			}
		}
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
}

// memberUsed is o's used bytes as n last heard them.
func memberUsed(t *testing.T, n, o *cluster.Node) int64 {
	t.Helper()
	for _, m := range n.Members() {
		if m.ID == o.ID() {
			return m.Used
		}
	}
	t.Fatalf("%s does not list %s", n.Name(), o.Name())
	return 0
}

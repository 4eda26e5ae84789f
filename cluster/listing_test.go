package cluster

import (
	"context"
	"testing"
)

// TestClusterObjects: every member's objects are listed, the primary on its
// owner and the copy on the node that got it, cut at the limit with the total.
func TestClusterObjects(t *testing.T) {
	ctx := context.Background()
	nodes := newCluster(t, 2, nil)
	a, b := nodes[0], nodes[1]
	big, err := a.Put(ctx, pattern(2<<20, 1))
	if err != nil {
		t.Fatal(err)
	}
	defer big.Drop()
	small, err := a.Put(ctx, pattern(10, 2))
	if err != nil {
		t.Fatal(err)
	}
	defer small.Drop()
	bb, err := b.Borrow(big.ID())
	if err != nil {
		t.Fatal(err)
	}
	defer bb.Drop()
	getBytes(t, ctx, b, bb)

	if _, err := b.ClusterObjects(ctx, 0); err == nil {
		t.Fatal("a zero limit was accepted")
	}
	list, err := b.ClusterObjects(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].Member.Name != "node-a" || list[1].Member.Name != "node-b" {
		t.Fatalf("listing of %d nodes: %+v", len(list), list)
	}
	la, lb := list[0], list[1]
	if la.Err != nil || la.Total != 2 || len(la.Objects) != 1 || la.Objects[0].ID != big.ID() || la.Objects[0].Copy {
		t.Fatalf("node-a's listing (limit 1): %+v", la)
	}
	if lb.Err != nil || lb.Total != 1 || len(lb.Objects) != 1 || lb.Objects[0].ID != big.ID() || !lb.Objects[0].Copy || lb.Objects[0].Size != 2<<20 {
		t.Fatalf("node-b's listing: %+v", lb)
	}
}

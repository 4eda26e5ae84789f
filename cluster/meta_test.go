package cluster

import (
	"context"
	"runtime"
	"testing"

	"github.com/trovedb/trove"
	"github.com/trovedb/trove/engine"
)

// TestOwnerMetadataSize measures what an owner keeps per object with one
// borrowing node, beyond its store's own entry: the meta and its table slot (the
// engine hold that keeps the primary for the borrowers allocates nothing). The bound
// is 200 bytes (Ray's owner keeps 4-5 kB per object).
func TestOwnerMetadataSize(t *testing.T) {
	const n = 20000
	st, err := engine.Open(engine.Config{Capacity: engine.MinCapacity})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx := context.Background()
	refs := make([]trove.Ref, n)
	for i := range refs {
		if refs[i], err = st.Put(ctx, []byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
	}
	var tab ownerTable
	tab.init(st)
	borrowerNode := trove.NewNodeID()
	heap := func() uint64 {
		runtime.GC()
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	before := heap()
	for _, r := range refs {
		if err := tab.borrow(borrowerNode, r.ID()); err != nil {
			t.Fatal(err)
		}
	}
	after := heap()
	per := float64(after-before) / n
	t.Logf("owner metadata: %.0f bytes per object with one borrower (%d objects)", per, n)
	if per > 200 {
		t.Errorf("owner metadata %.0f bytes per object with one borrower, bound 200", per)
	}
	for _, r := range refs {
		if !tab.release(borrowerNode, r.ID()) {
			t.Fatal("release of the only borrow did not free the meta")
		}
		r.Drop()
	}
	if tab.len() != 0 || st.Stats().Objects != 0 {
		t.Fatalf("left: %d metas, %d objects", tab.len(), st.Stats().Objects)
	}
}

// TestOwnerTableBorrowers: borrows and releases of several nodes in every
// order keep the hold exactly while some node borrows.
func TestOwnerTableBorrowers(t *testing.T) {
	st, err := engine.Open(engine.Config{Capacity: engine.MinCapacity})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	nodes := []trove.NodeID{trove.NewNodeID(), trove.NewNodeID(), trove.NewNodeID()}
	for _, order := range [][]int{{0, 1, 2}, {2, 1, 0}, {1, 0, 2}, {0, 2, 1}} {
		ref, err := st.Put(context.Background(), []byte("x"))
		if err != nil {
			t.Fatal(err)
		}
		id := ref.ID()
		var tab ownerTable
		tab.init(st)
		for _, n := range nodes {
			if err := tab.borrow(n, id); err != nil {
				t.Fatal(err)
			}
		}
		if err := tab.borrow(nodes[1], id); err != nil { // a second registration of one node
			t.Fatal(err)
		}
		tab.copied(nodes[2], id)
		ref.Drop()
		released := 0
		for k, i := range order {
			for range 1 + btoi(i == 1) {
				if tab.release(nodes[i], id) {
					released++
				}
			}
			if k < len(order)-1 {
				if tab.len() != 1 || released != 0 {
					t.Fatalf("order %v: after %d nodes released, %d metas and %d holds given back", order, k+1, tab.len(), released)
				}
				r, err := st.Borrow(id)
				if err != nil {
					t.Fatalf("order %v: object gone while borrowed: %v", order, err)
				}
				r.Drop()
			}
		}
		if tab.len() != 0 || released != 1 || st.Stats().Objects != 0 {
			t.Fatalf("order %v: %d metas, %d holds given back, %d objects left", order, tab.len(), released, st.Stats().Objects)
		}
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

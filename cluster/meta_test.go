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

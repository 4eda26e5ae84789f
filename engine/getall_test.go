package engine

import (
	"context"
	"errors"
	"hash/crc32"
	"sync"
	"testing"

	"github.com/trovedb/trove"
	"github.com/trovedb/trove/spill/errorfs"
)

// spillAll spills every object of objs, or fails the test.
func spillAll(t *testing.T, s *Store, objs []stored) {
	t.Helper()
	refs := make([]trove.Ref, len(objs))
	for i, o := range objs {
		refs[i] = o.ref
	}
	s.WaitIdle()
	if n, err := s.Spill(context.Background(), refs); err != nil || n != len(refs) {
		t.Fatalf("spill %d objects: %d spilled, %v", len(refs), n, err)
	}
}

// checkViews checks that views hold objs' bytes, in order.
func checkViews(t *testing.T, views []*trove.Object, objs []stored) {
	t.Helper()
	if len(views) != len(objs) {
		t.Fatalf("%d views, want %d", len(views), len(objs))
	}
	for i, o := range objs {
		if v := views[i]; v.Size() != o.n || crc32.ChecksumIEEE(v.Bytes()) != o.sum {
			t.Fatalf("view %d (%s): %d bytes, not the object's %d", i, o.ref.ID(), v.Size(), o.n)
		}
	}
}

// TestGetAllRestoresTogether: a GetAll of spilled objects restores them at once,
// on several goroutines (spill.RestoreMany), not one after another: with every
// spill-file read stalled, a second object's read begins while the first's
// waits, which one-at-a-time restores never do. Beside them, a resident object,
// a pending one sealed later and a duplicate ref come back too, in input order.
func TestGetAllRestoresTogether(t *testing.T) {
	efs := errorfs.New()
	s, dir := faultStore(t, 64<<20, efs, nil)
	ctx := context.Background()
	spilled := putObjects(t, s, 6, 1<<20, 100)
	spillAll(t, s, spilled)
	resident := putObjects(t, s, 1, 1<<20, 200)
	b, err := s.Create(ctx, 300<<10)
	if err != nil {
		t.Fatal(err)
	}
	late := fill(300<<10, 300)
	copy(b.Bytes(), late)
	pendingRef := b.Ref()

	gate := make(chan struct{})
	var openGate sync.Once
	t.Cleanup(func() { openGate.Do(func() { close(gate) }) }) // before the store's Close, if the test fails
	stall := efs.Inject(errorfs.Fault{Kind: errorfs.StallRead, Gate: gate})
	want := append(append([]stored{}, spilled[:3]...), resident[0], stored{pendingRef, crc32.ChecksumIEEE(late), len(late)}, spilled[1])
	want = append(want, spilled[3:]...)
	refs := make([]trove.Ref, len(want))
	for i, o := range want {
		refs[i] = o.ref
	}
	type result struct {
		views []*trove.Object
		err   error
	}
	done := make(chan result, 1)
	go func() {
		views, err := s.GetAll(ctx, refs)
		done <- result{views, err}
	}()
	await(t, stall.Entered(), "the first restore's read")
	await(t, stall.Entered(), "a second object's read while the first is stalled")
	efs.RemoveFault(stall)
	openGate.Do(func() { close(gate) })
	if err := b.Seal(); err != nil {
		t.Fatal(err)
	}
	r := await(t, done, "GetAll")
	if r.err != nil {
		t.Fatal(r.err)
	}
	checkViews(t, r.views, want)
	if st := s.Stats(); st.Restores != int64(len(spilled)) || st.SpilledObjects != 0 {
		t.Errorf("%d restores, %d objects still spilled; want %d and 0", st.Restores, st.SpilledObjects, len(spilled))
	}
	trove.ReleaseAll(r.views)
	dropStored(spilled...)
	dropStored(resident...)
	pendingRef.Drop()
	requireDrained(t, s, dir)
}

// TestGetAllRestoreCorrupt: an object that fails verification in a batched
// restore fails the GetAll with ErrSpillCorrupt and takes nothing with it: the
// views already taken are released, no memory stays allocated, and the objects
// stay spilled, so that once the reads are sound again the same GetAll succeeds.
func TestGetAllRestoreCorrupt(t *testing.T) {
	efs := errorfs.New()
	s, dir := faultStore(t, 64<<20, efs, nil)
	ctx := context.Background()
	resident := putObjects(t, s, 1, 1<<20, 400)
	spilled := putObjects(t, s, 5, 1<<20, 500)
	spillAll(t, s, spilled)
	objs := append(resident, spilled...)
	refs := make([]trove.Ref, len(objs))
	for i, o := range objs {
		refs[i] = o.ref
	}
	before := s.Stats()
	flip := efs.Inject(errorfs.Fault{Kind: errorfs.FlipByte, At: 12345})
	views, err := s.GetAll(ctx, refs)
	if !errors.Is(err, trove.ErrSpillCorrupt) || views != nil {
		t.Fatalf("GetAll with damaged reads: %d views, %v; want ErrSpillCorrupt", len(views), err)
	}
	if st := s.Stats(); st.Views != 0 || st.Used != before.Used || st.SpilledObjects != int64(len(spilled)) {
		t.Fatalf("after the failed GetAll: %d views, %d bytes used (were %d), %d objects spilled (want %d)",
			st.Views, st.Used, before.Used, st.SpilledObjects, len(spilled))
	}
	efs.RemoveFault(flip)
	views, err = s.GetAll(ctx, refs)
	if err != nil {
		t.Fatal(err)
	}
	checkViews(t, views, objs)
	trove.ReleaseAll(views)
	dropStored(objs...)
	requireDrained(t, s, dir)
}

// TestGetAllRestoreTight: spilled objects that do not all fit in memory beside
// the resident ones at once are still got: the batch takes what room can be made
// without waiting (spilling the objects the GetAll does not ask for), and the
// rest are restored one at a time.
func TestGetAllRestoreTight(t *testing.T) {
	s, dir := faultStore(t, 16<<20, errorfs.New(), nil)
	ctx := context.Background()
	spilled := putObjects(t, s, 6, 1<<20, 600)
	spillAll(t, s, spilled)
	others := putObjects(t, s, 9, 1<<20, 700) // memory for the restores must be made by spilling these
	views, err := s.GetAll(ctx, []trove.Ref{spilled[0].ref, spilled[1].ref, spilled[2].ref, spilled[3].ref, spilled[4].ref, spilled[5].ref})
	if err != nil {
		t.Fatal(err)
	}
	checkViews(t, views, spilled)
	trove.ReleaseAll(views)
	checkIntact(t, s, others...)
	dropStored(spilled...)
	dropStored(others...)
	requireDrained(t, s, dir)
}

package ipc

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/trovedb/trove"
	"github.com/trovedb/trove/engine"
)

func pattern(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7) ^ seed
	}
	return b
}

func TestPutGetSizes(t *testing.T) {
	ctx := context.Background()
	d := startDaemon(t, engine.Config{})
	c := d.dial(t)
	for _, size := range []int{0, 1, 100, engine.DefaultInlineThreshold, engine.DefaultInlineThreshold + 1, 1 << 20, 8<<20 + 3} {
		data := pattern(size, byte(size))
		ref, err := c.Put(ctx, data)
		if err != nil {
			t.Fatalf("put %d: %v", size, err)
		}
		obj, err := c.Get(ctx, ref)
		if err != nil {
			t.Fatalf("get %d: %v", size, err)
		}
		if !bytes.Equal(obj.Bytes(), data) {
			t.Fatalf("%d bytes: read back differs", size)
		}
		off, shared := c.ArenaOffset(obj)
		if wantShared := size > engine.DefaultInlineThreshold; shared != wantShared {
			t.Fatalf("%d bytes: in shared memory = %v (offset %d), want %v", size, shared, off, wantShared)
		}
		if shared && d.st.Stats().PinnedObjects != 1 {
			t.Fatalf("%d bytes: the daemon does not pin the viewed object", size)
		}
		obj.Release()
		ref.Drop()
	}
	requireDrained(t, d, c)
}

// A ref is a future across processes: a Get blocks until another client seals.
func TestCreateSealWakesGetInAnotherClient(t *testing.T) {
	ctx := context.Background()
	d := startDaemon(t, engine.Config{})
	writer, reader := d.dial(t), d.dial(t)
	for _, size := range []int{10, 2 << 20} {
		b, err := writer.Create(ctx, size)
		if err != nil {
			t.Fatal(err)
		}
		ref, err := reader.Borrow(b.Ref().ID())
		if err != nil {
			t.Fatal(err)
		}
		got := make(chan error, 1)
		go func() {
			obj, err := reader.Get(ctx, ref)
			if err == nil {
				if !bytes.Equal(obj.Bytes(), pattern(size, 9)) {
					err = errors.New("sealed bytes differ")
				}
				obj.Release()
			}
			got <- err
		}()
		// Not ready: Wait with a deadline says so.
		wctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
		ready, pending, err := reader.Wait(wctx, []trove.Ref{ref}, 1)
		cancel()
		if !errors.Is(err, trove.ErrGetTimeout) || len(ready) != 0 || len(pending) != 1 {
			t.Fatalf("wait on a pending object = %v, %v, %v", ready, pending, err)
		}
		copy(b.Bytes(), pattern(size, 9))
		if err := b.Seal(); err != nil {
			t.Fatal(err)
		}
		if err := <-got; err != nil {
			t.Fatal(err)
		}
		ready, pending, err = reader.Wait(ctx, []trove.Ref{ref}, 1)
		if err != nil || len(ready) != 1 || len(pending) != 0 {
			t.Fatalf("wait on a sealed object = %v, %v, %v", ready, pending, err)
		}
		ref.Drop()
		b.Ref().Drop()
	}
	requireDrained(t, d, writer, reader)
}

func TestGetTimeoutAndCancel(t *testing.T) {
	ctx := context.Background()
	d := startDaemon(t, engine.Config{})
	c := d.dial(t)
	b, err := c.Create(ctx, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	tctx, cancel := context.WithTimeout(ctx, 30*time.Millisecond)
	_, err = c.Get(tctx, b.Ref())
	cancel()
	if !errors.Is(err, trove.ErrGetTimeout) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("get of a pending object past its deadline: %v", err)
	}
	cctx, cancel := context.WithCancel(ctx)
	go func() { time.Sleep(20 * time.Millisecond); cancel() }()
	if _, err := c.Get(cctx, b.Ref()); !errors.Is(err, context.Canceled) {
		t.Fatalf("get cancelled: %v", err)
	}
	b.Abort()
	if _, err := c.Get(ctx, b.Ref()); !errors.Is(err, trove.ErrObjectAborted) {
		t.Fatalf("get of an aborted object: %v", err)
	}
	b.Ref().Drop()
	requireDrained(t, d, c)
}

func TestErrorsAcrossTheSocket(t *testing.T) {
	ctx := context.Background()
	d := startDaemon(t, engine.Config{Capacity: 16 << 20, DisableSpilling: true})
	c := d.dial(t)
	if _, err := c.Borrow(trove.NewObjectID(c.Node(), 12345)); !errors.Is(err, trove.ErrUnknownObject) {
		t.Fatalf("borrow of an unknown ID: %v", err)
	}
	if _, err := c.Get(ctx, trove.Ref{}); !errors.Is(err, trove.ErrInvalidRef) {
		t.Fatalf("get of the zero ref: %v", err)
	}
	big, err := c.Put(ctx, pattern(12<<20, 1))
	if err != nil {
		t.Fatal(err)
	}
	second := pattern(12<<20, 2)
	fctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	_, err = c.Put(fctx, second)
	cancel()
	if !errors.Is(err, trove.ErrStoreFull) {
		t.Fatalf("put into a full store: %v", err)
	}
	// Nothing already stored was lost.
	obj, err := c.Get(ctx, big)
	if err != nil || !bytes.Equal(obj.Bytes(), pattern(12<<20, 1)) {
		t.Fatalf("the stored object after a failed put: %v", err)
	}
	obj.Release()
	big.Drop()
	if _, err := c.Get(ctx, big); !errors.Is(err, trove.ErrInvalidRef) {
		t.Fatalf("get of a dropped ref: %v", err)
	}
	requireDrained(t, d, c)
}

// Typed values, with nested refs, work on a client exactly as in process.
func TestValuesWithNestedRefs(t *testing.T) {
	ctx := context.Background()
	d := startDaemon(t, engine.Config{})
	c := d.dial(t)
	inner, err := trove.PutValue(ctx, c, []float32{1, 2, 3})
	if err != nil {
		t.Fatal(err)
	}
	type outer struct {
		Name  string
		Inner trove.Ref
		Big   []byte
	}
	ref, err := trove.PutValue(ctx, c, outer{Name: "x", Inner: inner, Big: pattern(300<<10, 4)})
	if err != nil {
		t.Fatal(err)
	}
	inner.Drop() // the outer object keeps it alive
	other := d.dial(t)
	ref2, err := other.Borrow(ref.ID())
	if err != nil {
		t.Fatal(err)
	}
	ref.Drop()
	got, err := trove.GetValue[outer](ctx, other, ref2)
	if err != nil {
		t.Fatal(err)
	}
	if got.Name != "x" || !bytes.Equal(got.Big, pattern(300<<10, 4)) {
		t.Fatalf("value read back differs: %q", got.Name)
	}
	nums, err := trove.GetValue[[]float32](ctx, other, got.Inner)
	if err != nil || len(nums) != 3 || nums[2] != 3 {
		t.Fatalf("nested value: %v, %v", nums, err)
	}
	rep, err := other.Memory(ctx)
	if err != nil {
		t.Fatal(err)
	}
	captured := false
	for _, r := range rep.Rows {
		captured = captured || (r.ID == got.Inner.ID().String() && r.Kind == KindCaptured)
	}
	if !captured {
		t.Fatalf("memory does not show the inner object captured: %+v", rep.Rows)
	}
	got.Inner.Drop()
	ref2.Drop()
	requireDrained(t, d, c, other)
}

func TestGetAllAndWaitOrder(t *testing.T) {
	ctx := context.Background()
	d := startDaemon(t, engine.Config{})
	c := d.dial(t)
	var refs []trove.Ref
	for i := range 2500 { // more than one batch
		size := 8
		if i%500 == 0 {
			size = 200 << 10
		}
		r, err := c.Put(ctx, pattern(size, byte(i)))
		if err != nil {
			t.Fatal(err)
		}
		refs = append(refs, r)
	}
	b, err := c.Create(ctx, 64)
	if err != nil {
		t.Fatal(err)
	}
	objs, err := c.GetAll(ctx, refs)
	if err != nil {
		t.Fatal(err)
	}
	for i, o := range objs {
		if o.ID() != refs[i].ID() || o.Bytes()[1] != pattern(2, byte(i))[1] {
			t.Fatalf("view %d is of %s", i, o.ID())
		}
	}
	trove.ReleaseAll(objs)
	mixed := []trove.Ref{b.Ref(), refs[0], refs[1], refs[2]}
	ready, pending, err := c.Wait(ctx, mixed, 2)
	if err != nil || len(ready) != 2 || ready[0] != refs[0] || ready[1] != refs[1] || len(pending) != 2 || pending[0] != b.Ref() {
		t.Fatalf("wait = %v, %v, %v", ready, pending, err)
	}
	b.Abort()
	b.Ref().Drop()
	for _, r := range refs {
		r.Drop()
	}
	requireDrained(t, d, c)
}

// A client that closes, or whose views and refs are collected, leaves nothing.
func TestCloseReleasesEverything(t *testing.T) {
	ctx := context.Background()
	d := startDaemon(t, engine.Config{})
	c, err := Dial(d.path)
	if err != nil {
		t.Fatal(err)
	}
	r, err := c.Put(ctx, pattern(4<<20, 1))
	if err != nil {
		t.Fatal(err)
	}
	obj, err := c.Get(ctx, r)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Create(ctx, 2<<20); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	// The view stays mapped after Close, until released: reading it does not
	// fault (its contents are no longer pinned, so they are not checked).
	sink := obj.Bytes()[5] ^ obj.Bytes()[len(obj.Bytes())-1]
	_ = sink
	if c.views.Load() != 1 {
		t.Fatalf("%d views counted after Close, want 1", c.views.Load())
	}
	obj.Release()
	if c.views.Load() != 0 {
		t.Fatal("the view's release was not counted")
	}
	requireDrained(t, d)
	if _, err := c.Put(ctx, []byte("x")); err == nil {
		t.Fatal("put on a closed client succeeded")
	}
}

func TestStatusAndMemory(t *testing.T) {
	ctx := context.Background()
	d := startDaemon(t, engine.Config{})
	c := d.dial(t)
	r, err := c.Put(ctx, pattern(1<<20, 1))
	if err != nil {
		t.Fatal(err)
	}
	obj, err := c.Get(ctx, r)
	if err != nil {
		t.Fatal(err)
	}
	b, err := c.Create(ctx, 10)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Keep(ctx, r); err != nil {
		t.Fatal(err)
	}
	st, err := c.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Store.Objects != 2 || st.Server.Clients != 1 || len(st.Clients) != 1 || st.Clients[0].Views != 1 || st.Daemon.Socket != d.path {
		t.Fatalf("status: %+v", st)
	}
	rep, err := c.Memory(ctx)
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]bool{}
	for _, row := range rep.Rows {
		kinds[row.Kind] = true
	}
	for _, k := range []string{KindLocalRef, KindPinned, KindPending, KindKept} {
		if !kinds[k] {
			t.Errorf("memory has no %q row: %+v", k, rep.Rows)
		}
	}
	if rep.Totals.Objects != 2 || rep.Totals.Bytes != 1<<20+10 || rep.Totals.Pinned != 1<<20 {
		t.Errorf("memory totals: %+v", rep.Totals)
	}
	obj.Release()
	b.Abort()
	b.Ref().Drop()
	r.Drop()
	if err := c.Unkeep(ctx, r.ID()); err != nil {
		t.Fatal(err)
	}
	if err := c.Unkeep(ctx, r.ID()); !errors.Is(err, trove.ErrUnknownObject) ||
		strings.Count(err.Error(), "no such object")+strings.Count(err.Error(), "unknown object") != 1 ||
		strings.Count(err.Error(), r.ID().String()) != 1 {
		t.Fatalf("second unkeep: %v (want trove.ErrUnknownObject, saying once that the daemon keeps no such object, naming it once)", err)
	}
	requireDrained(t, d, c)
}

// Objects spilled under pressure come back on a client's Get; when memory is
// full of pinned objects the daemon maps the spill file, and so does the client.
func TestSpilledAndFallbackObjects(t *testing.T) {
	ctx := context.Background()
	d := startDaemon(t, engine.Config{Capacity: 32 << 20, MinSpillSize: 1 << 20, SpillDirs: []string{t.TempDir()}})
	c := d.dial(t)
	const size = 12 << 20
	a, err := c.Put(ctx, pattern(size, 1))
	if err != nil {
		t.Fatal(err)
	}
	ea, err := d.st.Borrow(a.ID())
	if err != nil {
		t.Fatal(err)
	}
	if n, err := d.st.Spill(ctx, []trove.Ref{ea}); err != nil || n != 1 {
		t.Fatalf("spill: %d, %v", n, err)
	}
	ea.Drop()
	// Pin two more: no room is left to restore a into.
	var views []*trove.Object
	var refs []trove.Ref
	for i := range 2 {
		r, err := c.Put(ctx, pattern(size, byte(2+i)))
		if err != nil {
			t.Fatal(err)
		}
		v, err := c.Get(ctx, r)
		if err != nil {
			t.Fatal(err)
		}
		refs, views = append(refs, r), append(views, v)
	}
	obj, err := c.Get(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(obj.Bytes(), pattern(size, 1)) {
		t.Fatal("fallback-mapped object reads differently")
	}
	if _, shared := c.ArenaOffset(obj); shared {
		t.Fatal("a fallback-mapped object claims to be in the arena")
	}
	rep, err := c.Memory(ctx)
	if err != nil {
		t.Fatal(err)
	}
	where := ""
	for _, r := range rep.Rows {
		if r.ID == a.ID().String() {
			where = r.Where
		}
	}
	if where != "mapped from disk" {
		t.Fatalf("memory says object a is %q", where)
	}
	obj.Release()
	trove.ReleaseAll(views)
	// With room again, a spilled object is restored into memory.
	for _, r := range refs {
		r.Drop()
	}
	b, err := c.Put(ctx, pattern(size, 9))
	if err != nil {
		t.Fatal(err)
	}
	eb, _ := d.st.Borrow(b.ID())
	if _, err := d.st.Spill(ctx, []trove.Ref{eb}); err != nil {
		t.Fatal(err)
	}
	eb.Drop()
	obj, err = c.Get(ctx, b)
	if err != nil || !bytes.Equal(obj.Bytes(), pattern(size, 9)) {
		t.Fatalf("restored object: %v", err)
	}
	if _, shared := c.ArenaOffset(obj); !shared {
		t.Fatal("a restored object is not in the arena")
	}
	obj.Release()
	a.Drop()
	b.Drop()
	requireDrained(t, d, c)
	if st := d.st.Stats(); st.SpillFiles != 0 || st.SpilledObjects != 0 {
		t.Fatalf("spill files left: %d, spilled objects %d", st.SpillFiles, st.SpilledObjects)
	}
}

// A daemon that keeps every object in shared memory (inline threshold < 0):
// even an empty object is created in the arena, and read in place.
func TestEveryObjectInTheArena(t *testing.T) {
	ctx := context.Background()
	d := startDaemon(t, engine.Config{InlineThreshold: -1})
	c := d.dial(t)
	for _, size := range []int{0, 5, 4096} {
		ref, err := c.Put(ctx, pattern(size, 3))
		if err != nil {
			t.Fatalf("put %d: %v", size, err)
		}
		obj, err := c.Get(ctx, ref)
		if err != nil || !bytes.Equal(obj.Bytes(), pattern(size, 3)) {
			t.Fatalf("get %d: %v", size, err)
		}
		if _, shared := c.ArenaOffset(obj); !shared {
			t.Fatalf("%d bytes: not read from shared memory", size)
		}
		obj.Release()
		ref.Drop()
	}
	requireDrained(t, d, c)
}

// Releases reach the daemon with no request to carry them: the releaser sends
// a batch once its oldest release has waited releaseDelay.
func TestReleasesGoOnTheirOwn(t *testing.T) {
	d := startDaemon(t, engine.Config{})
	c := d.dial(t)
	ctx := context.Background()
	for round := range 3 { // the releaser sends more than its first batch
		refs := make([]trove.Ref, 10)
		for i := range refs {
			r, err := c.Put(ctx, []byte("released without a request"))
			if err != nil {
				t.Fatal(err)
			}
			refs[i] = r
		}
		obj, err := c.Get(ctx, refs[0])
		if err != nil {
			t.Fatal(err)
		}
		obj.Release()
		for _, r := range refs {
			r.Drop()
		}
		// No Flush, no request: only the releaser can tell the daemon.
		deadline := time.Now().Add(20 * time.Second)
		for {
			st, ss := d.st.Stats(), d.srv.Stats()
			if st.Objects == 0 && ss.Refs == 0 && ss.Views == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("round %d: releases never reached the daemon: objects=%d refs=%d views=%d", round, st.Objects, ss.Refs, ss.Views)
			}
			time.Sleep(time.Millisecond)
		}
		time.Sleep(5 * releaseDelay) // most likely idle again: the next round's first drop kicks it
	}
	requireDrained(t, d, c)
}

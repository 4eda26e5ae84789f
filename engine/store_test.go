package engine

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime/debug"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/trovedb/trove"
)

func TestPutGet(t *testing.T) {
	tests := []struct {
		name   string
		size   int
		inline bool
	}{
		{"empty", 0, true},
		{"one byte", 1, true},
		{"at inline threshold", DefaultInlineThreshold, true},
		{"just over threshold", DefaultInlineThreshold + 1, false},
		{"1MiB", 1 << 20, false},
		{"9MiB", 9 << 20, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStore(t, Config{})
			ctx := context.Background()
			data := pattern(tt.size, 3)
			ref, err := s.Put(ctx, data)
			if err != nil {
				t.Fatal(err)
			}
			if st := s.Stats(); (st.InlineObjects == 1) != tt.inline || st.Objects != 1 || st.ObjectBytes != int64(tt.size) {
				t.Fatalf("stats after Put: %+v; want inline=%v, 1 object of %d bytes", st, tt.inline, tt.size)
			}
			obj, err := s.Get(ctx, ref)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(obj.Bytes(), data) || obj.Size() != tt.size || obj.ID() != ref.ID() {
				t.Fatalf("Get returned %d bytes (id %s), want the %d put (id %s)", obj.Size(), obj.ID(), tt.size, ref.ID())
			}
			if tt.size > 0 { // Put copied: changing the source changes nothing
				data[0] ^= 0xff
				if obj.Bytes()[0] == data[0] {
					t.Fatal("object changed with the caller's buffer: Put did not copy")
				}
			}
			if st := s.Stats(); st.PinnedObjects != 1 || st.Views != 1 {
				t.Fatalf("a view must pin: %+v", st)
			}
			obj.Release()
			obj.Release() // a second Release is a no-op
			ref.Drop()
			requireEmpty(t, s)
		})
	}
}

func TestGetIsZeroCopy(t *testing.T) {
	s := newStore(t, Config{})
	ref, err := s.Put(context.Background(), pattern(1<<20, 1))
	if err != nil {
		t.Fatal(err)
	}
	a, _ := s.Get(context.Background(), ref)
	b, _ := s.Get(context.Background(), ref)
	if &a.Bytes()[0] != &b.Bytes()[0] {
		t.Fatal("two views of one object point at different memory: Get copied")
	}
	a.Release()
	b.Release()
	ref.Drop()
	requireEmpty(t, s)
}

func TestViewIsReadOnly(t *testing.T) {
	s := newStore(t, Config{})
	data := pattern(1<<20, 9)
	ref, err := s.Put(context.Background(), data)
	if err != nil {
		t.Fatal(err)
	}
	obj, err := s.Get(context.Background(), ref)
	if err != nil {
		t.Fatal(err)
	}
	old := debug.SetPanicOnFault(true)
	panicked := func() (p bool) {
		defer func() { p = recover() != nil }()
		obj.Bytes()[12345] = 0
		return false
	}()
	debug.SetPanicOnFault(old)
	if !panicked {
		t.Fatal("writing into a view of a 1 MiB object did not fault")
	}
	if !bytes.Equal(obj.Bytes(), data) {
		t.Fatal("object changed after a faulting write")
	}
	obj.Release()
	ref.Drop()
	requireEmpty(t, s)
}

func TestCreateIsAFuture(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newStore(t, Config{Capacity: 8 << 20})
		ctx := context.Background()
		for _, size := range []int{10, 1 << 20} {
			b, err := s.Create(ctx, size)
			if err != nil {
				t.Fatal(err)
			}
			ref := b.Ref()
			got := make(chan []byte, 2)
			for range 2 {
				go func() {
					obj, err := s.Get(ctx, ref)
					if err != nil {
						t.Error(err)
						got <- nil
						return
					}
					got <- bytes.Clone(obj.Bytes())
					obj.Release()
				}()
			}
			synctest.Wait()
			if len(got) != 0 {
				t.Fatal("Get of a pending object returned before Seal")
			}
			if st := s.Stats(); st.PendingObjects != 1 {
				t.Fatalf("PendingObjects = %d, want 1", st.PendingObjects)
			}
			copy(b.Bytes(), pattern(size, 5))
			if err := b.Seal(); err != nil {
				t.Fatal(err)
			}
			for range 2 {
				if v := <-got; !bytes.Equal(v, pattern(size, 5)) {
					t.Fatalf("waiter got %d bytes, not what was sealed", len(v))
				}
			}
			if err := b.Seal(); !errors.Is(err, trove.ErrSealed) {
				t.Fatalf("second Seal: %v, want ErrSealed", err)
			}
			if b.Bytes() != nil {
				t.Fatal("Bytes after Seal must be nil")
			}
			ref.Drop()
		}
		requireEmpty(t, s)
	})
}

func TestGetTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newStore(t, Config{})
		b, err := s.Create(context.Background(), 100)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 4*time.Second)
		defer cancel()
		start := time.Now()
		_, err = s.Get(ctx, b.Ref())
		if !errors.Is(err, trove.ErrGetTimeout) || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Get of a pending object past its deadline: %v; want ErrGetTimeout and DeadlineExceeded", err)
		}
		if waited := time.Since(start); waited != 4*time.Second {
			t.Fatalf("Get gave up after %v, want the 4s deadline", waited)
		}
		cctx, ccancel := context.WithCancel(context.Background())
		ccancel()
		if _, err = s.Get(cctx, b.Ref()); !errors.Is(err, context.Canceled) || errors.Is(err, trove.ErrGetTimeout) {
			t.Fatalf("Get with a cancelled context: %v, want context.Canceled", err)
		}
		b.Abort()
		b.Ref().Drop()
		requireEmpty(t, s)
	})
}

func TestAbortFailsWaiters(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newStore(t, Config{})
		b, err := s.Create(context.Background(), 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		errc := make(chan error, 1)
		go func() {
			_, err := s.Get(context.Background(), b.Ref())
			errc <- err
		}()
		synctest.Wait()
		b.Abort()
		if err := <-errc; !errors.Is(err, trove.ErrObjectAborted) {
			t.Fatalf("blocked Get after Abort: %v, want ErrObjectAborted", err)
		}
		if st := s.Stats(); st.Used != 0 {
			t.Fatalf("Abort kept %d arena bytes", st.Used)
		}
		if _, err := s.Get(context.Background(), b.Ref()); !errors.Is(err, trove.ErrObjectAborted) {
			t.Fatalf("Get after Abort: %v, want ErrObjectAborted", err)
		}
		b.Abort() // no-op
		if err := b.Seal(); !errors.Is(err, trove.ErrSealed) {
			t.Fatalf("Seal after Abort: %v, want ErrSealed", err)
		}
		b.Ref().Drop()
		requireEmpty(t, s)
	})
}

func TestPutFunc(t *testing.T) {
	s := newStore(t, Config{})
	ctx := context.Background()
	ref, err := s.PutFunc(ctx, 200<<10, nil, func(dst []byte) error { copy(dst, pattern(len(dst), 2)); return nil })
	if err != nil {
		t.Fatal(err)
	}
	obj, err := s.Get(ctx, ref)
	if err != nil || !bytes.Equal(obj.Bytes(), pattern(200<<10, 2)) {
		t.Fatalf("PutFunc object: %v", err)
	}
	obj.Release()
	ref.Drop()

	boom := errors.New("boom")
	if _, err := s.PutFunc(ctx, 1<<20, nil, func([]byte) error { return boom }); !errors.Is(err, boom) {
		t.Fatalf("PutFunc with failing fill: %v, want the fill's error", err)
	}
	func() {
		defer func() {
			if recover() == nil {
				t.Fatal("a panic in fill did not reach the caller")
			}
		}()
		s.PutFunc(ctx, 1<<20, nil, func([]byte) error { panic("fill") })
	}()
	requireEmpty(t, s)
}

func TestWait(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newStore(t, Config{})
		ctx := context.Background()
		const n = 10
		builders := make([]*Builder, n)
		refs := make([]trove.Ref, n)
		for i := range builders {
			b, err := s.Create(ctx, 8)
			if err != nil {
				t.Fatal(err)
			}
			builders[i], refs[i] = b, b.Ref()
		}
		// Seal in a scrambled order, one per simulated second.
		order := []int{7, 2, 9, 0, 4, 1, 8, 3, 6, 5}
		go func() {
			for _, i := range order {
				time.Sleep(time.Second)
				builders[i].Seal()
			}
		}()
		ready, pending, err := s.Wait(ctx, refs, 3)
		if err != nil {
			t.Fatal(err)
		}
		if ids(ready) != ids([]trove.Ref{refs[2], refs[7], refs[9]}) || len(pending) != 7 {
			t.Fatalf("Wait(3): ready %v pending %d; want refs 2, 7, 9 in input order", ids(ready), len(pending))
		}
		if ids(pending) != ids([]trove.Ref{refs[0], refs[1], refs[3], refs[4], refs[5], refs[6], refs[8]}) {
			t.Fatalf("pending not in input order: %v", ids(pending))
		}

		// A deadline before everything is ready: what is ready, and the error.
		dctx, cancel := context.WithTimeout(ctx, 2500*time.Millisecond)
		ready, pending, err = s.Wait(dctx, refs, n)
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) || len(ready) != 5 || len(pending) != 5 {
			t.Fatalf("Wait past deadline: %d ready, %d pending, %v; want 5, 5, DeadlineExceeded", len(ready), len(pending), err)
		}

		ready, pending, err = s.Wait(ctx, refs, n)
		if err != nil || len(ready) != n || len(pending) != 0 || ids(ready) != ids(refs) {
			t.Fatalf("Wait(all): %d ready, %d pending, %v", len(ready), len(pending), err)
		}
		// More than is ready is at most numReturns; zero returns at once.
		if ready, _, _ := s.Wait(ctx, refs, 4); len(ready) != 4 {
			t.Fatalf("Wait(4) of 10 ready returned %d", len(ready))
		}
		if _, _, err := s.Wait(ctx, refs, n+1); err == nil {
			t.Fatal("Wait with numReturns > len(refs) succeeded")
		}
		for _, r := range refs {
			r.Drop()
		}
		if _, _, err := s.Wait(ctx, refs, 1); !errors.Is(err, trove.ErrInvalidRef) {
			t.Fatalf("Wait on dropped refs: %v, want ErrInvalidRef", err)
		}
		requireEmpty(t, s)
	})
}

func TestWaitStopsAtNumReturns(t *testing.T) {
	s := newStore(t, Config{})
	ctx := context.Background()
	a, _ := s.Put(ctx, []byte("a"))
	b, _ := s.Put(ctx, []byte("b"))
	c, _ := s.Put(ctx, []byte("c"))
	c.Drop()
	refs := []trove.Ref{a, b, c}
	ready, pending, err := s.Wait(ctx, refs, 1)
	if err != nil || ids(ready) != ids(refs[:1]) || ids(pending) != ids(refs[1:]) {
		t.Fatalf("Wait(1): ready %v pending %v err %v; want a, then b and the unexamined dropped c", ids(ready), ids(pending), err)
	}
	if cap(pending) != len(pending) {
		t.Fatalf("pending has room to append into the caller's slice: len %d cap %d", len(pending), cap(pending))
	}
	if _, _, err := s.Wait(ctx, refs, 3); !errors.Is(err, trove.ErrInvalidRef) {
		t.Fatalf("Wait(3) reaching a dropped ref: %v, want ErrInvalidRef", err)
	}
	a.Drop()
	b.Drop()
	requireEmpty(t, s)
}

func ids(refs []trove.Ref) string {
	s := ""
	for _, r := range refs {
		s += fmt.Sprint(r.ID().Seq(), " ")
	}
	return s
}

func TestRefCounting(t *testing.T) {
	s := newStore(t, Config{})
	ctx := context.Background()
	ref, err := s.Put(ctx, pattern(1<<20, 4))
	if err != nil {
		t.Fatal(err)
	}
	// A borrowed handle keeps the object after the first is dropped.
	other, err := s.Borrow(ref.ID())
	if err != nil {
		t.Fatal(err)
	}
	ref.Drop()
	ref.Drop() // idempotent
	if _, err := s.Get(ctx, ref); !errors.Is(err, trove.ErrInvalidRef) {
		t.Fatalf("Get with a dropped ref: %v, want ErrInvalidRef", err)
	}
	obj, err := s.Get(ctx, other)
	if err != nil {
		t.Fatal(err)
	}
	// A view keeps the object after the last handle is dropped.
	other.Drop()
	if st := s.Stats(); st.Objects != 1 {
		t.Fatal("object freed while a view pinned it")
	}
	if _, err := s.Borrow(obj.ID()); !errors.Is(err, trove.ErrObjectFreed) {
		t.Fatalf("Borrow of an object with no refs: %v, want ErrObjectFreed", err)
	}
	if !bytes.Equal(obj.Bytes(), pattern(1<<20, 4)) {
		t.Fatal("pinned object's bytes changed")
	}
	obj.Release()
	if _, err := s.Borrow(obj.ID()); !errors.Is(err, trove.ErrUnknownObject) {
		t.Fatalf("Borrow of a freed object: %v, want ErrUnknownObject", err)
	}
	requireEmpty(t, s)
}

func TestGCReleasesRefsButNeverPins(t *testing.T) {
	s := newStore(t, Config{})
	ctx := context.Background()
	func() {
		for range 10 {
			if _, err := s.Put(ctx, pattern(200<<10, 1)); err != nil { // refs discarded at once
				t.Fatal(err)
			}
		}
	}()
	if !collectUntil(func() bool { return s.Stats().Objects == 0 }) {
		t.Fatalf("unreachable refs not released by the GC: %d objects left", s.Stats().Objects)
	}
	requireEmpty(t, s)

	ref, err := s.Put(ctx, pattern(200<<10, 1))
	if err != nil {
		t.Fatal(err)
	}
	obj, err := s.Get(ctx, ref)
	if err != nil {
		t.Fatal(err)
	}
	ref = trove.Ref{} // the only handle is now garbage, the view is not
	collectUntil(func() bool { return false })
	if st := s.Stats(); st.Objects != 1 || st.Views != 1 {
		t.Fatalf("GC freed a pinned object: %+v", st)
	}
	if !bytes.Equal(obj.Bytes(), pattern(200<<10, 1)) {
		t.Fatal("pinned object's bytes changed")
	}
	obj.Release()
	requireEmpty(t, s)
}

func TestAbandonedBuilderIsAborted(t *testing.T) {
	s := newStore(t, Config{})
	func() {
		if _, err := s.Create(context.Background(), 1<<20); err != nil {
			t.Fatal(err)
		}
	}()
	if !collectUntil(func() bool { return s.Stats().Objects == 0 }) {
		t.Fatalf("an unreachable builder was not aborted: %+v", s.Stats())
	}
	requireEmpty(t, s)
}

func TestNestedRefs(t *testing.T) {
	s := newStore(t, Config{})
	ctx := context.Background()
	inner, err := s.Put(ctx, pattern(300<<10, 8))
	if err != nil {
		t.Fatal(err)
	}
	innerID := inner.ID()
	outer, err := s.PutFunc(ctx, 16, []trove.Ref{inner}, func(dst []byte) error { copy(dst, innerID[:]); return nil })
	if err != nil {
		t.Fatal(err)
	}
	inner.Drop()
	// The outer object keeps the inner alive: a reader of the outer value can
	// borrow the ref it holds.
	again, err := s.Borrow(innerID)
	if err != nil {
		t.Fatalf("inner object freed while the outer one holds it: %v", err)
	}
	obj, err := s.Get(ctx, again)
	if err != nil || !bytes.Equal(obj.Bytes(), pattern(300<<10, 8)) {
		t.Fatalf("inner object: %v", err)
	}
	obj.Release()
	again.Drop()
	if s.Stats().Objects != 2 {
		t.Fatal("inner object freed while the outer one holds it")
	}
	outer.Drop() // frees the outer, then the inner
	requireEmpty(t, s)

	// A deep chain is freed without recursion.
	prev, err := s.Put(ctx, []byte("leaf"))
	if err != nil {
		t.Fatal(err)
	}
	for range 10000 {
		next, err := s.PutFunc(ctx, 1, []trove.Ref{prev}, func([]byte) error { return nil })
		if err != nil {
			t.Fatal(err)
		}
		prev.Drop()
		prev = next
	}
	prev.Drop()
	requireEmpty(t, s)

	if _, err := s.PutFunc(ctx, 1, []trove.Ref{prev}, func([]byte) error { return nil }); !errors.Is(err, trove.ErrInvalidRef) {
		t.Fatalf("containing a dropped ref: %v, want ErrInvalidRef", err)
	}
	requireEmpty(t, s)
}

func TestStoreFull(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newStore(t, Config{Capacity: 8 << 20, DisableSpilling: true})
		ctx := context.Background()
		a, err := s.Put(ctx, pattern(3<<20, 1))
		if err != nil {
			t.Fatal(err)
		}
		b, err := s.Put(ctx, pattern(3<<20, 2))
		if err != nil {
			t.Fatal(err)
		}
		view, err := s.Get(ctx, a)
		if err != nil {
			t.Fatal(err)
		}
		data := pattern(3<<20, 3) // made before the deadline starts
		tctx, cancel := context.WithTimeout(ctx, time.Second)
		_, err = s.Put(tctx, data)
		cancel()
		var full *trove.StoreFullError
		if !errors.Is(err, trove.ErrStoreFull) || !errors.Is(err, context.DeadlineExceeded) || !errors.As(err, &full) {
			t.Fatalf("Put into a full store: %v; want ErrStoreFull with figures", err)
		}
		if full.Capacity != 8<<20 || full.Requested != 3<<20 || full.Used != 6<<20 || full.PinnedObjects != 1 || full.Pinned != 3<<20 {
			t.Fatalf("StoreFullError figures: %+v", full)
		}
		// Nothing stored was touched.
		if !bytes.Equal(view.Bytes(), pattern(3<<20, 1)) {
			t.Fatal("a stored object changed after a failed Put")
		}

		// A creator waiting for room gets it when a ref is dropped.
		done := make(chan error)
		var c trove.Ref
		go func() {
			var err error
			c, err = s.Put(ctx, pattern(3<<20, 3))
			done <- err
		}()
		synctest.Wait()
		select {
		case err := <-done:
			t.Fatalf("Put into a full store returned before room was made: %v", err)
		default:
		}
		b.Drop()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if s.Stats().FullWaits != 2 {
			t.Fatalf("FullWaits = %d, want 2", s.Stats().FullWaits)
		}
		if _, err := s.Put(ctx, make([]byte, 9<<20)); !errors.Is(err, trove.ErrObjectTooLarge) {
			t.Fatalf("Put larger than capacity: %v, want ErrObjectTooLarge", err)
		}
		view.Release()
		a.Drop()
		c.Drop()
		requireEmpty(t, s)
	})
}

func TestClose(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, err := Open(Config{Capacity: 8 << 20})
		if err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		b, _ := s.Create(ctx, 1<<20) // in the arena: must stay mapped while open
		ref, _ := s.Put(ctx, pattern(1<<20, 7))
		view, _ := s.Get(ctx, ref)
		errc := make(chan error)
		go func() {
			_, err := s.Get(ctx, b.Ref())
			errc <- err
		}()
		synctest.Wait()
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if err := <-errc; !errors.Is(err, trove.ErrClosed) {
			t.Fatalf("Get blocked at Close: %v, want ErrClosed", err)
		}
		if _, err := s.Put(ctx, []byte("x")); !errors.Is(err, trove.ErrClosed) {
			t.Fatalf("Put after Close: %v, want ErrClosed", err)
		}
		// An unreleased view stays readable, an open builder writable, until
		// released and sealed.
		if !bytes.Equal(view.Bytes(), pattern(1<<20, 7)) {
			t.Fatal("view unreadable after Close")
		}
		copy(b.Bytes(), "written after Close")
		if _, err := s.Get(ctx, ref); !errors.Is(err, trove.ErrClosed) {
			t.Fatalf("Get after Close: %v, want ErrClosed", err)
		}
		view.Release()
		ref.Drop()
		b.Abort()
		b.Ref().Drop()
		if st := s.Stats(); st.Views != 0 || st.Objects != 0 {
			t.Fatalf("after Close and releases: %+v", st)
		}
	})
}

func TestBadRefs(t *testing.T) {
	s := newStore(t, Config{})
	other := newStore(t, Config{})
	ctx := context.Background()
	foreign, err := other.Put(ctx, []byte("x"))
	if err != nil {
		t.Fatal(err)
	}
	for name, r := range map[string]trove.Ref{"zero": {}, "other store": foreign} {
		if _, err := s.Get(ctx, r); !errors.Is(err, trove.ErrInvalidRef) {
			t.Errorf("Get(%s ref): %v, want ErrInvalidRef", name, err)
		}
	}
	if _, err := s.Borrow(trove.NewObjectID(s.Node(), 999)); !errors.Is(err, trove.ErrUnknownObject) {
		t.Errorf("Borrow of an unknown ID: %v", err)
	}
	if _, err := s.Create(ctx, -1); err == nil {
		t.Error("Create(-1) succeeded")
	}
	foreign.Drop()
	requireEmpty(t, s)
	requireEmpty(t, other)
}

// TestConcurrent runs producers, readers holding views and droppers at once; run
// it under -race.
func TestConcurrent(t *testing.T) {
	s := newStore(t, Config{Capacity: 32 << 20})
	ctx := context.Background()
	const workers, ops = 4, 300
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 1))
			var live []trove.Ref
			var views []*trove.Object
			for i := range ops {
				switch rng.IntN(4) {
				case 0, 1:
					if len(live) >= 8 { // bound the working set: 4 × (8 refs + 4 views) × 512 KiB < capacity
						live[0].Drop()
						live = live[1:]
					}
					size := rng.IntN(512 << 10)
					ref, err := s.Put(ctx, pattern(size, byte(i)))
					if err != nil {
						t.Error(err)
						return
					}
					live = append(live, ref)
				case 2:
					if len(views) >= 4 {
						views[0].Release()
						views = views[1:]
					}
					if len(live) > 0 {
						ref := live[rng.IntN(len(live))]
						obj, err := s.Get(ctx, ref)
						if err != nil {
							t.Error(err)
							return
						}
						views = append(views, obj)
					}
				case 3:
					if len(views) > 0 {
						views[0].Release()
						views = views[1:]
					}
					if len(live) > 4 {
						j := rng.IntN(len(live))
						live[j].Drop()
						live = append(live[:j], live[j+1:]...)
					}
				}
			}
			trove.ReleaseAll(views)
			for _, r := range live {
				r.Drop()
			}
		})
	}
	wg.Wait()
	requireEmpty(t, s)
}

// TestSealReleasesBeforeWaking: a waiter woken by Seal that drops the last ref
// finds the object freed at once: the builder's own count is given back before
// the waiters wake.
func TestSealReleasesBeforeWaking(t *testing.T) {
	s := newStore(t, Config{})
	ctx := context.Background()
	for range 50 {
		b, err := s.Create(ctx, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		ref := b.Ref()
		go b.Seal()
		if _, _, err := s.Wait(ctx, []trove.Ref{ref}, 1); err != nil {
			t.Fatal(err)
		}
		ref.Drop()
		if n := s.Stats().Objects; n != 0 {
			t.Fatalf("%d objects left right after the last ref of a sealed object was dropped", n)
		}
	}
	requireEmpty(t, s)
}

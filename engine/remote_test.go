package engine

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/trovedb/trove"
)

// fakeCluster is a test double of the cluster layer: engine stores by node,
// each reaching the others' objects through a fakeRemote that reads the owner's
// store directly (PinByID) where the real cluster would pull over the network.
type fakeCluster struct {
	mu     sync.Mutex
	stores map[trove.NodeID]*Store
}

func newFakeCluster() *fakeCluster {
	return &fakeCluster{stores: make(map[trove.NodeID]*Store)}
}

func (c *fakeCluster) owner(id trove.ObjectID) *Store {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stores[id.Node()]
}

// open opens a store for node n, reaching the others through a fakeRemote.
func (c *fakeCluster) open(t *testing.T, n byte, cfg Config) (*Store, *fakeRemote) {
	t.Helper()
	r := &fakeRemote{c: c, held: make(map[trove.ObjectID][]trove.Ref)}
	cfg.Node = trove.NodeID{n}
	cfg.Remote = r
	s := newStore(t, cfg)
	r.st = s
	c.mu.Lock()
	c.stores[cfg.Node] = s
	c.mu.Unlock()
	return s, r
}

// fakeRemote is one node's Remote. Counters and the event log are guarded by mu.
type fakeRemote struct {
	c  *fakeCluster
	st *Store // the store it serves

	// hook, if set, runs at the start of every Fetch: it may block, or fail it.
	hook func(ctx context.Context, id trove.ObjectID) error
	// abortAfterCreate makes Fetch create the copy, then abort it and fail.
	abortAfterCreate bool
	// borrowHook, if set, runs at the start of every Borrowed.
	borrowHook func(id trove.ObjectID)

	mu       sync.Mutex
	fetches  int
	borrowed int
	released int
	events   []string                       // "borrowed <id>", "released <id>", in order
	held     map[trove.ObjectID][]trove.Ref // the refs the owner's store holds for this node, one per Borrowed
	badFree  []string                       // Released calls that came before the copy was freed
}

func (r *fakeRemote) Fetch(ctx context.Context, id trove.ObjectID, st *Store) error {
	r.mu.Lock()
	r.fetches++
	hook, abort := r.hook, r.abortAfterCreate
	r.mu.Unlock()
	if hook != nil {
		if err := hook(ctx, id); err != nil {
			return err
		}
	}
	owner := r.c.owner(id)
	if owner == nil {
		return fmt.Errorf("node %s: %w", id.Node(), trove.ErrOwnerDied)
	}
	src, err := owner.PinByID(ctx, id)
	if err != nil {
		return fmt.Errorf("%w: %w", trove.ErrObjectLost, err)
	}
	defer src.Release()
	b, err := st.CreateCopy(ctx, id, src.Size())
	if err != nil {
		return err
	}
	defer b.Ref().Drop() // the builder's handle: the store's refs hold the copy
	copy(b.Bytes(), src.Bytes())
	if abort {
		b.Abort()
		return fmt.Errorf("pull of %s broke off: %w", id, trove.ErrObjectLost)
	}
	return b.Seal()
}

// Borrowed registers this node with the owner: the owner's store keeps one ref
// for it, as the cluster does for each borrowing node.
func (r *fakeRemote) Borrowed(_ context.Context, id trove.ObjectID) error {
	r.mu.Lock()
	hook := r.borrowHook
	r.mu.Unlock()
	if hook != nil {
		hook(id)
	}
	owner := r.c.owner(id)
	if owner == nil {
		return fmt.Errorf("node %s: %w", id.Node(), trove.ErrOwnerDied)
	}
	ref, err := owner.Borrow(id)
	if err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.held[id] = append(r.held[id], ref)
	r.borrowed++
	r.events = append(r.events, "borrowed "+id.String())
	return nil
}

func (r *fakeRemote) Released(id trove.ObjectID) {
	// The freed entry is out of the table by now (a live one may be there: a
	// Borrow racing the last drop makes a new entry before the old one's
	// Released), and so its memory is given back.
	if e := r.st.lookup(id); e != nil && wordState(e.rc.Load()) == stateFreed {
		r.mu.Lock()
		r.badFree = append(r.badFree, id.String())
		r.mu.Unlock()
	}
	r.mu.Lock()
	refs := r.held[id]
	if len(refs) == 0 {
		r.mu.Unlock()
		panic("test: Released(" + id.String() + ") without Borrowed")
	}
	ref := refs[len(refs)-1]
	if len(refs) == 1 {
		delete(r.held, id)
	} else {
		r.held[id] = refs[:len(refs)-1]
	}
	r.released++
	r.events = append(r.events, "released "+id.String())
	r.mu.Unlock()
	ref.Drop() // the owner may free it now
}

func (r *fakeRemote) counts() (fetches, borrowed, released int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.fetches, r.borrowed, r.released
}

func (r *fakeRemote) setHook(h func(ctx context.Context, id trove.ObjectID) error) {
	r.mu.Lock()
	r.hook = h
	r.mu.Unlock()
}

// requireRemoteEmpty is requireEmpty for a store with a Remote: it first waits
// for fetch goroutines to end (a cancelled one may still hold its ref for a
// moment), and checks that no Released came early and none is owed.
func requireRemoteEmpty(t *testing.T, s *Store, r *fakeRemote) {
	t.Helper()
	waitFetchesDone(t, s)
	requireEmpty(t, s)
	if st := s.Stats(); st.RemoteObjects != 0 {
		t.Fatalf("%d remote objects left", st.RemoteObjects)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.badFree) != 0 {
		t.Fatalf("Released before the copy was freed: %v", r.badFree)
	}
	if len(r.held) != 0 || r.borrowed != r.released {
		t.Fatalf("%d Borrowed, %d Released, %d registrations outstanding", r.borrowed, r.released, len(r.held))
	}
}

// waitFetchesDone waits (at most 10 s) until no fetch goroutine runs.
func waitFetchesDone(t *testing.T, s *Store) {
	t.Helper()
	for i := 0; s.rem.running.Load() != 0; i++ {
		if i == 10000 {
			t.Fatalf("%d fetches still running after 10 s", s.rem.running.Load())
		}
		time.Sleep(time.Millisecond)
	}
}

// waitFor polls cond (at most 10 s): for states another goroutine reaches.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for i := 0; !cond(); i++ {
		if i == 10000 {
			t.Fatalf("after 10 s: still not %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// fetchWaiters returns how many Gets and Waits wait on id's fetch under way.
func fetchWaiters(s *Store, id trove.ObjectID) int {
	e := s.lookup(id)
	if e == nil {
		return 0
	}
	sh := s.shardFor(e)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if e.more == nil || e.more.foreign == nil || e.more.foreign.fetch == nil {
		return 0
	}
	return e.more.foreign.fetch.waiters
}

// gate is a Fetch hook that blocks every fetch until opened (or its ctx ends),
// reporting each start on started.
type gate struct {
	open      chan struct{}
	started   chan trove.ObjectID
	cancelled chan trove.ObjectID // a fetch whose ctx ended while it waited
	fail      error               // returned once open, if set
}

func newGate() *gate {
	return &gate{open: make(chan struct{}), started: make(chan trove.ObjectID, 64), cancelled: make(chan trove.ObjectID, 64)}
}

func (g *gate) hook(ctx context.Context, id trove.ObjectID) error {
	g.started <- id
	select {
	case <-g.open:
		return g.fail
	case <-ctx.Done():
		g.cancelled <- id
		return ctx.Err()
	}
}

func recvID(t *testing.T, ch chan trove.ObjectID, what string) trove.ObjectID {
	t.Helper()
	select {
	case id := <-ch:
		return id
	case <-time.After(10 * time.Second):
		t.Fatalf("no %s after 10 s", what)
		return trove.ObjectID{}
	}
}

func TestRemoteBorrowRegistersOncePerFirstHandle(t *testing.T) {
	c := newFakeCluster()
	b, _ := c.open(t, 2, Config{})
	a, ra := c.open(t, 1, Config{})
	x, h1 := putBorrowed(t, b, a, []byte("owned by B"))
	h2, err := a.Borrow(x.ID())
	if err != nil {
		t.Fatal(err)
	}
	batch, err := a.BorrowAll([]trove.ObjectID{x.ID(), x.ID()})
	if err != nil {
		t.Fatal(err)
	}
	if _, borrowed, _ := ra.counts(); borrowed != 1 {
		t.Fatalf("Borrowed called %d times for 4 handles, want once (for the first)", borrowed)
	}
	// Honest figures: an entry with 4 refs, no bytes, no memory.
	st := a.Stats()
	if st.Objects != 1 || st.RemoteObjects != 1 || st.ObjectBytes != 0 || st.Used != 0 || st.InMemoryBytes != 0 {
		t.Fatalf("stats of a borrowed, unfetched foreign object: %+v", st)
	}
	infos := slices.Collect(a.Objects())
	if len(infos) != 1 || infos[0].State != "remote" || infos[0].Where != "-" || infos[0].Refs != 4 || !infos[0].Secondary {
		t.Fatalf("listing: %+v", infos)
	}
	if err := a.Check(); err != nil {
		t.Fatal(err)
	}
	if ready, err := a.Ready(h1); err != nil || ready {
		t.Fatalf("Ready of an unfetched foreign object: %v, %v; want false", ready, err)
	}
	// The owner keeps one ref for node A.
	if infos := slices.Collect(b.Objects()); len(infos) != 1 || infos[0].Refs != 2 {
		t.Fatalf("owner's listing: %+v, want 2 refs (its own and node A's)", infos)
	}
	h1.Drop()
	batch[0].Drop()
	batch[1].Drop()
	if _, _, released := ra.counts(); released != 0 {
		t.Fatal("Released while a handle is left")
	}
	h2.Drop()
	if _, _, released := ra.counts(); released != 1 {
		t.Fatalf("Released called %d times after the last handle, want 1", released)
	}
	// A new first handle registers again.
	h3, err := a.Borrow(x.ID())
	if err != nil {
		t.Fatal(err)
	}
	if _, borrowed, _ := ra.counts(); borrowed != 2 {
		t.Fatalf("Borrowed called %d times, want 2", borrowed)
	}
	h3.Drop()
	x.Drop()
	requireRemoteEmpty(t, a, ra)
	requireEmpty(t, b)
}

// Concurrent first Borrows of one foreign ID make one Borrowed call, and none of
// them returns before it has: the registration precedes every handle.
func TestRemoteConcurrentBorrowsWaitForRegistration(t *testing.T) {
	c := newFakeCluster()
	b, _ := c.open(t, 2, Config{})
	a, ra := c.open(t, 1, Config{})
	x, err := b.Put(context.Background(), []byte("x"))
	if err != nil {
		t.Fatal(err)
	}
	entered, release := make(chan struct{}, 8), make(chan struct{})
	ra.mu.Lock()
	ra.borrowHook = func(trove.ObjectID) { entered <- struct{}{}; <-release }
	ra.mu.Unlock()
	const n = 4
	refs := make(chan trove.Ref, n)
	for range n {
		go func() {
			r, err := a.Borrow(x.ID())
			if err != nil {
				t.Error(err)
			}
			refs <- r
		}()
	}
	<-entered
	waitFor(t, "4 handles counted", func() bool {
		e := a.lookup(x.ID())
		return e != nil && wordRefs(e.rc.Load()) == n
	})
	select {
	case <-refs:
		t.Fatal("a Borrow returned before Borrowed did")
	default:
	}
	close(release)
	for range n {
		(<-refs).Drop()
	}
	if _, borrowed, released := ra.counts(); borrowed != 1 || released != 1 {
		t.Fatalf("%d Borrowed, %d Released for %d concurrent first Borrows", borrowed, released, n)
	}
	x.Drop()
	requireRemoteEmpty(t, a, ra)
	requireEmpty(t, b)
}

// Borrows racing the drop of the last handle (the entry being freed is replaced
// by a new one) never fail, and every Borrowed is matched by one Released.
func TestRemoteBorrowRacingLastDrop(t *testing.T) {
	c := newFakeCluster()
	b, _ := c.open(t, 2, Config{})
	a, ra := c.open(t, 1, Config{})
	x, err := b.Put(context.Background(), []byte("x"))
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 200 {
				r, err := a.Borrow(x.ID())
				if err != nil {
					t.Error(err)
					return
				}
				if rs, err := a.BorrowAll([]trove.ObjectID{x.ID()}); err != nil {
					t.Error(err)
				} else {
					rs[0].Drop()
				}
				r.Drop()
			}
		})
	}
	wg.Wait()
	x.Drop()
	requireRemoteEmpty(t, a, ra)
	requireEmpty(t, b)
}

// A Borrowed that fails fails the Borrow and leaves nothing behind; an ID of
// this node's own that the store does not hold is unknown, as without a Remote.
func TestRemoteBorrowFailures(t *testing.T) {
	c := newFakeCluster()
	a, ra := c.open(t, 1, Config{})
	gone := trove.NewObjectID(trove.NodeID{9}, 1) // node 9 is not in the cluster
	if _, err := a.Borrow(gone); !errors.Is(err, trove.ErrOwnerDied) {
		t.Fatalf("Borrow of an ID whose owner died: %v, want trove.ErrOwnerDied", err)
	}
	ids := make([]trove.ObjectID, 2*minGroupedBorrow) // the grouped path too
	for _, n := range []int{3, len(ids)} {
		for i := range ids[:n] {
			ids[i] = trove.NewObjectID(trove.NodeID{9}, uint64(i+1))
		}
		if _, err := a.BorrowAll(ids[:n]); !errors.Is(err, trove.ErrOwnerDied) {
			t.Fatalf("BorrowAll of %d IDs whose owner died: %v", n, err)
		}
	}
	if _, err := a.Borrow(trove.NewObjectID(a.Node(), 77)); !errors.Is(err, trove.ErrUnknownObject) {
		t.Fatalf("Borrow of an unknown ID of this node: %v", err)
	}
	if _, borrowed, released := ra.counts(); borrowed != 0 || released != 0 {
		t.Fatalf("%d Borrowed, %d Released for failed borrows", borrowed, released)
	}
	requireRemoteEmpty(t, a, ra)

	// Without a Remote a foreign ID is unknown, as it always was.
	s := newStore(t, Config{})
	if _, err := s.Borrow(gone); !errors.Is(err, trove.ErrUnknownObject) {
		t.Fatalf("Borrow of a foreign ID without a Remote: %v", err)
	}
	if _, err := s.BorrowAll([]trove.ObjectID{gone}); !errors.Is(err, trove.ErrUnknownObject) {
		t.Fatalf("BorrowAll of a foreign ID without a Remote: %v", err)
	}
	requireEmpty(t, s)
}

// N concurrent Gets of one foreign object share one Fetch; a Get of the sealed
// copy fetches nothing; the last handle's drop calls Released once, after the
// copy's memory is freed.
func TestRemoteConcurrentGetsShareOneFetch(t *testing.T) {
	c := newFakeCluster()
	b, _ := c.open(t, 2, Config{})
	a, ra := c.open(t, 1, Config{})
	ctx := context.Background()
	data := pattern(1<<20, 5)
	x, ref := putBorrowed(t, b, a, data)
	g := newGate()
	ra.setHook(g.hook)
	const n = 8
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			v, err := a.Get(ctx, ref)
			if err == nil {
				if !bytes.Equal(v.Bytes(), data) {
					err = errors.New("wrong bytes")
				}
				v.Release()
			}
			errs[i] = err
		})
	}
	recvID(t, g.started, "fetch")
	waitFor(t, "8 Gets waiting on the fetch", func() bool { return fetchWaiters(a, x.ID()) == n })
	close(g.open)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("Get %d: %v", i, err)
		}
	}
	v, err := a.Get(ctx, ref) // the copy is here now
	if err != nil {
		t.Fatal(err)
	}
	v.Release()
	if fetches, _, _ := ra.counts(); fetches != 1 || a.Stats().Fetches != 1 {
		t.Fatalf("%d fetches (stats: %d) for %d concurrent Gets and one more, want 1", fetches, a.Stats().Fetches, n)
	}
	if st := a.Stats(); st.RemoteObjects != 0 || st.ObjectBytes != 1<<20 || st.Used < 1<<20 {
		t.Fatalf("stats with the fetched copy: %+v", st)
	}
	ref.Drop()
	if _, _, released := ra.counts(); released != 1 {
		t.Fatalf("Released %d times", released)
	}
	x.Drop()
	requireRemoteEmpty(t, a, ra)
	requireEmpty(t, b)
}

// A Get honours its own context while a Fetch hangs; the Fetch is cancelled once
// every waiter has gone, not before; a later Get fetches again.
func TestRemoteGetHonoursContextWhileFetchHangs(t *testing.T) {
	c := newFakeCluster()
	b, _ := c.open(t, 2, Config{})
	a, ra := c.open(t, 1, Config{})
	ctx := context.Background()
	x, ref := putBorrowed(t, b, a, []byte("slow"))
	g := newGate()
	ra.setHook(g.hook)

	// The first Get waits until cancelled; the second has a deadline.
	c1, cancel1 := context.WithCancel(ctx)
	done1, done2 := make(chan error, 1), make(chan error, 1)
	go func() { _, err := a.Get(c1, ref); done1 <- err }()
	recvID(t, g.started, "fetch")
	waitFor(t, "a Get waiting", func() bool { return fetchWaiters(a, x.ID()) == 1 })
	c2, cancel2 := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel2()
	go func() { _, err := a.Get(c2, ref); done2 <- err }()
	if err := <-done2; !errors.Is(err, trove.ErrGetTimeout) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Get past its deadline while the fetch hangs: %v, want ErrGetTimeout", err)
	}
	if n := fetchWaiters(a, x.ID()); n != 1 {
		t.Fatalf("%d waiters after one left, want 1", n)
	}
	select {
	case <-g.cancelled:
		t.Fatal("the fetch was cancelled while a Get still waited on it")
	default:
	}
	cancel1() // the last waiter goes: the fetch is cancelled
	if err := <-done1; !errors.Is(err, context.Canceled) {
		t.Fatalf("Get whose context was cancelled: %v", err)
	}
	if id := recvID(t, g.cancelled, "cancellation of the fetch"); id != x.ID() {
		t.Fatalf("cancelled fetch of %s", id)
	}
	waitFetchesDone(t, a)
	if st := a.Stats(); st.RemoteObjects != 1 || st.Used != 0 {
		t.Fatalf("after a cancelled fetch: %+v", st)
	}

	close(g.open) // the owner answers now
	v, err := a.Get(ctx, ref)
	if err != nil || string(v.Bytes()) != "slow" {
		t.Fatalf("Get after the cancelled fetch: %v", err)
	}
	v.Release()
	if fetches, _, _ := ra.counts(); fetches != 2 {
		t.Fatalf("%d fetches, want 2 (the cancelled one and the one that worked)", fetches)
	}
	ref.Drop()
	x.Drop()
	requireRemoteEmpty(t, a, ra)
	requireEmpty(t, b)
}

// A Fetch's error reaches every waiter with errors.Is intact, through Get and
// GetAll; a copy aborted by a failed pull goes back to remote; a later Get
// tries again and succeeds.
func TestRemoteFetchErrorReachesAllWaiters(t *testing.T) {
	c := newFakeCluster()
	b, _ := c.open(t, 2, Config{})
	a, ra := c.open(t, 1, Config{})
	ctx := context.Background()
	data := pattern(300<<10, 1)
	x, ref := putBorrowed(t, b, a, data)
	g := newGate()
	g.fail = fmt.Errorf("owner left: %w", trove.ErrOwnerDied)
	ra.setHook(g.hook)
	const n = 4
	errs := make(chan error, n)
	for i := range n {
		go func() {
			if i%2 == 0 {
				_, err := a.Get(ctx, ref)
				errs <- err
			} else {
				_, err := a.GetAll(ctx, []trove.Ref{ref})
				errs <- err
			}
		}()
	}
	recvID(t, g.started, "fetch")
	// A GetAll waits twice: its prefetch of every ref, and its Get of this one.
	waitFor(t, "4 Gets and GetAlls waiting", func() bool { return fetchWaiters(a, x.ID()) == n+n/2 })
	close(g.open)
	for range n {
		if err := <-errs; !errors.Is(err, trove.ErrOwnerDied) {
			t.Fatalf("waiter of a failed fetch: %v, want trove.ErrOwnerDied", err)
		}
	}
	if fetches, _, _ := ra.counts(); fetches != 1 {
		t.Fatalf("%d fetches for %d waiters", fetches, n)
	}

	// A pull that breaks off after CreateCopy: the copy is aborted, the
	// object goes back to remote, holding no bytes.
	ra.mu.Lock()
	ra.hook, ra.abortAfterCreate = nil, true
	ra.mu.Unlock()
	if _, err := a.Get(ctx, ref); !errors.Is(err, trove.ErrObjectLost) {
		t.Fatalf("Get when the pull breaks off: %v, want trove.ErrObjectLost", err)
	}
	waitFetchesDone(t, a)
	infos := slices.Collect(a.Objects())
	if st := a.Stats(); len(infos) != 1 || infos[0].State != "remote" || st.Used != 0 || st.ObjectBytes != 0 || st.RemoteObjects != 1 {
		t.Fatalf("after an aborted pull: %+v, %+v", infos, st)
	}
	ra.mu.Lock()
	ra.abortAfterCreate = false
	ra.mu.Unlock()
	v, err := a.Get(ctx, ref)
	if err != nil || !bytes.Equal(v.Bytes(), data) {
		t.Fatalf("Get after failed fetches: %v", err)
	}
	v.Release()
	ref.Drop()
	x.Drop()
	requireRemoteEmpty(t, a, ra)
	requireEmpty(t, b)
}

// An evicted copy is fetched again by the next Get; EvictCopy drops an unpinned
// copy at once, leaves a pinned one and never touches a primary.
func TestRemoteEvictedCopyFetchedAgain(t *testing.T) {
	c := newFakeCluster()
	b, _ := c.open(t, 2, Config{})
	a, ra := c.open(t, 1, Config{Capacity: 8 << 20, DisableSpilling: true})
	ctx := context.Background()
	data := pattern(1<<20, 3)
	x, ref := putBorrowed(t, b, a, data)
	v, err := a.Get(ctx, ref)
	if err != nil {
		t.Fatal(err)
	}
	v.Release()
	var keep []trove.Ref // fill A with primaries: the copy gives way
	for a.Stats().Evictions == 0 {
		r, err := a.Put(ctx, make([]byte, 1<<20))
		if err != nil {
			t.Fatal(err)
		}
		keep = append(keep, r)
	}
	keep[0].Drop()
	v, err = a.Get(ctx, ref)
	if err != nil || !bytes.Equal(v.Bytes(), data) {
		t.Fatalf("Get of an evicted copy: %v", err)
	}
	if fetches, _, _ := ra.counts(); fetches != 2 {
		t.Fatalf("%d fetches, want 2", fetches)
	}
	if a.EvictCopy(x.ID()) {
		t.Fatal("EvictCopy dropped a pinned copy")
	}
	v.Release()
	if !a.EvictCopy(x.ID()) {
		t.Fatal("EvictCopy left an unpinned copy")
	}
	if a.EvictCopy(keep[1].ID()) {
		t.Fatal("EvictCopy evicted a primary")
	}
	if v, err := a.Get(ctx, ref); err != nil {
		t.Fatalf("Get after EvictCopy: %v", err)
	} else {
		v.Release()
	}
	if fetches, _, _ := ra.counts(); fetches != 3 {
		t.Fatalf("%d fetches, want 3", fetches)
	}
	ref.Drop()
	for _, r := range keep[1:] {
		r.Drop()
	}
	x.Drop()
	requireRemoteEmpty(t, a, ra)
	requireEmpty(t, b)
}

// Room for pulls (Ray #62093): a store full of unpinned received copies, each
// still referenced, can always take another: copies give way, and every Get
// succeeds (fetching again what was evicted). Nothing hangs.
func TestRemoteRoomForPulls(t *testing.T) {
	for _, spilling := range []bool{false, true} {
		t.Run(fmt.Sprintf("spilling=%v", spilling), func(t *testing.T) {
			c := newFakeCluster()
			b, _ := c.open(t, 2, Config{Capacity: 16 << 20})
			a, ra := c.open(t, 1, Config{Capacity: 4 << 20, DisableSpilling: !spilling, SpillDirs: []string{t.TempDir()}, MinSpillSize: 1 << 20})
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute) // a deadlock fails, not hangs
			defer cancel()
			const n, size = 24, 512 << 10 // three times what fits
			var owned, refs []trove.Ref
			for i := range n {
				x, err := b.Put(ctx, pattern(size, byte(i)))
				if err != nil {
					t.Fatal(err)
				}
				r, err := a.Borrow(x.ID())
				if err != nil {
					t.Fatal(err)
				}
				owned, refs = append(owned, x), append(refs, r)
			}
			for round := range 2 {
				for i, r := range refs {
					v, err := a.Get(ctx, r)
					if err != nil {
						t.Fatalf("round %d, Get %d into a store full of copies: %v", round, i, err)
					}
					if !bytes.Equal(v.Bytes(), pattern(size, byte(i))) {
						t.Fatalf("copy %d: wrong bytes", i)
					}
					v.Release()
				}
			}
			st := a.Stats()
			if st.Evictions == 0 || st.Spills != 0 {
				t.Fatalf("%d evictions, %d spills: received copies must give way, and never be spilled", st.Evictions, st.Spills)
			}
			for i := range refs {
				refs[i].Drop()
				owned[i].Drop()
			}
			requireRemoteEmpty(t, a, ra)
			requireEmpty(t, b)
		})
	}
}

// Nested refs across nodes: node A puts a value holding a ref that node B owns;
// node C gets the value (fetching the container from A), which borrows the
// nested ref (registering C with B before anything can free the container), and
// fetches it from B. Dropping everything in any order empties every node.
func TestRemoteNestedRefs(t *testing.T) {
	c := newFakeCluster()
	a, ra := c.open(t, 1, Config{})
	b, rb := c.open(t, 2, Config{})
	cs, rc := c.open(t, 3, Config{})
	ctx := context.Background()
	data := pattern(200<<10, 9)
	x, xa := putBorrowed(t, b, a, data)
	type box struct {
		Name string
		R    trove.Ref
	}
	y, err := trove.PutValue(ctx, a, box{Name: "outer", R: xa})
	if err != nil {
		t.Fatal(err)
	}
	xa.Drop() // the container keeps A's entry, and A's registration with B
	x.Drop()  // B's own handle: node A's registration keeps the primary
	if _, _, released := ra.counts(); released != 0 {
		t.Fatal("A released X while its container holds it")
	}

	yc, err := cs.Borrow(y.ID())
	if err != nil {
		t.Fatal(err)
	}
	got, err := trove.GetValue[box](ctx, cs, yc)
	if err != nil {
		t.Fatal(err)
	}
	if got.Name != "outer" || got.R.ID() != x.ID() {
		t.Fatalf("decoded %+v", got)
	}
	rc.mu.Lock()
	events := slices.Clone(rc.events)
	rc.mu.Unlock()
	if want := []string{"borrowed " + y.ID().String(), "borrowed " + x.ID().String()}; !slices.Equal(events, want) {
		t.Fatalf("C's registrations: %v, want %v", events, want)
	}
	v, err := cs.Get(ctx, got.R)
	if err != nil || !bytes.Equal(v.Bytes(), data) {
		t.Fatalf("Get of the nested ref on C: %v", err)
	}
	v.Release()

	y.Drop() // A's handle: C's registration keeps the container
	if st := a.Stats(); st.Objects != 2 {
		t.Fatalf("A has %d objects, want 2 (the container, kept for C, and its child)", st.Objects)
	}
	yc.Drop()    // C releases the container: A frees it, and with it its hold on X
	got.R.Drop() // C releases X: B frees it
	for _, n := range []struct {
		s *Store
		r *fakeRemote
	}{{a, ra}, {b, rb}, {cs, rc}} {
		requireRemoteEmpty(t, n.s, n.r)
	}
}

// Wait over a mix of local and foreign refs keeps input order, fetches the
// foreign ones, and honours its context while a fetch hangs.
func TestRemoteWaitKeepsOrder(t *testing.T) {
	c := newFakeCluster()
	b, _ := c.open(t, 2, Config{})
	a, ra := c.open(t, 1, Config{})
	ctx := context.Background()
	x1, _ := b.Put(ctx, []byte("slow"))
	x2, _ := b.Put(ctx, []byte("fast"))
	f1, _ := a.Borrow(x1.ID())
	f2, _ := a.Borrow(x2.ID())
	l1, _ := a.Put(ctx, []byte("local"))
	bld, err := a.Create(ctx, 4)
	if err != nil {
		t.Fatal(err)
	}
	p := bld.Ref()
	g := newGate()
	ra.setHook(func(ctx context.Context, id trove.ObjectID) error {
		if id == x1.ID() {
			return g.hook(ctx, id)
		}
		return nil
	})
	refs := []trove.Ref{f1, l1, f2, p}
	ready, pending, err := a.Wait(ctx, refs, 2)
	if err != nil {
		t.Fatal(err)
	}
	ids := func(rs []trove.Ref) []trove.ObjectID {
		var out []trove.ObjectID
		for _, r := range rs {
			out = append(out, r.ID())
		}
		return out
	}
	if !slices.Equal(ids(ready), []trove.ObjectID{l1.ID(), x2.ID()}) || !slices.Equal(ids(pending), []trove.ObjectID{x1.ID(), p.ID()}) {
		t.Fatalf("Wait 2: ready %v, pending %v", ids(ready), ids(pending))
	}
	// The slow fetch hangs: Wait returns at its deadline with what is ready.
	c1, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	ready, _, err = a.Wait(c1, refs, 4)
	if !errors.Is(err, trove.ErrGetTimeout) || len(ready) != 2 {
		t.Fatalf("Wait past its deadline: %d ready, %v", len(ready), err)
	}
	recvID(t, g.cancelled, "cancellation of the abandoned fetch")
	close(g.open)
	go func() {
		copy(bld.Bytes(), "done")
		bld.Seal()
	}()
	ready, pending, err = a.Wait(ctx, refs, 4)
	if err != nil || !slices.Equal(ids(ready), ids(refs)) || len(pending) != 0 {
		t.Fatalf("Wait 4: ready %v, pending %v, %v", ids(ready), ids(pending), err)
	}
	for _, r := range append(refs, x1, x2) {
		r.Drop()
	}
	requireRemoteEmpty(t, a, ra)
	requireEmpty(t, b)
}

// PinByID serves chunk reads by ID: it restores a spilled object, waits for a
// pending one, and names what it cannot serve.
func TestPinByID(t *testing.T) {
	s := newStore(t, Config{SpillDirs: []string{t.TempDir()}, InlineThreshold: -1})
	ctx := context.Background()
	r, err := s.Put(ctx, pattern(1<<20, 4))
	if err != nil {
		t.Fatal(err)
	}
	if n, err := s.Spill(ctx, []trove.Ref{r}); n != 1 || err != nil {
		t.Fatalf("spill: %d, %v", n, err)
	}
	v, err := s.PinByID(ctx, r.ID())
	if err != nil || !bytes.Equal(v.Bytes(), pattern(1<<20, 4)) {
		t.Fatalf("PinByID of a spilled object: %v", err)
	}
	v.Release()
	bld, err := s.Create(ctx, 3)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		v, err := s.PinByID(ctx, bld.Ref().ID())
		if err == nil {
			if string(v.Bytes()) != "abc" {
				err = errors.New("wrong bytes")
			}
			v.Release()
		}
		done <- err
	}()
	copy(bld.Bytes(), "abc")
	bld.Seal()
	if err := <-done; err != nil {
		t.Fatalf("PinByID of a pending object: %v", err)
	}
	if _, err := s.PinByID(ctx, trove.NewObjectID(s.Node(), 999)); !errors.Is(err, trove.ErrUnknownObject) {
		t.Fatalf("PinByID of an unknown ID: %v", err)
	}
	c1, cancel := context.WithTimeout(ctx, 10*time.Millisecond)
	defer cancel()
	b2, _ := s.Create(ctx, 1)
	if _, err := s.PinByID(c1, b2.Ref().ID()); !errors.Is(err, trove.ErrGetTimeout) {
		t.Fatalf("PinByID of an object never sealed: %v", err)
	}
	b2.Abort()
	b2.Ref().Drop()
	bld.Ref().Drop()
	r.Drop()
	requireEmpty(t, s)
}

// HoldID of a foreign ID (the ipc daemon's Borrow) registers like Borrow, once
// per first count, and a Get through a ref fetches the held object.
func TestRemoteHoldID(t *testing.T) {
	c := newFakeCluster()
	b, _ := c.open(t, 2, Config{})
	a, ra := c.open(t, 1, Config{})
	ctx := context.Background()
	x, err := b.Put(ctx, []byte("held"))
	if err != nil {
		t.Fatal(err)
	}
	h1, err := a.HoldID(x.ID())
	if err != nil {
		t.Fatal(err)
	}
	h2, err := a.HoldID(x.ID())
	if err != nil {
		t.Fatal(err)
	}
	if a.ReadyHold(h1) {
		t.Fatal("ReadyHold of an unfetched foreign object")
	}
	if v, err := a.TryGetHold(h1); v != nil || err != nil {
		t.Fatalf("TryGetHold of an unfetched foreign object: %v, %v; want nil, nil", v, err)
	}
	r, err := a.Borrow(x.ID())
	if err != nil {
		t.Fatal(err)
	}
	v, err := a.Get(ctx, r)
	if err != nil || string(v.Bytes()) != "held" {
		t.Fatalf("Get: %v", err)
	}
	v.Release()
	if !a.ReadyHold(h2) {
		t.Fatal("ReadyHold of a fetched copy")
	}
	if _, borrowed, _ := ra.counts(); borrowed != 1 {
		t.Fatalf("%d Borrowed for two holds and a ref", borrowed)
	}
	r.Drop()
	a.Unhold(h1)
	a.Unhold(h2)
	x.Drop()
	requireRemoteEmpty(t, a, ra)
	requireEmpty(t, b)
}

// A Get whose fetch waits for room in an arena full of pinned primaries (nothing
// can be evicted or spilled) fails, once its deadline passes, with ErrStoreFull
// and the store's figures, matching ErrGetTimeout too, rather than saying the
// object is still pending; after the views go, the same Get succeeds.
func TestRemotePullIntoPinnedStore(t *testing.T) {
	c := newFakeCluster()
	b, _ := c.open(t, 2, Config{Capacity: 16 << 20})
	a, ra := c.open(t, 1, Config{Capacity: 4 << 20, DisableSpilling: true})
	ctx := context.Background()
	const size = 1 << 20
	var mine []trove.Ref
	var views []*trove.Object
	for range 4 {
		r, err := a.Put(ctx, pattern(size, 1))
		if err != nil {
			t.Fatal(err)
		}
		v, err := a.Get(ctx, r)
		if err != nil {
			t.Fatal(err)
		}
		mine, views = append(mine, r), append(views, v)
	}
	x, ref := putBorrowed(t, b, a, pattern(size, 2))
	// The deadline must pass after the fetch has begun waiting for room, or
	// the Get rightly says only that it timed out: generous, for a loaded machine.
	gctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	_, err := a.Get(gctx, ref)
	var full *trove.StoreFullError
	if !errors.Is(err, trove.ErrStoreFull) || !errors.As(err, &full) || full.PinnedObjects != 4 ||
		!errors.Is(err, trove.ErrGetTimeout) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Get of a copy with no room past its deadline: %v, want ErrStoreFull (4 pinned objects) and ErrGetTimeout", err)
	}
	waitFetchesDone(t, a)
	for i, v := range views {
		v.Release()
		mine[i].Drop()
	}
	v, err := a.Get(ctx, ref)
	if err != nil || !bytes.Equal(v.Bytes(), pattern(size, 2)) {
		t.Fatalf("Get once the views were released: %v", err)
	}
	v.Release()
	ref.Drop()
	x.Drop()
	requireRemoteEmpty(t, a, ra)
	requireEmpty(t, b)
}

// putBorrowed puts data on owner's store and borrows the object by its ID on
// borrower's (through its Remote): the owner's ref and the borrower's.
func putBorrowed(t *testing.T, owner, borrower *Store, data []byte) (own, borrowed trove.Ref) {
	t.Helper()
	own, err := owner.Put(context.Background(), data)
	if err != nil {
		t.Fatal(err)
	}
	borrowed, err = borrower.Borrow(own.ID())
	if err != nil {
		t.Fatal(err)
	}
	return own, borrowed
}

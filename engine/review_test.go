package engine

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/trovedb/trove"
	"github.com/trovedb/trove/spill"
)

// Regression tests for bugs a review found. A hang here is caught by go test's
// -timeout; nothing asserts on time.

// A zero-byte object in the arena (a copy, or any object with InlineThreshold < 0)
// once made allocate spin forever: the allocator refuses 0 bytes.
func TestZeroSizeArenaObjects(t *testing.T) {
	s := newStore(t, Config{InlineThreshold: -1, DisableSpilling: true})
	ctx := context.Background()
	b, err := s.CreateCopy(ctx, trove.NewObjectID(trove.NodeID{3}, 1), 0)
	if err != nil {
		t.Fatal(err)
	}
	b.Seal()
	r, err := s.Put(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	v, err := s.Get(ctx, r)
	if err != nil || v.Size() != 0 {
		t.Fatalf("empty arena object: %v", err)
	}
	v.Release()
	b.Ref().Drop()
	r.Drop()
	requireEmpty(t, s)
}

// A free slot in a large size class once made reclaim report room that a smaller
// class could not use: allocate spun forever, deaf to its context.
func TestFullArenaMixedSizesHonoursContext(t *testing.T) {
	for _, disable := range []bool{true, false} {
		s := newStore(t, Config{Capacity: 16 << 20, DisableSpilling: disable, MinSpillSize: 1 << 20, SpillThreshold: 1})
		ctx := context.Background()
		var refs []trove.Ref
		var views []*trove.Object
		for len(refs) < 16 {
			c, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
			r, err := s.Put(c, make([]byte, 1<<20))
			cancel()
			if err != nil {
				break
			}
			v, _ := s.Get(ctx, r) // pinned: nothing can be spilled
			refs, views = append(refs, r), append(views, v)
		}
		views[len(views)-1].Release()
		refs[len(refs)-1].Drop() // one free slot in the 1 MiB class
		refs, views = refs[:len(refs)-1], views[:len(views)-1]
		c, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
		r, err := s.Put(c, make([]byte, 200<<10))
		cancel()
		if err == nil {
			r.Drop()
		} else if !errors.Is(err, trove.ErrStoreFull) {
			t.Fatalf("Put into a full arena (spilling disabled: %v): %v, want success or ErrStoreFull", disable, err)
		}
		trove.ReleaseAll(views)
		for _, r := range refs {
			r.Drop()
		}
		requireEmpty(t, s)
	}
}

// Wait once lost wakeups: refs sealed between its two passes were neither
// counted nor waited on, so it could wait for ever.
func TestWaitWhileSealing(t *testing.T) {
	s := newStore(t, Config{})
	const n = 20000
	ctx := context.Background()
	for range 3 {
		bs := make([]*Builder, n)
		refs := make([]trove.Ref, n)
		for i := range bs {
			b, err := s.Create(ctx, 8)
			if err != nil {
				t.Fatal(err)
			}
			bs[i], refs[i] = b, b.Ref()
		}
		var wg sync.WaitGroup
		wg.Go(func() {
			for _, b := range bs {
				b.Seal()
			}
		})
		ready, _, err := s.Wait(ctx, refs, n)
		wg.Wait()
		if err != nil || len(ready) != n {
			t.Fatalf("every ref sealed, yet Wait: %d ready, %v", len(ready), err)
		}
		for _, r := range refs {
			r.Drop()
		}
	}
	requireEmpty(t, s)
}

// slowReadFS makes restores slow, to widen the window for a Drop under a Get.
type slowReadFS struct{ spill.OSFS }

func (f slowReadFS) Create(name string) (spill.File, error) {
	inner, err := f.OSFS.Create(name)
	return slowReadFile{inner}, err
}

type slowReadFile struct{ spill.File }

func (f slowReadFile) ReadAt(p []byte, off int64) (int, error) {
	time.Sleep(20 * time.Millisecond)
	return f.File.ReadAt(p, off)
}

// A Drop of the only handle while a Get restored the object once brought the freed
// entry back to life: its memory leaked and the spill counters went negative.
func TestDropDuringRestore(t *testing.T) {
	s, dir := pressureStore(t, 64<<20, func(c *Config) { c.SpillFS = slowReadFS{} })
	ctx := context.Background()
	for range 5 {
		ref, err := s.Put(ctx, make([]byte, 1<<20))
		if err != nil {
			t.Fatal(err)
		}
		if n, err := s.Spill(ctx, []trove.Ref{ref}); n != 1 || err != nil {
			t.Fatal(n, err)
		}
		done := make(chan error)
		go func() {
			o, err := s.Get(ctx, ref)
			if err == nil {
				o.Release()
			}
			done <- err
		}()
		ref.Drop()
		if err := <-done; err != nil && !errors.Is(err, trove.ErrInvalidRef) && !errors.Is(err, trove.ErrObjectFreed) {
			t.Fatalf("Get racing a Drop: %v", err)
		}
	}
	requireDrained(t, s, dir)
}

// ErrObjectEvicted says to fetch the copy again: CreateCopy of an evicted copy
// that is still referenced makes it pending again, and the old refs see it sealed.
func TestRefetchEvictedCopy(t *testing.T) {
	s := newStore(t, Config{Capacity: 16 << 20, DisableSpilling: true})
	ctx := context.Background()
	id := trove.NewObjectID(trove.NodeID{7}, 7)
	b, err := s.CreateCopy(ctx, id, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	copy(b.Bytes(), "first")
	cp := b.Ref()
	b.Seal()
	var keep []trove.Ref
	data := make([]byte, 1<<20)
	for range 16 { // fill: the copy is evicted to make room
		// The deadline bounds the wait of the Put that finds the store full;
		// generous, so that a preempted Put that had room does not end early.
		c, cancel := context.WithTimeout(ctx, time.Second)
		r, err := s.Put(c, data)
		cancel()
		if err != nil {
			break
		}
		keep = append(keep, r)
	}
	if _, err := s.Get(ctx, cp); !errors.Is(err, trove.ErrObjectEvicted) {
		t.Fatalf("Get of an evicted copy: %v, want ErrObjectEvicted", err)
	}
	keep[0].Drop()
	keep = keep[1:]
	b2, err := s.CreateCopy(ctx, id, 1<<20)
	if err != nil {
		t.Fatalf("fetching an evicted copy again: %v", err)
	}
	copy(b2.Bytes(), "again")
	b2.Seal()
	v, err := s.Get(ctx, cp) // the ref held all along
	if err != nil || string(v.Bytes()[:5]) != "again" {
		t.Fatalf("old ref after the copy was fetched again: %v", err)
	}
	v.Release()
	if _, err := s.CreateCopy(ctx, id, 1<<20); !errors.Is(err, ErrCopyExists) {
		t.Fatalf("a second copy while one is resident: %v, want ErrCopyExists", err)
	}
	cp.Drop()
	b2.Ref().Drop()
	for _, r := range keep {
		r.Drop()
	}
	requireEmpty(t, s)
}

// Two fetches of the same evicted copy race to revive it: exactly one wins,
// the others get ErrCopyExists, and the loser's memory is freed, not the
// winner's (reviveCopy publishes the new offset under the shard's lock).
func TestConcurrentRefetchEvictedCopy(t *testing.T) {
	s := newStore(t, Config{Capacity: 12 << 20, DisableSpilling: true})
	ctx := context.Background()
	const racers = 8
	data := make([]byte, 1<<20)
	for round := range 50 {
		id := trove.NewObjectID(trove.NodeID{7}, uint64(round+1))
		b, err := s.CreateCopy(ctx, id, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		cp := b.Ref()
		b.Seal()
		var keep []trove.Ref
		for range 12 { // fill: the copy is evicted to make room for the last
			c, cancel := context.WithTimeout(ctx, time.Second)
			r, err := s.Put(c, data)
			cancel()
			if err != nil {
				break
			}
			keep = append(keep, r)
		}
		if _, err := s.Get(ctx, cp); !errors.Is(err, trove.ErrObjectEvicted) {
			t.Fatalf("round %d: Get of an evicted copy: %v, want ErrObjectEvicted", round, err)
		}
		for _, r := range keep { // room for every racer
			r.Drop()
		}
		var (
			wg      sync.WaitGroup
			mu      sync.Mutex
			winners []*Builder
			others  []error
		)
		start := make(chan struct{})
		for range racers {
			wg.Go(func() {
				<-start
				b, err := s.CreateCopy(ctx, id, 1<<20)
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					others = append(others, err)
					return
				}
				winners = append(winners, b)
			})
		}
		close(start)
		wg.Wait()
		if len(winners) != 1 {
			t.Fatalf("round %d: %d racers revived the copy, want 1", round, len(winners))
		}
		for _, err := range others {
			if !errors.Is(err, ErrCopyExists) {
				t.Fatalf("round %d: a losing racer: %v, want ErrCopyExists", round, err)
			}
		}
		copy(winners[0].Bytes(), "winner")
		winners[0].Seal()
		v, err := s.Get(ctx, cp)
		if err != nil || string(v.Bytes()[:6]) != "winner" {
			t.Fatalf("round %d: old ref after the race: %v", round, err)
		}
		v.Release()
		cp.Drop()
		winners[0].Ref().Drop()
		requireEmpty(t, s)
	}
}

package cluster

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/trovedb/trove/net/quic"
)

// TestServeGate: ServeSlots chunks are served at once, ServeQueue more wait,
// and one beyond both is refused with quic.ErrBusy; a waiter gets the slot
// given back, and one whose ctx ends leaves the queue.
func TestServeGate(t *testing.T) {
	var ctr counters
	var g serveGate
	g.init(1, 1, &ctr)
	done1, err := g.enter(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan error, 1)
	go func() {
		done, err := g.enter(context.Background())
		if err == nil {
			done()
		}
		got <- err
	}()
	// Wait until the second request is queued; then a third is refused.
	for {
		g.mu.Lock()
		w := g.wait
		g.mu.Unlock()
		if w == 1 {
			break
		}
	}
	if _, err := g.enter(context.Background()); !errors.Is(err, quic.ErrBusy) {
		t.Fatalf("a third request with one slot and one waiting: %v, want ErrBusy", err)
	}
	if ctr.chunksRefusedBusy.Load() != 1 {
		t.Fatalf("refusals counted %d, want 1", ctr.chunksRefusedBusy.Load())
	}
	done1()
	if err := <-got; err != nil {
		t.Fatalf("the waiting request: %v, want the slot", err)
	}
	// A waiter whose ctx ends leaves the queue.
	done, err := g.enter(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := g.enter(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("a waiter with a cancelled ctx: %v", err)
	}
	if g.wait != 0 {
		t.Fatalf("%d waiting after the cancelled one left", g.wait)
	}
	done()
}

// TestPullFromBusyHolder: a holder that serves one chunk at once with none
// waiting refuses most of four pullers' requests as busy; every pull still
// completes with the object's bytes and the refusals are counted on both
// sides. Refusals are not holder failures: if they were, the owner (at first
// the only holder) would be dropped after three and the pulls would fail.
func TestPullFromBusyHolder(t *testing.T) {
	ctx := context.Background()
	nodes := newCluster(t, 5, nil, swarmKnobs, func(_ int, c *Config) { c.ServeSlots, c.ServeQueue = 1, -1 })
	a := nodes[0]
	want := pattern(12<<20, 31)
	r, err := a.Put(ctx, want)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Drop()
	got := make([]<-chan []byte, len(nodes))
	for i, n := range nodes[1:] {
		ref, err := n.Borrow(r.ID())
		if err != nil {
			t.Fatal(err)
		}
		defer ref.Drop()
		got[i+1] = getAsync(ctx, n, ref)
	}
	var refused int64
	for i, n := range nodes[1:] {
		if g := <-got[i+1]; !bytes.Equal(g, want) {
			t.Fatalf("%s pulled different bytes (%d of them: %.80q)", n.Name(), len(g), g)
		}
		refused += n.Stats().PullsBusyRefusals
	}
	var served int64
	for _, n := range nodes {
		served += n.Stats().ChunksRefusedBusy
	}
	if refused == 0 || served != refused {
		t.Fatalf("pullers counted %d busy refusals, holders %d: want the same, above 0", refused, served)
	}
}

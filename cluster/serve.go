package cluster

import (
	"context"
	"fmt"
	"sync"

	"github.com/trovedb/trove/net/quic"
)

// serveGate bounds the chunks a node serves at once (Config.ServeSlots) and
// the requests that wait for a slot (Config.ServeQueue); one beyond both is
// refused with quic.ErrBusy, and its puller asks another holder. Without it a
// holder every puller asks (a broadcast's origin) splits its uplink among all
// their requests: each chunk arrives late, and meanwhile the others ask it for
// the same chunks, so it sends the object several times over.
type serveGate struct {
	slots chan struct{} // a token per chunk being served
	mu    sync.Mutex
	wait  int // requests waiting for a slot (guarded by mu)
	max   int // ServeQueue
	ctr   *counters
}

func (g *serveGate) init(slots, queue int, ctr *counters) {
	g.slots = make(chan struct{}, slots)
	g.max = queue
	g.ctr = ctr
}

// enter takes a slot, waiting (within ctx) if ServeQueue allows; done gives
// it back.
func (g *serveGate) enter(ctx context.Context) (done func(), err error) {
	select {
	case g.slots <- struct{}{}:
		return g.leave, nil
	default:
	}
	g.mu.Lock()
	if g.wait >= g.max {
		g.mu.Unlock()
		g.ctr.chunksRefusedBusy.Add(1)
		return nil, fmt.Errorf("%d chunks being served and %d waiting (Config.ServeSlots, ServeQueue): %w", cap(g.slots), g.max, quic.ErrBusy)
	}
	g.wait++
	g.mu.Unlock()
	defer func() {
		g.mu.Lock()
		g.wait--
		g.mu.Unlock()
	}()
	select {
	case g.slots <- struct{}{}:
		return g.leave, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (g *serveGate) leave() { <-g.slots }

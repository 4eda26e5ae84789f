package swarm

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"
)

// The model test and FuzzScheduler run scripts of operations (bytes) against
// a Scheduler and a model of the world it schedules over: holders with the
// chunks the script gave them, the assignments outstanding, the clock. After
// every operation they check the scheduler's invariants and what the package
// doc promises: limits, chunks asked only of holders that have them, no chunk
// fetched twice unless re-asked (slow) or its ask ended without it (failure,
// removal), Next never idle while there is work, Stuck exactly when some
// missing chunk has no holder, and the pull completing when it can.

type modelAsk struct {
	a  Assignment
	at time.Time
}

type world struct {
	s      *Scheduler
	cfg    Config
	n      int
	peers  []PeerID
	live   map[PeerID]bool
	haves  map[PeerID]Bitmap
	others map[PeerID]Bitmap // other pullers' chunks in flight (SetPending)
	retry  map[PeerID]time.Time
	out    []modelAsk
	held   []bool
	fresh  []int // fresh (not slow re-ask) assignments of each chunk
	lost   []int // asks of each chunk that ended without it (failed, removed)
	arrive []int // times each chunk newly arrived
	now    time.Time
}

// script reads bytes; past the end it reads zeros.
type script struct{ b []byte }

func (s *script) next() int {
	if len(s.b) == 0 {
		return 0
	}
	v := s.b[0]
	s.b = s.b[1:]
	return int(v)
}

func newWorld(sc *script) *world {
	cfg := Config{
		ChunkSize: 1 + int64(sc.next()%3),
		PerPeer:   1 + sc.next()%4,
		PerPull:   1 + sc.next()%8,
		Seed:      uint64(sc.next()),
	}
	if sc.next()%2 == 1 {
		cfg.SlowAfter = time.Second
	}
	if sc.next()%2 == 1 {
		cfg.RetryAfter = 500 * time.Millisecond
	}
	size := int64(sc.next() % 41)
	np := 1 + sc.next()%5
	s := New(size, cfg)
	w := &world{s: s, cfg: s.Config(), n: s.Chunks(), live: map[PeerID]bool{}, haves: map[PeerID]Bitmap{}, others: map[PeerID]Bitmap{},
		retry: map[PeerID]time.Time{}, now: t0}
	for i := range np {
		w.peers = append(w.peers, PeerID(fmt.Sprintf("p%d", i)))
	}
	w.held = make([]bool, w.n)
	w.fresh = make([]int, w.n)
	w.lost = make([]int, w.n)
	w.arrive = make([]int, w.n)
	return w
}

func (w *world) inflight(p PeerID) int {
	k := 0
	for _, o := range w.out {
		if o.a.Peer == p {
			k++
		}
	}
	return k
}

func (w *world) stuck() bool {
	for c := range w.n {
		if w.held[c] {
			continue
		}
		has := false
		for _, p := range w.peers {
			has = has || w.live[p] && w.haves[p].Has(Chunk(c))
		}
		if !has {
			return true
		}
	}
	return false
}

// spare reports whether chunk c is one the scheduler leaves to another
// puller while it has chunks in flight: another puller is fetching it and
// only full holders have it.
func (w *world) spare(c Chunk) bool {
	fetched := false
	for _, b := range w.others {
		fetched = fetched || b.Has(c)
	}
	if !fetched {
		return false
	}
	for _, p := range w.peers {
		if w.live[p] && w.haves[p].Has(c) && w.haves[p].Count() != w.n {
			return false
		}
	}
	return true
}

// work reports whether a fresh chunk could be asked now.
func (w *world) work() bool {
	if len(w.out) >= w.cfg.PerPull {
		return false
	}
	for c := range w.n {
		if w.held[c] {
			continue
		}
		asked := false
		for _, o := range w.out {
			asked = asked || o.a.Chunk == Chunk(c)
		}
		if asked || len(w.out) > 0 && w.spare(Chunk(c)) {
			continue
		}
		for _, p := range w.peers {
			if w.live[p] && w.haves[p].Has(Chunk(c)) && w.inflight(p) < w.cfg.PerPeer && !w.now.Before(w.retry[p]) {
				return true
			}
		}
	}
	return false
}

func (w *world) take(i int) Assignment {
	a := w.out[i].a
	w.out = append(w.out[:i], w.out[i+1:]...)
	return a
}

func (w *world) next() error {
	a, ok := w.s.Next(w.now)
	if !ok {
		if w.work() {
			return fmt.Errorf("Next idle with a chunk it could ask")
		}
		return nil
	}
	c := a.Chunk
	if c < 0 || int(c) >= w.n {
		return fmt.Errorf("assigned chunk %d of %d", c, w.n)
	}
	if !w.live[a.Peer] || !w.haves[a.Peer].Has(c) {
		return fmt.Errorf("chunk %d asked of %s, which does not have it (live %v)", c, a.Peer, w.live[a.Peer])
	}
	if w.held[c] {
		return fmt.Errorf("chunk %d assigned again after it arrived", c)
	}
	if off, n := w.s.Range(c); a.Off != off || a.Len != n || n <= 0 {
		return fmt.Errorf("assignment %+v, chunk's range [%d,+%d)", a, off, n)
	}
	if w.now.Before(w.retry[a.Peer]) {
		return fmt.Errorf("%s asked while backing off", a.Peer)
	}
	var others []modelAsk
	for _, o := range w.out {
		if o.a.Chunk == c {
			others = append(others, o)
		}
	}
	if len(others) > 0 {
		if w.cfg.SlowAfter == 0 {
			return fmt.Errorf("chunk %d asked twice at once with no SlowAfter", c)
		}
		for _, o := range others {
			if o.a.Peer == a.Peer {
				return fmt.Errorf("chunk %d re-asked of %s, already asked", c, a.Peer)
			}
			if w.now.Sub(o.at) < w.cfg.SlowAfter {
				return fmt.Errorf("chunk %d re-asked %v after an ask", c, w.now.Sub(o.at))
			}
		}
		if w.work() {
			return fmt.Errorf("chunk %d re-asked while a fresh chunk could be asked", c)
		}
	} else {
		w.fresh[c]++
		if w.fresh[c] > 1+w.lost[c] {
			return fmt.Errorf("chunk %d asked afresh %d times with %d asks lost", c, w.fresh[c], w.lost[c])
		}
	}
	w.out = append(w.out, modelAsk{a: a, at: w.now})
	if k := w.inflight(a.Peer); k > w.cfg.PerPeer {
		return fmt.Errorf("%d in flight to %s, PerPeer %d", k, a.Peer, w.cfg.PerPeer)
	}
	if len(w.out) > w.cfg.PerPull {
		return fmt.Errorf("%d in flight, PerPull %d", len(w.out), w.cfg.PerPull)
	}
	return nil
}

func (w *world) done(a Assignment) {
	w.s.Done(a)
	if !w.held[a.Chunk] {
		w.held[a.Chunk] = true
		w.arrive[a.Chunk]++
	}
}

func (w *world) check() error {
	if err := checkInvariants(w.s); err != nil {
		return err
	}
	if got, want := w.s.Stuck(), w.stuck(); got != want {
		return fmt.Errorf("Stuck %v, model %v", got, want)
	}
	if w.s.Outstanding() != len(w.out) {
		return fmt.Errorf("Outstanding %d, model %d", w.s.Outstanding(), len(w.out))
	}
	for _, p := range w.peers {
		if w.s.InFlight(p) != w.inflight(p) {
			return fmt.Errorf("InFlight(%s) %d, model %d", p, w.s.InFlight(p), w.inflight(p))
		}
	}
	for _, o := range w.out {
		want := false
		for _, p := range w.peers {
			if p == o.a.Peer || !w.live[p] || !w.haves[p].Has(o.a.Chunk) || w.inflight(p) >= w.cfg.PerPeer || w.now.Before(w.retry[p]) || w.held[o.a.Chunk] {
				continue
			}
			asked := false
			for _, q := range w.out {
				asked = asked || q.a.Chunk == o.a.Chunk && q.a.Peer == p
			}
			want = want || !asked
		}
		if got := w.s.Alternative(o.a, w.now); got != want {
			return fmt.Errorf("Alternative(%+v) %v, model %v", o.a, got, want)
		}
	}
	held := 0
	for c := range w.n {
		if w.s.Held(Chunk(c)) != w.held[c] {
			return fmt.Errorf("chunk %d held %v, model %v", c, w.s.Held(Chunk(c)), w.held[c])
		}
		if w.held[c] {
			held++
		}
	}
	if h := w.s.Have(); h.Count() != held || w.s.Complete() != (held == w.n) {
		return fmt.Errorf("Have %d chunks, Complete %v; model %d of %d", h.Count(), w.s.Complete(), held, w.n)
	}
	return nil
}

func (w *world) step(sc *script) error {
	op, arg := sc.next()%9, sc.next()
	pick := func() PeerID { return w.peers[arg%len(w.peers)] }
	switch op {
	case 0, 1: // a holder appears or learns more: a chunk, a run of chunks, or all
		p := pick()
		b := w.haves[p]
		if b.Len() == 0 {
			b = NewBitmap(w.n)
		} else {
			b = b.Clone()
		}
		switch x := sc.next(); {
		case x%4 == 0:
			b = FullBitmap(w.n)
		default:
			for i := 0; i < 1+x%5 && w.n > 0; i++ {
				b.Set(Chunk((x + 7*i) % w.n))
			}
		}
		w.haves[p], w.live[p] = b, true
		w.s.SetHolder(p, b)
	case 2: // a holder fails
		p := pick()
		for i := len(w.out) - 1; i >= 0; i-- {
			if w.out[i].a.Peer == p {
				a := w.take(i)
				if !w.held[a.Chunk] {
					w.lost[a.Chunk]++
				}
			}
		}
		w.live[p] = false
		delete(w.haves, p)
		delete(w.retry, p)
		w.s.RemoveHolder(p)
	case 3, 4: // ask for work
		for range 1 + arg%4 {
			if err := w.next(); err != nil {
				return err
			}
		}
	case 5: // a chunk arrives
		if len(w.out) > 0 {
			w.done(w.take(arg % len(w.out)))
		}
	case 6: // a request fails
		if len(w.out) > 0 {
			a := w.take(arg % len(w.out))
			w.s.Failed(a, w.now)
			if !w.held[a.Chunk] {
				w.lost[a.Chunk]++
			}
			if w.cfg.RetryAfter > 0 {
				w.retry[a.Peer] = w.now.Add(w.cfg.RetryAfter)
			}
		}
	case 7: // time passes
		w.now = w.now.Add(time.Duration(arg) * 10 * time.Millisecond)
	case 8: // another puller (a holder or not) says what it is fetching
		p := pick()
		if arg%2 == 1 {
			p = PeerID(fmt.Sprintf("puller%d", arg%3))
		}
		b := NewBitmap(w.n)
		for i := 0; i < sc.next()%4 && w.n > 0; i++ {
			b.Set(Chunk((arg + 5*i) % w.n))
		}
		w.s.SetPending(p, b)
		if b.Count() == 0 {
			delete(w.others, p)
		} else {
			w.others[p] = b
		}
	}
	return w.check()
}

// finish delivers everything asked until the pull completes or is stuck.
func (w *world) finish() error {
	for round := 0; ; round++ {
		if round > 4*w.n+10 {
			return fmt.Errorf("pull neither completed nor stuck after %d rounds", round)
		}
		for len(w.out) > 0 {
			w.done(w.take(0))
		}
		for {
			before := len(w.out)
			if err := w.next(); err != nil {
				return err
			}
			if len(w.out) == before {
				break
			}
		}
		if err := w.check(); err != nil {
			return err
		}
		if len(w.out) == 0 {
			if t, ok := w.s.Wake(w.now); ok {
				w.now = t
				continue
			}
			break
		}
	}
	if w.s.Complete() == w.stuck() {
		return fmt.Errorf("finished with Complete %v, model stuck %v", w.s.Complete(), w.stuck())
	}
	for c := range w.n {
		if w.held[c] && w.arrive[c] != 1 {
			return fmt.Errorf("chunk %d arrived %d times", c, w.arrive[c])
		}
	}
	return nil
}

func runScript(b []byte) error {
	sc := &script{b: b}
	w := newWorld(sc)
	for i := 0; len(sc.b) > 0; i++ {
		if err := w.step(sc); err != nil {
			return fmt.Errorf("step %d: %w", i, err)
		}
	}
	return w.finish()
}

func TestModel(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for i := range 400 {
		b := make([]byte, 8+r.IntN(400))
		for j := range b {
			b[j] = byte(r.Uint32())
		}
		if err := runScript(b); err != nil {
			t.Fatalf("script %d (%x): %v", i, b, err)
		}
	}
}

// FuzzScheduler runs scripts of holder sets, failures, removals, arrivals and
// time against the model.
func FuzzScheduler(f *testing.F) {
	f.Add([]byte{0, 3, 7, 9, 1, 1, 30, 3, 0, 0, 0, 3, 3, 5, 0, 3, 3, 6, 0, 7, 200, 3, 3})
	f.Add([]byte{1, 1, 2, 3, 1, 1, 40, 4, 0, 1, 4, 1, 2, 4, 3, 3, 2, 1, 3, 3, 7, 150, 3, 3, 5, 1})
	f.Add([]byte{2, 0, 0, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		if err := runScript(b); err != nil {
			t.Fatal(err)
		}
	})
}

package swarm

import (
	"math/bits"
	"time"
)

// PeerID names a holder, e.g. its address. The scheduler only compares them.
type PeerID string

// Chunk is a chunk's index; its bytes are [Chunk*ChunkSize,
// min(size, (Chunk+1)*ChunkSize)).
type Chunk int

// Defaults of Config's zero fields.
const (
	DefaultChunkSize = 1 << 20
	DefaultPerPeer   = 4
	DefaultPerPull   = 16
)

// Config sets a Scheduler's chunking and limits. The zero Config is valid.
type Config struct {
	// ChunkSize is the bytes per chunk (the last may be short). Default
	// DefaultChunkSize.
	ChunkSize int64
	// PerPeer is the chunks in flight to one holder at once. Default
	// DefaultPerPeer.
	PerPeer int
	// PerPull is the chunks in flight for this pull in total. Default
	// DefaultPerPull.
	PerPull int
	// SlowAfter: a chunk outstanding this long may be asked again of another
	// holder (which one answers first wins; 0: never).
	SlowAfter time.Duration
	// RetryAfter: a holder whose request failed is not asked again before
	// this long after the failure (0: at once, though other holders are
	// preferred for the chunk that failed).
	RetryAfter time.Duration
	// Seed breaks ties between chunks equally rare: pullers with different
	// seeds start at different chunks, so pullers that start at once hold
	// different chunks they can trade. The cluster uses a hash of the
	// puller's address.
	Seed uint64
}

// Assignment is one chunk to ask of one holder: the bytes [Off, Off+Len).
type Assignment struct {
	Peer  PeerID
	Chunk Chunk
	Off   int64
	Len   int64
}

// Stats counts what a Scheduler did.
type Stats struct {
	Assigned   int // assignments Next made, re-asks included
	Reasked    int // of those, chunks asked again because the first ask was slow
	Failed     int // assignments reported Failed
	Duplicates int // Done for a chunk already held (a re-ask's loser)
	Removed    int // holders removed
	Sources    int // distinct holders that delivered at least one chunk
}

// holder is one peer that has some of the chunks.
type holder struct {
	id       PeerID
	have     Bitmap
	count    int       // have.Count()
	inflight []Chunk   // chunks asked of it and not yet Done or Failed
	retryAt  time.Time // not asked again before this (after a failure)
	key      uint64    // tie-break among holders equally loaded
}

// ask is one outstanding request for a chunk.
type ask struct {
	h  *holder
	at time.Time
}

// Scheduler decides which chunk of an object to ask of which holder next.
// See the package doc for its policy and invariants. A Scheduler is not safe
// for concurrent use.
type Scheduler struct {
	size int64
	cfg  Config
	n    int

	have  Bitmap   // chunks that arrived
	asked Bitmap   // chunks with at least one outstanding ask (never held)
	asks  [][]ask  // by chunk: outstanding asks (may outlive the chunk's arrival)
	avail []int32  // by chunk: live holders that have it
	keys  []uint64 // by chunk: tie-break among chunks equally rare (from Seed)
	avoid map[Chunk]PeerID

	holders map[PeerID]*holder
	order   []*holder // holders in the order they were first set: iteration is deterministic
	full    int       // holders that have every chunk (count == n)

	others   map[PeerID]Bitmap // other pullers' chunks in flight, as SetPending said
	fetching []int32           // by chunk: other pullers fetching it (from others)
	pending  int               // outstanding asks in all
	served   map[PeerID]struct{}
	stats    Stats

	scratch []uint64 // Next's union of eligible holders' chunks
	elig    []*holder
}

// New is a scheduler for an object of size bytes (size < 0 is taken as 0),
// with no holders yet.
func New(size int64, cfg Config) *Scheduler {
	if cfg.ChunkSize <= 0 {
		cfg.ChunkSize = DefaultChunkSize
	}
	if cfg.PerPeer <= 0 {
		cfg.PerPeer = DefaultPerPeer
	}
	if cfg.PerPull <= 0 {
		cfg.PerPull = DefaultPerPull
	}
	size = max(size, 0)
	n := int((size + cfg.ChunkSize - 1) / cfg.ChunkSize)
	s := &Scheduler{
		size: size, cfg: cfg, n: n,
		have: NewBitmap(n), asked: NewBitmap(n),
		asks: make([][]ask, n), avail: make([]int32, n),
		others: map[PeerID]Bitmap{}, fetching: make([]int32, n),
		avoid:   map[Chunk]PeerID{},
		holders: map[PeerID]*holder{},
		served:  map[PeerID]struct{}{},
		scratch: make([]uint64, (n+63)/64),
	}
	// One ask per chunk without an allocation each: a re-ask's second one
	// reallocates that chunk's slice.
	s.keys = make([]uint64, n)
	for c := range s.keys {
		s.keys[c] = mix(cfg.Seed ^ uint64(c))
	}
	flat := make([]ask, n)
	for c := range s.asks {
		s.asks[c] = flat[c : c : c+1]
	}
	return s
}

// Chunks is the number of chunks of the object.
func (s *Scheduler) Chunks() int { return s.n }

// Config is the scheduler's configuration, defaults filled in.
func (s *Scheduler) Config() Config { return s.cfg }

// Range is chunk c's bytes: [off, off+n).
func (s *Scheduler) Range(c Chunk) (off, n int64) {
	off = int64(c) * s.cfg.ChunkSize
	return off, min(s.size, off+s.cfg.ChunkSize) - off
}

// SetHolder records that p holds the chunks in have (a full holder: a full
// bitmap), adding p or replacing what was known of it; call it again as p
// learns more. Bits past Chunks() are ignored; a shorter bitmap lacks the
// rest. have is copied. Chunks already asked of p stay in flight.
func (s *Scheduler) SetHolder(p PeerID, have Bitmap) {
	h := s.holders[p]
	if h == nil {
		h = &holder{id: p, have: NewBitmap(s.n), key: mix(s.cfg.Seed ^ hashString(string(p))),
			inflight: make([]Chunk, 0, s.cfg.PerPeer)}
		s.holders[p] = h
		s.order = append(s.order, h)
	} else {
		s.addAvail(h, -1)
	}
	k := min(len(h.have.w), len(have.w))
	copy(h.have.w, have.w[:k])
	clear(h.have.w[k:])
	h.have.clearTail()
	h.count = h.have.Count()
	s.addAvail(h, +1)
}

// SetPending records that p, another puller of the object, has asked for
// the chunks in pending and not yet received them (what its own scheduler's
// Pending reports), replacing what was known; an empty bitmap forgets p.
// p need not be a holder, and pending never makes p one: it only makes
// those chunks less rare (see Next), so that this puller asks the holders
// for chunks nobody is fetching and gets the others later from the pullers
// fetching them. Bits past Chunks() are ignored; pending is copied.
func (s *Scheduler) SetPending(p PeerID, pending Bitmap) {
	if old, ok := s.others[p]; ok {
		addBits(s.fetching, old, -1)
		delete(s.others, p)
	}
	b := NewBitmap(s.n)
	k := min(len(b.w), len(pending.w))
	copy(b.w, pending.w[:k])
	b.clearTail()
	if b.Count() == 0 {
		return
	}
	s.others[p] = b
	addBits(s.fetching, b, +1)
}

func (s *Scheduler) addAvail(h *holder, d int32) {
	addBits(s.avail, h.have, d)
	if s.n > 0 && h.count == s.n {
		s.full += int(d)
	}
}

// addBits adds d to the counts of the chunks in b.
func addBits(counts []int32, b Bitmap, d int32) {
	for i, w := range b.w {
		for w != 0 {
			counts[i*64+trailingZeros(w)] += d
			w &= w - 1
		}
	}
}

// RemoveHolder forgets p (it failed or left): its in-flight chunks go back to
// be asked of others, and it is never assigned again until SetHolder. A later
// Done of an assignment to p still counts the chunk as arrived; a later
// Failed of one is ignored.
func (s *Scheduler) RemoveHolder(p PeerID) {
	h := s.holders[p]
	if h == nil {
		return
	}
	for _, c := range h.inflight {
		s.dropAsk(c, h)
	}
	h.inflight = h.inflight[:0]
	s.addAvail(h, -1)
	delete(s.holders, p)
	for i, o := range s.order {
		if o == h {
			s.order = append(s.order[:i], s.order[i+1:]...)
			break
		}
	}
	for c, q := range s.avoid {
		if q == p {
			delete(s.avoid, c)
		}
	}
	s.stats.Removed++
}

// dropAsk removes h's outstanding ask for c, reporting whether there was one.
// It does not touch h.inflight.
func (s *Scheduler) dropAsk(c Chunk, h *holder) bool {
	as := s.asks[c]
	for i, a := range as {
		if a.h == h {
			as[i] = as[len(as)-1]
			s.asks[c] = as[:len(as)-1]
			s.pending--
			if len(s.asks[c]) == 0 {
				s.clearAsked(c)
			}
			return true
		}
	}
	return false
}

func (s *Scheduler) clearAsked(c Chunk) { s.asked.w[c>>6] &^= 1 << (uint(c) & 63) }

// eligible fills s.elig with the holders that may be asked now.
func (s *Scheduler) eligible(now time.Time) []*holder {
	s.elig = s.elig[:0]
	for _, h := range s.order {
		if len(h.inflight) < s.cfg.PerPeer && h.count > 0 && !now.Before(h.retryAt) {
			s.elig = append(s.elig, h)
		}
	}
	return s.elig
}

// Next is the next chunk to ask, and of whom, within the limits; false: there
// is nothing to ask now (all held or in flight, limits reached, or no holder
// has what is missing: see Stuck and Wake). The caller MUST report every
// assignment it is given, once, with Done or Failed (or drop its holder with
// RemoveHolder): until then it counts against the limits.
//
// Policy: among the chunks neither held nor in flight that some eligible
// holder (under PerPeer, not backing off) has, the rarest (fewest live
// holders plus other pullers fetching it, SetPending), except that a chunk
// only full holders have and another puller is fetching is asked only when
// nothing else is in flight, and then after every other chunk (rather than
// ask a full holder for it again, this puller waits for that puller's
// copy; asking it when idle keeps the pull from waiting on a puller that
// is slow or gone); ties
// broken by a hash of the chunk and Config.Seed; asked of the
// least-loaded eligible holder that has it (fewest chunks in flight from this
// puller), then the one with fewer chunks (a partial copy, sparing full
// holders everyone can use), then a hash of its ID; a holder whose request
// for this chunk failed is passed over while another has it. Only when no
// such chunk is left, a chunk outstanding at least SlowAfter is asked again
// of an eligible holder not yet asked for it, the longest-waiting first.
func (s *Scheduler) Next(now time.Time) (Assignment, bool) {
	if s.pending >= s.cfg.PerPull || s.n == 0 {
		return Assignment{}, false
	}
	elig := s.eligible(now)
	if len(elig) == 0 {
		return Assignment{}, false
	}
	u := s.scratch
	clear(u)
	for _, h := range elig {
		for i, w := range h.have.w {
			u[i] |= w
		}
	}
	// A chunk's rank: its rarity (holders plus other pullers fetching it).
	// One only full holders have and another puller is fetching is left to
	// be had from that puller while this one has other chunks in flight,
	// and ranks after every other chunk when it has none.
	spare := int64(len(s.order)+len(s.others)) + 1
	busy := s.pending > 0
	best, bestRank, bestKey := Chunk(-1), int64(0), uint64(0)
	for i, w := range u {
		w &^= s.have.w[i] | s.asked.w[i]
		for w != 0 {
			c := Chunk(i*64 + trailingZeros(w))
			w &= w - 1
			f := s.fetching[c]
			r := int64(s.avail[c]) + int64(f)
			if f > 0 && int(s.avail[c]) == s.full {
				if busy {
					continue
				}
				r += spare
			}
			if best >= 0 && r > bestRank {
				continue
			}
			k := s.keys[c]
			if best < 0 || r < bestRank || k < bestKey {
				best, bestRank, bestKey = c, r, k
			}
		}
	}
	if best >= 0 {
		h := s.pick(elig, best, nil)
		return s.assign(best, h, now, false), true
	}
	if s.cfg.SlowAfter <= 0 {
		return Assignment{}, false
	}
	var oldest time.Time
	for i, w := range s.asked.w {
		w &^= s.have.w[i]
		for w != 0 {
			c := Chunk(i*64 + trailingZeros(w))
			w &= w - 1
			last := s.lastAsk(c)
			if now.Sub(last) < s.cfg.SlowAfter || (best >= 0 && !last.Before(oldest)) {
				continue
			}
			if h := s.pick(elig, c, s.asks[c]); h != nil {
				best, oldest = c, last
			}
		}
	}
	if best < 0 {
		return Assignment{}, false
	}
	return s.assign(best, s.pick(elig, best, s.asks[best]), now, true), true
}

// Alternative reports whether a's chunk, not yet arrived, could be asked now
// of a holder other than those it is asked of: one that has it, under
// PerPeer and not backing off. A caller that cannot race two asks of one
// chunk (the cluster writes chunks straight into place) uses it to give up a
// slow ask (Failed) only when another holder can take the chunk.
func (s *Scheduler) Alternative(a Assignment, now time.Time) bool {
	if a.Chunk < 0 || int(a.Chunk) >= s.n || s.have.Has(a.Chunk) {
		return false
	}
next:
	for _, h := range s.order {
		if h.id == a.Peer || !h.have.Has(a.Chunk) || len(h.inflight) >= s.cfg.PerPeer || now.Before(h.retryAt) {
			continue
		}
		for _, o := range s.asks[a.Chunk] {
			if o.h == h {
				continue next
			}
		}
		return true
	}
	return false
}

// lastAsk is when chunk c was last asked.
func (s *Scheduler) lastAsk(c Chunk) time.Time {
	var t time.Time
	for _, a := range s.asks[c] {
		if a.at.After(t) {
			t = a.at
		}
	}
	return t
}

// pick is the eligible holder to ask for c (see Next), skipping those already
// asked for it (in busy); nil if none has it.
func (s *Scheduler) pick(elig []*holder, c Chunk, busy []ask) *holder {
	var best *holder
	avoid, hasAvoid := s.avoid[c]
	better := func(h *holder) bool {
		if best == nil {
			return true
		}
		if hasAvoid && (best.id == avoid) != (h.id == avoid) {
			return best.id == avoid
		}
		if len(h.inflight) != len(best.inflight) {
			return len(h.inflight) < len(best.inflight)
		}
		if h.count != best.count {
			return h.count < best.count
		}
		return h.key < best.key
	}
next:
	for _, h := range elig {
		if !h.have.Has(c) {
			continue
		}
		for _, a := range busy {
			if a.h == h {
				continue next
			}
		}
		if better(h) {
			best = h
		}
	}
	return best
}

func (s *Scheduler) assign(c Chunk, h *holder, now time.Time, reask bool) Assignment {
	s.asks[c] = append(s.asks[c], ask{h: h, at: now})
	s.asked.Set(c)
	h.inflight = append(h.inflight, c)
	s.pending++
	s.stats.Assigned++
	if reask {
		s.stats.Reasked++
	}
	off, n := s.Range(c)
	return Assignment{Peer: h.id, Chunk: c, Off: off, Len: n}
}

// release ends a's outstanding ask, reporting whether it was one.
func (s *Scheduler) release(a Assignment) (*holder, bool) {
	if a.Chunk < 0 || int(a.Chunk) >= s.n {
		return nil, false
	}
	h := s.holders[a.Peer]
	if h == nil {
		return nil, false
	}
	for i, c := range h.inflight {
		if c == a.Chunk {
			h.inflight[i] = h.inflight[len(h.inflight)-1]
			h.inflight = h.inflight[:len(h.inflight)-1]
			s.dropAsk(c, h)
			return h, true
		}
	}
	return h, false
}

// Done records that a's chunk arrived. A duplicate (the chunk arrived already,
// from a re-ask) only ends a's ask. An assignment to a removed holder still
// counts: its bytes did arrive.
func (s *Scheduler) Done(a Assignment) {
	if a.Chunk < 0 || int(a.Chunk) >= s.n {
		return
	}
	s.release(a)
	if s.have.Has(a.Chunk) {
		s.stats.Duplicates++
		return
	}
	s.have.Set(a.Chunk)
	delete(s.avoid, a.Chunk)
	if _, ok := s.served[a.Peer]; !ok {
		s.served[a.Peer] = struct{}{}
		s.stats.Sources++
	}
}

// Failed records that a's request failed: its chunk goes back to be asked, of
// another holder if one has it, and a's holder is not asked again before
// now+RetryAfter. An assignment that is not outstanding (already reported,
// or its holder removed) is ignored.
func (s *Scheduler) Failed(a Assignment, now time.Time) {
	h, ok := s.release(a)
	if !ok {
		return
	}
	s.stats.Failed++
	if !s.have.Has(a.Chunk) {
		s.avoid[a.Chunk] = h.id
	}
	if s.cfg.RetryAfter > 0 {
		h.retryAt = now.Add(s.cfg.RetryAfter)
	}
}

// Have is a copy of the chunks that arrived: what this puller may serve.
func (s *Scheduler) Have() Bitmap { return s.have.Clone() }

// Pending is a copy of the chunks asked and not yet arrived: what this
// puller tells the others it is fetching (their SetPending).
func (s *Scheduler) Pending() Bitmap {
	b := s.asked.Clone()
	for i := range b.w {
		b.w[i] &^= s.have.w[i]
	}
	return b
}

// Held reports whether chunk c arrived.
func (s *Scheduler) Held(c Chunk) bool { return s.have.Has(c) }

// Complete reports whether every chunk arrived.
func (s *Scheduler) Complete() bool { return s.have.Count() == s.n }

// Stuck reports whether the pull cannot finish as things are: a chunk is
// missing that no holder has (in flight or not). The caller fails the pull,
// or learns of new holders first.
func (s *Scheduler) Stuck() bool {
	for c := range s.n {
		if !s.have.Has(Chunk(c)) && s.avail[c] == 0 {
			return true
		}
	}
	return false
}

// InFlight is the number of chunks asked of p and not yet reported.
func (s *Scheduler) InFlight(p PeerID) int {
	if h := s.holders[p]; h != nil {
		return len(h.inflight)
	}
	return 0
}

// Outstanding is the number of chunks in flight in all.
func (s *Scheduler) Outstanding() int { return s.pending }

// Holders is the number of holders known (set and not removed).
func (s *Scheduler) Holders() int { return len(s.holders) }

// Stats is what the scheduler did so far.
func (s *Scheduler) Stats() Stats { return s.stats }

// Wake is the earliest time after now at which Next may have something to
// ask because of time alone (a holder's RetryAfter ending, a chunk becoming
// slow); false: nothing waits on the clock, only on Done, Failed and
// holders. A caller with nothing in flight and nothing to wait for is Stuck
// or Complete.
func (s *Scheduler) Wake(now time.Time) (time.Time, bool) {
	var t time.Time
	earlier := func(u time.Time) {
		if u.After(now) && (t.IsZero() || u.Before(t)) {
			t = u
		}
	}
	for _, h := range s.order {
		earlier(h.retryAt)
	}
	if s.cfg.SlowAfter > 0 {
		for i, w := range s.asked.w {
			w &^= s.have.w[i]
			for w != 0 {
				c := Chunk(i*64 + trailingZeros(w))
				w &= w - 1
				earlier(s.lastAsk(c).Add(s.cfg.SlowAfter))
			}
		}
	}
	return t, !t.IsZero()
}

func trailingZeros(w uint64) int { return bits.TrailingZeros64(w) }

// mix is splitmix64's finalizer: a cheap, well-spread hash of x.
func mix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ x>>30) * 0xbf58476d1ce4e5b9
	x = (x ^ x>>27) * 0x94d049bb133111eb
	return x ^ x>>31
}

// hashString is FNV-1a of s.
func hashString(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return h
}

// SeedOf is a Config.Seed for a puller named name (e.g. its address).
func SeedOf(name string) uint64 { return mix(hashString(name)) }

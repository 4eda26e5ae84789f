package swarm

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func bitmapOf(n int, cs ...Chunk) Bitmap {
	b := NewBitmap(n)
	for _, c := range cs {
		b.Set(c)
	}
	return b
}

// drain takes every assignment Next gives now, checking invariants.
func drain(t *testing.T, s *Scheduler, now time.Time) []Assignment {
	t.Helper()
	var as []Assignment
	for {
		a, ok := s.Next(now)
		if err := checkInvariants(s); err != nil {
			t.Fatal(err)
		}
		if !ok {
			return as
		}
		as = append(as, a)
		if len(as) > 10000 {
			t.Fatal("Next never ran out")
		}
	}
}

func peersOf(as []Assignment) []PeerID {
	var ps []PeerID
	for _, a := range as {
		ps = append(ps, a.Peer)
	}
	return ps
}

func TestRange(t *testing.T) {
	for _, tc := range []struct {
		size, chunk int64
		chunks      int
		lastLen     int64
	}{
		{0, 4, 0, 0},
		{1, 4, 1, 1},
		{4, 4, 1, 4},
		{10, 4, 3, 2},
		{12, 4, 3, 4},
		{-5, 4, 0, 0},
		{3 << 20, 0, 3, 1 << 20}, // default chunk size
	} {
		s := New(tc.size, Config{ChunkSize: tc.chunk})
		if s.Chunks() != tc.chunks {
			t.Errorf("size %d chunk %d: %d chunks, want %d", tc.size, tc.chunk, s.Chunks(), tc.chunks)
			continue
		}
		var sum int64
		for c := range s.Chunks() {
			off, n := s.Range(Chunk(c))
			if off != sum {
				t.Errorf("size %d: chunk %d at %d, want %d", tc.size, c, off, sum)
			}
			sum += n
			if c == s.Chunks()-1 && n != tc.lastLen {
				t.Errorf("size %d: last chunk %d bytes, want %d", tc.size, n, tc.lastLen)
			}
		}
		if sum != max(tc.size, 0) {
			t.Errorf("size %d: chunks cover %d bytes", tc.size, sum)
		}
		if s.Complete() != (tc.chunks == 0) {
			t.Errorf("size %d: Complete %v with nothing held", tc.size, s.Complete())
		}
	}
}

func TestNoHolders(t *testing.T) {
	s := New(10, Config{ChunkSize: 4})
	if _, ok := s.Next(t0); ok {
		t.Fatal("Next assigned with no holders")
	}
	if !s.Stuck() {
		t.Fatal("not Stuck with no holders")
	}
	s.SetHolder("a", FullBitmap(3))
	if s.Stuck() {
		t.Fatal("Stuck with a full holder")
	}
	empty := New(0, Config{})
	if empty.Stuck() || !empty.Complete() {
		t.Fatal("an empty object is Complete, never Stuck")
	}
	if _, ok := empty.Next(t0); ok {
		t.Fatal("Next assigned a chunk of an empty object")
	}
}

func TestLimits(t *testing.T) {
	for _, tc := range []struct {
		name            string
		perPeer, perPul int
		holders         int
		want            int // assignments at once
	}{
		{"per peer", 2, 16, 1, 2},
		{"per peer, two holders", 2, 16, 2, 4},
		{"per pull", 4, 5, 3, 5},
		{"defaults", 0, 0, 1, DefaultPerPeer},
		{"defaults, many holders", 0, 0, 10, DefaultPerPull},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := New(100, Config{ChunkSize: 1, PerPeer: tc.perPeer, PerPull: tc.perPul})
			for i := range tc.holders {
				s.SetHolder(PeerID(rune('a'+i)), FullBitmap(100))
			}
			as := drain(t, s, t0)
			if len(as) != tc.want {
				t.Fatalf("%d assignments at once, want %d", len(as), tc.want)
			}
			s.Done(as[0])
			if more := drain(t, s, t0); len(more) != 1 {
				t.Fatalf("after one Done, %d more assignments, want 1", len(more))
			}
		})
	}
}

func TestRarestFirst(t *testing.T) {
	// a has 0,1; b has 1,2: chunks 0 and 2 are rarer than 1.
	s := New(3, Config{ChunkSize: 1, PerPeer: 10})
	s.SetHolder("a", bitmapOf(3, 0, 1))
	s.SetHolder("b", bitmapOf(3, 1, 2))
	as := drain(t, s, t0)
	if len(as) != 3 {
		t.Fatalf("%d assignments, want 3", len(as))
	}
	if as[2].Chunk != 1 {
		t.Fatalf("chunk 1 (two holders) asked before a rarer one: %v", as)
	}
	if as[0].Peer == as[1].Peer {
		t.Fatalf("the two rare chunks asked of one holder: %v", as)
	}
}

// TestPending: chunks other pullers are fetching (SetPending) are asked
// after those nobody fetches, and only of holders that have them.
func TestPending(t *testing.T) {
	type other struct {
		p       PeerID
		pending []Chunk
	}
	for _, tc := range []struct {
		name    string
		holders map[PeerID][]Chunk // nil: a full holder
		others  []other
		want    [][]Chunk // groups of chunks in the order asked (within a group, the seed's order)
		wantOf  []PeerID
	}{
		{"fetched elsewhere goes last", map[PeerID][]Chunk{"origin": nil}, []other{{"q", []Chunk{0, 1}}},
			[][]Chunk{{2, 3}, {0, 1}}, []PeerID{"origin", "origin", "origin", "origin"}},
		{"more fetchers, later still", map[PeerID][]Chunk{"origin": nil}, []other{{"q", []Chunk{0, 1, 2}}, {"r", []Chunk{1}}},
			[][]Chunk{{3}, {0, 2}, {1}}, nil},
		{"a non-holder's pending makes it no holder", map[PeerID][]Chunk{"b": {0, 1}}, []other{{"q", []Chunk{0, 2, 3}}},
			[][]Chunk{{1}, {0}}, []PeerID{"b", "b"}},
		{"a partial holder's chunk fetched elsewhere is not spared", map[PeerID][]Chunk{"origin": nil, "b": {0}}, []other{{"q", []Chunk{0, 1}}},
			[][]Chunk{{2, 3}, {0}, {1}}, []PeerID{"origin", "origin", "b", "origin"}},
		{"forgotten", map[PeerID][]Chunk{"origin": nil}, []other{{"q", []Chunk{0, 1}}, {"q", nil}},
			nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := New(4, Config{ChunkSize: 1, PerPeer: 1, PerPull: 1})
			for _, p := range []PeerID{"origin", "b"} {
				if cs, ok := tc.holders[p]; ok && cs == nil {
					s.SetHolder(p, FullBitmap(4))
				} else if ok {
					s.SetHolder(p, bitmapOf(4, cs...))
				}
			}
			for _, o := range tc.others {
				s.SetPending(o.p, bitmapOf(4, o.pending...))
			}
			var got []Chunk
			var of []PeerID
			for {
				as := drain(t, s, t0)
				if len(as) == 0 {
					break
				}
				got, of = append(got, as[0].Chunk), append(of, as[0].Peer)
				s.Done(as[0])
			}
			if tc.want == nil {
				if len(got) != 4 || len(s.others) != 0 {
					t.Fatalf("asked %v with %d others recorded, want all 4 and none", got, len(s.others))
				}
				return
			}
			var want []Chunk
			for _, g := range tc.want {
				k := len(want)
				for _, c := range got[k:min(len(got), k+len(g))] {
					if slices.Contains(g, c) {
						want = append(want, c)
					}
				}
				if len(want) != k+len(g) {
					want = append(want[:k], g...)
				}
			}
			if fmt.Sprint(got) != fmt.Sprint(want) || tc.wantOf != nil && fmt.Sprint(of) != fmt.Sprint(tc.wantOf) {
				t.Fatalf("asked %v of %v, want %v of %v", got, of, tc.want, tc.wantOf)
			}
			if p := s.Pending(); p.Count() != 0 {
				t.Fatalf("%d chunks pending after all arrived", p.Count())
			}
		})
	}
}

func TestPendingBitmap(t *testing.T) {
	s := New(4, Config{ChunkSize: 1, PerPeer: 4})
	s.SetHolder("a", FullBitmap(4))
	as := drain(t, s, t0)
	s.Done(as[0])
	s.Failed(as[1], t0)
	p := s.Pending()
	if p.Count() != 2 || !p.Has(as[2].Chunk) || !p.Has(as[3].Chunk) {
		t.Fatalf("pending %d chunks after 4 asks, one done and one failed; want %v and %v", p.Count(), as[2].Chunk, as[3].Chunk)
	}
}

func TestSeedsSpreadChunks(t *testing.T) {
	// Pullers starting at once from one full holder begin at different chunks.
	first := map[Chunk]bool{}
	for i := range 8 {
		s := New(64, Config{ChunkSize: 1, Seed: SeedOf(string(rune('a' + i)))})
		s.SetHolder("origin", FullBitmap(64))
		a, ok := s.Next(t0)
		if !ok {
			t.Fatal("no assignment")
		}
		first[a.Chunk] = true
	}
	if len(first) < 4 {
		t.Fatalf("8 seeded pullers began at only %d distinct chunks", len(first))
	}
}

func TestLeastLoadedThenPartial(t *testing.T) {
	// a is full; b has chunks 0-2 of 4. Chunk 3 (only a) is rarest and goes
	// to a; then b (none in flight) gets the next; then they alternate.
	s := New(4, Config{ChunkSize: 1, PerPeer: 4})
	s.SetHolder("a", FullBitmap(4))
	s.SetHolder("b", bitmapOf(4, 0, 1, 2))
	as := drain(t, s, t0)
	got := peersOf(as)
	if len(as) != 4 || as[0].Chunk != 3 || got[0] != "a" || got[1] != "b" {
		t.Fatalf("assignments %v", as)
	}
	if s.InFlight("a") != 2 || s.InFlight("b") != 2 {
		t.Fatalf("in flight a=%d b=%d, want 2 each", s.InFlight("a"), s.InFlight("b"))
	}
	// At equal load the partial holder goes first: a (chunk 3, rarest), c
	// (least loaded), c (equal load, fewer chunks), a.
	s2 := New(4, Config{ChunkSize: 1, PerPeer: 4})
	s2.SetHolder("a", FullBitmap(4))
	s2.SetHolder("c", bitmapOf(4, 0, 1, 2))
	if got := peersOf(drain(t, s2, t0)); len(got) != 4 || got[0] != "a" || got[1] != "c" || got[2] != "c" || got[3] != "a" {
		t.Fatalf("holders asked %v, want [a c c a]", got)
	}
}

func TestRemoveHolder(t *testing.T) {
	s := New(8, Config{ChunkSize: 1, PerPeer: 2})
	s.SetHolder("a", FullBitmap(8))
	s.SetHolder("b", FullBitmap(8))
	as := drain(t, s, t0)
	var ofA []Chunk
	for _, a := range as {
		if a.Peer == "a" {
			ofA = append(ofA, a.Chunk)
		}
	}
	if len(ofA) != 2 {
		t.Fatalf("a was asked %d, want 2", len(ofA))
	}
	s.RemoveHolder("a")
	if err := checkInvariants(s); err != nil {
		t.Fatal(err)
	}
	for _, a := range as {
		if a.Peer == "b" {
			s.Done(a)
		}
	}
	re := drain(t, s, t0)
	for _, a := range re {
		if a.Peer != "b" {
			t.Fatalf("removed holder assigned: %v", a)
		}
	}
	got := map[Chunk]bool{}
	for _, a := range re {
		got[a.Chunk] = true
	}
	for i := 0; !s.Complete(); i++ {
		for _, a := range re {
			s.Done(a)
		}
		re = drain(t, s, t0)
		if i > 10 {
			t.Fatal("pull with one holder never completed")
		}
	}
	for _, c := range ofA {
		if !s.Held(c) {
			t.Fatalf("chunk %d lost with a never arrived", c)
		}
	}
	s.RemoveHolder("b")
	if s.Holders() != 0 || s.Stuck() {
		t.Fatalf("holders %d stuck %v after completing", s.Holders(), s.Stuck())
	}
	// A late Done of a removed holder's assignment still counts; Failed is ignored.
	s3 := New(2, Config{ChunkSize: 1})
	s3.SetHolder("a", FullBitmap(2))
	a1, _ := s3.Next(t0)
	a2, _ := s3.Next(t0)
	s3.RemoveHolder("a")
	s3.Done(a1)
	s3.Failed(a2, t0)
	if !s3.Held(a1.Chunk) || s3.Held(a2.Chunk) || s3.Stats().Failed != 0 || !s3.Stuck() {
		t.Fatalf("late reports of a removed holder: held %v %v, stats %+v, stuck %v", s3.Held(a1.Chunk), s3.Held(a2.Chunk), s3.Stats(), s3.Stuck())
	}
	if err := checkInvariants(s3); err != nil {
		t.Fatal(err)
	}
}

func TestFailed(t *testing.T) {
	s := New(1, Config{ChunkSize: 1, RetryAfter: time.Second})
	s.SetHolder("a", FullBitmap(1))
	s.SetHolder("b", FullBitmap(1))
	a, _ := s.Next(t0)
	s.Failed(a, t0)
	b, ok := s.Next(t0)
	if !ok || b.Peer == a.Peer || b.Chunk != 0 {
		t.Fatalf("after %s failed, got %v %v, want the other holder", a.Peer, b, ok)
	}
	s.Failed(b, t0.Add(time.Millisecond))
	// Both back off: nothing now, a wake at the first's retry.
	if c, ok := s.Next(t0.Add(2 * time.Millisecond)); ok {
		t.Fatalf("holders backing off were asked: %v", c)
	}
	w, ok := s.Wake(t0.Add(2 * time.Millisecond))
	if !ok || !w.Equal(t0.Add(time.Second)) {
		t.Fatalf("Wake %v %v, want %v", w, ok, t0.Add(time.Second))
	}
	c, ok := s.Next(w)
	if !ok || c.Peer != a.Peer {
		t.Fatalf("at wake got %v %v, want %s again", c, ok, a.Peer)
	}
	s.Done(c)
	if !s.Complete() || s.Stats().Failed != 2 {
		t.Fatalf("complete %v stats %+v", s.Complete(), s.Stats())
	}
}

func TestSlowAfter(t *testing.T) {
	s := New(2, Config{ChunkSize: 1, SlowAfter: time.Second})
	s.SetHolder("a", FullBitmap(2))
	s.SetHolder("b", bitmapOf(2, 0))
	// Chunk 1 only a has: a. Chunk 0: b (least loaded).
	as := drain(t, s, t0)
	if len(as) != 2 {
		t.Fatalf("assignments %v", as)
	}
	var slowB Assignment
	for _, a := range as {
		if a.Peer == "a" {
			s.Done(a)
		} else {
			slowB = a
		}
	}
	if more := drain(t, s, t0.Add(999*time.Millisecond)); len(more) != 0 {
		t.Fatalf("re-asked before SlowAfter: %v", more)
	}
	if w, ok := s.Wake(t0); !ok || !w.Equal(t0.Add(time.Second)) {
		t.Fatalf("Wake %v %v", w, ok)
	}
	re := drain(t, s, t0.Add(time.Second))
	if len(re) != 1 || re[0].Peer != "a" || re[0].Chunk != slowB.Chunk {
		t.Fatalf("re-ask %v, want chunk %d of a", re, slowB.Chunk)
	}
	s.Done(re[0])
	s.Done(slowB) // the slow one arrives too: a duplicate
	st := s.Stats()
	if !s.Complete() || st.Reasked != 1 || st.Duplicates != 1 || st.Sources != 1 || s.Outstanding() != 0 {
		t.Fatalf("complete %v outstanding %d stats %+v", s.Complete(), s.Outstanding(), st)
	}
	// No holder left to re-ask: nothing.
	s2 := New(1, Config{ChunkSize: 1, SlowAfter: time.Second})
	s2.SetHolder("a", FullBitmap(1))
	s2.Next(t0)
	if more := drain(t, s2, t0.Add(time.Hour)); len(more) != 0 {
		t.Fatalf("re-asked of the holder already asked: %v", more)
	}
}

func TestStuck(t *testing.T) {
	s := New(3, Config{ChunkSize: 1})
	s.SetHolder("a", bitmapOf(3, 0, 1))
	if !s.Stuck() {
		t.Fatal("chunk 2 has no holder, not Stuck")
	}
	for _, a := range drain(t, s, t0) {
		s.Done(a)
	}
	if !s.Stuck() || s.Complete() {
		t.Fatal("Stuck must stay while chunk 2 has no holder")
	}
	s.SetHolder("b", bitmapOf(3, 2))
	if s.Stuck() {
		t.Fatal("Stuck after b brought chunk 2")
	}
	// A holder that learns more is updated in place.
	s.SetHolder("a", FullBitmap(3))
	s.RemoveHolder("b")
	if s.Stuck() {
		t.Fatal("a now has chunk 2")
	}
	as := drain(t, s, t0)
	if len(as) != 1 || as[0].Peer != "a" {
		t.Fatalf("assignments %v", as)
	}
	s.Done(as[0])
	if !s.Complete() || s.Stuck() {
		t.Fatal("not complete")
	}
}

func TestBitmapWire(t *testing.T) {
	for _, n := range []int{0, 1, 7, 8, 9, 63, 64, 65, 1000} {
		b := NewBitmap(n)
		for c := 0; c < n; c += 3 {
			b.Set(Chunk(c))
		}
		enc := b.Append([]byte("x"))
		if len(enc)-1 != b.EncodedLen() {
			t.Fatalf("n=%d: %d bytes, EncodedLen %d", n, len(enc)-1, b.EncodedLen())
		}
		var d Bitmap
		rest, err := d.Decode(append(enc[1:], 'y'))
		if err != nil || string(rest) != "y" || !d.Equal(b) || d.Count() != (n+2)/3 {
			t.Fatalf("n=%d: decode %v rest %q equal %v", n, err, rest, d.Equal(b))
		}
		if f := FullBitmap(n); f.Count() != n || !f.Full() {
			t.Fatalf("FullBitmap(%d) has %d", n, f.Count())
		}
	}
	for _, tc := range []struct {
		name string
		in   []byte
	}{
		{"empty", nil},
		{"truncated", []byte{16, 0xff}},
		{"bits past length", []byte{3, 0x08}},
		{"overlong length", []byte{0x81, 0x00}},
		{"too many chunks", []byte{0x80, 0x80, 0x80, 0x10}},
	} {
		b := bitmapOf(2, 1)
		if _, err := b.Decode(tc.in); !errors.Is(err, ErrBitmap) {
			t.Errorf("%s: err %v, want ErrBitmap", tc.name, err)
		}
		if !b.Equal(bitmapOf(2, 1)) {
			t.Errorf("%s: a failed Decode changed the bitmap", tc.name)
		}
	}
	var b Bitmap
	b.Set(3)
	if b.Has(3) || b.Has(-1) || b.Len() != 0 {
		t.Fatal("the zero Bitmap holds nothing")
	}
}

func TestAlternative(t *testing.T) {
	s := New(2, Config{ChunkSize: 1, PerPeer: 1, RetryAfter: time.Second})
	s.SetHolder("a", FullBitmap(2))
	a0, _ := s.Next(t0)
	if s.Alternative(a0, t0) {
		t.Fatal("an alternative with one holder")
	}
	s.SetHolder("b", bitmapOf(2, 1-a0.Chunk))
	if s.Alternative(a0, t0) {
		t.Fatal("b lacks the chunk, yet is an alternative")
	}
	s.SetHolder("b", FullBitmap(2))
	if !s.Alternative(a0, t0) {
		t.Fatal("b has the chunk and room: an alternative")
	}
	b1, _ := s.Next(t0) // b's one slot taken
	if b1.Peer != "b" || s.Alternative(a0, t0) {
		t.Fatalf("b is full (%v), yet an alternative", b1)
	}
	s.Failed(a0, t0) // a backs off; the chunk goes back
	s.Done(b1)
	c, ok := s.Next(t0)
	if !ok || c.Peer != "b" || c.Chunk != a0.Chunk {
		t.Fatalf("after a's failure got %v %v, want its chunk of b", c, ok)
	}
	if s.Alternative(c, t0) {
		t.Fatal("a is backing off, yet an alternative")
	}
	if !s.Alternative(c, t0.Add(time.Second)) {
		t.Fatal("a's backoff is over: an alternative")
	}
	s.Done(c)
	if s.Alternative(c, t0.Add(time.Second)) || !s.Complete() {
		t.Fatal("an arrived chunk has no alternative")
	}
}

// TestPendingWaitsWhileBusy: a chunk only the full holder has and another
// puller fetches is not asked while anything else is in flight.
func TestPendingWaitsWhileBusy(t *testing.T) {
	s := New(4, Config{ChunkSize: 1, PerPeer: 4})
	s.SetHolder("origin", FullBitmap(4))
	s.SetPending("q", bitmapOf(4, 0, 1, 2))
	as := drain(t, s, t0)
	if len(as) != 1 || as[0].Chunk != 3 {
		t.Fatalf("asked %v while chunk 3 was in flight, want only chunk 3", as)
	}
	s.SetHolder("q", bitmapOf(4, 0)) // q's chunk 0 arrived: ask it of q
	as = drain(t, s, t0)
	if len(as) != 1 || as[0].Chunk != 0 || as[0].Peer != "q" {
		t.Fatalf("asked %v, want chunk 0 of q", as)
	}
	s.Done(as[0])
	s.Done(Assignment{Peer: "origin", Chunk: 3, Off: 3, Len: 1})
	as = drain(t, s, t0) // idle: the chunks q fetches are asked of the origin, one at a time
	if len(as) != 1 || as[0].Peer != "origin" || (as[0].Chunk != 1 && as[0].Chunk != 2) {
		t.Fatalf("idle, asked %v, want one of chunks 1, 2 of the origin", as)
	}
}

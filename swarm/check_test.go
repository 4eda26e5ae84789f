package swarm

import (
	"fmt"
)

// checkInvariants verifies the scheduler's internal consistency and the limits
// the package doc promises; tests run it after every operation.
func checkInvariants(s *Scheduler) error {
	total := 0
	for c := range s.n {
		as := s.asks[c]
		if s.asked.Has(Chunk(c)) != (len(as) > 0) {
			return fmt.Errorf("chunk %d: asked bit %v with %d asks", c, s.asked.Has(Chunk(c)), len(as))
		}
		total += len(as)
		seen := map[*holder]bool{}
		for _, a := range as {
			if seen[a.h] {
				return fmt.Errorf("chunk %d asked twice of %s", c, a.h.id)
			}
			seen[a.h] = true
			if s.holders[a.h.id] != a.h {
				return fmt.Errorf("chunk %d asked of %s, which is not a holder", c, a.h.id)
			}
			found := false
			for _, k := range a.h.inflight {
				found = found || k == Chunk(c)
			}
			if !found {
				return fmt.Errorf("chunk %d asked of %s, not in its in-flight list", c, a.h.id)
			}
		}
		want := int32(0)
		for _, h := range s.order {
			if h.have.Has(Chunk(c)) {
				want++
			}
		}
		if s.avail[c] != want {
			return fmt.Errorf("chunk %d: avail %d, %d holders have it", c, s.avail[c], want)
		}
		fetching := int32(0)
		for _, b := range s.others {
			if b.Has(Chunk(c)) {
				fetching++
			}
		}
		if s.fetching[c] != fetching {
			return fmt.Errorf("chunk %d: fetching %d, %d other pullers said they fetch it", c, s.fetching[c], fetching)
		}
	}
	if total != s.pending {
		return fmt.Errorf("pending %d, %d asks", s.pending, total)
	}
	if s.pending > s.cfg.PerPull {
		return fmt.Errorf("%d in flight exceeds PerPull %d", s.pending, s.cfg.PerPull)
	}
	full := 0
	for _, h := range s.order {
		if s.n > 0 && h.count == s.n {
			full++
		}
	}
	if full != s.full {
		return fmt.Errorf("full holders %d, counted %d", s.full, full)
	}
	for p, b := range s.others {
		if b.Count() == 0 || b.Len() != s.n {
			return fmt.Errorf("other puller %s recorded with %d of %d chunks pending", p, b.Count(), b.Len())
		}
	}
	inf := 0
	if len(s.order) != len(s.holders) {
		return fmt.Errorf("%d holders in order, %d in the map", len(s.order), len(s.holders))
	}
	for _, h := range s.order {
		if s.holders[h.id] != h {
			return fmt.Errorf("holder %s in order but not the map", h.id)
		}
		if len(h.inflight) > s.cfg.PerPeer {
			return fmt.Errorf("%d in flight to %s exceeds PerPeer %d", len(h.inflight), h.id, s.cfg.PerPeer)
		}
		if h.count != h.have.Count() {
			return fmt.Errorf("holder %s: count %d, bitmap %d", h.id, h.count, h.have.Count())
		}
		inf += len(h.inflight)
	}
	if inf != s.pending {
		return fmt.Errorf("holders' in flight %d, pending %d", inf, s.pending)
	}
	return nil
}

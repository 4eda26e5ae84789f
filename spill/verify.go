package spill

import "fmt"

// Verify checks data, the object's bytes as found at loc by some other route (the
// engine maps spill files directly when memory is full), against the header and
// checksum in the file: an error wrapping ErrCorrupt if they do not match. It reads
// the header from the file and every byte of data.
func (s *Spiller) Verify(id ID, loc Location, data []byte) error {
	if int64(len(data)) != loc.Length {
		return fmt.Errorf("spill: verify object %s at %v: %d bytes given, want %d", id, loc, len(data), loc.Length)
	}
	f, err := s.acquire(loc)
	if err != nil {
		return fmt.Errorf("spill: verify object %s at %v: %w", id, loc, err)
	}
	defer s.release(f)
	var hb [HeaderSize]byte
	if n, err := f.f.ReadAt(hb[:], loc.Offset-HeaderSize); n < HeaderSize {
		return f.corrupt(id, loc, "reading the header: %d of %d bytes: %v", n, HeaderSize, err)
	}
	h, err := decodeHeader(hb[:])
	if err != nil {
		return f.corrupt(id, loc, "%v", err)
	}
	switch {
	case h.id != id:
		return f.corrupt(id, loc, "the header there names object %s", h.id)
	case h.length != loc.Length:
		return f.corrupt(id, loc, "the header says %d bytes, the location %d", h.length, loc.Length)
	}
	if got := dataChecksum(data); got != h.dataSum {
		return f.corrupt(id, loc, "data checksum mismatch: the header says %016x, the data has %016x", h.dataSum, got)
	}
	return nil
}

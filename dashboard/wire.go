package dashboard

import (
	"errors"
	"fmt"
	"unicode/utf8"

	"github.com/fxamacker/cbor/v2"

	"github.com/trovedb/trove"
	"github.com/trovedb/trove/cluster"
)

// The dashboard op, served by every node's dashboard to the others (a layer
// op of cluster.Node.Handle):
//
//	request = version u8 (1) | kind u8 | CBOR body
//	reply   = version u8 (1) | CBOR body
//
//	kind 1 report:  body reportRequest{since}      reply report (figures, samples after since)
//	kind 2 objects: body query                     reply page (≤ window rows, totals)
//	kind 3 object:  body objectRequest{id (16)}    reply here
//
// A later version may add kinds and fields (CBOR maps with integer keys:
// unknown ones are ignored); a node refuses a version it does not know with
// an error saying so. Every decoded body is checked before use: counts,
// lengths, names.
const opDashboard = cluster.FirstLayerOp + 32

const (
	wireVersion = 1

	kindReport  = 1
	kindObjects = 2
	kindObject  = 3

	maxRequest = 4 << 10 // a request's bytes
	maxString  = 256     // any string in a reply (names, IDs, states, errors)
	maxSamples = 3600    // samples in a report: the largest Config.History
)

var errWire = errors.New("dashboard: bad message")

var (
	encMode = func() cbor.EncMode {
		em, err := cbor.EncOptions{Sort: cbor.SortNone}.EncMode()
		if err != nil {
			panic(err)
		}
		return em
	}()
	// decMode bounds what a message may make the decoder allocate; the
	// transport bounds a message's bytes (quic Config.MaxMessage).
	decMode = func() cbor.DecMode {
		dm, err := cbor.DecOptions{
			MaxNestedLevels:  6,
			MaxArrayElements: max(MaxWindow, maxSamples, 2*256),
			MaxMapPairs:      64,
			DupMapKey:        cbor.DupMapKeyEnforcedAPF,
			IndefLength:      cbor.IndefLengthForbidden,
		}.DecMode()
		if err != nil {
			panic(err)
		}
		return dm
	}()
)

type reportRequest struct {
	Since int64 `cbor:"1,keyasint"` // Unix ms: samples after it (and the one before them)
	Last  int   `cbor:"2,keyasint"` // if above 0, at most the last Last of those
}

type objectRequest struct {
	ID []byte `cbor:"1,keyasint"`
}

// report is one node's figures now and its samples after a time.
type report struct {
	Name    string   `cbor:"1,keyasint"`
	Now     Sample   `cbor:"2,keyasint"`
	Samples []Sample `cbor:"3,keyasint"` // oldest first
}

func appendRequest(b []byte, kind byte, body any) ([]byte, error) {
	b = append(b, wireVersion, kind)
	enc, err := encMode.Marshal(body)
	if err != nil {
		return b, fmt.Errorf("dashboard: encode request: %w", err)
	}
	return append(b, enc...), nil
}

func appendReply(b []byte, body any) ([]byte, error) {
	b = append(b, wireVersion)
	enc, err := encMode.Marshal(body)
	if err != nil {
		return b, fmt.Errorf("dashboard: encode reply: %w", err)
	}
	return append(b, enc...), nil
}

// decodeRequest splits a request into its kind and decodes its body into
// the kind's type (reportRequest, query or objectRequest), checked.
func decodeRequest(b []byte) (byte, any, error) {
	switch {
	case len(b) < 2:
		return 0, nil, fmt.Errorf("%w: request of %d bytes", errWire, len(b))
	case b[0] != wireVersion:
		return 0, nil, fmt.Errorf("%w: request version %d, this node speaks %d (upgrade the older node)", errWire, b[0], wireVersion)
	case len(b) > maxRequest:
		return 0, nil, fmt.Errorf("%w: request of %d bytes, over %d", errWire, len(b), maxRequest)
	}
	kind, body := b[1], b[2:]
	switch kind {
	case kindReport:
		var r reportRequest
		if err := decMode.Unmarshal(body, &r); err != nil {
			return kind, nil, fmt.Errorf("%w: report request: %w", errWire, err)
		}
		return kind, r, nil
	case kindObjects:
		var q query
		if err := decMode.Unmarshal(body, &q); err != nil {
			return kind, nil, fmt.Errorf("%w: objects request: %w", errWire, err)
		}
		if err := q.check(); err != nil {
			return kind, nil, fmt.Errorf("%w: objects request: %w", errWire, err)
		}
		return kind, q, nil
	case kindObject:
		var r objectRequest
		if err := decMode.Unmarshal(body, &r); err != nil {
			return kind, nil, fmt.Errorf("%w: object request: %w", errWire, err)
		}
		if len(r.ID) != len(trove.ObjectID{}) {
			return kind, nil, fmt.Errorf("%w: object request: ID of %d bytes", errWire, len(r.ID))
		}
		return kind, r, nil
	}
	return kind, nil, fmt.Errorf("%w: request kind %d unknown (a newer node asked: upgrade this one)", errWire, kind)
}

// decodeReply decodes a reply into v (a *report, *page or *here) and checks it.
func decodeReply(b []byte, v any) error {
	if len(b) < 1 || b[0] != wireVersion {
		return fmt.Errorf("%w: reply version", errWire)
	}
	if err := decMode.Unmarshal(b[1:], v); err != nil {
		return fmt.Errorf("%w: reply: %w", errWire, err)
	}
	var err error
	switch v := v.(type) {
	case *report:
		err = checkReport(v)
	case *page:
		err = checkPage(v)
	case *here:
		err = checkHere(v)
	default:
		return fmt.Errorf("dashboard: decodeReply into %T", v)
	}
	if err != nil {
		return fmt.Errorf("%w: reply: %w", errWire, err)
	}
	return nil
}

func checkStrings(ss ...string) error {
	for _, s := range ss {
		if len(s) > maxString || !utf8.ValidString(s) {
			return fmt.Errorf("a string of %d bytes, over %d or not UTF-8", len(s), maxString)
		}
	}
	return nil
}

func checkCounts(ns ...int64) error {
	for _, n := range ns {
		if n < 0 {
			return fmt.Errorf("a negative figure %d", n)
		}
	}
	return nil
}

func checkSample(s *Sample) error {
	return checkCounts(s.Puts, s.Gets, s.Frees, s.Pulls, s.Spills, s.Restores, s.Evictions, s.BytesIn, s.BytesOut,
		s.Objects, s.ObjectBytes, s.Used, s.Capacity, s.PinnedBytes, s.SpilledBytes)
}

func checkReport(r *report) error {
	if err := checkStrings(r.Name); err != nil {
		return err
	}
	if err := checkSample(&r.Now); err != nil {
		return err
	}
	if len(r.Samples) > maxSamples {
		return fmt.Errorf("%d samples, over %d", len(r.Samples), maxSamples)
	}
	for i := range r.Samples {
		if err := checkSample(&r.Samples[i]); err != nil {
			return err
		}
		if i > 0 && r.Samples[i].T < r.Samples[i-1].T {
			return errors.New("samples out of order")
		}
	}
	return nil
}

func checkPage(p *page) error {
	if len(p.Rows) > MaxWindow {
		return fmt.Errorf("%d rows, over %d", len(p.Rows), MaxWindow)
	}
	t := p.Totals
	if err := checkCounts(int64(t.Rows), t.Bytes, t.InMemory, t.Spilled, t.Pinned); err != nil {
		return err
	}
	if t.Rows < len(p.Rows) {
		return fmt.Errorf("totals of %d rows for %d listed", t.Rows, len(p.Rows))
	}
	for i := range p.Rows {
		r := &p.Rows[i]
		if err := checkStrings(r.ID, r.Node, r.Owner, r.Role, r.State, r.Where, r.CallFunction); err != nil {
			return err
		}
		if err := checkCounts(r.Size, int64(r.LocalRefs), int64(r.Views), int64(r.CapturedIn), int64(r.Borrowers), int64(r.Copies), int64(r.Calls)); err != nil {
			return err
		}
	}
	return nil
}

func checkHere(h *here) error {
	c := &h.Copy
	if err := checkStrings(c.Node, c.Role, c.State, c.Where, c.CallFunction); err != nil {
		return err
	}
	if err := checkCounts(c.Size, int64(c.LocalRefs), int64(c.Views), int64(c.CapturedIn), int64(c.Calls), int64(h.ContainsCount), int64(h.ContainedByCount)); err != nil {
		return err
	}
	if len(h.Contains) > h.ContainsCount || len(h.ContainedBy) > h.ContainedByCount || len(h.Holders) > 1024 || len(h.Borrowers) > 1024 {
		return errors.New("lists longer than their counts or bounds")
	}
	if err := checkStrings(h.Contains...); err != nil {
		return err
	}
	if err := checkStrings(h.ContainedBy...); err != nil {
		return err
	}
	for _, x := range h.Holders {
		if err := checkStrings(x.Node); err != nil {
			return err
		}
		if err := checkCounts(int64(x.Chunks), int64(x.Of)); err != nil {
			return err
		}
	}
	for _, x := range h.Borrowers {
		if err := checkStrings(x.Node); err != nil {
			return err
		}
		if err := checkCounts(int64(x.Registrations)); err != nil {
			return err
		}
	}
	return nil
}

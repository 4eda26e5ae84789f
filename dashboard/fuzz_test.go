package dashboard

import (
	"testing"

	"github.com/trovedb/trove"
)

// FuzzDecodeRequest: any bytes from a peer decode to a checked request or
// an error, never a panic; a decoded request encodes again to one that
// decodes the same.
func FuzzDecodeRequest(f *testing.F) {
	id := trove.NewObjectID(trove.NewNodeID(), 1)
	for _, r := range []struct {
		kind byte
		body any
	}{
		{kindReport, reportRequest{Since: 1700000000000, Last: 2}},
		{kindObjects, query{Owner: id.Node().String(), Kind: "pinned", Sort: "size", Desc: true, Window: 50}},
		{kindObject, objectRequest{ID: id[:]}},
	} {
		b, err := appendRequest(nil, r.kind, r.body)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{wireVersion, 9, 0xa0})
	f.Fuzz(func(t *testing.T, b []byte) {
		kind, req, err := decodeRequest(b)
		if err != nil {
			return
		}
		again, err := appendRequest(nil, kind, req)
		if err != nil {
			t.Fatal(err)
		}
		kind2, req2, err := decodeRequest(again)
		if err != nil || kind2 != kind {
			t.Fatalf("re-encoded request does not decode: %v", err)
		}
		if q, ok := req2.(query); ok {
			if q.check() != nil {
				t.Fatalf("decoded query fails its check: %+v", q)
			}
		}
	})
}

// FuzzDecodeReply: any bytes decode to a checked reply of each kind or an
// error; a decoded reply encodes to bytes that decode again.
func FuzzDecodeReply(f *testing.F) {
	seeds := []any{
		report{Name: "node-1", Now: Sample{T: 5, Puts: 3, Used: 1 << 20}, Samples: []Sample{{T: 1, Puts: 1}, {T: 2, Puts: 2}}},
		page{Rows: []ObjectRow{{ID: "ab", Node: "node-1", Owner: "node-2", Role: "copy", Size: 7, State: "sealed", Where: "memory", Views: 1}},
			Totals: Totals{Rows: 3, Bytes: 21, InMemory: 21}},
		here{Found: true, Copy: ObjectCopy{Node: "node-1", Role: "primary", Size: 9}, Contains: []string{"cd"}, ContainsCount: 1,
			Owner: true, Holders: []Holding{{Node: "node-2", Chunks: 2, Of: 4}}, Borrowers: []BorrowingNode{{Node: "node-2", Registrations: 1}}},
	}
	for _, s := range seeds {
		b, err := appendReply(nil, s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, v := range []any{&report{}, &page{}, &here{}} {
			if err := decodeReply(b, v); err != nil {
				continue
			}
			again, err := appendReply(nil, v)
			if err != nil {
				t.Fatal(err)
			}
			if err := decodeReply(again, v); err != nil {
				t.Fatalf("re-encoded %T does not decode: %v", v, err)
			}
		}
	})
}

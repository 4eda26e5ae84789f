package task

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/trovedb/trove"
)

var whereArgsFn = Define2("test.whereargs", func(ctx context.Context, xs []float64, s string) (string, error) {
	return FromContext(ctx).Node().Name(), nil
})

// A call whose ref arguments other nodes own runs where most of their bytes
// are: the caller asks their owners (opWhere) instead of counting each as
// one byte at its owner (which made the name order decide between a large
// and a small argument).
func TestPlacementForeignArgs(t *testing.T) {
	tc := newCluster(t, 3, nil)
	ctx := testCtx(t)
	a := tc.rts[0]
	for _, tt := range []struct {
		big, small int // the nodes owning the large and the small argument
		want       string
	}{
		{big: 2, small: 1, want: "node-c"},
		{big: 1, small: 2, want: "node-b"},
	} {
		bigRef, err := trove.PutValue(ctx, tc.rts[tt.big], make([]float64, 1<<16)) // 512 KiB
		if err != nil {
			t.Fatal(err)
		}
		smallRef, err := trove.PutValue(ctx, tc.rts[tt.small], "x")
		if err != nil {
			t.Fatal(err)
		}
		// node-a holds handles on both, not their bytes.
		bigA, smallA := mustBorrow(t, a, bigRef), mustBorrow(t, a, smallRef)
		r, err := whereArgsFn.Remote(ctx, a, Ref[[]float64](bigA), Ref[string](smallA))
		if err != nil {
			t.Fatal(err)
		}
		if got := get[string](t, a, r); got != tt.want {
			t.Errorf("a call with 512 KiB owned by %s and 1 byte by %s ran on %s, want %s",
				tc.nodes[tt.big].Name(), tc.nodes[tt.small].Name(), got, tt.want)
		}
		for _, x := range []trove.Ref{r, bigA, smallA, bigRef, smallRef} {
			x.Drop()
		}
	}
}

// FuzzDecodeWhere feeds arbitrary bytes to the opWhere decoders (request
// and reply): no panic, errMessage on refusal, and what is accepted
// re-encodes to the same bytes.
func FuzzDecodeWhere(f *testing.F) {
	f.Add(appendWhereReq(nil, fuzzFrom, []trove.ObjectID{fuzzID, fuzzID}))
	f.Add(appendWhereReply(nil, []where{{size: 10, holders: []trove.NodeID{fuzzFrom}}, {}}))
	f.Fuzz(func(t *testing.T, b []byte) {
		if from, ids, err := decodeWhereReq(b); err != nil {
			if !errors.Is(err, errMessage) {
				t.Fatalf("request: error %v is not errMessage", err)
			}
		} else if again := appendWhereReq(nil, from, ids); !bytes.Equal(again, b) || len(ids) == 0 || len(ids) > maxArgs {
			t.Fatalf("request re-encoded %x, want %x (%d ids)", again, b, len(ids))
		}
		for _, n := range []int{0, 1, 2, 5} {
			ws, err := decodeWhereReply(b, n)
			if err != nil {
				if !errors.Is(err, errMessage) {
					t.Fatalf("reply: error %v is not errMessage", err)
				}
				continue
			}
			for _, w := range ws {
				if len(w.holders) > maxWhereHolders || w.size < 0 {
					t.Fatalf("decoded %+v out of bounds", w)
				}
			}
			if again := appendWhereReply(nil, ws); !bytes.Equal(again, b) {
				t.Fatalf("reply re-encoded %x, want %x", again, b)
			}
		}
	})
}

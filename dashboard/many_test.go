package dashboard

import (
	"context"
	"testing"

	"github.com/trovedb/trove"
	"github.com/trovedb/trove/engine"
)

// TestManyObjectsOnePage: a store of 1M objects (100k under -race or
// -short, where 1M Puts take minutes) answers /api/objects with one page of
// limit rows, its size bounded however many objects there are, and totals
// that count them all.
func TestManyObjectsOnePage(t *testing.T) {
	n := 1_000_000
	if raceEnabled || testing.Short() {
		n = 100_000
	}
	st, err := engine.Open(engine.Config{Capacity: 64 << 20})
	if err != nil {
		t.Fatal(err)
	}
	d, err := New(Config{Store: st})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		d.Close()
		requireEmpty(t, st)
		st.Close()
	}()
	ctx := context.Background()
	refs := make([]trove.Ref, 0, n)
	defer func() {
		for _, r := range refs {
			r.Drop()
		}
	}()
	var buf [8]byte
	for i := range n {
		buf[0], buf[1], buf[2] = byte(i), byte(i>>8), byte(i>>16)
		ref, err := st.Put(ctx, buf[:1+i%8])
		if err != nil {
			t.Fatal(err)
		}
		refs = append(refs, ref)
	}
	for _, tc := range []struct {
		path string
		rows int
	}{
		{"/api/objects?limit=50", 50},
		{"/api/objects?limit=1000&sort=id&order=asc", 1000},
		{"/api/objects?offset=8950&limit=1000&sort=size&order=asc", 1000},
	} {
		code, body := get(t, d, tc.path)
		if code != 200 {
			t.Fatalf("%s: %d %s", tc.path, code, body)
		}
		var p ObjectsJSON
		getJSON(t, d, tc.path, &p)
		if len(p.Rows) != tc.rows || p.Totals.Rows != n {
			t.Fatalf("%s: %d rows of %d, want %d of %d", tc.path, len(p.Rows), p.Totals.Rows, tc.rows, n)
		}
		// A row is under 400 bytes of JSON: the page's size follows its rows, not the store's objects.
		if max := tc.rows * 400; len(body) > max {
			t.Fatalf("%s: %d bytes for %d rows, more than %d", tc.path, len(body), tc.rows, max)
		}
		t.Logf("%s: %d rows of %d objects in %d bytes", tc.path, len(p.Rows), n, len(body))
	}
	if code, body := get(t, d, "/api/objects?offset=9500&limit=1000"); code != 400 {
		t.Fatalf("a page past the window: %d %s", code, body)
	}
}

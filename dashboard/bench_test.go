package dashboard

import (
	"context"
	"fmt"
	"testing"

	"github.com/trovedb/trove"
)

// BenchmarkAPIObjects: one memory-page listing (limit=50, largest first) of
// a store of n objects, walked afresh (the listing cache bypassed: what a
// poll costs when its page is stale). core_share_at_1s is the share of one
// core it would take if a browser's poll walked every second (ns/op over
// 1 s); the listing cache bounds it to about 1/listDuty.
func BenchmarkAPIObjects(b *testing.B) {
	for _, n := range []int{10_000, 100_000} {
		b.Run(fmt.Sprintf("objects=%d", n), func(b *testing.B) {
			st, d := openStore(b, Config{})
			refs := make([]trove.Ref, n)
			for i := range refs {
				var err error
				if refs[i], err = st.Put(context.Background(), []byte{byte(i), byte(i >> 8)}); err != nil {
					b.Fatal(err)
				}
			}
			defer func() {
				for _, r := range refs {
					r.Drop()
				}
			}()
			q := query{Sort: "size", Desc: true, Window: 50}
			b.ReportAllocs()
			for b.Loop() {
				if p := d.src.list(q); len(p.Rows) != 50 || p.Totals.Rows != n {
					b.Fatalf("%d rows of %d", len(p.Rows), p.Totals.Rows)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/1e9, "core_share_at_1s")
		})
	}
}

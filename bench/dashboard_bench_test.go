package bench

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/trovedb/trove/dashboard"
)

// BenchmarkDashboardPolling measures what an open dashboard costs the node:
// Put+Get+Release+Drop of one object on a store holding 10,000 others,
// while a client asks the memory page's API as a browser would
// (/api/objects?limit=50, which walks the whole table, then /api/nodes).
//
// The baseline runs in the same benchmark, interleaved, so that both see the
// same load on a shared machine: time is cut into phases of one second,
// alternately "on" (the client asks once at the phase's start: a browser
// polling every second; the page itself asks every 2 s) and "off" (no
// request). x_nopoll is the ops' throughput in the on phases over that in
// the off phases (1 = free; the goal is at least 0.95); on_ns/op and
// off_ns/op are the two phases' times per op. The dashboard's sampler runs
// throughout. Run with -benchtime of 10 s or more, so that each run has
// several phases of each (phases reports how many).
func BenchmarkDashboardPolling(b *testing.B) {
	for _, size := range []int{4 << 10, 1 << 20} {
		b.Run("size="+sizeName(size), func(b *testing.B) {
			st := openStore(b, 256<<20, true)
			putSmall(b, st, 10000)
			d, err := dashboard.New(dashboard.Config{Store: st})
			if err != nil {
				b.Fatal(err)
			}
			defer d.Close()
			srv := httptest.NewServer(d)
			defer srv.Close()
			src := make([]byte, size)
			for i := range src {
				src[i] = byte(i)
			}

			var on atomic.Bool
			var ops [2]atomic.Int64 // by phase: 0 off, 1 on
			var spent [2]time.Duration
			var phases int
			stop := make(chan struct{})
			var wg sync.WaitGroup
			wg.Go(func() {
				client := &http.Client{Timeout: 10 * time.Second}
				for phase := 0; phase < 3600; phase++ { // bounded; stop ends it first
					p := phase % 2
					start := time.Now()
					on.Store(p == 1)
					if p == 1 {
						pollOnce(b, client, srv.URL)
					}
					select {
					case <-stop:
						spent[p] += time.Since(start)
						phases = phase + 1
						return
					case <-time.After(time.Second - time.Since(start)):
					}
					spent[p] += time.Since(start)
				}
			})
			b.SetBytes(int64(size))
			b.ReportAllocs()
			for b.Loop() {
				ref, err := st.Put(ctx, src)
				if err != nil {
					b.Fatal(err)
				}
				obj, err := st.Get(ctx, ref)
				if err != nil {
					b.Fatal(err)
				}
				obj.Release()
				ref.Drop()
				if on.Load() {
					ops[1].Add(1)
				} else {
					ops[0].Add(1)
				}
			}
			close(stop)
			wg.Wait()
			off, onN := ops[0].Load(), ops[1].Load()
			if off == 0 || onN == 0 || spent[0] == 0 || spent[1] == 0 {
				b.Logf("too short for both phases (%d phases): run with -benchtime 10s or more", phases)
				return
			}
			offNs := float64(spent[0].Nanoseconds()) / float64(off)
			onNs := float64(spent[1].Nanoseconds()) / float64(onN)
			b.ReportMetric(offNs/onNs, "x_nopoll")
			b.ReportMetric(onNs, "on_ns/op")
			b.ReportMetric(offNs, "off_ns/op")
			b.ReportMetric(float64(phases), "phases")
		})
	}
}

// pollOnce asks what the memory page asks.
func pollOnce(b *testing.B, client *http.Client, base string) {
	for _, path := range []string{"/api/objects?limit=50", "/api/nodes"} {
		req, _ := http.NewRequestWithContext(context.Background(), http.MethodGet, base+path, nil)
		resp, err := client.Do(req)
		if err != nil {
			b.Error(err)
			return
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			b.Errorf("GET %s: %s", path, resp.Status)
		}
	}
}

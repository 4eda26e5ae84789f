package dashboard

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/trovedb/trove/engine"
	"github.com/trovedb/trove/internal/localcluster"
)

// openStore opens an in-process store and a dashboard of it; both close
// with the test, after checking that the store is empty.
func openStore(t testing.TB, cfg Config) (*engine.Store, *Dashboard) {
	t.Helper()
	st, err := engine.Open(engine.Config{Capacity: 64 << 20})
	if err != nil {
		t.Fatal(err)
	}
	cfg.Store = st
	d, err := New(cfg)
	if err != nil {
		st.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		d.Close()
		requireEmpty(t, st)
		if err := st.Close(); err != nil {
			t.Error(err)
		}
	})
	return st, d
}

// requireEmpty waits (GC included, bounded) until st holds nothing.
func requireEmpty(t testing.TB, st *engine.Store) {
	t.Helper()
	var s engine.Stats
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		runtime.GC()
		st.WaitIdle()
		s = st.Stats()
		if s.Objects == 0 && s.Used == 0 && s.PinnedObjects == 0 && s.Views == 0 && s.RemoteObjects == 0 {
			if err := st.Check(); err != nil {
				t.Fatal(err)
			}
			return
		}
	}
	t.Fatalf("store not empty after every ref was dropped: objects=%d used=%d pinned=%d views=%d remote=%d",
		s.Objects, s.Used, s.PinnedObjects, s.Views, s.RemoteObjects)
}

// openCluster starts an in-process cluster of n nodes, each with a dashboard.
func openCluster(t testing.TB, n int) (*localcluster.Cluster, []*Dashboard) {
	t.Helper()
	c, err := localcluster.Open(context.Background(), localcluster.Config{Nodes: n, Capacity: 64 << 20})
	if err != nil {
		t.Fatal(err)
	}
	ds := make([]*Dashboard, n)
	for i, node := range c.Nodes {
		if ds[i], err = New(Config{Store: node.Local(), Node: node, Interval: 200 * time.Millisecond}); err != nil {
			c.Close()
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		for _, d := range ds {
			d.Close()
		}
		if !t.Failed() {
			if err := c.WaitDrained(context.Background()); err != nil {
				t.Error(err)
			}
		}
		if err := c.Close(); err != nil {
			t.Error(err)
		}
	})
	return c, ds
}

// get serves GET path on h and returns the status and body.
func get(t testing.TB, h http.Handler, path string) (int, []byte) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	body, _ := io.ReadAll(rec.Result().Body)
	return rec.Code, body
}

// getJSON serves GET path, requires 200 and decodes the body into v.
func getJSON(t testing.TB, h http.Handler, path string, v any) {
	t.Helper()
	code, body := get(t, h, path)
	if code != http.StatusOK {
		t.Fatalf("GET %s: %d %s", path, code, body)
	}
	if err := json.Unmarshal(body, v); err != nil {
		t.Fatalf("GET %s: %v in %s", path, err, body)
	}
}

// eventually polls cond (which says what is missing, or "") up to 20 s.
func eventually(t testing.TB, what string, cond func() string) {
	t.Helper()
	var last string
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if last = cond(); last == "" {
			return
		}
	}
	t.Fatal(fmt.Sprintf("%s: %s", what, last))
}

func postRecorder(h http.Handler, path string) int {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, path, strings.NewReader("{}")))
	return rec.Code
}

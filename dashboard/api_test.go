package dashboard

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/trovedb/trove"
	"github.com/trovedb/trove/engine"
)

func TestObjectsPagingAndSort(t *testing.T) {
	st, d := openStore(t, Config{})
	ctx := context.Background()
	var refs []trove.Ref
	for i := range 120 {
		ref, err := st.Put(ctx, make([]byte, 1000+i*37))
		if err != nil {
			t.Fatal(err)
		}
		refs = append(refs, ref)
	}
	defer func() {
		for _, r := range refs {
			r.Drop()
		}
	}()
	for _, tc := range []struct{ sort, order string }{{"size", "desc"}, {"size", "asc"}, {"id", "asc"}, {"id", "desc"}} {
		var seen []ObjectRowJSON
		for off := 0; off < 130; off += 50 {
			var p ObjectsJSON
			getJSON(t, d, fmt.Sprintf("/api/objects?sort=%s&order=%s&offset=%d&limit=50", tc.sort, tc.order, off), &p)
			if p.Totals.Rows != 120 {
				t.Fatalf("%v: totals.rows %d, want 120", tc, p.Totals.Rows)
			}
			if want := min(50, max(120-off, 0)); len(p.Rows) != want {
				t.Fatalf("%v offset %d: %d rows, want %d", tc, off, len(p.Rows), want)
			}
			seen = append(seen, p.Rows...)
		}
		ids := map[string]bool{}
		for i, r := range seen {
			if ids[r.ID] {
				t.Fatalf("%v: %s listed twice across pages", tc, r.ID)
			}
			ids[r.ID] = true
			if i == 0 {
				continue
			}
			prev := seen[i-1]
			var c int
			switch tc.sort {
			case "size":
				c = int(r.Size - prev.Size)
			case "id":
				c = strings.Compare(r.ID, prev.ID)
			}
			if tc.order == "desc" {
				c = -c
			}
			if c < 0 {
				t.Fatalf("%v: row %d (%s %d) out of order after (%s %d)", tc, i, r.ID, r.Size, prev.ID, prev.Size)
			}
		}
		if len(ids) != 120 {
			t.Fatalf("%v: pages listed %d objects, want 120", tc, len(ids))
		}
	}
}

func TestObjectsFilterAndHolders(t *testing.T) {
	st, d := openStore(t, Config{})
	ctx := context.Background()
	inner, err := st.Put(ctx, make([]byte, 200<<10))
	if err != nil {
		t.Fatal(err)
	}
	outer, err := st.PutFunc(ctx, 300<<10, []trove.Ref{inner}, func([]byte) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	plain, err := st.Put(ctx, make([]byte, 10))
	if err != nil {
		t.Fatal(err)
	}
	view, err := st.Get(ctx, plain)
	if err != nil {
		t.Fatal(err)
	}
	b, err := st.Create(ctx, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		b.Abort()
		view.Release()
		for _, r := range []trove.Ref{inner, outer, plain} {
			r.Drop()
		}
	}()
	list := func(kind string) []string {
		var p ObjectsJSON
		getJSON(t, d, "/api/objects?kind="+kind, &p)
		var ids []string
		for _, r := range p.Rows {
			ids = append(ids, r.ID)
		}
		if p.Totals.Rows != len(ids) {
			t.Fatalf("kind=%s: totals.rows %d, %d rows", kind, p.Totals.Rows, len(ids))
		}
		slices.Sort(ids)
		return ids
	}
	sorted := func(ids ...string) []string { slices.Sort(ids); return ids }
	for _, tc := range []struct {
		kind string
		want []string
	}{
		{"captured", sorted(inner.ID().String())},
		{"pinned", sorted(plain.ID().String())},
		{"pending", sorted(b.Ref().ID().String())},
		{"local_ref", sorted(inner.ID().String(), outer.ID().String(), plain.ID().String(), b.Ref().ID().String())},
		{"primary", sorted(inner.ID().String(), outer.ID().String(), plain.ID().String(), b.Ref().ID().String())},
		{"copy", nil},
		{"spilled", nil},
	} {
		if got := list(tc.kind); !slices.Equal(got, tc.want) {
			t.Errorf("kind=%s: %v, want %v", tc.kind, got, tc.want)
		}
	}
	var p ObjectsJSON
	getJSON(t, d, "/api/objects?sort=size", &p)
	if len(p.Rows) != 4 || p.Rows[0].ID != b.Ref().ID().String() || p.Rows[0].State != "pending" {
		t.Fatalf("largest first: %+v", p.Rows)
	}
	if p.Totals.Pinned != 10 || p.Totals.Bytes != 10+200<<10+300<<10+1<<20 {
		t.Fatalf("totals %+v", p.Totals)
	}

	var o ObjectJSON
	getJSON(t, d, "/api/objects/"+inner.ID().String(), &o)
	if o.ContainedByCount != 1 || len(o.ContainedBy) != 1 || o.ContainedBy[0].ID != outer.ID().String() || o.Size != 200<<10 {
		t.Fatalf("inner's detail: %+v", o)
	}
	if len(o.Copies) != 1 || o.Copies[0].Role != "primary" || o.Copies[0].CapturedIn != 1 || o.Copies[0].LocalRefs != 1 {
		t.Fatalf("inner's copies: %+v", o.Copies)
	}
	getJSON(t, d, "/api/objects/"+outer.ID().String(), &o)
	if o.ContainsCount != 1 || !slices.Equal(o.Contains, []string{inner.ID().String()}) {
		t.Fatalf("outer's detail: %+v", o)
	}
}

func TestBadRequests(t *testing.T) {
	_, d := openStore(t, Config{})
	for _, tc := range []struct {
		path string
		code int
		msg  string
	}{
		{"/api/objects?sort=colour", 400, `sort "colour": want one of size, id`},
		{"/api/objects?order=up", 400, "want asc or desc"},
		{"/api/objects?offset=-1", 400, "offset=\"-1\": want a whole number from 0"},
		{"/api/objects?limit=0", 400, "limit=\"0\": want a whole number from 1 to 1000"},
		{"/api/objects?limit=5000", 400, "from 1 to 1000"},
		{"/api/objects?offset=9990&limit=50", 400, "narrow the listing with node=, owner= or kind="},
		{"/api/objects?kind=blue", 400, `kind "blue": want one of primary, copy`},
		{"/api/objects?node=elsewhere", 400, `node="elsewhere": no such member; the members are local`},
		{"/api/objects?owner=elsewhere", 400, `owner="elsewhere": no member`},
		{"/api/objects?colour=red", 400, `unknown parameter "colour"`},
		{"/api/objects/xyz", 400, `object ID "xyz"`},
		{"/api/objects/" + trove.NewObjectID(trove.NewNodeID(), 7).String(), 404, "no node holds it"},
		{"/api/activity?since=yesterday", 400, "want Unix milliseconds"},
		{"/api/calls?state=sleeping", 400, "want queued, running, finished or failed"},
		{"/api/calls?limit=100000", 400, "from 1 to 1000"},
		{"/api/nope", 404, "no endpoint /api/nope"},
	} {
		code, body := get(t, d, tc.path)
		var e errorJSON
		if err := json.Unmarshal(body, &e); err != nil {
			t.Errorf("%s: body %q is not a JSON error: %v", tc.path, body, err)
			continue
		}
		if code != tc.code || !strings.Contains(e.Error, tc.msg) {
			t.Errorf("%s: %d %q, want %d with %q", tc.path, code, e.Error, tc.code, tc.msg)
		}
	}
	rec := postRecorder(d, "/api/objects")
	if rec != http.StatusMethodNotAllowed && rec != http.StatusNotFound {
		t.Errorf("POST /api/objects: %d", rec)
	}
}

func TestPagesServed(t *testing.T) {
	_, d := openStore(t, Config{})
	for _, tc := range []struct{ path, want string }{
		{"/", "<title>trove dashboard</title>"},
		{"/static/app.js", "async function memoryPage"},
		{"/static/style.css", "table.grid"},
		{"/api/", `"/api/nodes"`},
	} {
		code, body := get(t, d, tc.path)
		if code != 200 || !strings.Contains(string(body), tc.want) {
			t.Errorf("GET %s: %d, body without %q", tc.path, code, tc.want)
		}
		// No external requests: nothing the pages load names another host.
		for _, bad := range []string{"http://", "https://", "//cdn", "fonts.googleapis"} {
			if strings.HasPrefix(tc.path, "/static/") || tc.path == "/" {
				if s := strings.ReplaceAll(string(body), "http://www.w3.org/2000/svg", ""); strings.Contains(s, bad) {
					t.Errorf("GET %s names %q: the pages must make no external requests", tc.path, bad)
				}
			}
		}
	}
}

func TestActivityRecordsRates(t *testing.T) {
	st, d := openStore(t, Config{Interval: 20 * time.Millisecond, History: 50})
	ctx := context.Background()
	eventually(t, "a point with puts and gets", func() string {
		ref, err := st.Put(ctx, make([]byte, 64))
		if err != nil {
			return err.Error()
		}
		obj, err := st.Get(ctx, ref)
		if err != nil {
			return err.Error()
		}
		obj.Release()
		ref.Drop()
		var a ActivityJSON
		getJSON(t, d, "/api/activity", &a)
		if len(a.Nodes) != 1 || a.Nodes[0].Node != "local" {
			return fmt.Sprintf("nodes %+v", a.Nodes)
		}
		for _, p := range a.Nodes[0].Points {
			if p.PutsPerSec > 0 && p.GetsPerSec > 0 {
				return ""
			}
		}
		return fmt.Sprintf("%d points, none with puts and gets", len(a.Nodes[0].Points))
	})
	// The ring keeps History samples: the oldest go.
	eventually(t, "the ring bounded", func() string {
		var a ActivityJSON
		getJSON(t, d, "/api/activity?since=0", &a)
		if n := len(a.Nodes[0].Points); n != 49 {
			return fmt.Sprintf("%d points, want History-1 = 49", n)
		}
		return ""
	})
	// since cuts: nothing at or before it is returned.
	var a ActivityJSON
	getJSON(t, d, "/api/activity?since=0", &a)
	cut := a.Nodes[0].Points[40].T
	getJSON(t, d, fmt.Sprintf("/api/activity?since=%d", cut), &a)
	for _, p := range a.Nodes[0].Points {
		if p.T <= cut {
			t.Fatalf("since=%d returned a point at %d", cut, p.T)
		}
	}
	if len(a.Cluster) == 0 {
		t.Fatal("no cluster points")
	}
}

// fakeCalls is a CallsSource with fixed rows.
type fakeCalls struct {
	calls []Call
	err   error
}

func (f fakeCalls) ClusterCalls(_ context.Context, limit int) ([]Call, error) {
	return f.calls[:min(limit, len(f.calls))], f.err
}

func TestCalls(t *testing.T) {
	now := time.Now()
	calls := []Call{
		{ID: "c3", Function: "train", Caller: "node-1", State: CallQueued, Attempt: 1, Submit: now},
		{ID: "c2", Function: "train", Caller: "node-1", Executor: "node-2", State: CallFailed, Attempt: 2, Error: "boom: node-2 died", Submit: now, Start: now, End: now},
		{ID: "c1", Function: "prep", Caller: "node-2", Executor: "node-3", State: CallFinished, Attempt: 1, Submit: now, Start: now, End: now},
	}
	_, d := openStore(t, Config{Calls: fakeCalls{calls: calls}})
	var c CallsJSON
	getJSON(t, d, "/api/calls", &c)
	if !c.Enabled || len(c.Calls) != 3 || c.Counts[CallQueued] != 1 || c.Counts[CallFailed] != 1 || c.Counts[CallFinished] != 1 || c.Counts[CallRunning] != 0 {
		t.Fatalf("calls %+v", c)
	}
	getJSON(t, d, "/api/calls?state=failed", &c)
	if len(c.Calls) != 1 || c.Calls[0].Error != "boom: node-2 died" || c.Counts[CallQueued] != 1 {
		t.Fatalf("failed calls %+v", c)
	}

	_, none := openStore(t, Config{})
	getJSON(t, none, "/api/calls", &c)
	if c.Enabled || len(c.Calls) != 0 || !strings.Contains(c.Message, "no remote functions") {
		t.Fatalf("no source: %+v", c)
	}

	_, broken := openStore(t, Config{Calls: fakeCalls{err: errors.New("runtime closed")}})
	code, body := get(t, broken, "/api/calls")
	if code != http.StatusBadGateway || !strings.Contains(string(body), "runtime closed") {
		t.Fatalf("failing source: %d %s", code, body)
	}

	// Some nodes answered: their calls are listed, the others' error shown.
	_, partial := openStore(t, Config{Calls: fakeCalls{calls: calls[1:], err: errors.New("node node-3: timeout")}})
	getJSON(t, partial, "/api/calls", &c)
	if !c.Enabled || len(c.Calls) != 2 || !strings.Contains(c.Message, "node node-3: timeout") {
		t.Fatalf("partial source: %+v", c)
	}
}

func TestConfigErrors(t *testing.T) {
	if _, err := New(Config{}); err == nil || !strings.Contains(err.Error(), "Store is required") {
		t.Fatalf("no store: %v", err)
	}
	st, _ := openStore(t, Config{})
	if _, err := New(Config{Store: st, History: 1 << 20}); err == nil || !strings.Contains(err.Error(), "History") {
		t.Fatalf("huge history: %v", err)
	}
}

// fakeArgs is a CallArgsSource with fixed holds.
type fakeArgs map[trove.ObjectID]CallArg

func (f fakeArgs) CallArgs() map[trove.ObjectID]CallArg { return f }

// An object live calls hold as an argument is marked (held_by call_arg, the
// calls and a function), filtered by kind=call_arg, and the calls' handles
// are not counted as local refs; its detail says the same.
func TestObjectsCallArgs(t *testing.T) {
	st, _ := openStore(t, Config{})
	ctx := context.Background()
	arg, err := st.Put(ctx, make([]byte, 100))
	if err != nil {
		t.Fatal(err)
	}
	other, err := st.Put(ctx, make([]byte, 10))
	if err != nil {
		t.Fatal(err)
	}
	// The calls' own handles on their argument, as a task runtime's.
	var holds []engine.Hold
	for range 2 {
		h, err := st.HoldRef(arg)
		if err != nil {
			t.Fatal(err)
		}
		holds = append(holds, h)
	}
	d, err := New(Config{Store: st, CallArgs: fakeArgs{arg.ID(): {Calls: 2, Function: "train"}}})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		d.Close()
		for _, h := range holds {
			st.Unhold(h)
		}
		arg.Drop()
		other.Drop()
	}()
	var p ObjectsJSON
	getJSON(t, d, "/api/objects?kind=call_arg", &p)
	if len(p.Rows) != 1 || p.Rows[0].ID != arg.ID().String() || p.Rows[0].Calls != 2 || p.Rows[0].CallFunction != "train" ||
		p.Rows[0].LocalRefs != 1 || !slices.Equal(p.Rows[0].HeldBy, []string{"local_ref", "call_arg"}) {
		t.Fatalf("kind=call_arg: %+v, want the argument: 2 calls of train, 1 local ref (the test's)", p.Rows)
	}
	getJSON(t, d, "/api/objects?kind=local_ref", &p)
	if len(p.Rows) != 2 {
		t.Fatalf("kind=local_ref: %d rows, want both objects", len(p.Rows))
	}
	var o ObjectJSON
	getJSON(t, d, "/api/objects/"+arg.ID().String(), &o)
	if len(o.Copies) != 1 || o.Copies[0].Calls != 2 || o.Copies[0].CallFunction != "train" || o.Copies[0].LocalRefs != 1 {
		t.Fatalf("detail: %+v", o.Copies)
	}
}

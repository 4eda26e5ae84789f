package dashboard

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/trovedb/trove"
	"github.com/trovedb/trove/task"
)

var screenshots = flag.String("screenshots", "", "write the browser test's screenshots of each page into this directory (make dashboard-screenshots: docs/)")

// chromium finds the headless browser: $CHROMIUM, or Debian's chromium
// (scripts/chromium.sh installs it).
func chromium(t *testing.T) string {
	if p := os.Getenv("CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Skip("no chromium to drive: install it with scripts/chromium.sh (Debian's chromium package), or set $CHROMIUM")
	return ""
}

// The browser test's functions (node-1 calls them; every node's runtime
// runs them).
var (
	tPreprocess = task.Define1("dashboard-test.preprocess", func(ctx context.Context, x int) (int, error) { return 2 * x, nil })
	tTrain      = task.Define1("dashboard-test.train", func(ctx context.Context, model string) (int, error) {
		return 0, fmt.Errorf("train %s: out of memory (raise -capacity)", model)
	})
	// tHold needs the GPU and waits for the running test's release (or its
	// context: the caller's bound).
	tHold = task.Define1("dashboard-test.hold", func(ctx context.Context, x int) (int, error) {
		select {
		case <-*browserRelease.Load():
			return x, nil
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}).Options(task.Resource("GPU", 1))
	browserRelease atomic.Pointer[chan struct{}]
)

// taskCalls is a CallsSource over a task runtime, as troved's runtimeCalls
// (cmd/troved/calls.go) is: attempts from 1, no executor while queued, most
// recent first.
type taskCalls struct{ rt *task.Runtime }

func (s taskCalls) ClusterCalls(ctx context.Context, limit int) ([]Call, error) {
	reps, err := s.rt.ClusterCalls(ctx, min(limit, task.MaxCallsLimit))
	var out []Call
	for _, rep := range reps {
		for _, c := range rep.Calls {
			d := Call{ID: c.ID.String(), Function: c.Function, Caller: c.Caller, Executor: c.Executor, State: c.State,
				Attempt: c.Attempt + 1, Error: c.Error, Submit: c.Submitted, Start: c.Started, End: c.Ended}
			if c.State == task.CallQueued {
				d.Executor = ""
			}
			out = append(out, d)
		}
	}
	last := func(c Call) time.Time {
		for _, t := range []time.Time{c.End, c.Start} {
			if !t.IsZero() {
				return t
			}
		}
		return c.Submit
	}
	slices.SortStableFunc(out, func(a, b Call) int { return last(b).Compare(last(a)) })
	return out[:min(limit, len(out))], err
}

// taskArgs is a CallArgsSource over a task runtime, as troved's
// runtimeCallArgs is.
type taskArgs struct{ rt *task.Runtime }

func (s taskArgs) CallArgs() map[trove.ObjectID]CallArg {
	out := map[trove.ObjectID]CallArg{}
	for id, h := range s.rt.CallArgs() {
		out[id] = CallArg{Calls: h.Calls, Function: h.Function}
	}
	return out
}

// TestBrowser drives every page in headless Chromium against a 3-node
// in-process cluster: the figures shown match the API and the stores, the
// memory table sorts and filters, a row opens its object, a plot moves while
// load runs, and each page is captured.
func TestBrowser(t *testing.T) {
	exe := chromium(t)
	c, ds := openCluster(t, 3)
	ctx := context.Background()
	n1, n2 := c.Nodes[0], c.Nodes[1]

	// Objects: node-1 owns a few of several sizes, one containing another;
	// node-2 pulled a copy of the largest and reads it.
	var refs []trove.Ref
	defer func() {
		for _, r := range refs {
			r.Drop()
		}
	}()
	for i := range 12 {
		r, err := n1.Put(ctx, make([]byte, (i+1)*150<<10))
		if err != nil {
			t.Fatal(err)
		}
		refs = append(refs, r)
	}
	outer, err := n1.PutFunc(ctx, 64<<10, refs[:2], func([]byte) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	refs = append(refs, outer)
	small, err := n2.Put(ctx, []byte("node-2's own"))
	if err != nil {
		t.Fatal(err)
	}
	refs = append(refs, small)
	largest := refs[11]
	b, err := n2.Borrow(largest.ID())
	if err != nil {
		t.Fatal(err)
	}
	refs = append(refs, b)
	view, err := n2.Get(ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	defer view.Release()

	// Remote calls on real task runtimes: node-2 has the one GPU. node-1
	// calls two preprocess (finished) and a train that fails, then two
	// holds needing the GPU: one runs on node-2 (held until release), the
	// other waits queued there, while the pages are captured. The browser
	// opens node-3's dashboard, whose calls source asks every runtime.
	rts, err := c.StartTasks(func(i int) task.Config {
		tc := task.Config{CPUs: 4}
		if i == 1 {
			tc.Resources = map[string]float64{"GPU": 1}
		}
		return tc
	})
	if err != nil {
		t.Fatal(err)
	}
	ds[2].cfg.Calls = taskCalls{rts[2]}
	for i, d := range ds { // before any request: as troved's Config.CallArgs
		d.src.args = taskArgs{rts[i]}
	}
	cctx, ccancel := context.WithTimeout(ctx, 60*time.Second) // bounds every call, the holds included
	defer ccancel()
	release := make(chan struct{})
	browserRelease.Store(&release)
	var released sync.Once
	releaseHolds := func() { released.Do(func() { close(release) }) }
	defer releaseHolds()
	var callRefs []trove.Ref
	defer func() {
		for _, r := range callRefs {
			r.Drop()
		}
	}()
	for i := range 2 {
		r, err := tPreprocess.Remote(cctx, rts[0], task.Val(i))
		if err != nil {
			t.Fatal(err)
		}
		if got, err := trove.GetValue[int](cctx, rts[0], r); err != nil || got != 2*i {
			t.Fatalf("preprocess(%d) = %d, %v", i, got, err)
		}
		r.Drop()
	}
	r, err := tTrain.Remote(cctx, rts[0], task.Val("resnet"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := trove.GetValue[int](cctx, rts[0], r); !errors.Is(err, task.ErrTaskFailed) || !strings.Contains(err.Error(), "out of memory") {
		t.Fatalf("train: %v, want ErrTaskFailed with its error", err)
	}
	r.Drop()
	holdArg, err := trove.PutValue(cctx, rts[0], 7) // both holds' argument, held by node-1's calls
	if err != nil {
		t.Fatal(err)
	}
	callRefs = append(callRefs, holdArg)
	for range 2 {
		r, err := tHold.Remote(cctx, rts[0], task.Ref[int](holdArg))
		if err != nil {
			t.Fatal(err)
		}
		callRefs = append(callRefs, r)
	}
	// Until node-2 runs one hold and has the other queued (its runtime's record).
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		rep := rts[1].Calls(10)
		if rep.Running == 1 && rep.Queued == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("node-2 runs %d and queues %d calls, want the holds (1 and 1): %+v", rep.Running, rep.Queued, rep.Calls)
		}
	}

	srv := httptest.NewServer(ds[2])
	defer srv.Close()

	dir := *screenshots
	if dir == "" {
		dir = t.TempDir()
	}
	actx, cancel := chromedp.NewExecAllocator(ctx, append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(exe), chromedp.NoSandbox, chromedp.WindowSize(1400, 900), chromedp.Flag("disable-gpu", true))...)
	defer cancel()
	bctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	if err := chromedp.Do(bctx, chromedp.Navigate("about:blank")); err != nil { // starts the browser
		t.Fatalf("start %s: %v", exe, err)
	}
	// Each step is bounded (a derived context: the first Run's must not end).
	step := func() (context.Context, context.CancelFunc) { return context.WithTimeout(bctx, 30*time.Second) }
	run := func(what string, as ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		sctx, cancel := step()
		defer cancel()
		if err := chromedp.Do(sctx, as...); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	eval := func(what, expr string, v any) {
		t.Helper()
		sctx, cancel := step()
		defer cancel()
		var err error
		switch v := v.(type) {
		case *bool:
			*v, err = chromedp.Run(sctx, chromedp.Evaluate[bool](expr))
		case *int:
			*v, err = chromedp.Run(sctx, chromedp.Evaluate[int](expr))
		case *[]int:
			*v, err = chromedp.Run(sctx, chromedp.Evaluate[[]int](expr))
		case *[]string:
			*v, err = chromedp.Run(sctx, chromedp.Evaluate[[]string](expr))
		case *string:
			*v, err = chromedp.Run(sctx, chromedp.Evaluate[string](expr))
		default:
			_, err = chromedp.Run(sctx, chromedp.Evaluate[any](expr))
		}
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	shot := func(name string) {
		t.Helper()
		run("settle", chromedp.Sleep(300*time.Millisecond))
		sctx, cancel := step()
		defer cancel()
		png, err := chromedp.Run(sctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatalf("screenshot %s: %v", name, err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// waitJS polls a JS expression until it is true (the pages poll their
	// API every 1-2 s; 20 s bounds it on a loaded machine).
	waitJS := func(what, expr string) {
		t.Helper()
		var ok bool
		for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
			eval(what, expr, &ok)
			if ok {
				return
			}
		}
		var errText string
		eval(what, `document.body.dataset.error || ""`, &errText)
		t.Fatalf("%s: %s never true (page error: %q)", what, expr, errText)
	}
	texts := func(sel string) []string {
		t.Helper()
		var out []string
		eval("read "+sel, fmt.Sprintf(`[...document.querySelectorAll(%q)].map(e => e.textContent)`, sel), &out)
		return out
	}

	// Nodes: a row per member, each store's object count as the store says.
	run("open nodes", chromedp.Navigate(srv.URL+"/#nodes"))
	waitJS("nodes table", `document.querySelectorAll("#nodes-table tbody tr").length === 3`)
	waitJS("slots gossiped", `[...document.querySelectorAll("#nodes-table [data-field=slots]")].map(e => e.textContent).join() === "0 / 4,1 / 3,0 / 4"`)
	var api NodesJSON
	getJSON(t, ds[2], "/api/nodes", &api)
	for i, n := range c.Nodes {
		row := fmt.Sprintf(`#nodes-table tr[data-node=%q] `, n.Name())
		st := n.Local().Stats()
		if got := texts(row + `[data-field=objects]`); !slices.Equal(got, []string{strconv.FormatInt(st.Objects, 10)}) {
			t.Errorf("nodes page, %s objects %v, its store has %d", n.Name(), got, st.Objects)
		}
		if got := texts(row + `[data-field=state]`); !slices.Equal(got, []string{api.Nodes[i].State}) {
			t.Errorf("nodes page, %s state %v, the API says %s", n.Name(), got, api.Nodes[i].State)
		}
	}
	if got := texts(`#node-cards [data-field=alive]`); !slices.Equal(got, []string{"3"}) {
		t.Errorf("nodes alive card %v", got)
	}
	shot("dashboard-nodes.png")

	// Memory: largest first; sort the other way; filter by node; open a row.
	run("open memory", chromedp.Navigate(srv.URL+"/#memory"))
	var objs ObjectsJSON
	getJSON(t, ds[2], "/api/objects", &objs)
	waitJS("memory rows", fmt.Sprintf(`document.querySelectorAll("#objects-table tbody tr[data-id]").length === %d`, len(objs.Rows)))
	sizes := func() []int {
		var out []int
		eval("read sizes", `[...document.querySelectorAll("#objects-table tbody tr[data-id]")].map(r => Number(r.dataset.size))`, &out)
		return out
	}
	if s := sizes(); !slices.IsSortedFunc(s, func(a, b int) int { return b - a }) || s[0] != 12*150<<10 {
		t.Errorf("memory page not largest first: %v", s)
	}
	if got := texts(`#memory-totals [data-field=rows]`); !slices.Equal(got, []string{strconv.Itoa(objs.Totals.Rows)}) {
		t.Errorf("rows card %v, the API says %d", got, objs.Totals.Rows)
	}
	// The holds' argument: held by node-1's two pending calls (and the test's ref).
	waitJS("held by pending calls", fmt.Sprintf(`(() => { const b = document.querySelector('#objects-table tr[data-id=%q][data-node="node-1"] .badge[data-kind=call_arg]'); return b !== null && b.textContent === "pending call %s (+1)"; })()`, holdArg.ID().String(), tHold.Name()))
	shot("dashboard-memory.png")
	run("sort by size", chromedp.Click(chromedp.CSS(`#objects-table th[data-sort=size]`)))
	waitJS("ascending", `document.querySelector("#objects-table th[data-sort=size]").classList.contains("sorted-asc")`)
	waitJS("ascending rows", `(() => { const s = [...document.querySelectorAll("#objects-table tbody tr[data-id]")].map(r => Number(r.dataset.size)); return s.length > 1 && s.every((x, i) => i === 0 || s[i-1] <= x); })()`)
	run("filter node-2", chromedp.SetValue(chromedp.CSS(`#memory-filter select[name=node]`), "node-2"))
	eval("filter node-2", `document.querySelector("#memory-filter").dispatchEvent(new Event("change")); true`, nil)
	// node-2's: its own object, the copy, and the holds' arguments (stored
	// where the calls run) as the API lists them.
	var n2objs ObjectsJSON
	getJSON(t, ds[2], "/api/objects?node=node-2", &n2objs)
	if len(n2objs.Rows) < 2 {
		t.Fatalf("node-2 lists %d objects, want its own, the copy and the holds' arguments: %+v", len(n2objs.Rows), n2objs.Rows)
	}
	waitJS("node-2's rows", fmt.Sprintf(`(() => { const r = [...document.querySelectorAll("#objects-table tbody tr[data-id]")]; return r.length === %d && r.every(x => x.dataset.node === "node-2"); })()`, len(n2objs.Rows)))
	run("open the copy", chromedp.Click(chromedp.CSS(fmt.Sprintf(`#objects-table tr[data-id=%q]`, largest.ID().String()))))
	waitJS("object page", `location.hash === "#object/`+largest.ID().String()+`" && document.querySelectorAll("#object-copies tbody tr").length === 2`)
	if got := texts(`#object-copies tbody tr td:first-child`); !slices.Equal(got, []string{"node-1", "node-2"}) {
		t.Errorf("object copies %v, want node-1 (primary) and node-2", got)
	}
	waitJS("borrower", `document.querySelector("#object-borrowers tbody").textContent.includes("node-2")`)
	shot("dashboard-object.png")
	run("open the container", chromedp.Navigate(srv.URL+"/#object/"+refs[0].ID().String()))
	waitJS("contained by", fmt.Sprintf(`document.querySelector("#object-contained-by").textContent.includes(%q)`, outer.ID().String()))

	// Activity: a plot moves while load runs on node-1.
	run("open activity", chromedp.Navigate(srv.URL+"/#activity"))
	waitJS("plots", `document.querySelectorAll("#plots .plot").length === 10`)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 0; i < 200000; i++ { // bounded: stop ends it first
			select {
			case <-stop:
				return
			default:
			}
			r, err := n1.Put(ctx, make([]byte, 4096))
			if err != nil {
				return
			}
			if o, err := n1.Get(ctx, r); err == nil {
				o.Release()
			}
			r.Drop()
			time.Sleep(200 * time.Microsecond)
		}
	})
	waitJS("puts plot moves", `Number(document.querySelector('.plot[data-series=puts_per_sec]').dataset.last) > 0`)
	var before int
	eval("points", `Number(document.querySelector('.plot[data-series=puts_per_sec]').dataset.points)`, &before)
	waitJS("more points", fmt.Sprintf(`Number(document.querySelector('.plot[data-series=puts_per_sec]').dataset.points) > %d`, before))
	shot("dashboard-activity.png")
	close(stop)
	wg.Wait()

	// Calls: counts by state, the failure's error shown, the hold running on
	// node-2 and the other queued; then released, both finish.
	run("open calls", chromedp.Navigate(srv.URL+"/#calls"))
	waitJS("calls", `document.querySelectorAll("#calls-table tbody tr[data-id]").length === 5`)
	for state, want := range map[string]string{"queued": "1", "running": "1", "finished": "2", "failed": "1"} {
		if got := texts(`#calls-counts [data-field=` + state + `]`); !slices.Equal(got, []string{want}) {
			t.Errorf("calls %s card %v, want %s", state, got, want)
		}
	}
	if s := strings.Join(texts(`#calls-table tbody`), ""); !strings.Contains(s, "out of memory (raise -capacity)") {
		t.Errorf("calls page does not show the failure's error: %s", s)
	}
	for _, want := range []struct{ fn, state, executor string }{
		{tHold.Name(), "running", "node-2"}, {tHold.Name(), "queued", "-"}, {tTrain.Name(), "failed", ""}, {tPreprocess.Name(), "finished", ""},
	} {
		var rows []string
		eval("read calls", fmt.Sprintf(`[...document.querySelectorAll("#calls-table tbody tr[data-id]")].filter(r => r.cells[1].textContent === %q && r.cells[2].textContent === %q).map(r => r.cells[3].textContent + " " + r.cells[4].textContent)`, want.fn, want.state), &rows)
		if len(rows) == 0 || !strings.HasPrefix(rows[0], "node-1 ") || want.executor != "" && rows[0] != "node-1 "+want.executor {
			t.Errorf("calls page: %s %s rows (caller executor) %v, want called by node-1, run by %q", want.fn, want.state, rows, want.executor)
		}
	}
	shot("dashboard-calls.png")
	releaseHolds()
	for _, r := range callRefs[1:] {
		if got, err := trove.GetValue[int](cctx, rts[0], r); err != nil || got != 7 {
			t.Fatalf("hold: %d, %v; want its argument, 7", got, err)
		}
	}
	waitJS("holds finished", `document.querySelector("#calls-counts [data-field=finished]").textContent === "4"`)
	t.Logf("screenshots in %s", dir)
}

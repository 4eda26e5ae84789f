package dashboard

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/trovedb/trove"
	"github.com/trovedb/trove/cluster"
)

// The JSON API (docs/dashboard.md). Keys are snake_case, sizes bytes, rates
// per second, times Unix milliseconds ("t") or RFC 3339.

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	enc := json.NewEncoder(w)
	enc.SetIndent("", " ")
	enc.Encode(v) // a client gone is no error of ours
}

type errorJSON struct {
	Error string `json:"error"`
}

func writeError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(errorJSON{Error: msg})
}

// askTimeout bounds one API request's questions to the other nodes (each
// Call is bounded by the cluster's RequestTimeout too).
const askTimeout = 5 * time.Second

// member is a node a request may ask: this one or an alive member.
type member struct {
	cluster.Member
	self bool
}

// members lists the cluster's members by name (this node alone if it is no
// cluster node).
func (d *Dashboard) members() []member {
	if d.cfg.Node == nil {
		s := d.cfg.Store.Stats()
		return []member{{Member: cluster.Member{Name: d.src.name, ID: d.cfg.Store.Node(), State: cluster.StateAlive,
			Capacity: s.Capacity, Used: s.Used}, self: true}}
	}
	var out []member
	for _, m := range d.cfg.Node.Members() {
		out = append(out, member{Member: m, self: m.ID == d.cfg.Node.ID()})
	}
	slices.SortFunc(out, func(a, b member) int { return cmp.Compare(a.Name, b.Name) })
	return out
}

func (m member) askable() bool {
	return m.self || m.State == cluster.StateAlive || m.State == cluster.StateSuspect
}

// ask sends a dashboard request to m (served locally when m is this node)
// and decodes the reply into v.
func (d *Dashboard) ask(ctx context.Context, m member, kind byte, body, v any) error {
	if m.self {
		var req []byte
		req, err := appendRequest(req, kind, body)
		if err != nil {
			return err
		}
		rep, err := d.answer(req, nil)
		if err != nil {
			return err
		}
		return decodeReply(rep, v)
	}
	req, err := appendRequest(nil, kind, body)
	if err != nil {
		return err
	}
	rep, err := d.cfg.Node.Call(ctx, m.ID, opDashboard, req, nil)
	if err != nil {
		return fmt.Errorf("ask node %s (%s): %w (does it run a dashboard of this version?)", m.Name, m.Addr, err)
	}
	return decodeReply(rep, v)
}

// askAll asks every askable member of ms in parallel; errs[i] is member i's
// error (or why it was not asked).
func (d *Dashboard) askAll(ctx context.Context, ms []member, kind byte, body any, out func(i int) any) []error {
	ctx, cancel := context.WithTimeout(ctx, askTimeout)
	defer cancel()
	errs := make([]error, len(ms))
	var wg sync.WaitGroup
	for i, m := range ms {
		if !m.askable() {
			errs[i] = fmt.Errorf("node %s is %s: not asked", m.Name, m.State)
			continue
		}
		wg.Go(func() { errs[i] = d.ask(ctx, m, kind, body, out(i)) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil && ms[i].askable() {
			d.cfg.Logger.Debug("dashboard: a node could not be asked", "node", ms[i].Name, "err", err)
		}
	}
	return errs
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

type apiEndpoint struct {
	Path string `json:"path"`
	What string `json:"what"`
}

func (d *Dashboard) apiIndex(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, struct {
		Node      string        `json:"node"`
		Version   string        `json:"version"`
		Endpoints []apiEndpoint `json:"endpoints"`
	}{d.src.name, d.cfg.Version, []apiEndpoint{
		{"/api/nodes", "every member: state, capacity, memory, slots, bytes pulled in and out per second"},
		{"/api/objects?node=&owner=&kind=&sort=&order=&offset=&limit=", "objects of every node, filtered, sorted and paged where they are"},
		{"/api/objects/{id}", "one object: its copies, pulls in flight, borrowers, the refs it contains and who contains it"},
		{"/api/activity?since=&node=", "per-second rates and memory over time, per node and for the cluster"},
		{"/api/calls?state=&limit=", "remote calls: queued, running, finished, failed"},
	}})
}

// NodeJSON is one member on /api/nodes.
type NodeJSON struct {
	Name     string `json:"name"`
	ID       string `json:"id"`
	Addr     string `json:"addr,omitempty"`
	State    string `json:"state"`
	Self     bool   `json:"self"`
	Capacity int64  `json:"capacity"`
	Used     int64  `json:"used"`

	// From the node itself (zero if it could not be asked).
	Objects      int64 `json:"objects"`
	ObjectBytes  int64 `json:"object_bytes"`
	PinnedBytes  int64 `json:"pinned_bytes"`
	SpilledBytes int64 `json:"spilled_bytes"`

	Slots     int            `json:"slots"`
	SlotsBusy int            `json:"slots_busy"`
	SlotsFree int            `json:"slots_free"`
	Resources []ResourceJSON `json:"resources,omitempty"`

	// Over the node's last sampling interval.
	BytesInPerSec  float64 `json:"bytes_in_per_sec"`
	BytesOutPerSec float64 `json:"bytes_out_per_sec"`
	PutsPerSec     float64 `json:"puts_per_sec"`
	GetsPerSec     float64 `json:"gets_per_sec"`

	Updated time.Time `json:"updated,omitzero"` // when this node's view of the member last changed
	Error   string    `json:"error,omitempty"`  // why the member's own figures are missing
}

// ResourceJSON is one resource a member offers remote functions.
type ResourceJSON struct {
	Name  string  `json:"name"`
	Total float64 `json:"total"`
	Free  float64 `json:"free"`
}

// NodesJSON is /api/nodes.
type NodesJSON struct {
	Self   string     `json:"self"`
	Nodes  []NodeJSON `json:"nodes"`
	Totals struct {
		Alive    int   `json:"alive"`
		Capacity int64 `json:"capacity"`
		Used     int64 `json:"used"`
		Objects  int64 `json:"objects"`
	} `json:"totals"`
}

func (d *Dashboard) apiNodes(w http.ResponseWriter, r *http.Request) {
	ms := d.members()
	reps := make([]report, len(ms))
	errs := d.askAll(r.Context(), ms, kindReport, reportRequest{Last: 2}, func(i int) any { return &reps[i] })
	out := NodesJSON{Self: d.src.name, Nodes: make([]NodeJSON, len(ms))}
	for i, m := range ms {
		n := NodeJSON{Name: m.Name, ID: m.ID.String(), Addr: m.Addr, State: m.State.String(), Self: m.self,
			Capacity: m.Capacity, Used: m.Used, Slots: m.Slots, Updated: m.Updated, Error: errString(errs[i])}
		n.SlotsFree = m.Slots
		for _, res := range m.Resources.All() {
			n.Resources = append(n.Resources, ResourceJSON{Name: res.Name, Total: res.Total, Free: res.Free})
			if res.Name == "CPU" {
				n.SlotsFree = min(int(res.Free), m.Slots)
			}
		}
		n.SlotsBusy = m.Slots - n.SlotsFree
		if errs[i] == nil {
			now := reps[i].Now
			n.Capacity, n.Used = now.Capacity, now.Used
			n.Objects, n.ObjectBytes, n.PinnedBytes, n.SpilledBytes = now.Objects, now.ObjectBytes, now.PinnedBytes, now.SpilledBytes
			if ss := reps[i].Samples; len(ss) == 2 {
				p := rate(ss[0], ss[1])
				n.BytesInPerSec, n.BytesOutPerSec, n.PutsPerSec, n.GetsPerSec = p.BytesInPerSec, p.BytesOutPerSec, p.PutsPerSec, p.GetsPerSec
			}
		}
		if m.State == cluster.StateAlive {
			out.Totals.Alive++
			out.Totals.Capacity += n.Capacity
			out.Totals.Used += n.Used
			out.Totals.Objects += n.Objects
		}
		out.Nodes[i] = n
	}
	writeJSON(w, out)
}

// Point is one interval of activity: rates over it, gauges at its end.
type Point struct {
	T               int64   `json:"t"` // Unix ms, the interval's end
	PutsPerSec      float64 `json:"puts_per_sec"`
	GetsPerSec      float64 `json:"gets_per_sec"`
	PullsPerSec     float64 `json:"pulls_per_sec"`
	SpillsPerSec    float64 `json:"spills_per_sec"`
	RestoresPerSec  float64 `json:"restores_per_sec"`
	EvictionsPerSec float64 `json:"evictions_per_sec"`
	BytesInPerSec   float64 `json:"bytes_in_per_sec"`
	BytesOutPerSec  float64 `json:"bytes_out_per_sec"`
	Used            int64   `json:"used"`
	ObjectBytes     int64   `json:"object_bytes"`
	Objects         int64   `json:"objects"`
}

// rate is the point from sample a to the later sample b.
func rate(a, b Sample) Point {
	dt := float64(b.T-a.T) / 1000
	per := func(x, y int64) float64 {
		if dt <= 0 || y < x {
			return 0 // the same instant, or a restarted node
		}
		return float64(y-x) / dt
	}
	return Point{T: b.T, PutsPerSec: per(a.Puts, b.Puts), GetsPerSec: per(a.Gets, b.Gets), PullsPerSec: per(a.Pulls, b.Pulls),
		SpillsPerSec: per(a.Spills, b.Spills), RestoresPerSec: per(a.Restores, b.Restores), EvictionsPerSec: per(a.Evictions, b.Evictions),
		BytesInPerSec: per(a.BytesIn, b.BytesIn), BytesOutPerSec: per(a.BytesOut, b.BytesOut),
		Used: b.Used, ObjectBytes: b.ObjectBytes, Objects: b.Objects}
}

// SeriesJSON is one node's activity.
type SeriesJSON struct {
	Node   string  `json:"node"`
	Points []Point `json:"points"`
	Error  string  `json:"error,omitempty"`
}

// ActivityJSON is /api/activity.
type ActivityJSON struct {
	IntervalMS int64        `json:"interval_ms"`
	Now        int64        `json:"now"` // this node's clock, Unix ms: pass the last point's t as since
	Nodes      []SeriesJSON `json:"nodes"`
	Cluster    []Point      `json:"cluster"` // the nodes' points summed per interval, up to the last every node has
}

func (d *Dashboard) apiActivity(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	now := time.Now()
	since := now.Add(-5 * time.Minute).UnixMilli()
	if s := q.Get("since"); s != "" {
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil || v < 0 {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("since=%q: want Unix milliseconds (the t of the last point you have), or nothing for the last 5 minutes", s))
			return
		}
		since = v
	}
	ms, ok := d.pickNodes(w, q)
	if !ok {
		return
	}
	reps := make([]report, len(ms))
	errs := d.askAll(r.Context(), ms, kindReport, reportRequest{Since: since}, func(i int) any { return &reps[i] })
	out := ActivityJSON{IntervalMS: d.cfg.Interval.Milliseconds(), Now: now.UnixMilli(), Nodes: []SeriesJSON{}, Cluster: []Point{}}
	step := max(d.cfg.Interval.Milliseconds(), 1)
	buckets := map[int64]*Point{}
	last := int64(-1) // the last bucket every answering node has
	for i, m := range ms {
		if !m.askable() {
			continue
		}
		s := SeriesJSON{Node: m.Name, Points: []Point{}, Error: errString(errs[i])}
		ss := reps[i].Samples
		for j := 1; j < len(ss); j++ {
			if ss[j].T <= since {
				continue
			}
			p := rate(ss[j-1], ss[j])
			s.Points = append(s.Points, p)
			b := p.T / step
			if buckets[b] == nil {
				buckets[b] = &Point{T: b * step}
			}
			sumPoint(buckets[b], p)
		}
		if errs[i] == nil && len(ss) > 0 {
			if b := ss[len(ss)-1].T / step; last < 0 || b < last {
				last = b
			}
		}
		out.Nodes = append(out.Nodes, s)
	}
	for b, p := range buckets {
		if b <= last {
			out.Cluster = append(out.Cluster, *p)
		}
	}
	slices.SortFunc(out.Cluster, func(a, b Point) int { return cmp.Compare(a.T, b.T) })
	writeJSON(w, out)
}

func sumPoint(s *Point, p Point) {
	s.PutsPerSec += p.PutsPerSec
	s.GetsPerSec += p.GetsPerSec
	s.PullsPerSec += p.PullsPerSec
	s.SpillsPerSec += p.SpillsPerSec
	s.RestoresPerSec += p.RestoresPerSec
	s.EvictionsPerSec += p.EvictionsPerSec
	s.BytesInPerSec += p.BytesInPerSec
	s.BytesOutPerSec += p.BytesOutPerSec
	s.Used += p.Used
	s.ObjectBytes += p.ObjectBytes
	s.Objects += p.Objects
}

// pickNodes is the members a request's node= names (every member if none).
func (d *Dashboard) pickNodes(w http.ResponseWriter, q url.Values) ([]member, bool) {
	ms := d.members()
	name := q.Get("node")
	if name == "" {
		return ms, true
	}
	var names []string
	for _, m := range ms {
		if m.Name == name || m.ID.String() == name {
			return []member{m}, true
		}
		names = append(names, m.Name)
	}
	writeError(w, http.StatusBadRequest, fmt.Sprintf("node=%q: no such member; the members are %s", name, strings.Join(names, ", ")))
	return nil, false
}

// ObjectsJSON is /api/objects.
type ObjectsJSON struct {
	Rows   []ObjectRowJSON `json:"rows"`
	Totals Totals          `json:"totals"` // over every row that matches, not only this page's
	Offset int             `json:"offset"`
	Limit  int             `json:"limit"`
	Sort   string          `json:"sort"`
	Order  string          `json:"order"`
	Nodes  []NodeRowsJSON  `json:"nodes"` // the nodes asked, with their matching rows
}

// ObjectRowJSON is an ObjectRow with what holds it spelled out.
type ObjectRowJSON struct {
	ObjectRow
	HeldBy []string `json:"held_by"` // local_ref, pinned, captured, borrowed, pending, call_arg
}

// NodeRowsJSON is one node's part of a listing.
type NodeRowsJSON struct {
	Node  string `json:"node"`
	Rows  int    `json:"rows"`
	Error string `json:"error,omitempty"`
}

func intParam(q url.Values, name string, def, lo, hi int) (int, error) {
	s := q.Get(name)
	if s == "" {
		return def, nil
	}
	v, err := strconv.Atoi(s)
	if err != nil || v < lo || v > hi {
		return 0, fmt.Errorf("%s=%q: want a whole number from %d to %d", name, s, lo, hi)
	}
	return v, nil
}

func (d *Dashboard) apiObjects(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	for k := range q {
		if !slices.Contains([]string{"node", "owner", "kind", "sort", "order", "offset", "limit"}, k) {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("unknown parameter %q: /api/objects takes node, owner, kind, sort, order, offset and limit", k))
			return
		}
	}
	offset, err := intParam(q, "offset", 0, 0, MaxWindow-1)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	limit, err := intParam(q, "limit", 50, 1, MaxLimit)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if offset+limit > MaxWindow {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("offset+limit %d is over %d rows: narrow the listing with node=, owner= or kind=, or sort the other way (order=)", offset+limit, MaxWindow))
		return
	}
	qy := query{Sort: cmp.Or(q.Get("sort"), "size"), Kind: q.Get("kind"), Window: offset + limit}
	switch o := q.Get("order"); o {
	case "", "desc":
		qy.Desc = true
	case "asc":
	default:
		writeError(w, http.StatusBadRequest, fmt.Sprintf("order=%q: want asc or desc", o))
		return
	}
	if o := q.Get("owner"); o != "" {
		id, ok := d.nodeID(o)
		if !ok {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("owner=%q: no member of that name or node ID", o))
			return
		}
		qy.Owner = id.String()
	}
	if err := qy.check(); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	ms, ok := d.pickNodes(w, q)
	if !ok {
		return
	}
	pages := make([]page, len(ms))
	errs := d.askAll(r.Context(), ms, kindObjects, qy, func(i int) any { return &pages[i] })
	out := ObjectsJSON{Offset: offset, Limit: limit, Sort: qy.Sort, Order: map[bool]string{true: "desc", false: "asc"}[qy.Desc]}
	var got []page
	for i, m := range ms {
		if errs[i] == nil {
			got = append(got, pages[i])
		}
		out.Nodes = append(out.Nodes, NodeRowsJSON{Node: m.Name, Rows: pages[i].Totals.Rows, Error: errString(errs[i])})
	}
	rows, totals := merge(qy, got, offset, limit)
	out.Totals = totals
	out.Rows = make([]ObjectRowJSON, len(rows))
	for i, row := range rows {
		out.Rows[i] = ObjectRowJSON{ObjectRow: row, HeldBy: row.heldBy()}
		if out.Rows[i].HeldBy == nil {
			out.Rows[i].HeldBy = []string{}
		}
	}
	writeJSON(w, out)
}

// nodeID resolves a member's name or a node ID in hex.
func (d *Dashboard) nodeID(s string) (trove.NodeID, bool) {
	for _, m := range d.members() {
		if m.Name == s || m.ID.String() == s {
			return m.ID, true
		}
	}
	var id trove.NodeID
	if len(s) == 2*len(id) {
		if oid, err := trove.ParseObjectID(s + strings.Repeat("0", 2*len(id))); err == nil {
			return oid.Node(), true
		}
	}
	return id, false
}

// ObjectJSON is /api/objects/{id}.
type ObjectJSON struct {
	ID               string          `json:"id"`
	Owner            string          `json:"owner"`
	Size             int64           `json:"size"`
	Copies           []ObjectCopy    `json:"copies"`    // every node with an entry for it, the owner first
	Holders          []Holding       `json:"holders"`   // as the owner knows them: sealed copies and pulls in flight
	Borrowers        []BorrowingNode `json:"borrowers"` // as the owner knows them
	Contains         []string        `json:"contains"`
	ContainsCount    int             `json:"contains_count"`
	ContainedBy      []ObjectRef     `json:"contained_by"`
	ContainedByCount int             `json:"contained_by_count"`
	Errors           []string        `json:"errors,omitempty"` // nodes that could not be asked
}

// ObjectRef is an object that contains another, on a node.
type ObjectRef struct {
	ID   string `json:"id"`
	Node string `json:"node"`
}

func (d *Dashboard) apiObject(w http.ResponseWriter, r *http.Request) {
	s := r.PathValue("id")
	id, err := trove.ParseObjectID(s)
	if err != nil {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("object ID %q: %v (an ID is 32 hex digits, as /api/objects lists them)", s, err))
		return
	}
	ms := d.members()
	hs := make([]here, len(ms))
	errs := d.askAll(r.Context(), ms, kindObject, objectRequest{ID: id[:]}, func(i int) any { return &hs[i] })
	out := ObjectJSON{ID: id.String(), Owner: d.src.ownerName(id), Copies: []ObjectCopy{}, Holders: []Holding{},
		Borrowers: []BorrowingNode{}, Contains: []string{}, ContainedBy: []ObjectRef{}}
	seen := map[string]bool{}
	for i, m := range ms {
		if errs[i] != nil {
			if m.askable() {
				out.Errors = append(out.Errors, errs[i].Error())
			}
			continue
		}
		h := hs[i]
		if !h.Found {
			continue
		}
		out.Copies = append(out.Copies, h.Copy)
		out.Size = max(out.Size, h.Copy.Size)
		if h.Owner {
			if h.Holders != nil {
				out.Holders = h.Holders
			}
			if h.Borrowers != nil {
				out.Borrowers = h.Borrowers
			}
		}
		if len(h.Contains) > len(out.Contains) {
			out.Contains, out.ContainsCount = h.Contains, h.ContainsCount
		}
		for _, c := range h.ContainedBy {
			if !seen[c+m.Name] {
				seen[c+m.Name] = true
				out.ContainedBy = append(out.ContainedBy, ObjectRef{ID: c, Node: m.Name})
			}
		}
		out.ContainedByCount += h.ContainedByCount
	}
	if len(out.Copies) == 0 {
		msg := fmt.Sprintf("object %s: no node holds it or a ref to it (freed, or never stored)", id)
		if len(out.Errors) > 0 {
			msg += "; some nodes could not be asked: " + strings.Join(out.Errors, "; ")
		}
		writeError(w, http.StatusNotFound, msg)
		return
	}
	slices.SortStableFunc(out.Copies, func(a, b ObjectCopy) int {
		return cmp.Or(cmp.Compare(roleOrder(a.Role), roleOrder(b.Role)), cmp.Compare(a.Node, b.Node))
	})
	writeJSON(w, out)
}

func roleOrder(role string) int {
	switch role {
	case "primary":
		return 0
	case "copy":
		return 1
	}
	return 2
}

// CallsJSON is /api/calls.
type CallsJSON struct {
	Enabled bool           `json:"enabled"` // the node has a calls source (a task runtime)
	Message string         `json:"message,omitempty"`
	Counts  map[string]int `json:"counts"` // of the calls listed, by state
	Calls   []Call         `json:"calls"`
}

func (d *Dashboard) apiCalls(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	limit, err := intParam(q, "limit", 200, 1, MaxCalls)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	state := q.Get("state")
	if state != "" && !slices.Contains([]string{CallQueued, CallRunning, CallFinished, CallFailed}, state) {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("state=%q: want queued, running, finished or failed", state))
		return
	}
	out := CallsJSON{Counts: map[string]int{CallQueued: 0, CallRunning: 0, CallFinished: 0, CallFailed: 0}, Calls: []Call{}}
	if d.cfg.Calls == nil {
		out.Message = "this node runs no remote functions (troved was started without a task runtime)"
		writeJSON(w, out)
		return
	}
	out.Enabled = true
	ctx, cancel := context.WithTimeout(r.Context(), askTimeout)
	defer cancel()
	calls, err := d.cfg.Calls.ClusterCalls(ctx, MaxCalls)
	switch {
	case err != nil && len(calls) == 0:
		writeError(w, http.StatusBadGateway, fmt.Sprintf("list the cluster's calls: %v", err))
		return
	case err != nil:
		out.Message = fmt.Sprintf("some nodes' calls are missing: %v", err)
	}
	for _, c := range calls {
		out.Counts[c.State]++
		if (state == "" || c.State == state) && len(out.Calls) < limit {
			out.Calls = append(out.Calls, c)
		}
	}
	writeJSON(w, out)
}

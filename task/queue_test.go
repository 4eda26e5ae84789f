package task

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/trovedb/trove"
)

// refQueue is the executor's queue as first written, the reference the
// model test holds the shape queues to: one FIFO slice, every queued job
// checked in order on every change, each started when it fits.
type refQueue struct {
	free    Resources
	queue   []*job
	running map[trove.ObjectID]*job
	started []trove.ObjectID
}

func (r *refQueue) pump() {
	k := 0
	for _, j := range r.queue {
		if !r.free.fits(j.need) {
			r.queue[k] = j
			k++
			continue
		}
		r.free.take(j.need)
		r.running[j.id] = j
		r.started = append(r.started, j.id)
	}
	r.queue = r.queue[:k]
}

func (r *refQueue) remove(keep func(*job) bool) []trove.ObjectID {
	var gone []trove.ObjectID
	k := 0
	for _, j := range r.queue {
		if keep(j) {
			r.queue[k] = j
			k++
		} else {
			gone = append(gone, j.id)
		}
	}
	r.queue = r.queue[:k]
	return gone
}

// The executor's queue against the reference, over random enqueues,
// finishes, withdrawals and owners' deaths: after every step the same jobs
// have started, in the same order, the same are queued and running, the
// same resources are free, and nothing running exceeds the node's total.
func TestQueueModel(t *testing.T) {
	total := Resources{CPU: 3, "GPU": 1, "disk": 2}
	shapes := []Resources{
		{CPU: 1}, {CPU: 1}, {CPU: 1}, // the usual call, most often
		{CPU: 2},
		{CPU: 1, "GPU": 1},
		{"GPU": 1},
		{CPU: 0.5, "disk": 1},
		{"disk": 2},
		{CPU: 0},
		{CPU: 3, "GPU": 1, "disk": 2},
		{CPU: 4}, // never fits: refused
	}
	owners := []trove.NodeID{{1}, {2}, {3}}
	fn := &function{name: "model"}
	for seed := range uint64(40) {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 7))
			var ex executor
			ex.init(total)
			var got []trove.ObjectID
			ex.start = func(j *job) { got = append(got, j.id) }
			ref := &refQueue{free: total.clone(), running: map[trove.ObjectID]*job{}}
			var n uint64
			for step := range 600 {
				what := ""
				switch op := rng.IntN(10); {
				case op < 5:
					n++
					need := shapes[rng.IntN(len(shapes))]
					id := trove.NewObjectID(owners[rng.IntN(len(owners))], uint64(n))
					what = fmt.Sprintf("enqueue %v", need)
					j := &job{owner: id.Node(), id: id, fn: fn, need: need}
					err := ex.enqueue(j)
					if fits := total.fits(need); (err == nil) != fits {
						t.Fatalf("step %d: enqueue of %v: %v", step, need, err)
					}
					if err == nil {
						ref.queue = append(ref.queue, &job{owner: j.owner, id: id, need: need})
						ref.pump()
					}
				case op < 8:
					if len(ref.running) == 0 {
						continue
					}
					ids := slices.SortedFunc(mapsKeys(ref.running), compareID)
					id := ids[rng.IntN(len(ids))]
					what = "finish " + id.String()
					ex.mu.Lock()
					j := ex.run[id]
					ex.mu.Unlock()
					if j == nil {
						t.Fatalf("step %d: %s runs in the reference, not in the executor", step, id)
					}
					before := len(got)
					if m := ex.finish(j, &outcome{status: doneOK}); m != nil { // the finishing slot runs it: it started first
						got = slices.Insert(got, before, m.id)
					}
					ref.free.give(ref.running[id].need)
					delete(ref.running, id)
					ref.pump()
				case op < 9:
					if len(ref.queue) == 0 {
						continue
					}
					q := ref.queue[rng.IntN(len(ref.queue))]
					owner := q.owner
					if rng.IntN(4) == 0 {
						owner = owners[(slices.Index(owners, owner)+1)%len(owners)] // not its owner: refused
					}
					what = "withdraw " + q.id.String()
					_, ok := ex.withdraw(owner, q.id)
					if ok != (owner == q.owner) {
						t.Fatalf("step %d: withdraw by the owner %v: %v", step, owner == q.owner, ok)
					}
					if ok {
						ref.remove(func(j *job) bool { return j.id != q.id })
					}
				default:
					owner := owners[rng.IntN(len(owners))]
					what = "dropOwner"
					k := ex.dropOwner(owner)
					if gone := ref.remove(func(j *job) bool { return j.owner != owner }); k != len(gone) {
						t.Fatalf("step %d: dropOwner removed %d, want %d", step, k, len(gone))
					}
				}
				if !slices.Equal(got, ref.started) {
					t.Fatalf("step %d (%s): started %v, want %v", step, what, got, ref.started)
				}
				st := ex.status()
				if st.queued != len(ref.queue) || st.running != len(ref.running) {
					t.Fatalf("step %d (%s): %d queued, %d running; want %d, %d", step, what, st.queued, st.running, len(ref.queue), len(ref.running))
				}
				for k, v := range total {
					if d := st.free[k] - ref.free[k]; d > 1e-9 || d < -1e-9 || st.free[k] < -1e-9 || st.free[k] > v+1e-9 {
						t.Fatalf("step %d (%s): free %v, want %v (total %v)", step, what, st.free, ref.free, total)
					}
				}
			}
			// Close: the queued ones come back, oldest first.
			left := ex.drain()
			var ids []trove.ObjectID
			for _, j := range left {
				ids = append(ids, j.id)
			}
			var want []trove.ObjectID
			for _, j := range ref.queue {
				want = append(want, j.id)
			}
			if !slices.Equal(ids, want) {
				t.Fatalf("drain: %v, want %v", ids, want)
			}
		})
	}
}

func mapsKeys[V any](m map[trove.ObjectID]V) func(func(trove.ObjectID) bool) {
	return func(yield func(trove.ObjectID) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

func compareID(a, b trove.ObjectID) int { return slices.Compare(a[:], b[:]) }

// A queue of many calls of one shape starts each in O(1): with every slot
// busy, an enqueue does not look at the calls behind the head (the shapes'
// heads only), so 100,000 queued calls drain in order.
func TestQueueLong(t *testing.T) {
	var ex executor
	ex.init(Resources{CPU: 2})
	var started []*job
	ex.start = func(j *job) { started = append(started, j) }
	fn := &function{name: "long"}
	const n = 100_000
	for i := range n {
		if err := ex.enqueue(&job{owner: trove.NodeID{1}, id: trove.NewObjectID(trove.NodeID{1}, uint64(i+1)), fn: fn, need: Resources{CPU: 1}}); err != nil {
			t.Fatal(err)
		}
	}
	if len(started) != 2 || ex.status().queued != n-2 {
		t.Fatalf("%d started, %d queued", len(started), ex.status().queued)
	}
	for i := 0; i < len(started); i++ {
		if started[i].seq != uint64(i+1) {
			t.Fatalf("start %d is job %d", i, started[i].seq)
		}
		if m := ex.finish(started[i], &outcome{status: doneOK}); m != nil {
			started = append(started, m)
		}
	}
	if len(started) != n || ex.status().queued != 0 || ex.status().running != 0 {
		t.Fatalf("%d started, %v left", len(started), ex.status())
	}
}

package bench

import (
	"context"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/trovedb/trove"
	"github.com/trovedb/trove/engine"
)

var ctx = context.Background()

func openStore(b *testing.B, capacity int64, prefault bool) *engine.Store {
	b.Helper()
	st, err := engine.Open(engine.Config{Capacity: capacity, PrefaultAll: prefault})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		st.WaitIdle()
		s := st.Stats()
		if s.Objects != 0 || s.Used != 0 || s.Views != 0 {
			b.Errorf("store not empty after the benchmark: %d objects, %d bytes used, %d views", s.Objects, s.Used, s.Views)
		}
		st.Close()
	})
	return st
}

// putSmall puts n one-byte objects and drops them when the benchmark ends (before
// openStore's emptiness check, as cleanups run last-registered first).
func putSmall(b *testing.B, st *engine.Store, n int) []trove.Ref {
	refs := make([]trove.Ref, n)
	for i := range refs {
		var err error
		if refs[i], err = st.Put(ctx, []byte{byte(i)}); err != nil {
			b.Fatal(err)
		}
	}
	b.Cleanup(func() {
		for _, r := range refs {
			r.Drop()
		}
	})
	return refs
}

func sizeName(n int) string { return trove.HumanBytes(int64(n)) }

var putSizes = []int{1 << 20, 16 << 20, 64 << 20, 256 << 20}

// BenchmarkPut measures Put (one copy into warm shared memory, then seal, then
// Drop) against a warm memcpy of the same bytes, interleaved: every iteration runs
// one memcpy and one Put, alternating which goes first, with the timer stopped for
// the memcpy. So ns/op and MB/s are Put's alone, memcpy-MB/s is the memcpy's over
// the same iterations, and x_memcpy (memcpy time over Put time, i.e. Put's
// throughput as a fraction of memcpy's) pairs each run's Put with the memcpys run
// between its own Puts, not with another run's.
func BenchmarkPut(b *testing.B) {
	for _, size := range putSizes {
		b.Run("size="+sizeName(size), func(b *testing.B) {
			src := make([]byte, size)
			for i := range src {
				src[i] = byte(i)
			}
			dst := make([]byte, size)
			copy(dst, src) // warm
			st := openStore(b, int64(size)+1<<20, true)
			put := func() {
				ref, err := st.Put(ctx, src)
				if err != nil {
					b.Fatal(err)
				}
				ref.Drop()
			}
			memcpy := func() time.Duration {
				b.StopTimer()
				t0 := time.Now()
				copy(dst, src)
				d := time.Since(t0)
				b.StartTimer()
				return d
			}
			var memcpyTime time.Duration
			b.SetBytes(int64(size))
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				if i%2 == 0 {
					memcpyTime += memcpy()
					put()
				} else {
					put()
					memcpyTime += memcpy()
				}
			}
			b.ReportMetric(float64(size)*float64(b.N)/1e6/memcpyTime.Seconds(), "memcpy-MB/s")
			b.ReportMetric(memcpyTime.Seconds()/b.Elapsed().Seconds(), "x_memcpy")
		})
	}
}

// BenchmarkGet measures Get+Release of a sealed object: a view, no copy, so the
// time must not depend on the size. Reports each size's time relative to 1 KiB.
func BenchmarkGet(b *testing.B) {
	var smallNs float64
	for _, size := range []int{1 << 10, 1 << 20, 256 << 20} {
		b.Run("size="+sizeName(size), func(b *testing.B) {
			st := openStore(b, int64(size)+1<<20, false)
			// Fill the object in place: a 256 MiB source buffer on the Go heap would
			// make the collector run during the timed loop.
			bld, err := st.Create(ctx, size)
			if err != nil {
				b.Fatal(err)
			}
			clear(bld.Bytes())
			ref := bld.Ref()
			if err := bld.Seal(); err != nil {
				b.Fatal(err)
			}
			defer ref.Drop()
			runtime.GC()
			b.ReportAllocs()
			for b.Loop() {
				obj, err := st.Get(ctx, ref)
				if err != nil {
					b.Fatal(err)
				}
				obj.Release()
			}
			ns := float64(b.Elapsed().Nanoseconds()) / float64(b.N)
			if size == 1<<10 {
				smallNs = ns
			} else if smallNs > 0 {
				b.ReportMetric(ns/smallNs, "x_1KiB")
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "gets/s")
		})
	}
}

// BenchmarkSmall measures 1 KiB objects from one goroutine: Put (and Drop, so the
// store stays small) against the baseline of a heap allocation and copy, which
// is what storing the bytes in a Go map would cost at least.
func BenchmarkSmall(b *testing.B) {
	src := make([]byte, 1<<10)
	var baseNs float64
	b.Run("op=heapcopy", func(b *testing.B) {
		b.SetBytes(int64(len(src)))
		b.ReportAllocs()
		var keep [][]byte
		for i := 0; b.Loop(); i++ {
			c := make([]byte, len(src))
			copy(c, src)
			if len(keep) < 1024 {
				keep = append(keep, c)
			} else {
				keep[i%1024] = c
			}
		}
		baseNs = float64(b.Elapsed().Nanoseconds()) / float64(b.N)
	})
	b.Run("op=put", func(b *testing.B) {
		st := openStore(b, 64<<20, false)
		b.SetBytes(int64(len(src)))
		b.ReportAllocs()
		for b.Loop() {
			ref, err := st.Put(ctx, src)
			if err != nil {
				b.Fatal(err)
			}
			ref.Drop()
		}
		ns := float64(b.Elapsed().Nanoseconds()) / float64(b.N)
		b.ReportMetric(1e9/ns, "puts/s")
		if baseNs > 0 {
			b.ReportMetric(baseNs/ns, "x_heapcopy")
		}
	})
	b.Run("op=get+release", func(b *testing.B) {
		st := openStore(b, 64<<20, false)
		ref, err := st.Put(ctx, src)
		if err != nil {
			b.Fatal(err)
		}
		defer ref.Drop()
		b.ReportAllocs()
		for b.Loop() {
			obj, err := st.Get(ctx, ref)
			if err != nil {
				b.Fatal(err)
			}
			obj.Release()
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "gets/s")
	})
	b.Run("op=put/parallel", func(b *testing.B) {
		st := openStore(b, 64<<20, false)
		b.SetBytes(int64(len(src)))
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				ref, err := st.Put(ctx, src)
				if err != nil {
					b.Error(err)
					return
				}
				ref.Drop()
			}
		})
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "puts/s")
	})
}

// BenchmarkWait is Ray's "single client wait 1k refs": 1,000 ready refs, then
// 1,000 one-at-a-time Waits, each on the refs not yet returned. Reports whole
// rounds per second (Ray: ~5/s) and single Waits per second.
func BenchmarkWait(b *testing.B) {
	st := openStore(b, 64<<20, false)
	const n = 1000
	refs := putSmall(b, st, n)
	b.ReportAllocs()
	for b.Loop() {
		notReady := refs
		for range n {
			var err error
			if _, notReady, err = st.Wait(ctx, notReady, 1); err != nil {
				b.Fatal(err)
			}
		}
		if len(notReady) != 0 {
			b.Fatalf("%d refs never ready", len(notReady))
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "rounds/s")
	b.ReportMetric(float64(b.N)*n/b.Elapsed().Seconds(), "waits/s")
}

// BenchmarkGetValueOf10kRefs is Ray's "single client get object containing 10k
// refs" (Ray: ~13/s): one object whose value is 10,000 refs, decoded (each ref
// becoming a live handle), then every inner object got and released. The value is
// a []Ref (form=list) or a struct with the refs in a field (form=struct).
func BenchmarkGetValueOf10kRefs(b *testing.B) {
	type holder struct {
		Name string
		Refs []trove.Ref
	}
	st := openStore(b, 64<<20, false)
	const n = 10000
	inner := putSmall(b, st, n) // dropped below, once the outer values hold them
	list, err := trove.PutValue(ctx, st, inner)
	if err != nil {
		b.Fatal(err)
	}
	defer list.Drop()
	strct, err := trove.PutValue(ctx, st, holder{Name: "10k", Refs: inner})
	if err != nil {
		b.Fatal(err)
	}
	defer strct.Drop()
	for _, r := range inner {
		r.Drop()
	}
	for _, form := range []string{"list", "struct"} {
		b.Run("form="+form, func(b *testing.B) {
			get := func() ([]trove.Ref, error) {
				if form == "list" {
					return trove.GetValue[[]trove.Ref](ctx, st, list)
				}
				v, err := trove.GetValue[holder](ctx, st, strct)
				return v.Refs, err
			}
			b.ReportAllocs()
			for b.Loop() {
				refs, err := get()
				if err != nil {
					b.Fatal(err)
				}
				if len(refs) != n {
					b.Fatalf("GetValue gave %d refs, want %d", len(refs), n)
				}
				objs, err := st.GetAll(ctx, refs)
				if err != nil {
					b.Fatal(err)
				}
				trove.ReleaseAll(objs)
				for _, r := range refs {
					r.Drop()
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "gets/s")
		})
	}
}

// BenchmarkGetAll10k gets 10,000 ready refs with one GetAll.
func BenchmarkGetAll10k(b *testing.B) {
	st := openStore(b, 64<<20, false)
	refs := putSmall(b, st, 10000)
	b.ReportAllocs()
	for b.Loop() {
		objs, err := st.GetAll(ctx, refs)
		if err != nil {
			b.Fatal(err)
		}
		trove.ReleaseAll(objs)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "getalls/s")
}

// BenchmarkLiveObjects measures Get+Release with 1k and with 1M live objects, and
// the store's metadata per live object: the Go heap that putting an empty object
// costs, less what the same number of Ref handles (and the slice holding them)
// cost on their own, measured alongside (handleBytes).
//
// access=hot gets one object over and over: the table's size must not matter
// (x_1k is the ratio to 1k live objects). access=random strides over every
// object, so with 1M objects each Get misses the CPU caches; its baseline,
// op=chase, makes the dependent loads a Get must make (the ref in the caller's
// slice, its handle, the store's 64-byte record) with no store at all, and
// get/chase is Get's time over that.
func BenchmarkLiveObjects(b *testing.B) {
	type key struct {
		live   int
		access string
	}
	ns := map[key]float64{}
	for _, live := range []int{1000, 1000000} {
		st := openStore(b, 64<<20, false)
		var before, after runtime.MemStats
		refs := make([]trove.Ref, live)
		runtime.GC()
		runtime.ReadMemStats(&before)
		for i := range refs {
			r, err := st.Put(ctx, nil)
			if err != nil {
				b.Fatal(err)
			}
			refs[i] = r
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		perObject := float64(after.HeapAlloc-before.HeapAlloc) / float64(live)
		perObject -= handleBytes(live) // the caller's handles and slice, not the store's

		for _, access := range []string{"hot", "random"} {
			b.Run(fmt.Sprintf("live=%d/access=%s/op=get", live, access), func(b *testing.B) {
				stride := 0
				if access == "random" {
					stride = 7919 // a prime: visits every object, defeating the caches
				}
				b.ReportAllocs()
				i := 0
				for b.Loop() {
					obj, err := st.Get(ctx, refs[i])
					if err != nil {
						b.Fatal(err)
					}
					obj.Release()
					i = (i + stride) % live
				}
				t := float64(b.Elapsed().Nanoseconds()) / float64(b.N)
				ns[key{live, access}] = t
				if small, ok := ns[key{1000, access}]; ok && live != 1000 {
					b.ReportMetric(t/small, "x_1k")
				}
				if chase, ok := ns[key{live, "chase"}]; ok {
					b.ReportMetric(t/chase, "x_chase")
				}
				b.ReportMetric(perObject, "B/object(store)")
			})
		}
		b.Run(fmt.Sprintf("live=%d/access=random/op=chase", live), func(b *testing.B) {
			// Each record holds the index of the next one, so every load depends on
			// the one before, as Get's do: no overlapping of misses.
			type record struct {
				next int
				_    [7]uint64
			}
			type handle struct {
				_   [9]uint64
				rec *record
			}
			hs := make([]*handle, live)
			for i := range hs {
				hs[i] = &handle{rec: &record{next: (i + 7919) % live}}
			}
			runtime.GC()
			i := 0
			for b.Loop() {
				i = hs[i].rec.next
			}
			t := float64(b.Elapsed().Nanoseconds()) / float64(b.N)
			ns[key{live, "chase"}] = t
			if get, ok := ns[key{live, "random"}]; ok {
				b.ReportMetric(get/t, "get/chase")
			}
		})
		for _, r := range refs {
			r.Drop()
		}
	}
}

// noopOwner owns refs that hold nothing, to measure what handles alone cost.
type noopOwner struct{}

func (noopOwner) ReleaseRef(trove.ObjectID, any) {}

// handleBytes returns the Go heap per handle of n Ref handles held in a slice.
func handleBytes(n int) float64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	refs := make([]trove.Ref, n)
	hint := new(int)
	for i := range refs {
		refs[i] = trove.NewRef(trove.ObjectID{}, noopOwner{}, hint)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(refs)
	return float64(after.HeapAlloc-before.HeapAlloc) / float64(n)
}

package engine

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/trovedb/trove"
	"github.com/trovedb/trove/spill"
)

// pressureStore opens a store that spills into a test directory, with batches small
// enough for test-sized stores.
func pressureStore(t testing.TB, capacity int64, mod func(*Config)) (*Store, string) {
	t.Helper()
	dir := t.TempDir()
	cfg := Config{Capacity: capacity, SpillDirs: []string{dir}, MinSpillSize: capacity / 8}
	if mod != nil {
		mod(&cfg)
	}
	return newStore(t, cfg), dir
}

// fill returns size bytes that depend on seed, fast enough for hundreds of MiB.
func fill(size int, seed uint64) []byte {
	b := make([]byte, size)
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	var block [4096]byte
	for i := range block {
		block[i] = byte(rng.Uint32())
	}
	for off := 0; off < size; off += len(block) {
		copy(b[off:], block[:])
		if off+8 <= size {
			b[off] ^= byte(off >> 12) // no two blocks alike
			b[off+1] ^= byte(off >> 20)
		}
	}
	return b
}

// requireDrained is requireEmpty for a store that spilled: nothing in memory, on
// disk, or pinned, and no spill file left in dir.
func requireDrained(t testing.TB, s *Store, dir string) {
	t.Helper()
	requireEmpty(t, s)
	st := s.Stats()
	if st.SpilledObjects != 0 || st.SpilledBytes != 0 || st.SpillFiles != 0 || st.SpillDiskBytes != 0 || st.InMemoryBytes != 0 || st.FallbackBytes != 0 {
		t.Fatalf("spill state left after every ref was dropped: spilled %d objects / %d bytes, %d files / %d bytes on disk, %d in memory, %d mapped",
			st.SpilledObjects, st.SpilledBytes, st.SpillFiles, st.SpillDiskBytes, st.InMemoryBytes, st.FallbackBytes)
	}
	if dir != "" {
		ents, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range ents {
			if e.Type().IsRegular() && !strings.HasSuffix(e.Name(), ".lock") { // the live store's owner file
				t.Fatalf("spill file %s left in %s", e.Name(), dir)
			}
			sub, _ := os.ReadDir(dir + "/" + e.Name())
			if len(sub) != 0 {
				t.Fatalf("%d spill files left in %s/%s", len(sub), dir, e.Name())
			}
		}
	}
}

// TestWorkingSetThreeTimesCapacity puts three times the store's capacity in objects
// of random sizes (1 KiB–64 MiB), reads them back at random, and checks every byte.
func TestWorkingSetThreeTimesCapacity(t *testing.T) {
	const capacity = 128 << 20
	s, dir := pressureStore(t, capacity, nil)
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(1, 2))
	type obj struct {
		ref trove.Ref
		sum uint32
		n   int
	}
	var objs []obj
	var total int64
	for total < 3*capacity {
		size := int(1<<10) << rng.IntN(17) // 1 KiB .. 64 MiB, log-uniform
		size += rng.IntN(size)/2 - size/4
		size = min(size, 64<<20)
		data := fill(size, uint64(len(objs)))
		ref, err := s.Put(ctx, data)
		if err != nil {
			t.Fatalf("put %d of %d bytes with %d stored: %v", len(objs), size, total, err)
		}
		objs = append(objs, obj{ref, crc32.ChecksumIEEE(data), size})
		total += int64(size)
	}
	st := s.Stats()
	if st.SpilledObjects == 0 || st.Spills == 0 {
		t.Fatalf("3x capacity stored without spilling: %+v", st)
	}
	if st.Used > capacity {
		t.Fatalf("arena over capacity: %d", st.Used)
	}
	t.Logf("%d objects, %s; %d spilled (%s) in %d files", len(objs), trove.HumanBytes(total),
		st.SpilledObjects, trove.HumanBytes(st.SpilledBytes), st.SpillFilesWritten)
	for range 2 * len(objs) {
		o := objs[rng.IntN(len(objs))]
		v, err := s.Get(ctx, o.ref)
		if err != nil {
			t.Fatal(err)
		}
		if v.Size() != o.n || crc32.ChecksumIEEE(v.Bytes()) != o.sum {
			t.Fatalf("object %s came back with %d bytes and a different checksum", o.ref.ID(), v.Size())
		}
		v.Release()
	}
	if s.Stats().Restores == 0 {
		t.Fatal("random reads of a spilled working set restored nothing")
	}
	for _, o := range objs {
		o.ref.Drop()
	}
	requireDrained(t, s, dir)
}

func TestSecondaryCopiesEvictedFirst(t *testing.T) {
	s, dir := pressureStore(t, 32<<20, func(c *Config) { c.MinSpillSize = 1 << 20 })
	ctx := context.Background()
	var copies []trove.Ref
	for i := range 3 {
		b, err := s.CreateCopy(ctx, trove.NewObjectID(trove.NodeID{9}, uint64(i+1)), 8<<20)
		if err != nil {
			t.Fatal(err)
		}
		copy(b.Bytes(), fill(8<<20, uint64(i)))
		if err := b.Seal(); err != nil {
			t.Fatal(err)
		}
		copies = append(copies, b.Ref())
	}
	if _, err := s.CreateCopy(ctx, copies[0].ID(), 1); !errors.Is(err, ErrCopyExists) {
		t.Fatalf("a second copy of one object: %v, want ErrCopyExists", err)
	}
	// Touch the newest copy so that it is the most recently used.
	v, _ := s.Get(ctx, copies[2])
	v.Release()
	// Primaries needing room: the two older copies go, no primary is spilled.
	a, err := s.Put(ctx, fill(8<<20, 10))
	if err != nil {
		t.Fatal(err)
	}
	b, err := s.Put(ctx, fill(8<<20, 11))
	if err != nil {
		t.Fatal(err)
	}
	st := s.Stats()
	if st.Evictions == 0 || st.Spills != 0 {
		t.Fatalf("evictions %d, spills %d: secondary copies must go first, without spilling", st.Evictions, st.Spills)
	}
	if _, err := s.Get(ctx, copies[0]); !errors.Is(err, trove.ErrObjectEvicted) {
		t.Fatalf("Get of the least recently used copy: %v, want ErrObjectEvicted", err)
	}
	v, err = s.Get(ctx, copies[2])
	if err != nil {
		t.Fatalf("the most recently used copy was evicted before older ones: %v", err)
	}
	v.Release()
	for _, r := range append(copies, a, b) {
		r.Drop()
	}
	requireDrained(t, s, dir)
}

func TestPinnedObjectsStayInMemory(t *testing.T) {
	s, dir := pressureStore(t, 32<<20, func(c *Config) { c.MinSpillSize = 1 << 20 })
	ctx := context.Background()
	var refs []trove.Ref
	var views []*trove.Object
	for i := range 3 {
		r, err := s.Put(ctx, fill(8<<20, uint64(i)))
		if err != nil {
			t.Fatal(err)
		}
		v, err := s.Get(ctx, r)
		if err != nil {
			t.Fatal(err)
		}
		refs, views = append(refs, r), append(views, v)
	}
	// 24 MiB pinned in a 32 MiB store: a 16 MiB object cannot fit.
	// The data is made before the deadline starts, so that the Put, not the
	// fill, is what the deadline bounds.
	big := fill(16<<20, 9)
	tctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	_, err := s.Put(tctx, big)
	cancel()
	var full *trove.StoreFullError
	if !errors.As(err, &full) || full.PinnedObjects != 3 {
		t.Fatalf("Put needing pinned memory: %v; want StoreFullError naming 3 pinned objects", err)
	}
	if st := s.Stats(); st.SpilledObjects != 0 {
		t.Fatalf("%d pinned objects were spilled", st.SpilledObjects)
	}
	for i, v := range views {
		if crc32.ChecksumIEEE(v.Bytes()) != crc32.ChecksumIEEE(fill(8<<20, uint64(i))) {
			t.Fatalf("pinned object %d changed", i)
		}
	}
	// Released, they can go to disk and the Put succeeds.
	trove.ReleaseAll(views)
	r, err := s.Put(ctx, fill(16<<20, 9))
	if err != nil {
		t.Fatal(err)
	}
	if st := s.Stats(); st.SpilledObjects == 0 {
		t.Fatal("room was made without spilling")
	}
	for i, ref := range refs {
		v, err := s.Get(ctx, ref)
		if err != nil {
			t.Fatal(err)
		}
		if crc32.ChecksumIEEE(v.Bytes()) != crc32.ChecksumIEEE(fill(8<<20, uint64(i))) {
			t.Fatalf("object %d changed by a spill and restore", i)
		}
		v.Release()
	}
	for _, ref := range append(refs, r) {
		ref.Drop()
	}
	requireDrained(t, s, dir)
}

// TestManySmallObjectsFewFiles is Ray's issue #22485 at a tenth of the size: 1,600
// objects of 1 MiB through a 64 MiB store must be spilled as large batches (Ray
// wrote one file per object), here at most 200 files.
func TestManySmallObjectsFewFiles(t *testing.T) {
	s, dir := pressureStore(t, 64<<20, func(c *Config) { c.MinSpillSize = 8 << 20 })
	ctx := context.Background()
	refs := make([]trove.Ref, 0, 1600)
	data := fill(1<<20, 7)
	for range 1600 {
		r, err := s.Put(ctx, data)
		if err != nil {
			t.Fatal(err)
		}
		refs = append(refs, r)
	}
	st := s.Stats()
	t.Logf("1600 x 1 MiB: %d objects spilled in %d files", st.Spills, st.SpillFilesWritten)
	if st.SpillFilesWritten == 0 || st.SpillFilesWritten > 200 {
		t.Fatalf("%d spill files for 1600 objects of 1 MiB, want 1..200", st.SpillFilesWritten)
	}
	for _, r := range refs {
		r.Drop()
	}
	requireDrained(t, s, dir)
}

func TestFallbackAllocation(t *testing.T) {
	s, dir := pressureStore(t, 16<<20, func(c *Config) { c.MinSpillSize = 1 << 20 })
	ctx := context.Background()
	a, err := s.Put(ctx, fill(6<<20, 1))
	if err != nil {
		t.Fatal(err)
	}
	// Fill memory with pinned objects: a's memory must be spilled to make room.
	var refs []trove.Ref
	var views []*trove.Object
	for i := range 2 {
		r, err := s.Put(ctx, fill(6<<20, uint64(2+i)))
		if err != nil {
			t.Fatal(err)
		}
		v, _ := s.Get(ctx, r)
		refs, views = append(refs, r), append(views, v)
	}
	if st := s.Stats(); st.SpilledObjects != 1 {
		t.Fatalf("a was not spilled: %+v", st)
	}
	// No room to restore a: it is mapped from its spill file instead.
	v, err := s.Get(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	if crc32.ChecksumIEEE(v.Bytes()) != crc32.ChecksumIEEE(fill(6<<20, 1)) {
		t.Fatal("fallback-mapped object differs from what was put")
	}
	if st := s.Stats(); st.FallbackAllocations != 1 || st.FallbackBytes != 6<<20 {
		t.Fatalf("stats do not show the fallback: %d allocations, %d bytes", st.FallbackAllocations, st.FallbackBytes)
	}
	v.Release()
	trove.ReleaseAll(views)
	for _, r := range append(refs, a) {
		r.Drop()
	}
	requireDrained(t, s, dir)

	// With fallback off, the same Get waits for room and fails when its context ends.
	s2, dir2 := pressureStore(t, 16<<20, func(c *Config) { c.MinSpillSize = 1 << 20; c.Fallback = FallbackOff })
	a, _ = s2.Put(ctx, fill(6<<20, 1))
	refs, views = nil, nil
	for i := range 2 {
		r, _ := s2.Put(ctx, fill(6<<20, uint64(2+i)))
		v, _ := s2.Get(ctx, r)
		refs, views = append(refs, r), append(views, v)
	}
	tctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	_, err = s2.Get(tctx, a)
	cancel()
	if !errors.Is(err, trove.ErrStoreFull) {
		t.Fatalf("restore into a full store without fallback: %v, want ErrStoreFull", err)
	}
	trove.ReleaseAll(views)
	v, err = s2.Get(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	v.Release()
	for _, r := range append(refs, a) {
		r.Drop()
	}
	requireDrained(t, s2, dir2)
}

// TestPressureConcurrent runs producers, readers holding views and droppers on a
// store that spills all the while; run it under -race.
func TestPressureConcurrent(t *testing.T) {
	s, dir := pressureStore(t, 32<<20, func(c *Config) { c.MinSpillSize = 2 << 20 })
	ctx := context.Background()
	var wg sync.WaitGroup
	for w := range 3 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 3))
			type obj struct {
				ref  trove.Ref
				seed uint64
				n    int
			}
			var live []obj
			for i := range 60 {
				switch rng.IntN(3) {
				case 0, 1:
					n := 200<<10 + rng.IntN(3<<20)
					seed := uint64(w*1000 + i)
					r, err := s.Put(ctx, fill(n, seed))
					if err != nil {
						t.Error(err)
						return
					}
					live = append(live, obj{r, seed, n})
				case 2:
					if len(live) == 0 {
						continue
					}
					o := live[rng.IntN(len(live))]
					v, err := s.Get(ctx, o.ref)
					if err != nil {
						t.Error(err)
						return
					}
					if crc32.ChecksumIEEE(v.Bytes()) != crc32.ChecksumIEEE(fill(o.n, o.seed)) {
						t.Errorf("object %s changed", o.ref.ID())
					}
					v.Release()
					if len(live) > 6 {
						j := rng.IntN(len(live))
						live[j].ref.Drop()
						live = append(live[:j], live[j+1:]...)
					}
				}
			}
			for _, o := range live {
				o.ref.Drop()
			}
		})
	}
	wg.Wait()
	requireDrained(t, s, dir)
}

func TestSpillNow(t *testing.T) {
	s, dir := pressureStore(t, 64<<20, nil)
	ctx := context.Background()
	big, _ := s.Put(ctx, fill(4<<20, 1))
	small, _ := s.Put(ctx, []byte("inline"))
	pinned, _ := s.Put(ctx, fill(2<<20, 2))
	v, _ := s.Get(ctx, pinned)
	n, err := s.Spill(ctx, []trove.Ref{big, small, pinned})
	if err != nil || n != 1 {
		t.Fatalf("Spill of one arena object, one inline, one pinned: %d spilled, %v; want 1", n, err)
	}
	if st := s.Stats(); st.SpilledObjects != 1 || st.SpilledBytes != 4<<20 {
		t.Fatalf("after Spill: %d objects, %d bytes spilled", st.SpilledObjects, st.SpilledBytes)
	}
	got, err := s.Get(ctx, big)
	if err != nil || crc32.ChecksumIEEE(got.Bytes()) != crc32.ChecksumIEEE(fill(4<<20, 1)) {
		t.Fatalf("restored object differs: %v", err)
	}
	got.Release()
	v.Release()
	for _, r := range []trove.Ref{big, small, pinned} {
		r.Drop()
	}
	if _, err := s.Spill(ctx, []trove.Ref{big}); !errors.Is(err, trove.ErrInvalidRef) {
		t.Fatalf("Spill of a dropped ref: %v, want ErrInvalidRef", err)
	}
	requireDrained(t, s, dir)
}

// TestSpillDirError: a spill directory that cannot be made fails Open with the
// OS's error and names the settings the user has, not the spill package's.
func TestSpillDirError(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "no", "parent")
	_, err := Open(Config{Capacity: 16 << 20, SpillDirs: []string{dir}})
	if !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), dir) ||
		!strings.Contains(err.Error(), "choose another (troved -spill-dir or engine.Config.SpillDirs)") {
		t.Errorf("Open with spill directory %s: %v; want ErrNotExist naming the directory and the settings", dir, err)
	}
}

// TestSpillLeftovers: Open removes the spill files of a store that ended
// without Close and says how many bytes came back, and leaves a live store's
// files alone. (The spill package's tests crash real processes with SIGKILL;
// here the leftover is a live store's spill file copied under the name of a
// process that has exited, without the owner file a live one holds.)
func TestSpillLeftovers(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	a := newStore(t, Config{Capacity: 16 << 20, SpillDirs: []string{dir}})
	if left := a.SpillLeftovers(); left != (spill.Leftovers{}) {
		t.Errorf("a fresh directory had leftovers: %+v", left)
	}
	data := pattern(1<<20, 3)
	ref, err := a.Put(ctx, data)
	if err != nil {
		t.Fatal(err)
	}
	if n, err := a.Spill(ctx, []trove.Ref{ref}); n != 1 || err != nil {
		t.Fatalf("Spill: %d, %v", n, err)
	}
	exited := exec.Command("true")
	if err := exited.Run(); err != nil {
		t.Skipf("cannot run true(1) to get a dead PID: %v", err)
	}
	var spilled string
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), ".spill") {
			spilled = e.Name()
		}
	}
	b, err := os.ReadFile(filepath.Join(dir, spilled))
	if err != nil {
		t.Fatal(err)
	}
	dead := fmt.Sprintf("trove-%d-0000dead-1.spill", exited.Process.Pid)
	if err := os.WriteFile(filepath.Join(dir, dead), b, 0o600); err != nil {
		t.Fatal(err)
	}

	s := newStore(t, Config{Capacity: 16 << 20, SpillDirs: []string{dir}})
	if left := s.SpillLeftovers(); left.Files != 1 || left.Bytes != int64(len(b)) || left.Kept != 0 || left.Err != nil {
		t.Errorf("SpillLeftovers %+v, want 1 file of %d bytes", left, len(b))
	}
	if _, err := os.Stat(filepath.Join(dir, dead)); err == nil {
		t.Errorf("%s survived Open", dead)
	}
	obj, err := a.Get(ctx, ref) // restored from the live store's file
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(obj.Bytes(), data) {
		t.Error("the live store's spilled object changed")
	}
	obj.Release()
	ref.Drop()
	requireDrained(t, a, "")
	requireDrained(t, s, dir)
}

package engine

import (
	"context"
	"errors"
	"hash/crc32"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/trovedb/trove"
	"github.com/trovedb/trove/spill"
	"github.com/trovedb/trove/spill/errorfs"
)

// Fault injection under memory pressure: the store spills into an errorfs.FS,
// and each test breaks the disk in one way and checks that nothing stored is
// lost or returned damaged, that the caller gets the error the API promises, and
// that everything drains once the refs are dropped.

// faultWait bounds every wait in these tests for something that must happen: it
// detects a deadlock, it measures nothing.
const faultWait = 20 * time.Second

// faultStore is pressureStore spilling through efs, in 1 MiB batches.
func faultStore(t *testing.T, capacity int64, efs *errorfs.FS, mod func(*Config)) (*Store, string) {
	t.Helper()
	return pressureStore(t, capacity, func(c *Config) {
		c.MinSpillSize = 1 << 20
		c.SpillFS = efs
		if mod != nil {
			mod(c)
		}
	})
}

// stored is an object a test put, with what it must read back as.
type stored struct {
	ref trove.Ref
	sum uint32
	n   int
}

// putObjects puts n objects of size bytes.
func putObjects(t *testing.T, s *Store, n, size int, seed uint64) []stored {
	t.Helper()
	objs := make([]stored, n)
	for i := range objs {
		data := fill(size, seed+uint64(i))
		r, err := s.Put(context.Background(), data)
		if err != nil {
			t.Fatalf("put %d of %d: %v", i, n, err)
		}
		objs[i] = stored{r, crc32.ChecksumIEEE(data), size}
	}
	return objs
}

// checkIntact reads every object back and compares its checksum.
func checkIntact(t *testing.T, s *Store, objs ...stored) {
	t.Helper()
	for _, o := range objs {
		v, err := s.Get(context.Background(), o.ref)
		if err != nil {
			t.Fatalf("get %s: %v", o.ref.ID(), err)
		}
		if v.Size() != o.n || crc32.ChecksumIEEE(v.Bytes()) != o.sum {
			v.Release()
			t.Fatalf("object %s read back as %d different bytes", o.ref.ID(), v.Size())
		}
		v.Release()
	}
}

func dropStored(objs ...stored) {
	for _, o := range objs {
		o.ref.Drop()
	}
}

// await returns what ch yields, or fails the test after faultWait.
func await[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(faultWait):
		t.Fatalf("%s: nothing after %v; deadlock?", what, faultWait)
		panic("unreachable")
	}
}

// roomWait is what putNeedingRoom saw of a Put that waited for room.
type roomWait struct {
	err  error
	size int64 // bytes asked for
	// expired: the Put's context had passed its deadline when Put returned.
	// This, not a wall-clock comparison, is what says the Put honoured its
	// deadline: a preemption between taking a start time and calling Put once
	// made an honoured deadline look early on a loaded machine.
	expired bool
	took    time.Duration // for the log only; never asserted on
}

// putNeedingRoom puts an object 1 MiB larger than the largest free run, so
// that it cannot be placed without spilling, with a deadline of d.
func putNeedingRoom(t *testing.T, s *Store, d time.Duration) roomWait {
	t.Helper()
	s.WaitIdle()
	size := s.Stats().LargestFree + 1<<20
	data := fill(int(size), 1234)
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	r, err := s.Put(ctx, data)
	w := roomWait{err: err, size: size, expired: ctx.Err() != nil, took: time.Since(start)}
	if err == nil {
		r.Drop()
		t.Fatalf("Put of %s into a full store whose spills fail succeeded", trove.HumanBytes(size))
	}
	return w
}

// TestFaultSpillWriteErrors: every spill write fails (EIO). A Put that needs
// room waits for its deadline, then fails with ErrStoreFull (not ErrOutOfDisk:
// the disk is not full); every object stored before reads back intact, the
// spilled ones from their files, the others from memory; and once the disk
// works again the same Put succeeds.
func TestFaultSpillWriteErrors(t *testing.T) {
	const capacity = 32 << 20
	efs := errorfs.New()
	s, dir := faultStore(t, capacity, efs, nil)
	objs := putObjects(t, s, 12, 4<<20, 0) // 48 MiB through 32: some are spilled
	s.WaitIdle()
	spilled := s.Stats().SpilledObjects
	if spilled == 0 {
		t.Fatal("48 MiB put into a 32 MiB store without spilling")
	}

	fail := efs.Inject(errorfs.Fault{Kind: errorfs.WriteErr, Err: syscall.EIO})
	errsBefore := s.pressure.spiller.Stats().Errors
	w := putNeedingRoom(t, s, 300*time.Millisecond)
	err, size := w.err, w.size
	attempts := s.pressure.spiller.Stats().Errors - errsBefore
	t.Logf("Put of %s failed after %v, %d failed spill batches: %v", trove.HumanBytes(size), w.took, attempts, err)
	var full *trove.StoreFullError
	switch {
	case !errors.As(err, &full) || !errors.Is(err, trove.ErrStoreFull):
		t.Fatalf("Put needing room while every spill fails: %v, want a StoreFullError", err)
	case errors.Is(err, trove.ErrOutOfDisk):
		t.Fatalf("a write error reported as out of disk: %v", err)
	case !errors.Is(err, context.DeadlineExceeded) || !w.expired:
		t.Fatalf("Put gave up before its deadline (context expired: %v) with %v; it must wait for room until its deadline", w.expired, err)
	case full.Requested != size || full.Capacity != s.Stats().Capacity || full.Used == 0:
		t.Fatalf("StoreFullError figures %+v; want %d bytes requested of capacity %d", full, size, s.Stats().Capacity)
	case fail.Fired() == 0:
		t.Fatal("no spill was attempted")
	}
	if st := s.Stats(); st.SpilledObjects != spilled {
		t.Fatalf("%d objects spilled after failing writes, %d before", st.SpilledObjects, spilled)
	}
	checkIntact(t, s, objs...)

	efs.RemoveFault(fail)
	r, err := s.Put(context.Background(), fill(int(size), 1234))
	if err != nil {
		t.Fatalf("the same Put once the disk works again: %v", err)
	}
	r.Drop()
	checkIntact(t, s, objs...)
	dropStored(objs...)
	requireDrained(t, s, dir)
}

// TestFaultOutOfDisk: the spill directory is full. A Put that needs room fails
// at its deadline with ErrOutOfDisk, whose figures say what was needed and where
// it could not go; the objects stored are intact; with space again it succeeds.
func TestFaultOutOfDisk(t *testing.T) {
	for _, tc := range []struct {
		name    string
		fill    func(efs *errorfs.FS, dir string) (undo func())
		wantErr error // beside ErrOutOfDisk
	}{
		{"disk fills during the write", func(efs *errorfs.FS, dir string) func() {
			f := efs.Inject(errorfs.Fault{Kind: errorfs.NoSpace, Budget: 64 << 10})
			return func() { efs.RemoveFault(f) }
		}, syscall.ENOSPC},
		{"no space before the write", func(efs *errorfs.FS, dir string) func() {
			efs.SetAvailable(dir, 0)
			return func() { efs.SetAvailable(dir, -1) }
		}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			const capacity = 32 << 20
			efs := errorfs.New()
			s, dir := faultStore(t, capacity, efs, nil)
			objs := putObjects(t, s, 12, 4<<20, 100)
			s.WaitIdle()
			before := s.Stats()
			if before.SpilledBytes == 0 {
				t.Fatal("48 MiB put into a 32 MiB store without spilling")
			}

			undo := tc.fill(efs, dir)
			w := putNeedingRoom(t, s, 300*time.Millisecond)
			err, size := w.err, w.size
			t.Logf("Put failed after %v: %v", w.took, err)
			var ood *trove.OutOfDiskError
			if !errors.Is(err, trove.ErrOutOfDisk) || !errors.As(err, &ood) || !errors.Is(err, spill.ErrOutOfDisk) {
				t.Fatalf("Put needing room with the spill disk full: %v, want an OutOfDiskError", err)
			}
			if tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
				t.Errorf("error does not match %v: %v", tc.wantErr, err)
			}
			if !errors.Is(err, context.DeadlineExceeded) || !w.expired {
				t.Errorf("Put gave up before its deadline (context expired: %v); it must wait for room until its deadline", w.expired)
			}
			if ood.Full.Requested != size || ood.Full.Capacity != before.Capacity || ood.Full.Used == 0 ||
				ood.Spilled != before.SpilledBytes || !slices.Equal(ood.SpillDirs, []string{dir}) {
				t.Errorf("OutOfDiskError figures %+v (full %+v); want %d requested, %d capacity, %d spilled to %s",
					ood, ood.Full, size, before.Capacity, before.SpilledBytes, dir)
			}
			if !strings.Contains(err.Error(), dir) || !strings.Contains(err.Error(), "troved -spill-dir or engine.Config.SpillDirs") {
				t.Errorf("the error does not name the spill directory %s and the settings that choose it: %v", dir, err)
			}
			checkIntact(t, s, objs...)

			undo()
			r, err := s.Put(context.Background(), fill(int(size), 1234))
			if err != nil {
				t.Fatalf("the same Put with disk space again: %v", err)
			}
			r.Drop()
			dropStored(objs...)
			requireDrained(t, s, dir)
		})
	}
}

// TestFaultCorruptRestore: reads of a spill file come back short or with a
// flipped byte. Get of an object in it fails with ErrSpillCorrupt naming the
// object and the file, never with wrong bytes, and gives back the memory it
// took for the restore; objects in other files read back.
//
// What the engine does next: the object stays spilled, and each Get reads the
// file again. Every read that fails verification is reported as corrupt; a read
// that passes returns the object. A damaged file is therefore reported on every
// Get, and a transient fault (a bad read, the file intact) costs one failed Get.
func TestFaultCorruptRestore(t *testing.T) {
	for _, tc := range []struct {
		name       string
		fault      errorfs.Fault // Path is set to the spill file
		persistent bool          // every read of the file, not one
	}{
		// Read 1 of the file is a's header, read 2 a range of its data.
		{"short read", errorfs.Fault{Kind: errorfs.ShortRead, Nth: 2}, false},
		{"flipped byte", errorfs.Fault{Kind: errorfs.FlipByte, Nth: 2, At: 12345}, false},
		{"short header read", errorfs.Fault{Kind: errorfs.ShortRead, Nth: 1}, false},
		{"every read short", errorfs.Fault{Kind: errorfs.ShortRead}, true},
		{"every read flipped", errorfs.Fault{Kind: errorfs.FlipByte, At: 777}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			efs := errorfs.New()
			s, dir := faultStore(t, 64<<20, efs, nil)
			ctx := context.Background()
			// a is large enough to be restored by several goroutines; b shares its
			// file, c has its own.
			a := putObjects(t, s, 1, 6<<20, 1)[0]
			b := putObjects(t, s, 1, 1<<20, 2)[0]
			c := putObjects(t, s, 1, 2<<20, 3)[0]
			for _, batch := range [][]trove.Ref{{a.ref, b.ref}, {c.ref}} {
				if n, err := s.Spill(ctx, batch); err != nil || n != len(batch) {
					t.Fatalf("Spill: %d of %d, %v", n, len(batch), err)
				}
			}
			e, err := s.entryOf(a.ref)
			if err != nil {
				t.Fatal(err)
			}
			path := s.pressure.spiller.Path(e.more.loc)
			if path == "" {
				t.Fatal("a has no spill file")
			}
			f := tc.fault
			f.Path = path
			fault := efs.Inject(f)
			before := s.Stats()

			getCorrupt := func(o stored) {
				t.Helper()
				v, err := s.Get(ctx, o.ref)
				if err == nil {
					ok := crc32.ChecksumIEEE(v.Bytes()) == o.sum
					v.Release()
					t.Fatalf("Get of %s through a failing read returned data (intact: %v)", o.ref.ID(), ok)
				}
				var ce *spill.CorruptError
				if !errors.Is(err, trove.ErrSpillCorrupt) || !errors.As(err, &ce) || ce.Path != path {
					t.Fatalf("Get of %s through a failing read: %v, want ErrSpillCorrupt for %s", o.ref.ID(), err, path)
				}
				for _, want := range []string{o.ref.ID().String(), path} {
					if !strings.Contains(err.Error(), want) {
						t.Errorf("the error does not name %s: %v", want, err)
					}
				}
				if st := s.Stats(); st.Used != before.Used || st.SpilledObjects != before.SpilledObjects {
					t.Errorf("after a failed restore: %d bytes used (%d before), %d objects spilled (%d before)",
						st.Used, before.Used, st.SpilledObjects, before.SpilledObjects)
				}
			}

			getCorrupt(a)
			if fault.Fired() == 0 {
				t.Fatal("the fault never fired")
			}
			checkIntact(t, s, c)
			before = s.Stats() // c is back in memory
			if tc.persistent {
				getCorrupt(b)
				getCorrupt(a) // again: the file is read again, and fails again
				efs.RemoveFault(fault)
			}
			// The file itself is intact: without the fault, a and b read back.
			checkIntact(t, s, a, b)
			dropStored(a, b, c)
			requireDrained(t, s, dir)
		})
	}
}

// TestFaultStalledSpill: a spill write hangs (a stalled disk) while other
// goroutines read, restore and drop objects, some of them in the stalled
// batch. Nothing that needs no room waits for the disk; once it comes back the
// stalled Put completes and everything drains.
func TestFaultStalledSpill(t *testing.T) {
	efs := errorfs.New()
	// No background spilling: the only spill is the one the Put below needs.
	s, dir := faultStore(t, 32<<20, efs, func(c *Config) { c.SpillThreshold = 1 })
	ctx := context.Background()
	x := putObjects(t, s, 1, 1<<20, 50)[0]
	if n, err := s.Spill(ctx, []trove.Ref{x.ref}); err != nil || n != 1 {
		t.Fatalf("Spill: %d, %v", n, err)
	}
	objs := putObjects(t, s, 7, 4<<20, 60) // 28 MiB of 32

	stall := efs.Inject(errorfs.Fault{Kind: errorfs.StallWrite, Nth: 1, Gate: make(chan struct{})})
	release := sync.OnceFunc(func() { close(stall.Gate) })
	t.Cleanup(release) // before the store's Close, which would wait for the write
	type putResult struct {
		ref trove.Ref
		err error
	}
	big := fill(8<<20, 70)
	putDone := make(chan putResult, 1)
	go func() {
		r, err := s.Put(ctx, big)
		putDone <- putResult{r, err}
	}()
	await(t, stall.Entered(), "the Put's spill write")

	var held, free []stored // in the stalled batch, and not
	for _, o := range objs {
		e, err := s.entryOf(o.ref)
		if err != nil {
			t.Fatal(err)
		}
		if e.rc.Load()&holdBit != 0 {
			held = append(held, o)
		} else {
			free = append(free, o)
		}
	}
	if len(held) < 2 || len(free) < 3 {
		t.Fatalf("%d objects in the stalled batch, %d not; want at least 2 and 3", len(held), len(free))
	}

	// While the write hangs: read objects in memory (one of them in the batch,
	// pinned now so that it stays resident), restore x (there is room for it),
	// drop objects (one of them in the batch: freed when its write ends).
	pinned, err := s.Get(ctx, held[0].ref)
	if err != nil {
		t.Fatal(err)
	}
	reads := append(slices.Clone(free[1:]), x)
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for g := range 3 {
		wg.Go(func() {
			for i := range 20 {
				o := reads[(g+i)%len(reads)]
				v, err := s.Get(ctx, o.ref)
				if err != nil {
					errs <- err
					return
				}
				if crc32.ChecksumIEEE(v.Bytes()) != o.sum {
					errs <- errors.New("object " + o.ref.ID().String() + " changed")
				}
				v.Release()
			}
		})
	}
	wg.Go(func() {
		free[0].ref.Drop()
		held[1].ref.Drop()
	})
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	await(t, done, "Gets and Drops while a spill write is stalled")
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if crc32.ChecksumIEEE(pinned.Bytes()) != held[0].sum {
		t.Error("an object pinned during its spill changed")
	}
	select {
	case r := <-putDone:
		t.Fatalf("the Put whose spill is stalled returned: %v", r.err)
	default:
	}

	release()
	r := await(t, putDone, "the Put after its spill write resumed")
	if r.err != nil {
		t.Fatalf("the Put whose spill was stalled: %v", r.err)
	}
	pinned.Release()
	left := append(append(reads, held[0]), held[2:]...)
	checkIntact(t, s, left...)
	dropStored(left...)
	r.ref.Drop()
	requireDrained(t, s, dir)
}

// TestFaultFailingDiskPaced: memory is past the spill threshold and every spill
// fails. The store keeps trying (the disk may come back), but at a bounded pace:
// a creator waiting for room retries every reclaimRetry, and the background
// spiller must not turn a failing disk into a busy loop of batches created and
// deleted (it is kicked again by each failed batch, whose objects go back to the
// eviction order).
func TestFaultFailingDiskPaced(t *testing.T) {
	for _, tc := range []struct {
		name      string
		breakDisk func(efs *errorfs.FS, dir string) (undo func())
	}{
		{"write errors", func(efs *errorfs.FS, dir string) func() {
			f := efs.Inject(errorfs.Fault{Kind: errorfs.WriteErr, Err: syscall.EIO})
			return func() { efs.RemoveFault(f) }
		}},
		{"no free space", func(efs *errorfs.FS, dir string) func() {
			efs.SetAvailable(dir, 0)
			return func() { efs.SetAvailable(dir, -1) }
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			efs := errorfs.New()
			s, dir := faultStore(t, 32<<20, efs, nil)
			objs := putObjects(t, s, 5, 4<<20, 200) // 20 MiB: under the threshold (80%)
			s.WaitIdle()
			undo := tc.breakDisk(efs, dir)
			objs = append(objs, putObjects(t, s, 2, 4<<20, 210)...) // 28 MiB: over it
			before := s.pressure.spiller.Stats().Errors
			w := putNeedingRoom(t, s, 300*time.Millisecond)
			err, took := w.err, w.took
			failed := s.pressure.spiller.Stats().Errors - before
			t.Logf("%d failed spill batches while a Put waited %v for room", failed, took)
			if !errors.Is(err, trove.ErrStoreFull) && !errors.Is(err, trove.ErrOutOfDisk) {
				t.Fatalf("Put needing room while spills fail: %v", err)
			}
			// A creator's retries every 50 ms make 6 or 7; allow the background
			// spiller as many again and more, but not a loop.
			if failed > 40 {
				t.Errorf("%d failed spill batches in %v: the store retries a failing disk without pause", failed, took)
			}
			undo()
			checkIntact(t, s, objs...)
			dropStored(objs...)
			requireDrained(t, s, dir)
		})
	}
}

// TestFaultStalledSpillDeadline: while one creator's spill write hangs, another
// creator that needs room must still fail at its deadline (ErrStoreFull), not
// hang with the disk: a Put's context bounds its wait for room.
func TestFaultStalledSpillDeadline(t *testing.T) {
	efs := errorfs.New()
	s, dir := faultStore(t, 32<<20, efs, func(c *Config) { c.SpillThreshold = 1 })
	objs := putObjects(t, s, 7, 4<<20, 300) // 28 MiB of 32
	stall := efs.Inject(errorfs.Fault{Kind: errorfs.StallWrite, Nth: 1, Gate: make(chan struct{})})
	release := sync.OnceFunc(func() { close(stall.Gate) })
	t.Cleanup(release)
	first := make(chan error, 1)
	go func() {
		r, err := s.Put(context.Background(), fill(8<<20, 310))
		if err == nil {
			r.Drop()
		}
		first <- err
	}()
	await(t, stall.Entered(), "the first Put's spill write")

	second := make(chan error, 1)
	data := fill(8<<20, 320) // made before the deadline starts
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	go func() {
		r, err := s.Put(ctx, data)
		if err == nil {
			r.Drop()
		}
		second <- err
	}()
	if err := await(t, second, "a Put with a 200 ms deadline while another's spill hangs"); !errors.Is(err, trove.ErrStoreFull) {
		t.Errorf("Put with a deadline while another's spill hangs: %v, want ErrStoreFull", err)
	}
	release()
	if err := await(t, first, "the first Put after its write resumed"); err != nil {
		t.Fatal(err)
	}
	checkIntact(t, s, objs...)
	dropStored(objs...)
	requireDrained(t, s, dir)
}

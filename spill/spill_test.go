package spill_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/trovedb/trove/spill"
	"github.com/trovedb/trove/spill/errorfs"
)

// newSpiller starts a Spiller that t's cleanup checks for consistency and closes,
// then checks that every file is gone.
func newSpiller(t testing.TB, cfg spill.Config) *spill.Spiller {
	t.Helper()
	s, err := spill.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		spill.CheckConsistent(t, s)
		dirs := s.Config().Dirs
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		for _, d := range dirs {
			if left := dirFiles(t, d); len(left) > 0 {
				t.Errorf("after Close, %s still holds %q", d, left)
			}
		}
	})
	return s
}

// spillFiles lists the spill files in dir (the owner files of live Spillers aside).
func spillFiles(t testing.TB, dir string) []string {
	t.Helper()
	var names []string
	for _, n := range dirFiles(t, dir) {
		if !strings.HasSuffix(n, ".lock") {
			names = append(names, n)
		}
	}
	return names
}

// dirFiles lists every file in dir.
func dirFiles(t testing.TB, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

// testObject is an object spilled by a test, with what it should read back as.
type testObject struct {
	id   spill.ID
	data []byte
	sum  uint32 // checksum of data before the spill
	loc  spill.Location
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func checksum(b []byte) uint32 { return crc32.Checksum(b, castagnoli) }

func randomID(rng *rand.Rand) spill.ID {
	var id spill.ID
	for i := range id {
		id[i] = byte(rng.Uint32())
	}
	return id
}

func makeObjects(rng *rand.Rand, sizes ...int) []*testObject {
	objs := make([]*testObject, len(sizes))
	for i, n := range sizes {
		data := make([]byte, n)
		for j := 0; j < n; j += 8 {
			v := rng.Uint64()
			for k := 0; k < 8 && j+k < n; k++ {
				data[j+k] = byte(v >> (8 * k))
			}
		}
		objs[i] = &testObject{id: randomID(rng), data: data, sum: checksum(data)}
	}
	return objs
}

func batchOf(objs []*testObject) []spill.Object {
	out := make([]spill.Object, len(objs))
	for i, o := range objs {
		out[i] = spill.Object{ID: o.id, Data: o.data}
	}
	return out
}

func spillSync(t testing.TB, s *spill.Spiller, objs []*testObject) {
	t.Helper()
	locs, err := s.SpillSync(context.Background(), batchOf(objs))
	if err != nil {
		t.Fatal(err)
	}
	if len(locs) != len(objs) {
		t.Fatalf("%d locations for %d objects", len(locs), len(objs))
	}
	for i, o := range objs {
		o.loc = locs[i]
	}
}

// checkRestore restores o into a fresh buffer filled with garbage and compares.
func checkRestore(t testing.TB, s *spill.Spiller, o *testObject) {
	t.Helper()
	dst := bytes.Repeat([]byte{0xa5}, len(o.data))
	if err := s.Restore(o.id, o.loc, dst); err != nil {
		t.Fatalf("restore %s: %v", o.id, err)
	}
	if !bytes.Equal(dst, o.data) {
		t.Fatalf("restore %s (%d bytes) read different bytes", o.id, len(o.data))
	}
}

func tempDirs(t testing.TB, n int) []string {
	dirs := make([]string, n)
	for i := range dirs {
		dirs[i] = t.TempDir()
	}
	return dirs
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

func TestRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	dirs := tempDirs(t, 3)
	s := newSpiller(t, spill.Config{Dirs: dirs, Workers: 3})

	// Edge sizes around the header and pages, then random sizes up to 8 MiB,
	// log-uniform so that small and large both appear.
	sizes := []int{0, 1, spill.HeaderSize - 1, spill.HeaderSize, spill.HeaderSize + 1, 4095, 4096, 0, 1<<20 + 7, 8 << 20}
	for range 22 {
		sizes = append(sizes, int(rng.Int64N(int64(1)<<rng.IntN(24)))) // < 8 MiB
	}
	var all []*testObject
	var batches [][]*testObject
	var files []string // the path of each batch's file
	for len(sizes) > 0 {
		n := min(1+rng.IntN(6), len(sizes))
		batch := makeObjects(rng, sizes[:n]...)
		sizes = sizes[n:]
		spillSync(t, s, batch)

		b := len(batches)
		path := s.Path(batch[0].loc)
		if got, want := filepath.Dir(path), dirs[b%len(dirs)]; got != want {
			t.Errorf("batch %d went to %s, want %s (round robin)", b, got, want)
		}
		for i, o := range batch {
			// Packed after the previous object, or, from spill.AlignMin bytes
			// on, its data on the next multiple of spill.DataAlign.
			want := int64(spill.HeaderSize)
			if i > 0 {
				want += batch[i-1].loc.Offset + batch[i-1].loc.Length
			}
			if len(o.data) >= spill.AlignMin {
				want = (want + spill.DataAlign - 1) / spill.DataAlign * spill.DataAlign
			}
			if o.loc.File != batch[0].loc.File || o.loc.Length != int64(len(o.data)) || o.loc.Offset != want {
				t.Errorf("batch %d object %d of %d bytes: location %v, want offset %d", b, i, len(o.data), o.loc, want)
			}
		}
		batches = append(batches, batch)
		files = append(files, path)
		all = append(all, batch...)
	}
	spill.CheckConsistent(t, s)

	for _, o := range all {
		checkRestore(t, s, o)
		if checksum(o.data) != o.sum {
			t.Fatalf("object %s changed while spilled", o.id)
		}
	}

	// Delete in random order: a file goes exactly with its last object.
	order := rng.Perm(len(all))
	for k, i := range order {
		o := all[i]
		if err := s.Delete(o.loc); err != nil {
			t.Fatalf("delete %v: %v", o.loc, err)
		}
		if err := s.Delete(o.loc); !errors.Is(err, spill.ErrUnknownLocation) {
			t.Fatalf("second delete of %v: %v, want ErrUnknownLocation", o.loc, err)
		}
		if err := s.Restore(o.id, o.loc, make([]byte, len(o.data))); !errors.Is(err, spill.ErrUnknownLocation) {
			t.Fatalf("restore of deleted %v: %v, want ErrUnknownLocation", o.loc, err)
		}
		deleted := map[*testObject]bool{}
		for _, j := range order[:k+1] {
			deleted[all[j]] = true
		}
		for b, batch := range batches {
			live := slices.ContainsFunc(batch, func(o *testObject) bool { return !deleted[o] })
			if exists(files[b]) != live {
				t.Fatalf("after %d deletes, batch %d file %s exists=%v, has live objects=%v", k+1, b, files[b], exists(files[b]), live)
			}
		}
	}

	st := s.Stats()
	want := spill.Stats{Spills: int64(len(batches)), SpilledObjects: int64(len(all)), Restores: int64(len(all)),
		FilesDeleted: int64(len(batches))}
	for _, o := range all {
		want.SpilledBytes += int64(len(o.data))
	}
	want.RestoredBytes = want.SpilledBytes
	st.SpillTime, st.RestoreTime = 0, 0
	if st != want {
		t.Errorf("stats\n got %+v\nwant %+v", st, want)
	}
	for _, d := range dirs {
		if left := spillFiles(t, d); len(left) > 0 {
			t.Errorf("%s still holds %q", d, left)
		}
	}
}

func TestRestoreMany(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	s := newSpiller(t, spill.Config{Dirs: tempDirs(t, 2), Workers: 4})
	var all []*testObject
	for range 3 {
		batch := makeObjects(rng, 0, 10, 100<<10, 1<<20, 3<<20, 777, 64<<10)
		spillSync(t, s, batch)
		all = append(all, batch...)
	}
	if errs := s.RestoreMany(nil); len(errs) != 0 {
		t.Fatalf("RestoreMany(nil) = %v", errs)
	}
	reqs := make([]spill.RestoreRequest, len(all))
	for i, o := range all {
		reqs[i] = spill.RestoreRequest{ID: o.id, Loc: o.loc, Dst: bytes.Repeat([]byte{1}, len(o.data))}
	}
	// Two bad requests: another object's ID, and a deleted object.
	reqs[4].ID = all[5].id
	gone := all[9]
	if err := s.Delete(gone.loc); err != nil {
		t.Fatal(err)
	}
	errs := s.RestoreMany(reqs)
	for i, err := range errs {
		switch {
		case i == 4:
			if !errors.Is(err, spill.ErrCorrupt) || !strings.Contains(err.Error(), "names object "+all[4].id.String()) {
				t.Errorf("request with another object's ID: %v, want ErrCorrupt", err)
			}
		case i == 9:
			if !errors.Is(err, spill.ErrUnknownLocation) {
				t.Errorf("request for a deleted object: %v, want ErrUnknownLocation", err)
			}
		case err != nil:
			t.Errorf("request %d: %v", i, err)
		case !bytes.Equal(reqs[i].Dst, all[i].data):
			t.Errorf("request %d read different bytes", i)
		}
	}
	for i, o := range all {
		if i != 9 {
			if err := s.Delete(o.loc); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// TestRestoreManyBusyWorkers: RestoreMany finishes while every worker is stuck
// writing a batch; the caller does the work itself.
func TestRestoreManyBusyWorkers(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	efs := errorfs.New()
	dirs := tempDirs(t, 1)
	s := newSpiller(t, spill.Config{Dirs: dirs, Workers: 1, FS: efs})
	objs := makeObjects(rng, 1000, 2000, 3000)
	spillSync(t, s, objs)

	stall := efs.Inject(errorfs.Fault{Kind: errorfs.StallWrite, Gate: make(chan struct{})})
	done := make(chan error, 1)
	if err := s.Spill(batchOf(makeObjects(rng, 10)), func(locs []spill.Location, err error) {
		if err == nil {
			err = s.Delete(locs[0])
		}
		done <- err
	}); err != nil {
		t.Fatal(err)
	}
	<-stall.Entered()

	reqs := make([]spill.RestoreRequest, len(objs))
	for i, o := range objs {
		reqs[i] = spill.RestoreRequest{ID: o.id, Loc: o.loc, Dst: make([]byte, len(o.data))}
	}
	for i, err := range s.RestoreMany(reqs) {
		if err != nil || !bytes.Equal(reqs[i].Dst, objs[i].data) {
			t.Errorf("request %d: %v", i, err)
		}
	}
	close(stall.Gate)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	for _, o := range objs {
		if err := s.Delete(o.loc); err != nil {
			t.Fatal(err)
		}
	}
}

// TestRestoreManyParallel: while one request is stuck in a read, a worker serves
// the other.
func TestRestoreManyParallel(t *testing.T) {
	rng := rand.New(rand.NewPCG(23, 24))
	efs := errorfs.New()
	s := newSpiller(t, spill.Config{Dirs: tempDirs(t, 1), Workers: 2, FS: efs})
	objs := makeObjects(rng, 1000, 2000)
	spillSync(t, s, objs)
	stall := efs.Inject(errorfs.Fault{Kind: errorfs.StallRead, Nth: 1, Gate: make(chan struct{})})
	release := sync.OnceFunc(func() { close(stall.Gate) })
	defer release()

	reqs := make([]spill.RestoreRequest, len(objs))
	for i, o := range objs {
		reqs[i] = spill.RestoreRequest{ID: o.id, Loc: o.loc, Dst: make([]byte, len(o.data))}
	}
	done := make(chan []error)
	go func() { done <- s.RestoreMany(reqs) }()
	<-stall.Entered()
	for deadline := time.Now().Add(10 * time.Second); s.Stats().Restores < 1; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the second request waited for the stuck first: RestoreMany is not parallel")
		}
	}
	release()
	for i, err := range <-done {
		if err != nil || !bytes.Equal(reqs[i].Dst, objs[i].data) {
			t.Errorf("request %d: %v", i, err)
		}
	}
}

// checkNoFiles fails t if any directory holds a file.
func checkNoFiles(t *testing.T, dirs []string) {
	t.Helper()
	for _, d := range dirs {
		if left := spillFiles(t, d); len(left) > 0 {
			t.Errorf("%s holds %q after a failed batch", d, left)
		}
	}
}

func checkUnchanged(t *testing.T, objs []*testObject) {
	t.Helper()
	for _, o := range objs {
		if checksum(o.data) != o.sum {
			t.Errorf("object %s changed by a failed batch", o.id)
		}
	}
}

func TestWriteErrors(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	// 600 objects need 1200 iovecs: two WriteV calls, the second starting with
	// the header of object 513.
	many := make([]int, 600)
	for i := range many {
		many[i] = 1 + i
	}
	tests := []struct {
		name    string
		fault   errorfs.Fault
		sizes   []int
		wantErr error
		wantMsg string
	}{
		{"create", errorfs.Fault{Kind: errorfs.CreateErr, Nth: 1, Err: syscall.EACCES}, []int{100}, syscall.EACCES, "create"},
		{"first write", errorfs.Fault{Kind: errorfs.WriteErr, Nth: 1, Err: syscall.EIO}, []int{100, 200}, syscall.EIO, "(1 of 2 in the batch)"},
		{"second write", errorfs.Fault{Kind: errorfs.WriteErr, Nth: 2, Err: syscall.EIO}, many, syscall.EIO, "(513 of 600 in the batch)"},
		// Three windows of data and a header: three full windows, the last 40
		// bytes, then the header rewritten with its checksum.
		{"header rewrite", errorfs.Fault{Kind: errorfs.WriteErr, Nth: 5, Err: syscall.EIO}, []int{3 * spill.WriteWindow}, syscall.EIO, "writeat"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			efs := errorfs.New()
			dirs := tempDirs(t, 2)
			s := newSpiller(t, spill.Config{Dirs: dirs, FS: efs})
			objs := makeObjects(rng, tt.sizes...)
			efs.Inject(tt.fault)
			_, err := s.SpillSync(context.Background(), batchOf(objs))
			if !errors.Is(err, tt.wantErr) || errors.Is(err, spill.ErrOutOfDisk) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantMsg) || !strings.Contains(err.Error(), dirs[0]) {
				t.Errorf("error %q does not say %q and the directory %s", err, tt.wantMsg, dirs[0])
			}
			if tt.fault.Kind == errorfs.WriteErr {
				obj := objs[0] // the one whose bytes the first write began with
				if tt.fault.Nth == 2 {
					obj = objs[512]
				}
				if !strings.Contains(err.Error(), obj.id.String()) {
					t.Errorf("error %q does not name object %s", err, obj.id)
				}
			}
			checkNoFiles(t, dirs)
			checkUnchanged(t, objs)
			if st := s.Stats(); st.Errors != 1 || st.FilesLive != 0 || st.Spills != 0 {
				t.Errorf("stats after a failed batch: %+v", st)
			}
			// The fault has fired; the same batch goes through now.
			spillSync(t, s, objs)
			for _, o := range objs {
				checkRestore(t, s, o)
			}
		})
	}
}

func TestOutOfDisk(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	sizes := []int{64 << 10, 64 << 10, 64 << 10, 64 << 10}
	need := int64(4 * (spill.DataAlign + 64<<10)) // each object's data page-aligned, its header in the page before

	t.Run("next directory", func(t *testing.T) {
		efs := errorfs.New()
		dirs := tempDirs(t, 3)
		s := newSpiller(t, spill.Config{Dirs: dirs, FS: efs})
		full := efs.Inject(errorfs.Fault{Kind: errorfs.NoSpace, Path: dirs[0], Budget: 1000})
		objs := makeObjects(rng, sizes...)
		spillSync(t, s, objs)
		if full.Fired() == 0 {
			t.Fatal("the first directory was never tried")
		}
		if got := filepath.Dir(s.Path(objs[0].loc)); got != dirs[1] {
			t.Errorf("batch went to %s, want %s after %s filled up", got, dirs[1], dirs[0])
		}
		checkNoFiles(t, dirs[:1])
		for _, o := range objs {
			checkRestore(t, s, o)
		}
		if st := s.Stats(); st.OutOfDisk != 0 || st.Errors != 0 {
			t.Errorf("stats: %+v", st)
		}
	})

	t.Run("free space check", func(t *testing.T) {
		efs := errorfs.New()
		dirs := tempDirs(t, 2)
		s := newSpiller(t, spill.Config{Dirs: dirs, FS: efs})
		efs.SetAvailable(dirs[0], need-1)
		never := efs.Inject(errorfs.Fault{Kind: errorfs.CreateErr, Path: dirs[0], Err: syscall.EIO})
		objs := makeObjects(rng, sizes...)
		spillSync(t, s, objs)
		if never.Seen() != 0 {
			t.Error("a file was created in a directory without room for the batch")
		}
		if got := filepath.Dir(s.Path(objs[0].loc)); got != dirs[1] {
			t.Errorf("batch went to %s, want %s", got, dirs[1])
		}
	})

	t.Run("every directory", func(t *testing.T) {
		efs := errorfs.New()
		dirs := tempDirs(t, 3)
		s := newSpiller(t, spill.Config{Dirs: dirs, FS: efs})
		budgets := []int64{0, 100 << 10, 7}
		for i, d := range dirs {
			efs.Inject(errorfs.Fault{Kind: errorfs.NoSpace, Path: d, Budget: budgets[i]})
		}
		objs := makeObjects(rng, sizes...)
		_, err := s.SpillSync(context.Background(), batchOf(objs))
		var ood *spill.OutOfDiskError
		if !errors.Is(err, spill.ErrOutOfDisk) || !errors.Is(err, syscall.ENOSPC) || !errors.As(err, &ood) {
			t.Fatalf("err = %v, want ErrOutOfDisk and ENOSPC", err)
		}
		if ood.Needed != need || ood.Objects != 4 || len(ood.Tried) != 3 {
			t.Fatalf("OutOfDiskError %+v, want %d bytes needed, 3 directories", ood, need)
		}
		for i, a := range ood.Tried {
			if a.Dir != dirs[i] || a.Written != budgets[i] || !errors.Is(a.Err, syscall.ENOSPC) {
				t.Errorf("attempt %d: %+v, want %s full after %d bytes", i, a, dirs[i], budgets[i])
			}
		}
		for _, want := range append([]string{"needs 272.0 KiB", "after 100.0 KiB"}, dirs...) {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not say %q", err, want)
			}
		}
		checkNoFiles(t, dirs)
		checkUnchanged(t, objs)
		if st := s.Stats(); st.OutOfDisk != 1 || st.Errors != 1 {
			t.Errorf("stats: %+v", st)
		}
	})

	t.Run("short write", func(t *testing.T) {
		efs := errorfs.New()
		dirs := tempDirs(t, 1)
		s := newSpiller(t, spill.Config{Dirs: dirs, FS: efs})
		efs.Inject(errorfs.Fault{Kind: errorfs.ShortWrite, Nth: 1})
		objs := makeObjects(rng, sizes...)
		_, err := s.SpillSync(context.Background(), batchOf(objs))
		if !errors.Is(err, spill.ErrOutOfDisk) || !errors.Is(err, io.ErrShortWrite) || !strings.Contains(err.Error(), dirs[0]) {
			t.Fatalf("err = %v, want ErrOutOfDisk for a short write in %s", err, dirs[0])
		}
		checkNoFiles(t, dirs)
		checkUnchanged(t, objs)
	})
}

func TestRestoreCorrupt(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	sizes := []int{5000, 70000, 3000}
	// Each case spoils the restore of the middle object: by a fault on its reads
	// (read 1 is the header, read 2 the data), or by changing the file on disk.
	tests := []struct {
		name   string
		fault  *errorfs.Fault
		spoil  func(t *testing.T, path string, objs []*testObject)
		reason string
	}{
		{name: "flipped data byte", fault: &errorfs.Fault{Kind: errorfs.FlipByte, Nth: 2, At: 12345}, reason: "data checksum mismatch"},
		// Header byte 11 is in the object ID (bytes 8 to 23).
		{name: "flipped header byte", fault: &errorfs.Fault{Kind: errorfs.FlipByte, Nth: 1, At: 11}, reason: "header checksum mismatch"},
		{name: "flipped magic", fault: &errorfs.Fault{Kind: errorfs.FlipByte, Nth: 1, At: 0}, reason: "bad magic"},
		{name: "short data read", fault: &errorfs.Fault{Kind: errorfs.ShortRead, Nth: 2}, reason: "truncated"},
		{name: "short header read", fault: &errorfs.Fault{Kind: errorfs.ShortRead, Nth: 1}, reason: "truncated"},
		{name: "byte flipped on disk", spoil: func(t *testing.T, path string, objs []*testObject) {
			f, err := os.OpenFile(path, os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			off := objs[1].loc.Offset + 777
			b := []byte{objs[1].data[777] ^ 1}
			if _, err := f.WriteAt(b, off); err != nil {
				t.Fatal(err)
			}
		}, reason: "data checksum mismatch"},
		{name: "truncated in data", spoil: func(t *testing.T, path string, objs []*testObject) {
			if err := os.Truncate(path, objs[1].loc.Offset+100); err != nil {
				t.Fatal(err)
			}
		}, reason: "truncated: the file ends 100 bytes into the object's 70000 bytes"},
		{name: "truncated in header", spoil: func(t *testing.T, path string, objs []*testObject) {
			if err := os.Truncate(path, objs[1].loc.Offset-10); err != nil {
				t.Fatal(err)
			}
		}, reason: "truncated: the file ends 38 bytes into the object's 48-byte header"},
		{name: "truncated to zero", spoil: func(t *testing.T, path string, objs []*testObject) {
			if err := os.Truncate(path, 0); err != nil {
				t.Fatal(err)
			}
		}, reason: "truncated"},
		{name: "header moved", spoil: func(t *testing.T, path string, objs []*testObject) {
			// Object 1's header replaced by object 2's: a misdirected write.
			f, err := os.OpenFile(path, os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			hdr := make([]byte, spill.HeaderSize)
			if _, err := f.ReadAt(hdr, objs[2].loc.Offset-spill.HeaderSize); err != nil {
				t.Fatal(err)
			}
			if _, err := f.WriteAt(hdr, objs[1].loc.Offset-spill.HeaderSize); err != nil {
				t.Fatal(err)
			}
		}, reason: "the header there names object"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			efs := errorfs.New()
			s := newSpiller(t, spill.Config{Dirs: tempDirs(t, 1), FS: efs})
			objs := makeObjects(rng, sizes...)
			spillSync(t, s, objs)
			path := s.Path(objs[1].loc)
			if tt.fault != nil {
				efs.Inject(*tt.fault)
			} else {
				tt.spoil(t, path, objs)
			}
			err := s.Restore(objs[1].id, objs[1].loc, make([]byte, len(objs[1].data)))
			var ce *spill.CorruptError
			if !errors.Is(err, spill.ErrCorrupt) || !errors.As(err, &ce) {
				t.Fatalf("err = %v, want ErrCorrupt", err)
			}
			if ce.ID != objs[1].id || ce.Path != path || ce.Offset != objs[1].loc.Offset || !strings.Contains(ce.Reason, tt.reason) {
				t.Errorf("CorruptError %+v, want object %s in %s, reason %q", ce, objs[1].id, path, tt.reason)
			}
			for _, want := range []string{objs[1].id.String(), path} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not name %s", err, want)
				}
			}
			if tt.fault != nil { // a passing fault: the file is fine
				checkRestore(t, s, objs[1])
			} else if tt.name != "truncated to zero" {
				checkRestore(t, s, objs[0])
			}
			if st := s.Stats(); st.Errors != 1 {
				t.Errorf("stats: %d errors, want 1", st.Errors)
			}
			for _, o := range objs {
				if err := s.Delete(o.loc); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}

// TestRestoreParallel: objects from spill.ParallelRestoreMin on are read in
// ranges by several goroutines, their blocks' hashes joined. Sizes around the threshold
// and the range sizes read back intact; damage anywhere is found, and a file
// that ends early is reported where it ends, as a sequential read would.
func TestRestoreParallel(t *testing.T) {
	rng := rand.New(rand.NewPCG(27, 28))
	const min = spill.ParallelRestoreMin
	s := newSpiller(t, spill.Config{Dirs: tempDirs(t, 1), Workers: 3})
	objs := makeObjects(rng, min-1, min, min+1, min+12345, 33<<20+7, 1000)
	spillSync(t, s, objs)
	for _, o := range objs {
		checkRestore(t, s, o)
	}
	reqs := make([]spill.RestoreRequest, len(objs))
	for i, o := range objs {
		reqs[i] = spill.RestoreRequest{ID: o.id, Loc: o.loc, Dst: make([]byte, len(o.data))}
	}
	for i, err := range s.RestoreMany(reqs) {
		if err != nil || !bytes.Equal(reqs[i].Dst, objs[i].data) {
			t.Errorf("RestoreMany request %d (%d bytes): %v", i, len(objs[i].data), err)
		}
	}

	big := objs[4]
	path := s.Path(big.loc)
	put := func(off int64, b byte) { // write b at off into big's data on disk
		f, err := os.OpenFile(path, os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if _, err := f.WriteAt([]byte{b}, big.loc.Offset+off); err != nil {
			t.Fatal(err)
		}
	}
	for _, off := range []int64{0, 777777, int64(len(big.data)) - 1} {
		put(off, big.data[off]^0xff)
		err := s.Restore(big.id, big.loc, make([]byte, len(big.data)))
		if !errors.Is(err, spill.ErrCorrupt) || !strings.Contains(err.Error(), "data checksum mismatch") {
			t.Errorf("byte %d of %d flipped: %v, want a checksum mismatch", off, len(big.data), err)
		}
		put(off, big.data[off])
		checkRestore(t, s, big)
	}

	// Cut the file 9 MiB + 17 bytes into big's data: every range from there on
	// fails, and the error names the first place.
	end := int64(9<<20 + 17)
	if err := os.Truncate(path, big.loc.Offset+end); err != nil {
		t.Fatal(err)
	}
	err := s.Restore(big.id, big.loc, make([]byte, len(big.data)))
	want := fmt.Sprintf("truncated: the file ends %d bytes into the object's %d bytes of data", end, len(big.data))
	if !errors.Is(err, spill.ErrCorrupt) || !strings.Contains(err.Error(), want) {
		t.Errorf("restore from a truncated file: %v, want %q", err, want)
	}
	for _, o := range objs[:4] {
		checkRestore(t, s, o)
	}
	for _, o := range objs { // the file goes with them: it no longer matches its table
		if err := s.Delete(o.loc); err != nil {
			t.Fatal(err)
		}
	}
}

func TestBadLocations(t *testing.T) {
	rng := rand.New(rand.NewPCG(13, 14))
	s := newSpiller(t, spill.Config{Dirs: tempDirs(t, 1)})
	objs := makeObjects(rng, 100, 200)
	spillSync(t, s, objs)
	loc := objs[1].loc
	for _, bad := range []spill.Location{{}, {File: loc.File + 1, Offset: loc.Offset, Length: loc.Length},
		{File: loc.File, Offset: loc.Offset + 1, Length: loc.Length}, {File: loc.File, Offset: loc.Offset, Length: loc.Length - 1},
		{File: loc.File, Offset: loc.Offset - spill.HeaderSize, Length: loc.Length}} {
		if err := s.Restore(objs[1].id, bad, make([]byte, bad.Length)); !errors.Is(err, spill.ErrUnknownLocation) {
			t.Errorf("restore %v: %v, want ErrUnknownLocation", bad, err)
		}
		if err := s.Delete(bad); !errors.Is(err, spill.ErrUnknownLocation) {
			t.Errorf("delete %v: %v, want ErrUnknownLocation", bad, err)
		}
	}
	if err := s.Restore(objs[1].id, loc, make([]byte, 10)); err == nil {
		t.Error("restore into a buffer of the wrong size succeeded")
	}
	if err := s.Spill(nil, func([]spill.Location, error) {}); !errors.Is(err, spill.ErrInvalidBatch) {
		t.Errorf("Spill of no objects: %v", err)
	}
	if err := s.Spill(batchOf(objs), nil); !errors.Is(err, spill.ErrInvalidBatch) {
		t.Errorf("Spill without done: %v", err)
	}
	for _, o := range objs {
		checkRestore(t, s, o)
	}
}

// TestDeleteDuringRestore: deleting the last object of a file while it is being
// restored defers the removal to the end of the read, which succeeds.
func TestDeleteDuringRestore(t *testing.T) {
	rng := rand.New(rand.NewPCG(15, 16))
	efs := errorfs.New()
	s := newSpiller(t, spill.Config{Dirs: tempDirs(t, 1), FS: efs})
	objs := makeObjects(rng, 100000)
	spillSync(t, s, objs)
	path := s.Path(objs[0].loc)
	stall := efs.Inject(errorfs.Fault{Kind: errorfs.StallRead, Nth: 2, Gate: make(chan struct{})})
	release := sync.OnceFunc(func() { close(stall.Gate) })
	defer release() // a failure below must not leave the restore, and so Close, stuck
	done := make(chan error)
	dst := make([]byte, len(objs[0].data))
	go func() { done <- s.Restore(objs[0].id, objs[0].loc, dst) }()
	<-stall.Entered()
	if err := s.Delete(objs[0].loc); err != nil {
		t.Fatal(err)
	}
	if !exists(path) {
		t.Fatal("file removed under a restore")
	}
	release()
	if err := <-done; err != nil || !bytes.Equal(dst, objs[0].data) {
		t.Fatalf("restore: %v", err)
	}
	if exists(path) {
		t.Fatal("file not removed after the restore ended")
	}
	if st := s.Stats(); st.FilesLive != 0 || st.FilesDeleted != 1 {
		t.Errorf("stats: %+v", st)
	}
}

func TestConcurrent(t *testing.T) {
	dirs := tempDirs(t, 3)
	s := newSpiller(t, spill.Config{Dirs: dirs, Workers: 4})
	const goroutines, rounds = 4, 15
	var wg sync.WaitGroup
	stop := make(chan struct{})
	go func() { // Stats and Path race with everything
		for {
			select {
			case <-stop:
				return
			default:
				_ = s.Stats()
				_ = s.Path(spill.Location{File: 1})
				time.Sleep(100 * time.Microsecond)
			}
		}
	}()
	for g := range goroutines {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(g), 99))
			var kept []*testObject
			for range rounds {
				sizes := make([]int, 1+rng.IntN(4))
				for i := range sizes {
					sizes[i] = rng.IntN(256 << 10)
				}
				objs := makeObjects(rng, sizes...)
				ch := make(chan error, 1)
				if err := s.Spill(batchOf(objs), func(locs []spill.Location, err error) {
					for i := range locs {
						objs[i].loc = locs[i]
					}
					ch <- err
				}); err != nil {
					t.Error(err)
					return
				}
				if err := <-ch; err != nil {
					t.Error(err)
					return
				}
				reqs := make([]spill.RestoreRequest, 0, len(objs)+len(kept))
				for _, o := range append(slices.Clone(objs), kept...) {
					reqs = append(reqs, spill.RestoreRequest{ID: o.id, Loc: o.loc, Dst: make([]byte, len(o.data))})
				}
				for i, err := range s.RestoreMany(reqs) {
					if err != nil || checksum(reqs[i].Dst) != checksum(append(slices.Clone(objs), kept...)[i].data) {
						t.Errorf("restore %d: %v", i, err)
					}
				}
				for _, o := range objs {
					if rng.IntN(2) == 0 {
						kept = append(kept, o)
					} else if err := s.Delete(o.loc); err != nil {
						t.Error(err)
					}
				}
				if len(kept) > 6 {
					i := rng.IntN(len(kept))
					if err := s.Delete(kept[i].loc); err != nil {
						t.Error(err)
					}
					kept = slices.Delete(kept, i, i+1)
				}
			}
			for _, o := range kept {
				if err := s.Delete(o.loc); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	close(stop)
	st := s.Stats()
	if st.FilesLive != 0 || st.ObjectsLive != 0 || st.BytesOnDisk != 0 || st.Errors != 0 || st.Spills != goroutines*rounds {
		t.Errorf("stats after everything was deleted: %+v", st)
	}
	checkNoFiles(t, dirs)
}

func TestClose(t *testing.T) {
	rng := rand.New(rand.NewPCG(17, 18))

	t.Run("default directory", func(t *testing.T) {
		tmp := t.TempDir()
		t.Setenv("TMPDIR", tmp)
		s, err := spill.New(spill.Config{})
		if err != nil {
			t.Fatal(err)
		}
		cfg := s.Config()
		want := fmt.Sprintf("trove-spill-%d-", os.Getpid())
		if len(cfg.Dirs) != 1 || filepath.Dir(cfg.Dirs[0]) != tmp || !strings.HasPrefix(filepath.Base(cfg.Dirs[0]), want) {
			t.Fatalf("default Dirs %q, want one %s* in %s", cfg.Dirs, want, tmp)
		}
		if cfg.Workers != spill.DefaultWorkers || cfg.MinSpillSize != spill.DefaultMinSpillSize || cfg.Sync {
			t.Errorf("defaults: %+v", cfg)
		}
		objs := makeObjects(rng, 1000, 0, 50000)
		spillSync(t, s, objs)
		spillSync(t, s, objs[:1]) // the same bytes again: a second file
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if left := spillFiles(t, tmp); len(left) > 0 {
			t.Errorf("after Close, %s holds %q", tmp, left)
		}
		if st := s.Stats(); st.FilesLive != 0 || st.ObjectsLive != 0 || st.BytesOnDisk != 0 || st.BytesLive != 0 || st.FilesDeleted != 2 {
			t.Errorf("stats after Close: %+v", st)
		}
		checkClosed(t, s, objs[0])
	})

	t.Run("given directories", func(t *testing.T) {
		existing := t.TempDir()
		missing := filepath.Join(t.TempDir(), "new")
		s, err := spill.New(spill.Config{Dirs: []string{existing, missing}, Sync: true})
		if err != nil {
			t.Fatal(err)
		}
		for range 2 {
			spillSync(t, s, makeObjects(rng, 10000))
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if !exists(existing) || exists(missing) {
			t.Errorf("after Close: %s exists=%v (want true), %s exists=%v (want false)", existing, exists(existing), missing, exists(missing))
		}
		checkNoFiles(t, []string{existing})
	})

	t.Run("no parent", func(t *testing.T) {
		_, err := spill.New(spill.Config{Dirs: []string{t.TempDir(), filepath.Join(t.TempDir(), "a", "b")}})
		if !errors.Is(err, os.ErrNotExist) {
			t.Errorf("New with a directory without parent: %v", err)
		}
	})

	t.Run("abandons batches", func(t *testing.T) {
		efs := errorfs.New()
		dirs := tempDirs(t, 1)
		s, err := spill.New(spill.Config{Dirs: dirs, Workers: 1, FS: efs})
		if err != nil {
			t.Fatal(err)
		}
		stall := efs.Inject(errorfs.Fault{Kind: errorfs.StallWrite, Nth: 1, Gate: make(chan struct{})})
		results := make(chan error, 2)
		for range 2 { // the first is written (and stalls), the second waits in the queue
			if err := s.Spill(batchOf(makeObjects(rng, 1000, 2000)), func(_ []spill.Location, err error) {
				results <- err
			}); err != nil {
				t.Fatal(err)
			}
		}
		<-stall.Entered()
		closed := make(chan error)
		go func() { closed <- s.Close() }()
		for !s.Closing() {
			time.Sleep(time.Millisecond)
		}
		close(stall.Gate)
		if err := <-closed; err != nil {
			t.Fatal(err)
		}
		for range 2 {
			if err := <-results; !errors.Is(err, spill.ErrClosed) {
				t.Errorf("batch abandoned by Close: %v, want ErrClosed", err)
			}
		}
		checkNoFiles(t, dirs)
		if st := s.Stats(); st.Errors != 0 || st.Spills != 0 {
			t.Errorf("stats: %+v", st)
		}
	})
}

func checkClosed(t *testing.T, s *spill.Spiller, o *testObject) {
	t.Helper()
	if err := s.Spill(batchOf([]*testObject{o}), func([]spill.Location, error) { t.Error("done called") }); !errors.Is(err, spill.ErrClosed) {
		t.Errorf("Spill after Close: %v", err)
	}
	if _, err := s.SpillSync(context.Background(), batchOf([]*testObject{o})); !errors.Is(err, spill.ErrClosed) {
		t.Errorf("SpillSync after Close: %v", err)
	}
	if err := s.Restore(o.id, o.loc, make([]byte, len(o.data))); !errors.Is(err, spill.ErrClosed) {
		t.Errorf("Restore after Close: %v", err)
	}
	if errs := s.RestoreMany([]spill.RestoreRequest{{ID: o.id, Loc: o.loc, Dst: make([]byte, len(o.data))}}); !errors.Is(errs[0], spill.ErrClosed) {
		t.Errorf("RestoreMany after Close: %v", errs)
	}
	if err := s.Delete(o.loc); !errors.Is(err, spill.ErrClosed) {
		t.Errorf("Delete after Close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestSpillSyncContext(t *testing.T) {
	rng := rand.New(rand.NewPCG(19, 20))
	efs := errorfs.New()
	dirs := tempDirs(t, 1)
	s := newSpiller(t, spill.Config{Dirs: dirs, Workers: 1, FS: efs})

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.SpillSync(ctx, batchOf(makeObjects(rng, 100))); !errors.Is(err, context.Canceled) {
		t.Errorf("SpillSync with a canceled context: %v", err)
	}

	// A batch queued behind a stalled one gives up when its deadline passes.
	stall := efs.Inject(errorfs.Fault{Kind: errorfs.StallWrite, Nth: 1, Gate: make(chan struct{})})
	release := sync.OnceFunc(func() { close(stall.Gate) })
	defer release()
	first := make(chan error, 1)
	if err := s.Spill(batchOf(makeObjects(rng, 100)), func(locs []spill.Location, err error) {
		if err == nil {
			err = s.Delete(locs[0])
		}
		first <- err
	}); err != nil {
		t.Fatal(err)
	}
	<-stall.Entered()
	ctx, cancel = context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	queued := make(chan error, 1)
	go func() {
		_, err := s.SpillSync(ctx, batchOf(makeObjects(rng, 100)))
		queued <- err
	}()
	select {
	case err := <-queued:
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("SpillSync queued past its deadline: %v", err)
		}
	case <-time.After(10 * time.Second):
		release()
		t.Fatalf("SpillSync queued behind a stalled batch did not return at its deadline: %v", <-queued)
	}
	release()
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	checkNoFiles(t, dirs)
	if st := s.Stats(); st.Errors != 0 {
		t.Errorf("abandoned batches counted as errors: %+v", st)
	}
}

func TestRestoreAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("sync.Pool drops items at random under -race")
	}
	rng := rand.New(rand.NewPCG(21, 22))
	s := newSpiller(t, spill.Config{Dirs: tempDirs(t, 1)})
	objs := makeObjects(rng, 1<<20)
	spillSync(t, s, objs)
	dst := make([]byte, len(objs[0].data))
	if n := testing.AllocsPerRun(20, func() {
		if err := s.Restore(objs[0].id, objs[0].loc, dst); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Errorf("Restore allocates %.1f times, want 0", n)
	}
}

// TestVerify covers Verify (verify.go), which checks bytes the engine read from a
// spill file by another route against the file's header.
func TestVerify(t *testing.T) {
	rng := rand.New(rand.NewPCG(25, 26))
	s := newSpiller(t, spill.Config{Dirs: tempDirs(t, 1)})
	objs := makeObjects(rng, 0, 3000, 2<<20)
	spillSync(t, s, objs)
	for _, o := range objs {
		if err := s.Verify(o.id, o.loc, o.data); err != nil {
			t.Errorf("verify %s: %v", o.id, err)
		}
	}
	bad := slices.Clone(objs[2].data)
	bad[len(bad)/2] ^= 1
	if err := s.Verify(objs[2].id, objs[2].loc, bad); !errors.Is(err, spill.ErrCorrupt) || !strings.Contains(err.Error(), "checksum mismatch") {
		t.Errorf("verify of changed bytes: %v, want ErrCorrupt", err)
	}
	if err := s.Verify(objs[0].id, objs[1].loc, objs[1].data); !errors.Is(err, spill.ErrCorrupt) {
		t.Errorf("verify under another ID: %v, want ErrCorrupt", err)
	}
	if err := s.Delete(objs[1].loc); err != nil {
		t.Fatal(err)
	}
	if err := s.Verify(objs[1].id, objs[1].loc, objs[1].data); !errors.Is(err, spill.ErrUnknownLocation) {
		t.Errorf("verify of a deleted object: %v, want ErrUnknownLocation", err)
	}
}

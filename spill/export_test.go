package spill

import (
	"math/bits"
	"os"
	"path/filepath"
	"testing"
)

// What the external tests (package spill_test) need of the package's insides.
// Those tests inject faults with package errorfs, which imports spill, so they
// cannot be in package spill; this file is compiled into the package for tests
// only.

// WriteWindow is writeWindow, for tests that fail a batch at a given write.
const WriteWindow = writeWindow

// ParallelRestoreMin is parallelRestoreMin, for tests of restores in ranges.
const ParallelRestoreMin = parallelRestoreMin

// DataAlign and AlignMin are dataAlign and alignMin: from AlignMin bytes on, an
// object's data begins on a multiple of DataAlign in its file.
const (
	DataAlign = dataAlign
	AlignMin  = alignMin
)

// Token is the prefix of s's file names, trove-<pid>-<random>.
func (s *Spiller) Token() string { return s.token }

// Closing reports whether Close has begun.
func (s *Spiller) Closing() bool { return s.closing.Load() }

// CheckConsistent verifies the Spiller's table against itself, its counters and
// the directories (in the manner of bbolt's btesting): run it when no operation
// is in flight.
func CheckConsistent(t testing.TB, s *Spiller) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mu.closed {
		return
	}
	var objects, bytesLive, onDisk int64
	paths := map[string]bool{}
	for num, f := range s.mu.files {
		n := 0
		for _, w := range f.live {
			n += bits.OnesCount64(w)
		}
		if n != f.nlive || n == 0 || f.readers != 0 || num != f.num {
			t.Errorf("file %d (%s): %d live bits, nlive %d, readers %d", num, f.path, n, f.nlive, f.readers)
		}
		for i := range f.offs {
			if f.isLive(i) {
				bytesLive += f.length(i)
			}
		}
		objects += int64(n)
		onDisk += f.size
		paths[f.path] = true
		if fi, err := os.Stat(f.path); err != nil || fi.Size() != f.size {
			t.Errorf("file %d: %s on disk: %v, want %d bytes", num, f.path, err, f.size)
		}
	}
	st := s.Stats()
	if st.FilesLive != int64(len(s.mu.files)) || st.ObjectsLive != objects || st.BytesLive != bytesLive || st.BytesOnDisk != onDisk {
		t.Errorf("stats %+v; table has %d files, %d objects of %d bytes, %d bytes on disk", st, len(s.mu.files), objects, bytesLive, onDisk)
	}
	for _, d := range s.dirs {
		ents, err := os.ReadDir(d.path)
		if err != nil {
			t.Errorf("spill directory %s: %v", d.path, err)
			continue
		}
		for _, e := range ents {
			if _, local := s.cfg.FS.(OSFS); local && e.Name() == s.token+lockSuffix {
				continue // the owner file
			}
			if p := filepath.Join(d.path, e.Name()); !paths[p] {
				t.Errorf("%s is on disk but in no live file", p)
			}
		}
	}
}

package engine

import (
	"runtime"
	"testing"
)

// newStore opens a store for one test and checks its consistency when the test
// ends. Tests still end with requireEmpty after dropping their refs.
func newStore(t testing.TB, cfg Config) *Store {
	t.Helper()
	if cfg.Capacity == 0 {
		cfg.Capacity = 64 << 20
	}
	s, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Check(); err != nil {
			t.Error(err)
		}
		if err := s.Close(); err != nil {
			t.Error(err)
		}
	})
	return s
}

// requireEmpty fails the test unless the store holds no objects, bytes or pins.
func requireEmpty(t testing.TB, s *Store) {
	t.Helper()
	s.WaitIdle() // a background spill may still hold dropped objects
	st := s.Stats()
	if st.Objects != 0 || st.ObjectBytes != 0 || st.Used != 0 || st.Views != 0 || st.PinnedObjects != 0 || st.PinnedBytes != 0 {
		t.Fatalf("store not empty after every ref was dropped: objects=%d bytes=%d used=%d views=%d pinned=%d pinnedBytes=%d",
			st.Objects, st.ObjectBytes, st.Used, st.Views, st.PinnedObjects, st.PinnedBytes)
	}
	if err := s.Check(); err != nil {
		t.Fatal(err)
	}
}

// collectUntil runs the garbage collector until cond holds, at most 200 times: GC
// cleanups run asynchronously after a collection.
func collectUntil(cond func() bool) bool {
	for range 200 {
		if cond() {
			return true
		}
		runtime.GC()
		runtime.Gosched()
	}
	return cond()
}

func pattern(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7) ^ seed
	}
	return b
}

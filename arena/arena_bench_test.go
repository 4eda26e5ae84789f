package arena

import (
	"testing"
)

// BenchmarkFirstWrite compares writing into fresh (cold) arena memory, which takes a
// page fault per page, with writing into pre-faulted (warm) memory, and reports the
// cold/warm ratio of the time per byte.
func BenchmarkFirstWrite(b *testing.B) {
	const size = 64 << 20
	src := make([]byte, size)
	for i := range src {
		src[i] = byte(i)
	}
	var coldNs, warmNs float64
	b.Run("mode=cold", func(b *testing.B) {
		b.SetBytes(size)
		b.ReportAllocs()
		for b.Loop() {
			b.StopTimer()
			a, err := New(size, Options{})
			if err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
			copy(a.Writable(0, size), src)
			b.StopTimer()
			a.Close()
			b.StartTimer()
		}
		coldNs = float64(b.Elapsed().Nanoseconds()) / float64(b.N)
	})
	b.Run("mode=warm", func(b *testing.B) {
		a, err := New(size, Options{Prefault: PrefaultEager})
		if err != nil {
			b.Fatal(err)
		}
		defer a.Close()
		w := a.Writable(0, size)
		b.SetBytes(size)
		b.ReportAllocs()
		for b.Loop() {
			copy(w, src)
		}
		warmNs = float64(b.Elapsed().Nanoseconds()) / float64(b.N)
		if coldNs > 0 {
			b.ReportMetric(coldNs/warmNs, "cold/warm")
		}
	})
}

// BenchmarkPopulate measures MADV_POPULATE_WRITE, the price of pre-faulting.
func BenchmarkPopulate(b *testing.B) {
	const size = 64 << 20
	b.SetBytes(size)
	for b.Loop() {
		b.StopTimer()
		a, err := New(size, Options{})
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		if err := a.Prefault(size); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		a.Close()
		b.StartTimer()
	}
}

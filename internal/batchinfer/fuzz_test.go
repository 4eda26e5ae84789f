package batchinfer

import "testing"

// FuzzReadPredictions: predictions cross the network as an object's bytes, so
// ReadPredictions must turn any bytes into predictions or an error, never a
// panic or a read outside them. Seeded by the encoder.
func FuzzReadPredictions(f *testing.F) {
	for _, scores := range [][]bool{nil, {true}, {true, false, true, true, false, false, true, false, true}} {
		b, err := EncodePredictions(scores)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := ReadPredictions(b)
		if err != nil {
			return
		}
		if p.Tips < 0 || p.Tips > p.Rows || !p.InPlace {
			t.Fatalf("read %+v from %d bytes", p, len(b))
		}
	})
}

package batchinfer

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/parquet-go/parquet-go"

	"github.com/trovedb/trove/zerocopy"
)

// predictionSchema is the predictions' schema as arrow-go has it, for reading
// them with arrow-go's reader and writing other files to refuse.
var predictionSchema = arrow.NewSchema([]arrow.Field{{Name: "score", Type: arrow.FixedWidthTypes.Boolean}}, nil)

// TestPredictShards writes small shards, predicts each, and checks the
// predictions against the trips read back one by one: every row scored, the
// tips counted as the model says, and the scores read in place.
func TestPredictShards(t *testing.T) {
	dir := t.TempDir()
	rows := []int{1, 1000, 8192 + 7}
	paths, err := WriteShards(dir, 42, rows)
	if err != nil {
		t.Fatal(err)
	}
	again, err := WriteShards(t.TempDir(), 42, rows)
	if err != nil {
		t.Fatal(err)
	}
	m, err := LoadTrainedModel()
	if err != nil {
		t.Fatal(err)
	}
	for i, p := range paths {
		a, _ := os.ReadFile(p)
		b, _ := os.ReadFile(again[i])
		if !bytes.Equal(a, b) {
			t.Errorf("shard %d differs between two runs with the same seed", i)
		}
		trips := readAll(t, p)
		if len(trips) != rows[i] {
			t.Fatalf("shard %d has %d trips, want %d", i, len(trips), rows[i])
		}
		var want int64
		nulls := 0
		for j := range trips {
			if m.Score(&trips[j]) {
				want++
			}
			if trips[j].PassengerCount == nil {
				nulls++
			}
			if !trips[j].DropoffDatetime.After(trips[j].PickupDatetime) {
				t.Fatalf("shard %d trip %d: drop-off %v not after pick-up %v", i, j, trips[j].DropoffDatetime, trips[j].PickupDatetime)
			}
		}
		if rows[i] > 1000 && (want < int64(rows[i])/5 || want > int64(rows[i])/2 || nulls == 0) {
			t.Errorf("shard %d: %d of %d rides with 2+ passengers, %d without a count: not the real data's shape", i, want, rows[i], nulls)
		}
		enc, err := m.Predict(p)
		if err != nil {
			t.Fatal(err)
		}
		got, err := ReadPredictions(enc)
		if err != nil {
			t.Fatal(err)
		}
		if got != (Predictions{Rows: int64(rows[i]), Tips: want, InPlace: true}) {
			t.Errorf("shard %d: predictions %+v, want %d rows, %d tips, read in place", i, got, rows[i], want)
		}
		if n, tips := arrowGoCounts(t, enc); n != int64(rows[i]) || tips != want {
			t.Errorf("shard %d: arrow-go reads %d rows, %d tips; want %d, %d", i, n, tips, rows[i], want)
		}
	}
}

func readAll(t *testing.T, path string) []Trip {
	t.Helper()
	s, err := OpenShard(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var all []Trip
	buf := make([]Trip, 100)
	for {
		n, err := s.Read(buf)
		all = append(all, buf[:n]...)
		if err == io.EOF {
			return all
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

// TestModelCheck: a model whose payload was changed is refused, not used.
func TestModelCheck(t *testing.T) {
	m, err := LoadTrainedModel()
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Check(); err != nil {
		t.Fatal(err)
	}
	w := make([]float64, payloadEnd-payloadStart)
	bad := m
	if bad.Payload, err = zerocopy.NewTensor([]int{len(w)}, w); err != nil {
		t.Fatal(err)
	}
	if err := bad.Check(); err == nil || !strings.Contains(err.Error(), "damaged") {
		t.Errorf("a model of zero weights: %v, want an error saying it is damaged", err)
	}
	if _, err := bad.Predict("nowhere.parquet"); err == nil || !strings.Contains(err.Error(), "damaged") {
		t.Errorf("Predict with a damaged model: %v", err)
	}
}

// TestBadShards: files that are not yellow-taxi Parquet files are errors that
// say so.
func TestBadShards(t *testing.T) {
	dir := t.TempDir()
	notParquet := filepath.Join(dir, "text.parquet")
	os.WriteFile(notParquet, []byte("VendorID,passenger_count\n1,2\n"), 0o644)
	type other struct {
		Name string `parquet:"name"`
	}
	otherSchema := filepath.Join(dir, "other.parquet")
	var buf bytes.Buffer
	if err := parquet.Write(&buf, []other{{"x"}}); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(otherSchema, buf.Bytes(), 0o644)
	good, err := WriteShards(dir, 1, []int{100})
	if err != nil {
		t.Fatal(err)
	}
	whole, _ := os.ReadFile(good[0])
	truncated := filepath.Join(dir, "truncated.parquet")
	os.WriteFile(truncated, whole[:len(whole)/2], 0o644)
	for _, tc := range []struct{ path, want string }{
		{filepath.Join(dir, "missing.parquet"), "no such file"},
		{notParquet, "is not a Parquet file"},
		{truncated, "is not a Parquet file"},
		{otherSchema, `lacks the yellow-taxi columns ["VendorID"`},
	} {
		_, err := OpenShard(tc.path)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("OpenShard(%s): %v, want an error containing %q", filepath.Base(tc.path), err, tc.want)
		}
	}
}

// TestBadPredictions: bytes that are not one batch of boolean scores are
// errors that say what they are.
func TestBadPredictions(t *testing.T) {
	good, err := EncodePredictions([]bool{true, false, true})
	if err != nil {
		t.Fatal(err)
	}
	intSchema := arrow.NewSchema([]arrow.Field{{Name: "score", Type: arrow.PrimitiveTypes.Int64}}, nil)
	ib := array.NewInt64Builder(memory.DefaultAllocator)
	ib.AppendValues([]int64{1, 0}, nil)
	col := ib.NewInt64Array()
	rec := array.NewRecordBatch(intSchema, []arrow.Array{col}, 2)
	var ints bytes.Buffer
	w, _ := ipc.NewFileWriter(&ints, ipc.WithSchema(intSchema))
	if err := w.Write(rec); err != nil {
		t.Fatal(err)
	}
	w.Close()
	var two bytes.Buffer
	w, _ = ipc.NewFileWriter(&two, ipc.WithSchema(predictionSchema))
	bb := array.NewBooleanBuilder(memory.DefaultAllocator)
	bb.AppendValues([]bool{true}, nil)
	bcol := bb.NewBooleanArray()
	brec := array.NewRecordBatch(predictionSchema, []arrow.Array{bcol}, 1)
	w.Write(brec)
	w.Write(brec)
	w.Close()
	flipped := slices.Clone(good)
	flipped[len(flipped)/2] ^= 0xff
	for _, tc := range []struct {
		name string
		b    []byte
		want string
	}{
		{"empty", nil, "not an Arrow IPC file"},
		{"text", []byte("score\ntrue\n"), "not an Arrow IPC file"},
		{"truncated", good[:len(good)-12], "not an Arrow IPC file"},
		{"int column", ints.Bytes(), "score of type 2"},
		{"two batches", two.Bytes(), "2 record batches (<nil>), want 1"},
	} {
		_, err := ReadPredictions(tc.b)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error containing %q", tc.name, err, tc.want)
		}
	}
	// A flipped byte in the middle: an error, or (if it fell in the bitmap) a
	// different count; never a panic.
	if p, err := ReadPredictions(flipped); err == nil && p.Rows != 3 {
		t.Errorf("a damaged file read as %+v", p)
	}
}

// arrowGoCounts reads predictions with arrow-go's own reader, the reference
// ReadPredictions is checked against (on trusted bytes: see arrowfile.go).
func arrowGoCounts(t *testing.T, b []byte) (rows, tips int64) {
	t.Helper()
	r, err := ipc.NewMappedFileReader(b)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if !r.Schema().Equal(predictionSchema) || r.NumRecords() != 1 {
		t.Fatalf("arrow-go reads schema %s and %d batches", r.Schema(), r.NumRecords())
	}
	rec, err := r.RecordBatchAt(0)
	if err != nil {
		t.Fatal(err)
	}
	defer rec.Release()
	col := rec.Column(0).(*array.Boolean)
	for i := range col.Len() {
		if col.Value(i) {
			tips++
		}
	}
	return rec.NumRows(), tips
}

// TestArrowInterop: what EncodePredictions writes, arrow-go reads value by
// value; what arrow-go writes, ReadPredictions counts the same.
func TestArrowInterop(t *testing.T) {
	for _, n := range []int{0, 1, 7, 8, 9, 63, 64, 65, 1000} {
		scores := make([]bool, n)
		want := int64(0)
		for i := range scores {
			scores[i] = (i*7)%3 == 0
			if scores[i] {
				want++
			}
		}
		ours, err := EncodePredictions(scores)
		if err != nil {
			t.Fatal(err)
		}
		r, err := ipc.NewMappedFileReader(ours)
		if err != nil {
			t.Fatalf("n=%d: arrow-go cannot open our file: %v", n, err)
		}
		rec, err := r.RecordBatchAt(0)
		if err != nil {
			t.Fatalf("n=%d: arrow-go cannot read our batch: %v", n, err)
		}
		col := rec.Column(0).(*array.Boolean)
		if !r.Schema().Equal(predictionSchema) || col.Len() != n || col.NullN() != 0 {
			t.Fatalf("n=%d: arrow-go reads schema %s, %d values, %d nulls", n, r.Schema(), col.Len(), col.NullN())
		}
		for i := range n {
			if col.Value(i) != scores[i] {
				t.Fatalf("n=%d: arrow-go reads score %d as %v", n, i, col.Value(i))
			}
		}
		rec.Release()
		r.Close()

		b := array.NewBooleanBuilder(memory.DefaultAllocator)
		b.AppendValues(scores, nil)
		arr := b.NewBooleanArray()
		var theirs bytes.Buffer
		w, err := ipc.NewFileWriter(&theirs, ipc.WithSchema(predictionSchema))
		if err != nil {
			t.Fatal(err)
		}
		if err := w.Write(array.NewRecordBatch(predictionSchema, []arrow.Array{arr}, int64(n))); err != nil {
			t.Fatal(err)
		}
		w.Close()
		for name, file := range map[string][]byte{"ours": ours, "arrow-go's": theirs.Bytes()} {
			p, err := ReadPredictions(file)
			if err != nil || p != (Predictions{Rows: int64(n), Tips: want, InPlace: true}) {
				t.Errorf("n=%d: ReadPredictions of %s file: %+v, %v; want %d rows, %d tips", n, name, p, err, n, want)
			}
		}
	}
}

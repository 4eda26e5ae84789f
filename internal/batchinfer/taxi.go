package batchinfer

import (
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/parquet-go/parquet-go"
)

// Trip is one row of the NYC TLC yellow-taxi trip records, in the Parquet
// schema of the TLC's files (2021 on): the columns the seed's
// pq.read_table(shard_path).to_pandas() loads. The nullable columns of the real
// files are optional here too (pointers).
type Trip struct {
	VendorID             int64     `parquet:"VendorID"`
	PickupDatetime       time.Time `parquet:"tpep_pickup_datetime,timestamp(microsecond)"`
	DropoffDatetime      time.Time `parquet:"tpep_dropoff_datetime,timestamp(microsecond)"`
	PassengerCount       *float64  `parquet:"passenger_count,optional"`
	TripDistance         float64   `parquet:"trip_distance"`
	RatecodeID           *float64  `parquet:"RatecodeID,optional"`
	StoreAndFwdFlag      *string   `parquet:"store_and_fwd_flag,optional"`
	PULocationID         int64     `parquet:"PULocationID"`
	DOLocationID         int64     `parquet:"DOLocationID"`
	PaymentType          int64     `parquet:"payment_type"`
	FareAmount           float64   `parquet:"fare_amount"`
	Extra                float64   `parquet:"extra"`
	MTATax               float64   `parquet:"mta_tax"`
	TipAmount            float64   `parquet:"tip_amount"`
	TollsAmount          float64   `parquet:"tolls_amount"`
	ImprovementSurcharge float64   `parquet:"improvement_surcharge"`
	TotalAmount          float64   `parquet:"total_amount"`
	CongestionSurcharge  *float64  `parquet:"congestion_surcharge,optional"`
	AirportFee           *float64  `parquet:"airport_fee,optional"`
}

// Columns are the shards' column names, in order.
var Columns = []string{
	"VendorID", "tpep_pickup_datetime", "tpep_dropoff_datetime", "passenger_count", "trip_distance",
	"RatecodeID", "store_and_fwd_flag", "PULocationID", "DOLocationID", "payment_type", "fare_amount",
	"extra", "mta_tax", "tip_amount", "tolls_amount", "improvement_surcharge", "total_amount",
	"congestion_surcharge", "airport_fee",
}

// SeedRows are the row counts of the seed's 12 shards, as its output prints them
// ("Predictions dataframe size: 141062 | ..."), and SeedTips the seed's "Total
// score for tips" per shard: what the real files give.
var (
	SeedRows = []int{141062, 133932, 144014, 143087, 148108, 141981, 136394, 136999, 139985, 156198, 142893, 145976}
	SeedTips = []int{46360, 42175, 45175, 45510, 47713, 45188, 43234, 45142, 44138, 49909, 46112, 48036}
)

// ShardName is the file name of shard i, in the shape of the seed's
// input_files (f"…_{i:06d}.parquet").
func ShardName(i int) string { return fmt.Sprintf("nyc_yellow_taxi_%06d.parquet", i) }

// batchRows is how many rows are written or read at a time.
const batchRows = 8192

// WriteShards writes len(rows) shards into dir, shard i holding rows[i] trips
// drawn from a generator seeded with (seed, i), so the same arguments give the
// same files. The shards are written in parallel; it returns their paths in
// order. On error the files written are removed.
func WriteShards(dir string, seed uint64, rows []int) ([]string, error) {
	paths := make([]string, len(rows))
	errs := make([]error, len(rows))
	var wg sync.WaitGroup
	for i, n := range rows {
		paths[i] = filepath.Join(dir, ShardName(i))
		wg.Go(func() { errs[i] = writeShard(paths[i], seed, i, n) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		for _, p := range paths {
			os.Remove(p)
		}
		return nil, err
	}
	return paths, nil
}

func writeShard(path string, seed uint64, shard, n int) (err error) {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("batchinfer: create shard %d: %w", shard, err)
	}
	defer func() {
		if cerr := f.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("batchinfer: write shard %s: %w", path, cerr)
		}
	}()
	w := parquet.NewGenericWriter[Trip](f, parquet.Compression(&parquet.Snappy))
	g := newTripGen(seed, shard)
	buf := make([]Trip, 0, batchRows)
	for done := 0; done < n; done += len(buf) {
		buf = buf[:min(batchRows, n-done)]
		for j := range buf {
			buf[j] = g.next()
		}
		if _, err := w.Write(buf); err != nil {
			return fmt.Errorf("batchinfer: write shard %s: %w", path, err)
		}
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("batchinfer: write shard %s: %w", path, err)
	}
	return nil
}

// tripGen draws trips with roughly the real data's distributions: most rides
// carry one passenger, about one in three two or more, and a few have no
// passenger count at all (null in the TLC's files too).
type tripGen struct {
	rng   *rand.Rand
	month time.Time
}

func newTripGen(seed uint64, shard int) *tripGen {
	return &tripGen{
		rng:   rand.New(rand.NewPCG(seed, uint64(shard))),
		month: time.Date(2021, time.Month(shard%12+1), 1, 0, 0, 0, 0, time.UTC),
	}
}

// passengerWeights are the chances, in percent, of 0 … 6 passengers.
var passengerWeights = []int{2, 65, 16, 5, 4, 5, 3}

func (g *tripGen) next() Trip {
	r := g.rng
	pickup := g.month.Add(time.Duration(r.Int64N(int64(28*24*time.Hour))) / time.Microsecond * time.Microsecond)
	minutes := 2 + r.ExpFloat64()*12
	dist := math.Round(r.ExpFloat64()*3*100) / 100
	fare := math.Round((3+2.5*dist+0.5*minutes)*100) / 100
	payment := int64(1)
	switch p := r.IntN(100); {
	case p >= 97:
		payment = 3 + int64(r.IntN(2))
	case p >= 75:
		payment = 2
	}
	tip := 0.0
	if payment == 1 {
		tip = math.Round(fare*(0.1+0.15*r.Float64())*100) / 100
	}
	t := Trip{
		VendorID:             1 + int64(r.IntN(2)),
		PickupDatetime:       pickup,
		DropoffDatetime:      pickup.Add(time.Duration(minutes*float64(time.Minute)) / time.Microsecond * time.Microsecond),
		TripDistance:         dist,
		PULocationID:         1 + int64(r.IntN(265)),
		DOLocationID:         1 + int64(r.IntN(265)),
		PaymentType:          payment,
		FareAmount:           fare,
		Extra:                []float64{0, 0.5, 1, 2.5}[r.IntN(4)],
		MTATax:               0.5,
		TipAmount:            tip,
		ImprovementSurcharge: 0.3,
	}
	if r.IntN(100) < 3 { // the TLC's files leave these null together
		t.PaymentType = 0
	} else {
		p := float64(pick(r, passengerWeights))
		rate, flag, cong, airport := 1.0, "N", 2.5, 0.0
		if r.IntN(100) == 0 {
			flag = "Y"
		}
		if r.IntN(20) == 0 {
			rate, airport = 2, 1.25
		}
		t.PassengerCount, t.RatecodeID, t.StoreAndFwdFlag, t.CongestionSurcharge, t.AirportFee = &p, &rate, &flag, &cong, &airport
	}
	if r.IntN(20) == 0 {
		t.TollsAmount = 6.55
	}
	total := t.FareAmount + t.Extra + t.MTATax + t.TipAmount + t.TollsAmount + t.ImprovementSurcharge
	if t.CongestionSurcharge != nil {
		total += *t.CongestionSurcharge + *t.AirportFee
	}
	t.TotalAmount = math.Round(total*100) / 100
	return t
}

// pick returns i with a chance of weights[i] in their sum.
func pick(r *rand.Rand, weights []int) int {
	sum := 0
	for _, w := range weights {
		sum += w
	}
	x := r.IntN(sum)
	for i, w := range weights {
		if x < w {
			return i
		}
		x -= w
	}
	return len(weights) - 1
}

// ShardReader reads a shard's trips a batch at a time, like a pandas DataFrame
// of the whole file read in parts. Close it when done.
type ShardReader struct {
	path string
	f    *os.File
	pf   *parquet.File
	r    *parquet.GenericReader[Trip]
}

// OpenShard opens a shard and checks that it is a Parquet file with every
// column of the yellow-taxi schema.
func OpenShard(path string) (*ShardReader, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("batchinfer: open shard: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("batchinfer: open shard: %w", err)
	}
	pf, err := parquet.OpenFile(f, fi.Size())
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("batchinfer: shard %s is not a Parquet file: %w", path, err)
	}
	var have []string
	for _, field := range pf.Schema().Fields() {
		have = append(have, field.Name())
	}
	var missing []string
	for _, c := range Columns {
		if !slices.Contains(have, c) {
			missing = append(missing, c)
		}
	}
	if len(missing) > 0 {
		f.Close()
		return nil, fmt.Errorf("batchinfer: shard %s lacks the yellow-taxi columns %q (it has %q): not a TLC yellow-taxi file", path, missing, have)
	}
	var r *parquet.GenericReader[Trip]
	if err := catch(func() { r = parquet.NewGenericReader[Trip](pf) }); err != nil {
		f.Close()
		return nil, fmt.Errorf("batchinfer: shard %s: the yellow-taxi columns do not have the schema's types: %w", path, err)
	}
	return &ShardReader{path: path, f: f, pf: pf, r: r}, nil
}

// NumRows is the number of trips in the shard.
func (s *ShardReader) NumRows() int64 { return s.r.NumRows() }

// Read fills trips with the next trips and returns how many; io.EOF after the last.
func (s *ShardReader) Read(trips []Trip) (int, error) {
	var n int
	var err error
	if perr := catch(func() { n, err = s.r.Read(trips) }); perr != nil {
		return 0, fmt.Errorf("batchinfer: read shard %s: %w", s.path, perr)
	}
	if err != nil && err != io.EOF {
		return n, fmt.Errorf("batchinfer: read shard %s: %w", s.path, err)
	}
	return n, err
}

// PassengerCounts returns the shard's passenger_count column, reading only
// that column, as pandas holds it: float64, NaN where the count is null.
func (s *ShardReader) PassengerCounts() (counts []float64, err error) {
	col := s.pf.Root().Column("passenger_count")
	if col == nil || !col.Leaf() || col.Type().Kind() != parquet.Double {
		return nil, fmt.Errorf("batchinfer: shard %s: passenger_count is not a column of doubles", s.path)
	}
	defer func() {
		if r := recover(); r != nil { // parquet-go panics on some damaged pages
			counts, err = nil, fmt.Errorf("batchinfer: read shard %s: column passenger_count: %v", s.path, r)
		}
	}()
	pages := col.Pages()
	defer pages.Close()
	counts = make([]float64, 0, s.pf.NumRows())
	vals := make([]parquet.Value, batchRows)
	for {
		p, err := pages.ReadPage()
		if err == io.EOF {
			return counts, nil
		}
		if err != nil {
			return nil, fmt.Errorf("batchinfer: read shard %s: column passenger_count: %w", s.path, err)
		}
		vr := p.Values()
		for {
			n, err := vr.ReadValues(vals)
			for _, v := range vals[:n] {
				if v.IsNull() {
					counts = append(counts, math.NaN())
				} else {
					counts = append(counts, v.Double())
				}
			}
			if err == io.EOF {
				break
			}
			if err != nil {
				parquet.Release(p)
				return nil, fmt.Errorf("batchinfer: read shard %s: column passenger_count: %w", s.path, err)
			}
		}
		parquet.Release(p)
	}
}

// Close closes the shard's file.
func (s *ShardReader) Close() error {
	return errors.Join(s.r.Close(), s.f.Close())
}

// catch runs f and returns a panic in it as an error: parquet-go's generic
// reader reports some faults of a file's contents by panicking.
func catch(f func()) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%v", r)
		}
	}()
	f()
	return nil
}

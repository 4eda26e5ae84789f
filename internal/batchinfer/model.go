package batchinfer

import (
	"fmt"

	"github.com/trovedb/trove/zerocopy"
)

// Model is the seed's fake model: it predicts a tip for every ride with two
// passengers or more, and carries a payload of weights so that, as in the seed,
// it is worth putting in the store once rather than sending with every call.
//
// "model.payload = np.arange(10, 100_000, dtype=float)": Payload is a float64
// tensor of 99,990 elements (781 KiB), stored out-of-band by trove.PutValue and
// read in place by trove.ViewValue, like a numpy array in Ray's store.
type Model struct {
	Class         string          `cbor:"cls"` // model.cls = "regression"
	MinPassengers float64         `cbor:"min_passengers"`
	Payload       zerocopy.Tensor `cbor:"payload"`
}

// The payload is np.arange(payloadStart, payloadEnd, dtype=float).
const (
	payloadStart = 10
	payloadEnd   = 100_000
)

// LoadTrainedModel is the seed's load_trained_model().
func LoadTrainedModel() (Model, error) {
	w := make([]float64, payloadEnd-payloadStart)
	for i := range w {
		w[i] = float64(payloadStart + i)
	}
	t, err := zerocopy.NewTensor([]int{len(w)}, w)
	if err != nil {
		return Model{}, err
	}
	return Model{Class: "regression", MinPassengers: 2, Payload: t}, nil
}

// Check reports whether m is the model LoadTrainedModel makes: a call checks
// the model it was handed before using it, so a model that arrived damaged is
// an error and not silently wrong predictions.
func (m Model) Check() error {
	w, err := zerocopy.TensorValues[float64](m.Payload)
	if err != nil {
		return fmt.Errorf("batchinfer: the model's payload: %w", err)
	}
	if len(w) != payloadEnd-payloadStart {
		return fmt.Errorf("batchinfer: the model's payload has %d weights, want %d", len(w), payloadEnd-payloadStart)
	}
	for i, v := range w {
		if v != float64(payloadStart+i) {
			return fmt.Errorf("batchinfer: the model's weight %d is %v, want %d: the model is damaged", i, v, payloadStart+i)
		}
	}
	if m.Class != "regression" || m.MinPassengers != 2 {
		return fmt.Errorf("batchinfer: the model is %q with threshold %v, want the fake regression model (2 passengers)", m.Class, m.MinPassengers)
	}
	return nil
}

// Score is the model applied to one ride: `batch["passenger_count"] >= 2`.
// A ride without a passenger count (null, NaN in pandas) gets no tip, as the
// comparison is false for NaN. Predict applies the same rule column-wise.
func (m Model) Score(t *Trip) bool {
	return t.PassengerCount != nil && *t.PassengerCount >= m.MinPassengers
}

// Predict is the body of the seed's make_model_batch_predictions(model,
// shard_path): it reads the shard and returns the model's predictions, one
// score per trip, as an Arrow IPC file (EncodePredictions).
//
// The seed reads the whole table into pandas (pq.read_table(shard_path)); the
// model looks at one column, so Predict reads that one, as
// pq.read_table(shard_path, columns=["passenger_count"]) would: a Parquet file
// is stored column by column, so the other 18 are never decoded.
func (m Model) Predict(shardPath string) ([]byte, error) {
	if err := m.Check(); err != nil {
		return nil, err
	}
	s, err := OpenShard(shardPath)
	if err != nil {
		return nil, err
	}
	defer s.Close()
	counts, err := s.PassengerCounts()
	if err != nil {
		return nil, err
	}
	if int64(len(counts)) != s.NumRows() {
		return nil, fmt.Errorf("batchinfer: shard %s: %d passenger counts for %d rows", shardPath, len(counts), s.NumRows())
	}
	scores := make([]bool, len(counts))
	for i, c := range counts {
		scores[i] = c >= m.MinPassengers // false for NaN, as in pandas
	}
	return EncodePredictions(scores)
}

package batchinfer

import (
	"fmt"
	"unsafe"
)

// Predictions is what a driver reads of a shard's predictions.
type Predictions struct {
	Rows int64 // len(r): the predictions dataframe's size
	Tips int64 // r['score'].sum(): rides the model gives a tip
	// InPlace: the score column's bitmap was read where it lies in the bytes
	// handed to ReadPredictions (a store's view of the object), not copied.
	InPlace bool
}

// ReadPredictions reads an Arrow IPC file that EncodePredictions wrote, in
// place: with b a view of a stored object, the scores are counted in the
// store's memory, never copied. b is only read.
//
// Anything else (not an Arrow IPC file, another schema, more or fewer than one
// record batch, nulls, compression, offsets or lengths outside b) is an error
// saying what was found (see arrowfile.go for why this does not use arrow-go's
// reader).
func ReadPredictions(b []byte) (Predictions, error) {
	rows, tips, bitmap, err := readArrowScores(b)
	if err != nil {
		return Predictions{}, fmt.Errorf("batchinfer: %d bytes of predictions are not an Arrow IPC file of one batch of scores: %w", len(b), err)
	}
	return Predictions{Rows: rows, Tips: tips, InPlace: rows == 0 || within(bitmap, b)}, nil
}

// within reports whether inner lies inside outer's memory.
func within(inner, outer []byte) bool {
	if len(inner) == 0 || len(outer) == 0 {
		return false
	}
	i, o := uintptr(unsafe.Pointer(unsafe.SliceData(inner))), uintptr(unsafe.Pointer(unsafe.SliceData(outer)))
	return i >= o && i+uintptr(len(inner)) <= o+uintptr(len(outer))
}

package zerocopy

import (
	"math"
	"slices"
	"strings"
	"testing"
	"unsafe"

	"github.com/fxamacker/cbor/v2"
)

func TestNewTensor(t *testing.T) {
	data := []float32{1, 2, 3, 4, 5, 6}
	tn, err := NewTensor([]int{2, 3}, data)
	if err != nil {
		t.Fatal(err)
	}
	if tn.DType() != Float32 || !slices.Equal(tn.Shape(), []int{2, 3}) || tn.Len() != 6 || tn.NumBytes() != 24 || tn.Rank() != 2 {
		t.Fatalf("got %v len %d bytes %d", tn, tn.Len(), tn.NumBytes())
	}
	if got := tn.String(); got != "Tensor(float32[2 3])" {
		t.Fatalf("String() = %q", got)
	}
	vals, err := TensorValues[float32](tn)
	if err != nil {
		t.Fatal(err)
	}
	if &vals[0] != &data[0] {
		t.Fatal("TensorValues copied the data")
	}
	tn.Shape()[0] = 99 // Shape returns a copy
	if tn.Shape()[0] != 2 {
		t.Fatal("Shape() exposes the tensor's own slice")
	}
	if _, err := TensorValues[int32](tn); err == nil || !strings.Contains(err.Error(), "dtype mismatch") {
		t.Fatalf("TensorValues[int32] of a float32 tensor: err %v", err)
	}

	scalar, err := NewTensor(nil, []int64{7})
	if err != nil || scalar.Len() != 1 || scalar.Rank() != 0 {
		t.Fatalf("scalar: %v len %d err %v", scalar, scalar.Len(), err)
	}
	empty, err := NewTensor[uint8]([]int{3, 0}, nil)
	if err != nil || empty.Len() != 0 || empty.BufferKey() != 0 {
		t.Fatalf("empty: %v len %d key %#x err %v", empty, empty.Len(), empty.BufferKey(), err)
	}
	var zero Tensor
	if zero.Len() != 0 || zero.NumBytes() != 0 || zero.DType().Valid() {
		t.Fatalf("zero tensor: len %d", zero.Len())
	}
}

func TestNewTensorErrors(t *testing.T) {
	b := aligned(64)
	tests := []struct {
		name    string
		make    func() (Tensor, error)
		wantErr string
	}{
		{"count mismatch", func() (Tensor, error) { return NewTensor([]int{2, 3}, make([]float64, 5)) }, "holds 6 elements, data has 5"},
		{"negative dim", func() (Tensor, error) { return NewTensor([]int{2, -3}, make([]float64, 6)) }, "dimension 1 is negative"},
		{"overflow", func() (Tensor, error) { return NewTensor([]int{math.MaxInt / 2, 3}, make([]int8, 1)) }, "more than"},
		{"rank", func() (Tensor, error) { return NewTensor(make([]int, MaxRank+1), []int8{}) }, "rank 65"},
		{"bytes invalid dtype", func() (Tensor, error) { return NewTensorFromBytes(0, []int{1}, b[:1]) }, "invalid dtype"},
		{"bytes length", func() (Tensor, error) { return NewTensorFromBytes(Int32, []int{3}, b[:8]) }, "needs 12 bytes, got 8"},
		{"bytes misaligned", func() (Tensor, error) { return NewTensorFromBytes(Int32, []int{2}, b[2:10]) }, "not aligned to 4 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tt.make()
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
	if _, err := NewTensor([]int{0, math.MaxInt}, []int8{}); err != nil {
		t.Fatalf("a zero dimension makes any shape small: %v", err)
	}
}

func TestTensorKeys(t *testing.T) {
	data := make([]int16, 8)
	a, _ := NewTensor([]int{8}, data)
	b, _ := NewTensor([]int{2, 4}, data)
	c, _ := NewTensor([]int{4}, data[:4])
	if a.BufferKey() == 0 || a.BufferKey() != b.BufferKey() {
		t.Fatalf("tensors over the same memory must share a key: %#x %#x", a.BufferKey(), b.BufferKey())
	}
	if c.BufferKey() == a.BufferKey() {
		t.Fatal("tensors over different byte ranges must not share a key")
	}
}

func TestTensorCBOR(t *testing.T) {
	data := []uint16{1, 2, 3, 4, 5, 6}
	tn, _ := NewTensor([]int{3, 2}, data)
	enc, err := cbor.Marshal(tn)
	if err != nil {
		t.Fatal(err)
	}
	if len(enc) > 32 {
		t.Fatalf("the encoding must not hold the data: %d bytes", len(enc))
	}
	var got Tensor
	if err := cbor.Unmarshal(enc, &got); err != nil {
		t.Fatal(err)
	}
	if !got.Unbound() || got.BufferKey() != tn.BufferKey() || got.DType() != Uint16 || !slices.Equal(got.Shape(), []int{3, 2}) {
		t.Fatalf("decoded %v key %#x unbound %v; want key %#x", got, got.BufferKey(), got.Unbound(), tn.BufferKey())
	}
	if _, err := TensorValues[uint16](got); err == nil {
		t.Fatal("TensorValues of an unbound tensor succeeded")
	}
	if _, err := cbor.Marshal(got); err == nil {
		t.Fatal("encoding an unbound tensor succeeded")
	}
	buf := aligned(64)
	if err := got.BindBuffer(buf[:10]); err == nil || !strings.Contains(err.Error(), "needs 12 bytes") {
		t.Fatalf("BindBuffer with a short buffer: %v", err)
	}
	if err := got.BindBuffer(buf[1:13]); err == nil || !strings.Contains(err.Error(), "not aligned") {
		t.Fatalf("BindBuffer with a misaligned buffer: %v", err)
	}
	copy(buf, Bytes(data))
	if err := got.BindBuffer(buf[:12]); err != nil {
		t.Fatal(err)
	}
	vals, err := TensorValues[uint16](got)
	if err != nil || !slices.Equal(vals, data) || unsafe.Pointer(&vals[0]) != unsafe.Pointer(&buf[0]) {
		t.Fatalf("after BindBuffer: %v, %v", vals, err)
	}
	if err := got.BindBuffer(buf[:12]); err == nil {
		t.Fatal("BindBuffer twice succeeded")
	}

	// The zero Tensor is null both ways; an empty tensor needs no buffer.
	enc, err = cbor.Marshal(Tensor{})
	if err != nil || string(enc) != "\xf6" {
		t.Fatalf("zero tensor encodes as %x, %v", enc, err)
	}
	got = Tensor{dtype: Int8}
	if err := cbor.Unmarshal(enc, &got); err != nil || got.DType() != 0 {
		t.Fatalf("null decodes to %v, %v", got, err)
	}
	empty, _ := NewTensor[float64]([]int{0, 4}, nil)
	enc, _ = cbor.Marshal(empty)
	if err := cbor.Unmarshal(enc, &got); err != nil || got.Unbound() || got.Len() != 0 || !slices.Equal(got.Shape(), []int{0, 4}) {
		t.Fatalf("empty tensor decodes to %v unbound %v, %v", got, got.Unbound(), err)
	}
}

func TestTensorCBORErrors(t *testing.T) {
	tag := func(content any) []byte {
		b, err := cbor.Marshal(cbor.Tag{Number: TagTensor, Content: content})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	tests := []struct {
		name string
		in   []byte
	}{
		{"not a tag", []byte{0x83, 0x01, 0x80, 0x00}},
		{"other tag", func() []byte {
			b, _ := cbor.Marshal(cbor.Tag{Number: 1234567, Content: []any{9, []int{1}, 5}})
			return b
		}()},
		{"invalid dtype", tag([]any{0, []int{1}, 5})},
		{"dtype too large", tag([]any{300, []int{1}, 5})},
		{"negative dim", tag([]any{9, []int{-1}, 5})},
		{"overflowing shape", tag([]any{10, []uint64{math.MaxInt64, 2}, 5})},
		{"zero key with data", tag([]any{9, []int{2}, 0})},
		{"key without data", tag([]any{9, []int{0}, 5})},
		{"short array", tag([]any{9, []int{2}})},
		{"long array", tag([]any{9, []int{2}, 5, 6})},
		{"rank too high", tag([]any{9, make([]int, MaxRank+1), 5})},
		{"truncated", tag([]any{9, []int{2}, 5})[:6]},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got Tensor
			if err := got.UnmarshalCBOR(tt.in); err == nil {
				t.Fatalf("decoded %x into %v, want an error", tt.in, got)
			} else if !strings.HasPrefix(err.Error(), "zerocopy: decode tensor") {
				t.Fatalf("unclear error: %v", err)
			}
		})
	}
}

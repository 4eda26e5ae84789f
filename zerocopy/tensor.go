package zerocopy

import (
	"errors"
	"fmt"
	"hash/maphash"
	"math"
	"reflect"
	"strconv"
	"strings"
	"unsafe"

	"github.com/fxamacker/cbor/v2"
)

// TagTensor is the CBOR tag number of an encoded Tensor: 0x74726f54, "troT" in
// ASCII, in the first-come-first-served range of the IANA registry and unregistered.
// Its content is the array [dtype, shape, buffer key].
const TagTensor = 0x74726f54

// MaxRank is the most dimensions a tensor may have (numpy's limit).
const MaxRank = 64

// Tensor is an n-dimensional array of numbers: a dtype, a shape, and the bytes of its
// elements in row-major (C) order. Like a numpy array inside a Ray object, a tensor
// stored in a value keeps its bytes out of the CBOR body, in a 64-byte aligned buffer
// of the value's frame, and is read back without a copy.
//
// A Tensor read with trove.ViewValue aliases the object's bytes: it is valid only
// while the trove.Object it came from is not released, and it is read-only (the store
// maps its memory read-only, so writes fault). One read with trove.GetValue, or built
// with NewTensor, owns or shares ordinary Go memory.
//
// The zero Tensor has no dtype and no elements; it encodes as CBOR null.
type Tensor struct {
	dtype DType
	shape []int
	data  []byte
	key   uint64 // set by UnmarshalCBOR until BindBuffer attaches the data
}

// shapeLen returns the number of elements of shape, or an error if there are too
// many dimensions, one is negative, or the tensor's size in bytes (with elements of
// size bytes) would overflow int.
func shapeLen(shape []int, size int) (int, error) {
	if len(shape) > MaxRank {
		return 0, fmt.Errorf("zerocopy: tensor of rank %d, at most %d dimensions are allowed", len(shape), MaxRank)
	}
	empty := false
	for i, d := range shape {
		if d < 0 {
			return 0, fmt.Errorf("zerocopy: tensor shape %v: dimension %d is negative", shape, i)
		}
		empty = empty || d == 0
	}
	if empty {
		return 0, nil
	}
	n := 1
	for _, d := range shape {
		if n > math.MaxInt/max(size, 1)/d {
			return 0, fmt.Errorf("zerocopy: tensor shape %v: more than %d bytes of %d-byte elements", shape, math.MaxInt, size)
		}
		n *= d
	}
	return n, nil
}

// NewTensor returns a tensor of the given shape over data, which it aliases (no
// copy): changing data changes the tensor. len(data) must be the product of shape's
// dimensions; an empty shape makes a scalar of one element.
func NewTensor[T Numeric](shape []int, data []T) (Tensor, error) {
	dt := DTypeOf[T]()
	n, err := shapeLen(shape, dt.Size())
	if err != nil {
		return Tensor{}, err
	}
	if n != len(data) {
		return Tensor{}, fmt.Errorf("zerocopy: new tensor: shape %v holds %d elements, data has %d", shape, n, len(data))
	}
	return Tensor{dtype: dt, shape: append([]int{}, shape...), data: Bytes(data)}, nil
}

// NewTensorFromBytes returns a tensor of the given dtype and shape over data, which it
// aliases (no copy). len(data) must be the shape's element count times the dtype's
// size, and data must be aligned for the dtype.
func NewTensorFromBytes(dt DType, shape []int, data []byte) (Tensor, error) {
	if !dt.Valid() {
		return Tensor{}, fmt.Errorf("zerocopy: new tensor: invalid dtype %s", dt)
	}
	n, err := shapeLen(shape, dt.Size())
	if err != nil {
		return Tensor{}, err
	}
	t := Tensor{dtype: dt, shape: append([]int{}, shape...)}
	if err := t.checkData(n, data); err != nil {
		return Tensor{}, fmt.Errorf("zerocopy: new tensor: %w", err)
	}
	if len(data) > 0 {
		t.data = data
	}
	return t, nil
}

func (t *Tensor) checkData(n int, data []byte) error {
	if want := n * t.dtype.Size(); len(data) != want {
		return fmt.Errorf("%s tensor of shape %v needs %d bytes, got %d", t.dtype, t.shape, want, len(data))
	}
	if len(data) > 0 {
		if p := uintptr(unsafe.Pointer(unsafe.SliceData(data))); p%uintptr(t.dtype.Size()) != 0 {
			return fmt.Errorf("%s tensor data at %#x is not aligned to %d bytes", t.dtype, p, t.dtype.Size())
		}
	}
	return nil
}

// DType returns the element type (invalid for the zero Tensor).
func (t Tensor) DType() DType { return t.dtype }

// Shape returns a copy of the dimensions.
func (t Tensor) Shape() []int { return append([]int(nil), t.shape...) }

// Rank returns the number of dimensions.
func (t Tensor) Rank() int { return len(t.shape) }

// Len returns the number of elements: the product of the dimensions (0 for the zero
// Tensor, 1 for a scalar).
func (t Tensor) Len() int {
	if !t.dtype.Valid() {
		return 0
	}
	n, _ := shapeLen(t.shape, t.dtype.Size()) // checked when t was made
	return n
}

// NumBytes returns the size of the elements in bytes.
func (t Tensor) NumBytes() int { return t.Len() * t.dtype.Size() }

// Data returns the elements' bytes without a copy. For a tensor read with
// trove.ViewValue they are read-only and valid until its Object is released. It is nil
// for a tensor without elements, and for one still waiting for BindBuffer.
func (t Tensor) Data() []byte { return t.data }

// String describes the tensor without its data: "Tensor(float32[2 3])".
func (t Tensor) String() string {
	var s strings.Builder
	s.WriteString("Tensor(")
	s.WriteString(t.dtype.String())
	s.WriteByte('[')
	for i, d := range t.shape {
		if i > 0 {
			s.WriteByte(' ')
		}
		s.WriteString(strconv.Itoa(d))
	}
	s.WriteString("])")
	return s.String()
}

// TensorValues returns t's elements as a []T without a copy. T must match t's dtype
// exactly (a float32 tensor is not viewed as []int32). The slice shares t's lifetime
// and read-only-ness.
func TensorValues[T Numeric](t Tensor) ([]T, error) {
	if dt := DTypeOf[T](); dt != t.dtype {
		return nil, fmt.Errorf("zerocopy: view %s as []%s: dtype mismatch", t, dt)
	}
	if t.Unbound() {
		return nil, fmt.Errorf("zerocopy: view %s: decoded tensor has no data yet (BindBuffer was not called)", t)
	}
	return AsSlice[T](t.data)
}

// keySeed makes buffer keys unpredictable, so they do not publish heap addresses
// into stored objects that other processes and nodes read.
var keySeed = maphash.MakeSeed()

// ReservedKey is the buffer key no tensor ever names: BufferKey is 0 only for a
// tensor without data bytes, which has no buffer, and UnmarshalCBOR rejects a
// tensor with elements whose key is 0. An encoder may therefore keep one buffer of
// its own in a frame under this key; package trove keeps a value's ref table there.
const ReservedKey uint64 = 0

// BufferKey returns the key naming the out-of-band buffer that holds t's data in an
// encoded value, and 0 (ReservedKey, never a buffer's) if t has no data bytes. For a tensor decoded but not yet bound
// it is the key read from the encoding. Otherwise it is derived from the address and
// length of t's data, so tensors sharing memory share a buffer: an encoder (the value
// encoder in package trove) calls it to collect the buffers that MarshalCBOR names.
func (t Tensor) BufferKey() uint64 {
	if t.key != 0 || len(t.data) == 0 {
		return t.key
	}
	k := maphash.Comparable(keySeed, [2]uintptr{uintptr(unsafe.Pointer(unsafe.SliceData(t.data))), uintptr(len(t.data))})
	if k == 0 {
		k = 1 // 0 means "no buffer", and is ReservedKey
	}
	return k
}

// Unbound reports whether t was decoded from CBOR and is still waiting for its data
// (BindBuffer). An unbound tensor has no Data and cannot be encoded again.
func (t Tensor) Unbound() bool { return t.key != 0 && t.data == nil }

// BindBuffer attaches data, the out-of-band buffer named by BufferKey, to a tensor
// decoded from CBOR. data must be exactly the tensor's size and aligned for its dtype;
// the tensor aliases it.
func (t *Tensor) BindBuffer(data []byte) error {
	if !t.Unbound() {
		return fmt.Errorf("zerocopy: bind buffer to %s: the tensor is not waiting for a buffer", t)
	}
	if err := t.checkData(t.Len(), data); err != nil {
		return fmt.Errorf("zerocopy: bind buffer %#x: %w", t.key, err)
	}
	t.data, t.key = data, 0
	return nil
}

// tensorWire is a Tensor's CBOR content: the data is elsewhere, named by Key.
type tensorWire struct {
	_     struct{} `cbor:",toarray"`
	DType DType
	Shape []int
	Key   uint64
}

var tensorEnc, tensorDec = func() (cbor.EncMode, cbor.DecMode) {
	tags := cbor.NewTagSet()
	if err := tags.Add(cbor.TagOptions{EncTag: cbor.EncTagRequired, DecTag: cbor.DecTagRequired},
		reflect.TypeFor[tensorWire](), TagTensor); err != nil {
		panic(err) // constant arguments: cannot happen
	}
	em, err := cbor.EncOptions{}.EncModeWithTags(tags)
	if err != nil {
		panic(err)
	}
	dm, err := cbor.DecOptions{MaxArrayElements: 1024}.DecModeWithTags(tags)
	if err != nil {
		panic(err)
	}
	return em, dm
}()

// MarshalCBOR encodes t as tag TagTensor over [dtype, shape, BufferKey()], without
// its data: the encoder of the enclosing value must store the data as the buffer
// BufferKey names. The zero Tensor encodes as null. An unbound tensor cannot be
// encoded, since its data is not at hand.
func (t Tensor) MarshalCBOR() ([]byte, error) {
	if t.dtype == 0 { // only the zero Tensor: every constructor sets a valid dtype
		return []byte{0xf6}, nil
	}
	if t.Unbound() {
		return nil, fmt.Errorf("zerocopy: encode %s: decoded tensor has no data yet (BindBuffer was not called)", t)
	}
	return tensorEnc.Marshal(tensorWire{DType: t.dtype, Shape: t.shape, Key: t.BufferKey()})
}

// UnmarshalCBOR decodes what MarshalCBOR wrote, leaving the tensor unbound: it has
// dtype, shape and buffer key, and the value decoder attaches the data with
// BindBuffer. null decodes to the zero Tensor.
func (t *Tensor) UnmarshalCBOR(b []byte) error {
	if len(b) == 1 && (b[0] == 0xf6 || b[0] == 0xf7) { // null, undefined
		*t = Tensor{}
		return nil
	}
	var w tensorWire
	if err := tensorDec.Unmarshal(b, &w); err != nil {
		return fmt.Errorf("zerocopy: decode tensor: %w", err)
	}
	if !w.DType.Valid() {
		return fmt.Errorf("zerocopy: decode tensor: invalid dtype %d", uint8(w.DType))
	}
	n, err := shapeLen(w.Shape, w.DType.Size())
	if err != nil {
		return fmt.Errorf("zerocopy: decode tensor: %w", err)
	}
	if (n == 0) != (w.Key == 0) {
		return errors.New("zerocopy: decode tensor: buffer key must be 0 exactly when the tensor has no elements")
	}
	if w.Shape == nil {
		w.Shape = []int{}
	}
	*t = Tensor{dtype: w.DType, shape: w.Shape, key: w.Key}
	return nil
}

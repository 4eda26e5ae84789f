package fuzz

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"

	"github.com/trovedb/trove"
	"github.com/trovedb/trove/zerocopy"
)

// content returns the bytes of a raw object: size bytes that depend on seed, so a
// script names an object's content with two numbers.
// A 4 KiB random block is tiled with each block's index written into it, so
// that every block differs (a misplaced block is caught) at the cost of a copy.
func content(seed uint64, size int) []byte {
	b := make([]byte, size)
	rng := rand.New(rand.NewPCG(seed, uint64(size)))
	var block [4096]byte
	for i := 0; i < len(block); i += 8 {
		binary.LittleEndian.PutUint64(block[i:], rng.Uint64())
	}
	for off := 0; off < size; off += len(block) {
		n := copy(b[off:], block[:])
		var idx [8]byte
		binary.LittleEndian.PutUint64(idx[:], uint64(off)^binary.LittleEndian.Uint64(block[:8]))
		copy(b[off:off+n], idx[:])
	}
	return b
}

// Value is what a putvalue op stores with trove.PutValue: refs in a struct field
// (kept alive by the value's object), a string and bytes in the CBOR body, and a
// tensor stored out-of-band.
type Value struct {
	Seed   uint64
	Note   string
	Blob   []byte
	Refs   []trove.Ref
	Tensor zerocopy.Tensor
}

// makeValue returns the value seed names, holding refs.
func makeValue(seed uint64, refs []trove.Ref) Value {
	rng := rand.New(rand.NewPCG(seed, 0x76616c7565))
	big := rng.IntN(3) == 0
	nf := 1 + rng.IntN(16)
	if big {
		nf = 1 + rng.IntN(8<<10)
	}
	f := make([]float32, nf)
	for i := range f {
		f[i] = float32(rng.IntN(1<<20)) / 7
	}
	t, err := zerocopy.NewTensor([]int{nf}, f)
	if err != nil {
		panic(err) // one dimension of the data's own length
	}
	return Value{
		Seed:   seed,
		Note:   fmt.Sprintf("value %d", rng.IntN(1e6)),
		Blob:   content(seed^0xb10b, rng.IntN(300)),
		Refs:   refs,
		Tensor: t,
	}
}

// sameValue reports how got differs from want, a value made by makeValue with
// the refs of the same objects.
func sameValue(got, want Value) error {
	switch {
	case got.Seed != want.Seed:
		return fmt.Errorf("seed %d, want %d", got.Seed, want.Seed)
	case got.Note != want.Note:
		return fmt.Errorf("note %q, want %q", got.Note, want.Note)
	case string(got.Blob) != string(want.Blob):
		return fmt.Errorf("blob of %d bytes differs from the %d put", len(got.Blob), len(want.Blob))
	case got.Tensor.DType() != want.Tensor.DType() || fmt.Sprint(got.Tensor.Shape()) != fmt.Sprint(want.Tensor.Shape()):
		return fmt.Errorf("tensor %v %v, want %v %v", got.Tensor.DType(), got.Tensor.Shape(), want.Tensor.DType(), want.Tensor.Shape())
	case string(got.Tensor.Data()) != string(want.Tensor.Data()):
		return fmt.Errorf("tensor data differs")
	case len(got.Refs) != len(want.Refs):
		return fmt.Errorf("%d refs, want %d", len(got.Refs), len(want.Refs))
	}
	for i := range got.Refs {
		if got.Refs[i].ID() != want.Refs[i].ID() {
			return fmt.Errorf("ref %d names %s, want %s", i, got.Refs[i].ID(), want.Refs[i].ID())
		}
	}
	return nil
}

// encodeValue returns the bytes trove.PutValue stores for v: what a raw Get of
// the value's object must return. The encoding depends on the refs' IDs only.
func encodeValue(v Value) ([]byte, error) {
	var c captureStore
	if _, err := trove.PutValue(context.Background(), &c, v); err != nil {
		return nil, err
	}
	return c.data, nil
}

// valueSize returns the size of the object a putvalue op makes with seed and
// refs naming the objects pattern lists (a repeat is the same object): the same
// encoding with stand-in IDs of the same length.
func valueSize(seed uint64, pattern []int) int {
	var c captureStore
	refs := make([]trove.Ref, len(pattern))
	for i, p := range pattern {
		refs[i] = trove.NewRef(trove.NewObjectID(trove.NodeID{'s', 'i', 'z', 'e'}, uint64(p)), &c, nil)
	}
	b, err := encodeValue(makeValue(seed, refs))
	if err != nil {
		panic(fmt.Sprintf("fuzz: encode a value: %v", err)) // the Value type always encodes
	}
	return len(b)
}

// captureStore is a trove.Store that keeps the bytes of the one PutFunc made
// through it and stores nothing.
type captureStore struct{ data []byte }

var errCaptureOnly = errors.New("fuzz: the capture store only records a PutFunc")

func (c *captureStore) Put(context.Context, []byte) (trove.Ref, error) {
	return trove.Ref{}, errCaptureOnly
}

func (c *captureStore) PutFunc(_ context.Context, size int, _ []trove.Ref, fill func([]byte) error) (trove.Ref, error) {
	c.data = make([]byte, size)
	return trove.Ref{}, fill(c.data)
}

func (c *captureStore) Get(context.Context, trove.Ref) (*trove.Object, error) {
	return nil, errCaptureOnly
}

func (c *captureStore) GetAll(context.Context, []trove.Ref) ([]*trove.Object, error) {
	return nil, errCaptureOnly
}

func (c *captureStore) Wait(context.Context, []trove.Ref, int) ([]trove.Ref, []trove.Ref, error) {
	return nil, nil, errCaptureOnly
}

func (c *captureStore) Borrow(trove.ObjectID) (trove.Ref, error) { return trove.Ref{}, errCaptureOnly }

// ReleaseRef makes the stand-in refs of valueSize ownable; they hold nothing.
func (c *captureStore) ReleaseRef(trove.ObjectID, any) {}

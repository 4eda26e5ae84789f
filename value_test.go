package trove_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/fxamacker/cbor/v2"

	"github.com/trovedb/trove"
	"github.com/trovedb/trove/engine"
	"github.com/trovedb/trove/zerocopy"
)

// testStore is the engine store the value tests run on. It fails the test if,
// when the test ends, it still holds an object or a pin: every test must drop all
// its refs and release all its views.
type testStore struct{ *engine.Store }

func newTestStore(t testing.TB) *testStore {
	return newTestStoreNode(t, trove.NewNodeID())
}

func newTestStoreNode(t testing.TB, node trove.NodeID) *testStore {
	st, err := engine.Open(engine.Config{Capacity: 16 << 20, Node: node})
	if err != nil {
		t.Fatal(err)
	}
	s := &testStore{st}
	t.Cleanup(func() {
		if objs, pins := s.counts(); objs != 0 || pins != 0 {
			t.Errorf("store holds %d objects and %d pins at the end of the test; want 0 and 0 (drop every ref, release every view)", objs, pins)
		}
		if used := st.Stats().Used; used != 0 {
			t.Errorf("store has %d arena bytes in use at the end of the test", used)
		}
		if err := st.Check(); err != nil {
			t.Error(err)
		}
		st.Close()
	})
	return s
}

// counts returns the number of objects held and of pins (unreleased views).
func (s *testStore) counts() (objects, pins int) {
	st := s.Stats()
	return int(st.Objects), int(st.Views)
}

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

// dropRefs drops every bound Ref reachable in v (a pointer to a decoded value).
func dropRefs(v any) {
	var walk func(v reflect.Value)
	walk = func(v reflect.Value) {
		if !v.IsValid() {
			return
		}
		if v.Type() == reflect.TypeFor[trove.Ref]() {
			if v.CanInterface() {
				v.Interface().(trove.Ref).Drop()
			}
			return
		}
		switch v.Kind() {
		case reflect.Pointer, reflect.Interface:
			if !v.IsNil() {
				walk(v.Elem())
			}
		case reflect.Struct:
			for i := range v.NumField() {
				walk(v.Field(i))
			}
		case reflect.Slice, reflect.Array:
			if v.Type().Elem().Kind() >= reflect.Int && v.Type().Elem().Kind() <= reflect.Float64 {
				return // numbers only
			}
			for i := range v.Len() {
				walk(v.Index(i))
			}
		case reflect.Map:
			for it := v.MapRange(); it.Next(); {
				walk(it.Key())
				walk(it.Value())
			}
		}
	}
	walk(reflect.ValueOf(v))
}

// inside reports whether p points into b.
func inside(p unsafe.Pointer, b []byte) bool {
	start := uintptr(unsafe.Pointer(unsafe.SliceData(b)))
	return uintptr(p) >= start && uintptr(p) < start+uintptr(len(b))
}

// roundTrip puts v, reads it back with GetValue and ViewValue, checks both equal v,
// and drops everything.
func roundTrip[T any](t *testing.T, st *testStore, v T) {
	t.Helper()
	ctx := t.Context()
	ref, err := trove.PutValue(ctx, st, v)
	if err != nil {
		t.Fatal(err)
	}
	defer ref.Drop()
	got, err := trove.GetValue[T](ctx, st, ref)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, v) {
		t.Fatalf("GetValue = %#v, want %#v", got, v)
	}
	if _, pins := st.counts(); pins != 0 {
		t.Fatalf("GetValue left %d pins", pins)
	}
	view, obj, err := trove.ViewValue[T](ctx, st, ref)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(view, v) {
		t.Fatalf("ViewValue = %#v, want %#v", view, v)
	}
	obj.Release()
}

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

type point struct {
	X, Y   float64
	Label  string
	Tags   []string
	Attrs  map[string]int
	When   time.Time
	Next   *point
	hidden int // not encoded
}

func TestValueRoundTrip(t *testing.T) {
	st := newTestStore(t)
	when := time.Date(2025, 3, 4, 5, 6, 7, 891011121, time.UTC) // a zone keeps its offset, not its name
	t.Run("int", func(t *testing.T) { roundTrip(t, st, 42) })
	t.Run("negative int64", func(t *testing.T) { roundTrip(t, st, int64(-1)<<62) })
	t.Run("string", func(t *testing.T) { roundTrip(t, st, "héllo, trove") })
	t.Run("empty string", func(t *testing.T) { roundTrip(t, st, "") })
	t.Run("struct", func(t *testing.T) {
		roundTrip(t, st, point{X: 1.5, Y: -2, Label: "a", Tags: []string{"x", "y"}, Attrs: map[string]int{"k": 3},
			When: when, Next: &point{Label: "next", When: when}})
	})
	t.Run("pointer", func(t *testing.T) { roundTrip(t, st, &point{Label: "p", When: when}) })
	t.Run("[]int", func(t *testing.T) { roundTrip(t, st, []int{1, -2, 3, 1 << 30}) })
	t.Run("[]float32", func(t *testing.T) { roundTrip(t, st, []float32{1, 2.5, -3, 1e30}) })
	t.Run("[]float64", func(t *testing.T) { roundTrip(t, st, []float64{0.1, 0.2}) })
	t.Run("[]uint16", func(t *testing.T) { roundTrip(t, st, []uint16{1, 65535}) })
	t.Run("[]byte", func(t *testing.T) { roundTrip(t, st, []byte("raw bytes")) })
	t.Run("empty []int8", func(t *testing.T) { roundTrip(t, st, []int8{}) })
	t.Run("nil []float64", func(t *testing.T) { roundTrip(t, st, []float64(nil)) })
	t.Run("defined slice", func(t *testing.T) {
		type celsius float32
		type temps []celsius
		roundTrip(t, st, temps{20.5, -3})
	})
	t.Run("[][]float32", func(t *testing.T) { roundTrip(t, st, [][]float32{{1}, {2, 3}}) })
	t.Run("map", func(t *testing.T) { roundTrip(t, st, map[string][]int{"a": {1}, "b": nil}) })
	t.Run("any", func(t *testing.T) { roundTrip[any](t, st, "dynamic") })
	t.Run("nil any", func(t *testing.T) { roundTrip[any](t, st, nil) })
	if objs, pins := st.counts(); objs != 0 || pins != 0 {
		t.Fatalf("after the round trips: %d objects, %d pins", objs, pins)
	}
}

func TestHiddenFieldsNotStored(t *testing.T) {
	st := newTestStore(t)
	ref, err := trove.PutValue(t.Context(), st, point{Label: "a", hidden: 7})
	if err != nil {
		t.Fatal(err)
	}
	defer ref.Drop()
	got, err := trove.GetValue[point](t.Context(), st, ref)
	if err != nil || got.hidden != 0 || got.Label != "a" {
		t.Fatalf("got %+v, %v", got, err)
	}
}

func TestNumericSliceZeroCopy(t *testing.T) {
	st := newTestStore(t)
	ctx := t.Context()
	want := make([]float32, 1000)
	for i := range want {
		want[i] = float32(i) / 3
	}
	ref, err := trove.PutValue(ctx, st, want)
	if err != nil {
		t.Fatal(err)
	}
	defer ref.Drop()

	view, obj, err := trove.ViewValue[[]float32](ctx, st, ref)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(view, want) {
		t.Fatal("ViewValue returned different numbers")
	}
	b := obj.Bytes()
	if !inside(unsafe.Pointer(&view[0]), b) {
		t.Fatalf("ViewValue copied: &view[0]=%p is not inside the object's bytes [%p, +%d)", &view[0], &b[0], len(b))
	}
	if off := uintptr(unsafe.Pointer(&view[0])) - uintptr(unsafe.Pointer(&b[0])); off%64 != 0 {
		t.Fatalf("the slice starts at offset %d of the object, not 64-byte aligned", off)
	}
	if len(b) > 4000+200 {
		t.Fatalf("object of %d bytes for 4000 bytes of data: the data is stored more than once", len(b))
	}
	if cap(view) != len(view) {
		t.Fatal("the view's capacity runs past its data; append would write into the object")
	}

	got, err := trove.GetValue[[]float32](ctx, st, ref)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, want) || inside(unsafe.Pointer(&got[0]), b) {
		t.Fatal("GetValue must return an equal copy, outside the object")
	}
	obj.Release()

	// The same bytes read as a 1-D tensor, or as the wrong element type.
	tn, err := trove.GetValue[zerocopy.Tensor](ctx, st, ref)
	if err != nil || tn.DType() != zerocopy.Float32 || !slices.Equal(tn.Shape(), []int{1000}) {
		t.Fatalf("as a tensor: %v, %v", tn, err)
	}
	if _, err := trove.GetValue[[]int32](ctx, st, ref); !errors.Is(err, trove.ErrBadValue) {
		t.Fatalf("float32 values read as []int32: %v, want ErrBadValue", err)
	}
}

type layer struct {
	Name    string
	Weights zerocopy.Tensor
	Bias    zerocopy.Tensor
	Same    zerocopy.Tensor // shares Weights' memory: stored once
	Unset   zerocopy.Tensor
	Inline  []float32 // nested numeric slices are in the body
}

func TestTensorInStruct(t *testing.T) {
	st := newTestStore(t)
	ctx := t.Context()
	w := make([]float64, 6*100)
	for i := range w {
		w[i] = float64(i)
	}
	weights, err := zerocopy.NewTensor([]int{6, 100}, w)
	if err != nil {
		t.Fatal(err)
	}
	bias, _ := zerocopy.NewTensor([]int{3}, []int16{1, -2, 3})
	in := layer{Name: "dense", Weights: weights, Bias: bias, Same: weights, Inline: []float32{1, 2}}
	ref, err := trove.PutValue(ctx, st, in)
	if err != nil {
		t.Fatal(err)
	}
	defer ref.Drop()

	check := func(name string, got layer) {
		t.Helper()
		for _, tc := range []struct {
			got, want zerocopy.Tensor
		}{{got.Weights, weights}, {got.Bias, bias}, {got.Same, weights}} {
			if tc.got.DType() != tc.want.DType() || !slices.Equal(tc.got.Shape(), tc.want.Shape()) || !bytes.Equal(tc.got.Data(), tc.want.Data()) {
				t.Fatalf("%s: tensor %v differs from %v", name, tc.got, tc.want)
			}
		}
		if got.Name != "dense" || !slices.Equal(got.Inline, in.Inline) || got.Unset.DType().Valid() {
			t.Fatalf("%s: %+v", name, got)
		}
	}

	view, obj, err := trove.ViewValue[layer](ctx, st, ref)
	if err != nil {
		t.Fatal(err)
	}
	check("ViewValue", view)
	vals, err := zerocopy.TensorValues[float64](view.Weights)
	if err != nil {
		t.Fatal(err)
	}
	if !inside(unsafe.Pointer(&vals[0]), obj.Bytes()) {
		t.Fatal("ViewValue copied the tensor's data")
	}
	if &view.Same.Data()[0] != &view.Weights.Data()[0] {
		t.Fatal("tensors over one buffer must share it in the view")
	}
	if obj.Size() > len(w)*8+6+400 {
		t.Fatalf("object of %d bytes: the shared tensor was stored twice", obj.Size())
	}
	vb := obj.Bytes()
	obj.Release()

	got, err := trove.GetValue[layer](ctx, st, ref)
	if err != nil {
		t.Fatal(err)
	}
	check("GetValue", got)
	if inside(unsafe.Pointer(&got.Weights.Data()[0]), vb) {
		t.Fatal("GetValue's tensor aliases the object")
	}

	// A tensor read back can be put again; one still unbound cannot.
	ref2, err := trove.PutValue(ctx, st, got)
	if err != nil {
		t.Fatal(err)
	}
	ref2.Drop()
	var unbound zerocopy.Tensor
	enc, _ := cbor.Marshal(weights)
	if err := cbor.Unmarshal(enc, &unbound); err != nil {
		t.Fatal(err)
	}
	if _, err := trove.PutValue(ctx, st, unbound); err == nil || !strings.Contains(err.Error(), "BindBuffer") {
		t.Fatalf("putting an unbound tensor: %v", err)
	}
}

type holder struct {
	Note  string
	Inner trove.Ref
	Ptr   *trove.Ref
	List  []trove.Ref
	Pair  [2]trove.Ref
	ByKey map[string]trove.Ref
	Any   any
	None  trove.Ref // the zero Ref stays zero
}

func TestNestedRefs(t *testing.T) {
	st := newTestStore(t)
	ctx := t.Context()
	inner, err := st.Put(ctx, []byte("inner bytes"))
	if err != nil {
		t.Fatal(err)
	}
	outer, err := trove.PutValue(ctx, st, holder{Note: "outer", Inner: inner})
	if err != nil {
		t.Fatal(err)
	}
	innerID := inner.ID()
	inner.Drop()
	if objs, _ := st.counts(); objs != 2 {
		t.Fatalf("after dropping the inner handle the store holds %d objects; the outer value must keep the inner one", objs)
	}

	got, err := trove.GetValue[holder](ctx, st, outer)
	if err != nil {
		t.Fatal(err)
	}
	if got.Note != "outer" || got.Inner.ID() != innerID || !got.Inner.Bound() || !got.None.IsZero() {
		t.Fatalf("got %+v", got)
	}
	obj, err := st.Get(ctx, got.Inner)
	if err != nil {
		t.Fatalf("the inner object through the outer value's ref: %v", err)
	}
	if string(obj.Bytes()) != "inner bytes" {
		t.Fatalf("inner bytes %q", obj.Bytes())
	}
	obj.Release()

	outer.Drop()
	if objs, _ := st.counts(); objs != 1 {
		t.Fatalf("after dropping the outer value, %d objects; the decoded inner handle still holds one", objs)
	}
	got.Inner.Drop()
}

func TestRefsEverywhere(t *testing.T) {
	st := newTestStore(t)
	ctx := t.Context()
	refs := make([]trove.Ref, 6)
	for i := range refs {
		r, err := st.Put(ctx, []byte{byte(i)})
		if err != nil {
			t.Fatal(err)
		}
		refs[i] = r
	}
	in := holder{
		Inner: refs[0],
		Ptr:   &refs[1],
		List:  []trove.Ref{refs[2], refs[2]},
		Pair:  [2]trove.Ref{refs[3], {}},
		ByKey: map[string]trove.Ref{"a": refs[4], "b": refs[0]},
		Any:   refs[5],
	}
	outer, err := trove.PutValue(ctx, st, in)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range refs {
		r.Drop()
	}
	if objs, _ := st.counts(); objs != 7 {
		t.Fatalf("%d objects; the outer value must hold all 6 inner ones", objs)
	}

	got, err := trove.GetValue[holder](ctx, st, outer)
	if err != nil {
		t.Fatal(err)
	}
	anyRef, ok := got.Any.(trove.Ref)
	if !ok {
		t.Fatalf("Any decoded as %T, want trove.Ref", got.Any)
	}
	all := []trove.Ref{got.Inner, *got.Ptr, got.List[0], got.List[1], got.Pair[0], got.ByKey["a"], got.ByKey["b"], anyRef}
	wantIDs := []trove.ObjectID{in.Inner.ID(), in.Ptr.ID(), in.List[0].ID(), in.List[1].ID(), in.Pair[0].ID(), in.ByKey["a"].ID(), in.ByKey["b"].ID(), in.Any.(trove.Ref).ID()}
	for i, r := range all {
		if !r.Bound() || r.ID() != wantIDs[i] {
			t.Fatalf("ref %d: %v bound %v, want %s", i, r, r.Bound(), wantIDs[i])
		}
		obj, err := st.Get(ctx, r)
		if err != nil {
			t.Fatalf("ref %d: %v", i, err)
		}
		obj.Release()
	}
	if !got.Pair[1].IsZero() {
		t.Fatal("a zero Ref must decode as the zero Ref")
	}
	outer.Drop()
	dropRefs(&got) // one handle per object: copies share it
}

func TestMapOfRefs(t *testing.T) {
	st := newTestStore(t)
	ctx := t.Context()
	m := map[string]trove.Ref{}
	for _, k := range []string{"x", "y", "z"} {
		r, err := st.Put(ctx, []byte(k))
		if err != nil {
			t.Fatal(err)
		}
		m[k] = r
	}
	outer, err := trove.PutValue(ctx, st, m)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range m {
		r.Drop()
	}
	view, obj, err := trove.ViewValue[map[string]trove.Ref](ctx, st, outer)
	if err != nil {
		t.Fatal(err)
	}
	obj.Release()
	outer.Drop()
	for k, r := range view {
		o, err := st.Get(ctx, r)
		if err != nil {
			t.Fatal(err)
		}
		if string(o.Bytes()) != k {
			t.Fatalf("%s: %q", k, o.Bytes())
		}
		o.Release()
		r.Drop()
	}
}

func TestAnyHoldsTensor(t *testing.T) {
	st := newTestStore(t)
	ctx := t.Context()
	tn, _ := zerocopy.NewTensor([]int{2, 2}, []uint32{1, 2, 3, 4})
	ref, err := trove.PutValue(ctx, st, map[string]any{"t": tn, "n": 1})
	if err != nil {
		t.Fatal(err)
	}
	defer ref.Drop()
	got, err := trove.GetValue[map[string]any](ctx, st, ref)
	if err != nil {
		t.Fatal(err)
	}
	gt, ok := got["t"].(zerocopy.Tensor)
	if !ok {
		t.Fatalf("got %T", got["t"])
	}
	if v, err := zerocopy.TensorValues[uint32](gt); err != nil || !slices.Equal(v, []uint32{1, 2, 3, 4}) {
		t.Fatalf("%v %v", v, err)
	}
}

func TestBadValues(t *testing.T) {
	st := newTestStore(t)
	ctx := t.Context()
	put := func(b []byte) trove.Ref {
		r, err := st.Put(ctx, b)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(r.Drop)
		return r
	}
	frame := func(body []byte, bufs ...zerocopy.Buffer) []byte {
		lens := make([]int, len(bufs))
		for i, b := range bufs {
			lens[i] = len(b.Data)
		}
		b := make([]byte, zerocopy.FrameSize(len(body), lens))
		if err := zerocopy.WriteFrame(b, body, bufs); err != nil {
			t.Fatal(err)
		}
		return b
	}
	strVal, err := trove.PutValue(ctx, st, "a string")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(strVal.Drop)
	tn, _ := zerocopy.NewTensor([]int{4}, []float32{1, 2, 3, 4})
	tbody, _ := cbor.Marshal(tn)
	unknown := trove.NewObjectID(trove.NewNodeID(), 9)
	refBody, _ := cbor.Marshal(map[string][]byte{"Inner": nil})
	refBody = bytes.Replace(refBody, []byte{0xf6}, append([]byte{0xda, 0x74, 0x72, 0x6f, 0x52, 0x50}, unknown[:]...), 1)

	tests := []struct {
		name    string
		ref     trove.Ref
		get     func(trove.Store, trove.Ref) error
		wantIs  error
		wantMsg string
	}{
		{"raw bytes", put([]byte("hello, these bytes are not a frame")), getAs[int], trove.ErrBadValue, "magic"},
		{"empty object", put(nil), getAs[string], trove.ErrBadValue, "shorter than"},
		{"wrong type", strVal, getAs[int], trove.ErrBadValue, "cannot unmarshal"},
		{"wrong type view", strVal, viewAs[[]float32], trove.ErrBadValue, "cannot unmarshal"},
		{"body not cbor", put(frame([]byte{0xff, 0x00})), getAs[any], trove.ErrBadValue, "cbor"},
		{"trailing body bytes", put(frame([]byte{0x01, 0x02})), getAs[int], trove.ErrBadValue, "extraneous"},
		{"missing buffer", put(frame(tbody)), getAs[zerocopy.Tensor], trove.ErrBadValue, "which the value does not have"},
		{"missing buffer slice", put(frame(tbody)), viewAs[[]float32], trove.ErrBadValue, "which the value does not have"},
		{"short buffer", put(frame(tbody, zerocopy.Buffer{Key: tn.BufferKey(), Data: make([]byte, 15)})), getAs[layer], trove.ErrBadValue, ""},
		{"tensor as int", put(frame(tbody, zerocopy.Buffer{Key: tn.BufferKey(), Data: make([]byte, 16)})), getAs[int], trove.ErrBadValue, ""},
		{"tensor as wrong slice", put(frame(tbody, zerocopy.Buffer{Key: tn.BufferKey(), Data: make([]byte, 16)})), getAs[[]uint64], trove.ErrBadValue, "not a slice of uint64"},
		{"bad ref", put(frame([]byte{0xa1, 0x65, 'I', 'n', 'n', 'e', 'r', 0xda, 0x74, 0x72, 0x6f, 0x52, 0x41, 0x00})), getAs[holder], trove.ErrBadValue, "decode ref"},
		{"unknown nested ref", put(frame(refBody)), getAs[holder], trove.ErrUnknownObject, "bind nested"},
		{"unknown nested ref view", put(frame(refBody)), viewAs[holder], trove.ErrUnknownObject, "bind nested"},
		{"zero ref", trove.Ref{}, getAs[int], trove.ErrInvalidRef, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.get(st, tt.ref)
			if !errors.Is(err, tt.wantIs) || !strings.Contains(err.Error(), tt.wantMsg) {
				t.Fatalf("err %v, want one matching %v and containing %q", err, tt.wantIs, tt.wantMsg)
			}
			if !tt.ref.IsZero() && !strings.Contains(err.Error(), tt.ref.ID().String()) {
				t.Fatalf("the error does not name the ref: %v", err)
			}
			if _, pins := st.counts(); pins != 0 {
				t.Fatalf("a failed read left %d pins", pins)
			}
		})
	}
}

func getAs[T any](st trove.Store, r trove.Ref) error {
	v, err := trove.GetValue[T](context.Background(), st, r)
	if err == nil {
		dropRefs(&v)
		return fmt.Errorf("decoded %v", v)
	}
	return err
}

func viewAs[T any](st trove.Store, r trove.Ref) error {
	v, obj, err := trove.ViewValue[T](context.Background(), st, r)
	if err == nil {
		dropRefs(&v)
		obj.Release()
		return fmt.Errorf("decoded %v", v)
	}
	return err
}

func TestPutValueErrors(t *testing.T) {
	st := newTestStore(t)
	ctx := t.Context()
	dropped, _ := st.Put(ctx, []byte("x"))
	dropped.Drop()
	if _, err := trove.PutValue(ctx, st, holder{Inner: dropped}); !errors.Is(err, trove.ErrInvalidRef) {
		t.Fatalf("a value holding a dropped ref: %v, want ErrInvalidRef", err)
	}
	var deep any = 1
	for range 300 {
		deep = []any{deep}
	}
	if _, err := trove.PutValue(ctx, st, deep); err == nil || !strings.Contains(err.Error(), "nests deeper") {
		t.Fatalf("a value nesting 300 levels: %v", err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := trove.PutValue(cctx, st, 1); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled put: %v", err)
	}
}

func TestRefCBOR(t *testing.T) {
	st := newTestStore(t)
	r, _ := st.Put(t.Context(), []byte("x"))
	defer r.Drop()
	b, err := cbor.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) != 22 || b[0] != 0xda {
		t.Fatalf("encoding %x", b)
	}
	var got trove.Ref
	if err := cbor.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	if got.ID() != r.ID() || got.Bound() {
		t.Fatalf("decoded %v bound %v; want an unbound ref to %s", got, got.Bound(), r.ID())
	}
	if _, err := st.Get(t.Context(), got); !errors.Is(err, trove.ErrInvalidRef) {
		t.Fatalf("using an unbound ref: %v", err)
	}
	if b, _ := cbor.Marshal(trove.Ref{}); string(b) != "\xf6" {
		t.Fatalf("zero ref encodes as %x", b)
	}
	for _, bad := range [][]byte{{0x01}, b[:21], append(bytes.Clone(b), 0), append(bytes.Clone(b[:6]), make([]byte, 16)...)} {
		if err := got.UnmarshalCBOR(bad); err == nil {
			t.Fatalf("decoded %x", bad)
		}
	}
}

func TestInterfaceNesting(t *testing.T) {
	st := newTestStore(t)
	ctx := t.Context()
	inner, _ := st.Put(ctx, []byte("in"))
	tn, _ := zerocopy.NewTensor([]int{2}, []int8{-1, 1})
	outer, err := trove.PutValue[any](ctx, st, map[string]any{"list": []any{inner, tn, &holder{Inner: inner}}, "n": 3})
	if err != nil {
		t.Fatal(err)
	}
	inner.Drop()
	got, obj, err := trove.ViewValue[any](ctx, st, outer)
	if err != nil {
		t.Fatal(err)
	}
	defer obj.Release()
	outer.Drop()
	list := got.(map[any]any)["list"].([]any)
	r, ok := list[0].(trove.Ref)
	if !ok || !r.Bound() {
		t.Fatalf("list[0] = %#v, want a bound Ref", list[0])
	}
	gt := list[1].(zerocopy.Tensor)
	if v, err := zerocopy.TensorValues[int8](gt); err != nil || !slices.Equal(v, []int8{-1, 1}) || !inside(unsafe.Pointer(&v[0]), obj.Bytes()) {
		t.Fatalf("list[1]: %v %v", v, err)
	}
	// A struct decoded into an interface is a map; its ref is bound all the same.
	h := list[2].(map[any]any)["Inner"].(trove.Ref)
	if h.ID() != r.ID() || !h.Bound() {
		t.Fatalf("nested map ref %v", h)
	}
	if o, err := st.Get(ctx, h); err != nil {
		t.Fatal(err)
	} else {
		o.Release()
	}
	r.Drop() // h is the same handle: one per object
	if !h.Dropped() {
		t.Fatal("refs to one object in one value must share a handle")
	}
}

package trove_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"sync"
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
	known, _ := st.Put(ctx, []byte("known"))
	t.Cleanup(known.Drop)
	knownID := known.ID()
	refList := func(n byte) []byte { return []byte{0xda, 't', 'r', 'o', 'L', n} }
	// A struct whose List is in the ref table: TagRefFields over what follows.
	refFields := func(rest ...byte) []byte { return append([]byte{0xda, 't', 'r', 'o', 'F'}, rest...) }
	listTriple := func(start, n byte) []byte { // [["List", start, n], {"List": null}]
		return []byte{0x82, 0x83, 0x64, 'L', 'i', 's', 't', start, n, 0xa1, 0x64, 'L', 'i', 's', 't', 0xf6}
	}
	table := func(ids ...trove.ObjectID) zerocopy.Buffer {
		b := []byte{}
		for _, id := range ids {
			b = append(b, id[:]...)
		}
		return zerocopy.Buffer{Key: zerocopy.ReservedKey, Data: b}
	}

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
		{"unknown ref in table", put(frame(refBody, table(unknown))), getAs[holder], trove.ErrUnknownObject, "bind nested"},
		{"zero ID in table", put(frame(refBody, table(unknown, trove.ObjectID{}))), getAs[holder], trove.ErrBadValue, "zero object ID"},
		{"table of partial IDs", put(frame(refBody, zerocopy.Buffer{Key: 0, Data: make([]byte, 17)})), getAs[holder], trove.ErrBadValue, "whole number"},
		{"ref list too long", put(frame(refList(2), table(knownID))), getAs[[]trove.Ref], trove.ErrBadValue, "2 elements but its ref table holds 1"},
		{"ref list too short", put(frame(refList(0), table(knownID))), getAs[[]trove.Ref], trove.ErrBadValue, "0 elements but its ref table holds 1"},
		{"ref list without table", put(frame(refList(1))), viewAs[[]trove.Ref], trove.ErrBadValue, "1 elements but its ref table holds 0"},
		{"ref list count not an int", put(frame(append(refList(0)[:5], 0x41, 0), table())), getAs[[]trove.Ref], trove.ErrBadValue, "tag"},
		{"ref list trailing bytes", put(frame(append(refList(1), 0), table(knownID))), getAs[[]trove.Ref], trove.ErrBadValue, "tag"},
		{"ref list truncated count", put(frame(append(refList(0)[:5], 0x19, 1), table(knownID))), getAs[[]trove.Ref], trove.ErrBadValue, "tag"},
		{"ref list unknown object", put(frame(refList(2), table(knownID, unknown))), getAs[[]trove.Ref], trove.ErrUnknownObject, "bind nested"},
		{"ref list unknown object as any", put(frame(refList(2), table(knownID, unknown))), getAs[any], trove.ErrUnknownObject, "bind nested"},
		{"ref list as int", put(frame(refList(1), table(knownID))), getAs[int], trove.ErrBadValue, "cannot unmarshal"},
		{"ref fields not two items", put(frame(refFields(0x81), table(knownID))), getAs[holder], trove.ErrBadValue, "no array of two"},
		{"ref fields no triples", put(frame(refFields(0x82, 0x80, 0xa0), table(knownID))), getAs[holder], trove.ErrBadValue, "no array of (name, start, count)"},
		{"ref fields truncated name", put(frame(refFields(0x82, 0x83, 0x64, 'L', 'i'), table(knownID))), getAs[holder], trove.ErrBadValue, "no name for field 0"},
		{"ref fields run past the table", put(frame(refFields(listTriple(0, 2)...), table(knownID))), getAs[holder], trove.ErrBadValue, `field "List"'s refs outside its ref table of 1`},
		{"ref fields empty run", put(frame(refFields(listTriple(1, 0)...), table(knownID))), getAs[holder], trove.ErrBadValue, "outside"},
		{"ref fields field given twice", put(frame(refFields(0x82, 0x86, 0x64, 'L', 'i', 's', 't', 0, 1, 0x64, 'L', 'i', 's', 't', 1, 1, 0xa1, 0x64, 'L', 'i', 's', 't', 0xf6), table(knownID, knownID))), getAs[holder], trove.ErrBadValue, `field "List" is given twice`},
		{"ref fields field in the body too", put(frame(refFields(append(listTriple(0, 1)[:9], append([]byte{0xa1, 0x64, 'L', 'i', 's', 't', 0x81, 0xda, 0x74, 0x72, 0x6f, 0x52, 0x50}, knownID[:]...)...)...), table(knownID))), viewAs[holder], trove.ErrBadValue, "given twice"},
		{"ref fields runs overlap", put(frame(refFields(0x82, 0x86, 0x61, 'A', 0, 1, 0x61, 'B', 0, 1, 0xa0), table(knownID))), getAs[any], trove.ErrBadValue, `field "B"'s refs overlapping`},
		{"ref fields key twice as any", put(frame(refFields(0x82, 0x83, 0x61, 'A', 0, 1, 0xa2, 0x61, 'A', 0xf6, 0x61, 'A', 0xf6), table(knownID))), getAs[any], trove.ErrBadValue, `field "A" twice`},
		{"ref fields unknown object", put(frame(refFields(listTriple(0, 1)...), table(unknown))), getAs[holder], trove.ErrUnknownObject, "bind nested"},
		{"ref fields as any, body not a map", put(frame(refFields(append(listTriple(0, 1)[:9], 0x05)...), table(knownID))), getAs[any], trove.ErrBadValue, "not a map"},
		{"ref fields trailing bytes after the map", put(frame(refFields(append(listTriple(0, 1), 0x01)...), table(knownID))), getAs[any], trove.ErrBadValue, "1 bytes after its map"},
		{"ref fields as int", put(frame(refFields(listTriple(0, 1)...), table(knownID))), getAs[int], trove.ErrBadValue, "cannot unmarshal"},
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

// putInner puts n small objects and returns their refs.
func putInner(t testing.TB, st trove.Store, n int) []trove.Ref {
	t.Helper()
	refs := make([]trove.Ref, n)
	for i := range refs {
		r, err := st.Put(context.Background(), []byte{byte(i), 'x'})
		if err != nil {
			t.Fatal(err)
		}
		refs[i] = r
	}
	return refs
}

func dropAll(refs []trove.Ref) {
	for _, r := range refs {
		r.Drop()
	}
}

// collectUntil runs the garbage collector until cond holds, at most 200 times: GC
// cleanups run asynchronously after a collection.
func collectUntil(cond func() bool) bool {
	for range 200 {
		if cond() {
			return true
		}
		runtime.GC()
		runtime.Gosched()
	}
	return cond()
}

// borrowOnly hides the store's BorrowAll: values bind their refs one Borrow each.
type borrowOnly struct{ trove.Store }

// recordingStore records the contained refs of each PutFunc.
type recordingStore struct {
	trove.Store
	contains [][]trove.ObjectID
}

func (s *recordingStore) PutFunc(ctx context.Context, size int, contains []trove.Ref, fill func([]byte) error) (trove.Ref, error) {
	ids := make([]trove.ObjectID, len(contains))
	for i, r := range contains {
		ids[i] = r.ID()
	}
	s.contains = append(s.contains, ids)
	return s.Store.PutFunc(ctx, size, contains, fill)
}

func TestRefList(t *testing.T) {
	for _, tc := range []struct {
		name string
		wrap func(*testStore) trove.Store
	}{
		{"BorrowAll", func(s *testStore) trove.Store { return s }},
		{"Borrow", func(s *testStore) trove.Store { return borrowOnly{s} }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ts := newTestStore(t)
			st := tc.wrap(ts)
			ctx := t.Context()
			inner := putInner(t, st, 20)
			in := slices.Insert(slices.Clone(inner), 3, trove.Ref{}) // a zero Ref stays zero
			outer, err := trove.PutValue(ctx, st, in)
			if err != nil {
				t.Fatal(err)
			}
			defer outer.Drop()
			dropAll(inner)
			if objs, _ := ts.counts(); objs != len(inner)+1 {
				t.Fatalf("%d objects; the list must hold its %d inner ones", objs, len(inner))
			}
			check := func(how string, got []trove.Ref) {
				t.Helper()
				if len(got) != len(in) {
					t.Fatalf("%s: %d refs, want %d", how, len(got), len(in))
				}
				for i, r := range got {
					if r.ID() != in[i].ID() || r.Bound() != !in[i].IsZero() {
						t.Fatalf("%s: ref %d is %v (bound %v), want %v", how, i, r, r.Bound(), in[i])
					}
					if r.IsZero() {
						continue
					}
					obj, err := st.Get(ctx, r)
					if err != nil {
						t.Fatalf("%s: ref %d: %v", how, i, err)
					}
					if obj.Bytes()[0] != byte(slices.Index(inner, in[i])) {
						t.Fatalf("%s: ref %d reads %x", how, i, obj.Bytes())
					}
					obj.Release()
				}
			}

			got, err := trove.GetValue[[]trove.Ref](ctx, st, outer)
			if err != nil {
				t.Fatal(err)
			}
			check("GetValue", got)
			got[0].Drop() // members of one decoded list drop one by one
			if got[1].Dropped() {
				t.Fatal("dropping one element dropped another")
			}
			dropAll(got)

			view, obj, err := trove.ViewValue[[]trove.Ref](ctx, st, outer)
			if err != nil {
				t.Fatal(err)
			}
			obj.Release()
			check("ViewValue", view)
			dropAll(view)

			// Other types read the list as an array of refs.
			type refs []trove.Ref
			named, err := trove.GetValue[refs](ctx, st, outer)
			if err != nil {
				t.Fatal(err)
			}
			check("GetValue[named]", named)
			dropAll(named)
			dyn, err := trove.GetValue[any](ctx, st, outer)
			if err != nil {
				t.Fatal(err)
			}
			elems, ok := dyn.([]any)
			if !ok || len(elems) != len(in) || elems[3] != nil {
				t.Fatalf("GetValue[any] = %#v", dyn)
			}
			for i, e := range elems {
				if r, ok := e.(trove.Ref); ok && r.ID() == in[i].ID() && r.Bound() {
					r.Drop()
				} else if i != 3 {
					t.Fatalf("GetValue[any][%d] = %#v, want a bound %v", i, e, in[i])
				}
			}
			if _, err := trove.GetValue[[]int](ctx, st, outer); !errors.Is(err, trove.ErrBadValue) {
				t.Fatalf("a ref list as []int: %v", err)
			}
			if objs, pins := ts.counts(); objs != len(inner)+1 || pins != 0 {
				t.Fatalf("%d objects, %d pins after dropping every decoded ref", objs, pins)
			}
		})
	}
}

func TestRefListFormat(t *testing.T) {
	st := newTestStore(t)
	ctx := t.Context()
	inner := putInner(t, st, 3)
	defer dropAll(inner)
	in := []trove.Ref{inner[0], {}, inner[2]}
	ref, err := trove.PutValue(ctx, st, in)
	if err != nil {
		t.Fatal(err)
	}
	defer ref.Drop()
	obj, err := st.Get(ctx, ref)
	if err != nil {
		t.Fatal(err)
	}
	defer obj.Release()
	f, err := zerocopy.ParseFrame(obj.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if want := []byte{0xda, 't', 'r', 'o', 'L', 0x03}; !bytes.Equal(f.Body(), want) {
		t.Fatalf("body %x, want TagRefList over the count, %x", f.Body(), want)
	}
	table, ok := f.Lookup(zerocopy.ReservedKey)
	var want []byte
	for _, r := range in {
		id := r.ID()
		want = append(want, id[:]...)
	}
	if !ok || !bytes.Equal(table, want) || f.NumBuffers() != 1 {
		t.Fatalf("ref table %x (%d buffers), want every element's ID in order: %x", table, f.NumBuffers(), want)
	}
}

func TestRefListEdges(t *testing.T) {
	st := newTestStore(t)
	ctx := t.Context()
	get := func(in []trove.Ref) []trove.Ref {
		t.Helper()
		ref, err := trove.PutValue(ctx, st, in)
		if err != nil {
			t.Fatal(err)
		}
		defer ref.Drop()
		got, err := trove.GetValue[[]trove.Ref](ctx, st, ref)
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	if got := get(nil); got != nil {
		t.Fatalf("nil list decoded as %#v", got)
	}
	if got := get([]trove.Ref{}); got == nil || len(got) != 0 {
		t.Fatalf("empty list decoded as %#v", got)
	}
	if got := get([]trove.Ref{{}, {}}); len(got) != 2 || !got[0].IsZero() || !got[1].IsZero() {
		t.Fatalf("list of zero refs decoded as %v", got)
	}

	// A list holding an object twice decodes, like any value, to one handle for it.
	inner := putInner(t, st, 2)
	got := get([]trove.Ref{inner[0], inner[1], inner[0]})
	dropAll(inner)
	if got[0].ID() != got[2].ID() || !got[0].Bound() {
		t.Fatalf("decoded %v", got)
	}
	got[0].Drop()
	if !got[2].Dropped() {
		t.Fatal("the two refs to one object in one list must share a handle")
	}
	got[1].Drop()
}

func TestContainedRefsOncePerObject(t *testing.T) {
	ts := newTestStore(t)
	st := &recordingStore{Store: ts}
	ctx := t.Context()
	inner := putInner(t, st, 3)
	defer dropAll(inner)
	a, b, c := inner[0], inner[1], inner[2]
	for _, v := range []any{
		[]trove.Ref{a, b, c},
		[]trove.Ref{a, b, a, c, b},
		holder{Inner: a, List: []trove.Ref{b, a, c}, ByKey: map[string]trove.Ref{"x": c}},
	} {
		st.contains = st.contains[:0]
		var ref trove.Ref
		var err error
		if l, ok := v.([]trove.Ref); ok {
			ref, err = trove.PutValue(ctx, st, l)
		} else {
			ref, err = trove.PutValue(ctx, st, v)
		}
		if err != nil {
			t.Fatal(err)
		}
		ref.Drop()
		want := []trove.ObjectID{a.ID(), b.ID(), c.ID()}
		if len(st.contains) != 1 || !slices.Equal(st.contains[0], want) {
			t.Fatalf("%T: contained refs %v, want each object once, first seen first: %v", v, st.contains, want)
		}
	}
}

// refFieldsValue has []Ref fields of every kind: kept in the ref table (A, Bee),
// left to CBOR (Rep holds a repeat, Omit may be omitted, Again repeats A's
// object, Zero holds a zero Ref) and nil (None).
type refFieldsValue struct {
	N     int
	A     []trove.Ref
	B     []trove.Ref `cbor:"bee"`
	Rep   []trove.Ref
	Omit  []trove.Ref `cbor:",omitempty"`
	Again []trove.Ref
	Zero  []trove.Ref
	None  []trove.Ref
	R     trove.Ref
}

func TestRefFields(t *testing.T) {
	ts := newTestStore(t)
	ctx := t.Context()
	inner := putInner(t, ts, 11)
	in := refFieldsValue{
		N: 7, A: inner[0:4], B: inner[4:6], Rep: []trove.Ref{inner[6], inner[7], inner[6]},
		Omit: inner[8:9], Again: []trove.Ref{inner[9], inner[1]}, Zero: []trove.Ref{inner[10], {}}, R: inner[2],
	}
	kept := slices.Clone(in.A)
	outer, err := trove.PutValue(ctx, ts, in)
	if err != nil {
		t.Fatal(err)
	}
	defer outer.Drop()
	if !slices.Equal(in.A, kept) || len(in.B) != 2 {
		t.Fatalf("PutValue changed the caller's fields: A %v, B %v", in.A, in.B)
	}

	// The format: A and Bee in the table, first and in field order; the rest in CBOR.
	obj, err := ts.Get(ctx, outer)
	if err != nil {
		t.Fatal(err)
	}
	f, err := zerocopy.ParseFrame(obj.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	wantHead := []byte{0xda, 't', 'r', 'o', 'F', 0x82, 0x86, 0x61, 'A', 0, 4, 0x63, 'b', 'e', 'e', 4, 2}
	if !bytes.HasPrefix(f.Body(), wantHead) {
		t.Fatalf("body starts %x, want TagRefFields over A's and bee's runs: %x", f.Body()[:min(len(f.Body()), len(wantHead))], wantHead)
	}
	tableBytes, _ := f.Lookup(zerocopy.ReservedKey)
	for i, r := range inner[:6] {
		if id := r.ID(); !bytes.Equal(tableBytes[i*trove.ObjectIDLen:][:trove.ObjectIDLen], id[:]) {
			t.Fatalf("table entry %d is not A's and B's ref %d", i, i)
		}
	}
	obj.Release()
	dropAll(inner)
	if objs, _ := ts.counts(); objs != len(inner)+1 {
		t.Fatalf("%d objects; the value must hold its %d inner ones", objs, len(inner))
	}

	check := func(how string, got refFieldsValue) {
		t.Helper()
		want := map[string][2][]trove.Ref{
			"A": {got.A, in.A}, "B": {got.B, in.B}, "Rep": {got.Rep, in.Rep}, "Omit": {got.Omit, in.Omit},
			"Again": {got.Again, in.Again}, "Zero": {got.Zero, in.Zero}, "R": {{got.R}, {in.R}},
		}
		for name, gw := range want {
			if len(gw[0]) != len(gw[1]) {
				t.Fatalf("%s: %s has %d refs, want %d", how, name, len(gw[0]), len(gw[1]))
			}
			for i, r := range gw[0] {
				if r.ID() != gw[1][i].ID() || r.Bound() == r.IsZero() {
					t.Fatalf("%s: %s[%d] is %v (bound %v), want %v", how, name, i, r, r.Bound(), gw[1][i])
				}
			}
		}
		if got.N != 7 || got.None != nil {
			t.Fatalf("%s: N %d, None %v", how, got.N, got.None)
		}
		if cap(got.A) != len(got.A) {
			t.Fatalf("%s: A has room to grow into B's handles (len %d, cap %d)", how, len(got.A), cap(got.A))
		}
		if o, err := ts.Get(ctx, got.B[1]); err != nil || o.Bytes()[0] != 5 {
			t.Fatalf("%s: B[1] reads %v, %v", how, o, err)
		} else {
			o.Release()
		}
	}
	got, err := trove.GetValue[refFieldsValue](ctx, ts, outer)
	if err != nil {
		t.Fatal(err)
	}
	check("GetValue", got)
	got.R.Drop() // R and A[2] name one object: one handle
	got.Again[1].Drop()
	if !got.A[2].Dropped() || !got.A[1].Dropped() || got.A[0].Dropped() {
		t.Fatal("refs to one object in one value must share a handle, and only they")
	}
	got.A = append(got.A, trove.Ref{})
	if got.B[0].IsZero() {
		t.Fatal("appending to A overwrote B")
	}
	dropRefs(&got)

	view, vobj, err := trove.ViewValue[refFieldsValue](ctx, ts, outer)
	if err != nil {
		t.Fatal(err)
	}
	vobj.Release()
	check("ViewValue", view)
	dropRefs(&view)

	// Another struct type: only the fields it has, and the cbor package's
	// case-insensitive name matching (so the refs go back into the body first).
	other, err := trove.GetValue[struct {
		AA []trove.Ref `cbor:"a"`
		B  []trove.Ref `cbor:"bee"`
	}](ctx, ts, outer)
	if err != nil {
		t.Fatal(err)
	}
	if len(other.AA) != 4 || other.AA[3].ID() != in.A[3].ID() || !other.AA[3].Bound() || len(other.B) != 2 {
		t.Fatalf("read as another struct: %v", other)
	}
	dropRefs(&other)

	dyn, err := trove.GetValue[map[string]any](ctx, ts, outer)
	if err != nil {
		t.Fatal(err)
	}
	if a, ok := dyn["A"].([]any); !ok || len(a) != 4 || a[0].(trove.Ref).ID() != in.A[0].ID() || !a[0].(trove.Ref).Bound() {
		t.Fatalf("read as a map: A is %#v", dyn["A"])
	}
	if b, ok := dyn["bee"].([]any); !ok || len(b) != 2 {
		t.Fatalf("read as a map: bee is %#v", dyn["bee"])
	}
	dropRefs(&dyn)
	if objs, pins := ts.counts(); objs != len(inner)+1 || pins != 0 {
		t.Fatalf("%d objects, %d pins after dropping every decoded ref", objs, pins)
	}

	// Structs the cbor package does not encode as a map of their fields' names keep
	// their []Ref fields in CBOR, and round-trip as before.
	type asArray struct {
		_ struct{} `cbor:",toarray"`
		A []trove.Ref
	}
	type intKeys struct {
		A []trove.Ref `cbor:"1,keyasint"`
	}
	type embedded struct {
		refFieldsValue
		B2 []trove.Ref
	}
	more := putInner(t, ts, 3)
	defer dropAll(more)
	for _, v := range []any{asArray{A: more}, intKeys{A: more}, embedded{B2: more}} {
		var ref trove.Ref
		var err error
		var list func(any) []trove.Ref
		switch v := v.(type) {
		case asArray:
			ref, err = trove.PutValue(ctx, ts, v)
			list = func(x any) []trove.Ref { return x.(asArray).A }
		case intKeys:
			ref, err = trove.PutValue(ctx, ts, v)
			list = func(x any) []trove.Ref { return x.(intKeys).A }
		case embedded:
			ref, err = trove.PutValue(ctx, ts, v)
			list = func(x any) []trove.Ref { return x.(embedded).B2 }
		}
		if err != nil {
			t.Fatal(err)
		}
		o, err := ts.Get(ctx, ref)
		if err != nil {
			t.Fatal(err)
		}
		f, err := zerocopy.ParseFrame(o.Bytes())
		if err != nil {
			t.Fatal(err)
		}
		if bytes.HasPrefix(f.Body(), []byte{0xda, 't', 'r', 'o', 'F'}) {
			t.Errorf("%T: encoded with TagRefFields", v)
		}
		o.Release()
		var got any
		switch v.(type) {
		case asArray:
			got, err = trove.GetValue[asArray](ctx, ts, ref)
		case intKeys:
			got, err = trove.GetValue[intKeys](ctx, ts, ref)
		case embedded:
			got, err = trove.GetValue[embedded](ctx, ts, ref)
		}
		ref.Drop()
		if err != nil {
			t.Fatalf("%T: %v", v, err)
		}
		l := list(got)
		if len(l) != 3 || l[2].ID() != more[2].ID() || !l[2].Bound() {
			t.Fatalf("%T: read back %v", v, l)
		}
		dropAll(l)
	}
}

// Refs decoded from one value are borrowed as one batch; the GC releases them once
// all are unreachable, and decoding drops at once the handles the type has no place for.
func TestDecodedRefsBatch(t *testing.T) {
	st := newTestStore(t)
	ctx := t.Context()

	// A type that holds only Inner: the table's other handles are dropped at once.
	inner := putInner(t, st, 12)
	outer, err := trove.PutValue(ctx, st, holder{Inner: inner[0], List: inner[1:]})
	if err != nil {
		t.Fatal(err)
	}
	dropAll(inner)
	only, err := trove.GetValue[struct{ Inner trove.Ref }](ctx, st, outer)
	if err != nil {
		t.Fatal(err)
	}
	outer.Drop()
	if objs, _ := st.counts(); objs != 1 {
		t.Fatalf("%d objects after dropping the value; only the decoded Inner should hold one", objs)
	}
	only.Inner.Drop()

	// Nothing kept: the GC gives every count back, once.
	inner = putInner(t, st, 12)
	list, err := trove.PutValue(ctx, st, inner)
	if err != nil {
		t.Fatal(err)
	}
	dropAll(inner)
	func() {
		for range 2 {
			got, err := trove.GetValue[[]trove.Ref](ctx, st, list)
			if err != nil || len(got) != len(inner) {
				t.Fatal(got, err)
			}
			got[5].Drop() // released now, and not again by the cleanup
		}
	}()
	list.Drop()
	if objs, _ := st.counts(); objs != len(inner)-1 {
		t.Fatalf("%d objects: the decoded refs must hold all but the dropped one", objs)
	}
	if !collectUntil(func() bool { objs, _ := st.counts(); return objs == 0 }) {
		objs, _ := st.counts()
		t.Fatalf("%d objects left: unreachable decoded refs were not released", objs)
	}
}

// The ref table is under buffer key 0, which no tensor uses: values holding both
// keep each where it belongs.
func TestRefTableBesideTensors(t *testing.T) {
	st := newTestStore(t)
	ctx := t.Context()
	inner := putInner(t, st, 2)
	tn, _ := zerocopy.NewTensor([]int{3}, []float32{1, 2, 3})
	type mixed struct {
		T    zerocopy.Tensor
		Refs []trove.Ref
		Any  any
	}
	ref, err := trove.PutValue(ctx, st, mixed{T: tn, Refs: inner, Any: inner[1]})
	if err != nil {
		t.Fatal(err)
	}
	dropAll(inner)
	for _, s := range []trove.Store{st, borrowOnly{st}} {
		got, err := trove.GetValue[mixed](ctx, s, ref)
		if err != nil {
			t.Fatal(err)
		}
		if v, _ := zerocopy.TensorValues[float32](got.T); !slices.Equal(v, []float32{1, 2, 3}) {
			t.Fatalf("tensor %v", v)
		}
		if len(got.Refs) != 2 || got.Refs[0].ID() != inner[0].ID() || got.Any.(trove.Ref) != got.Refs[1] || !got.Refs[1].Bound() {
			t.Fatalf("refs %v, any %v", got.Refs, got.Any)
		}
		dropAll(got.Refs)
	}
	ref.Drop()
}

type countingOwner struct {
	mu       sync.Mutex
	released map[trove.ObjectID]int
}

func (o *countingOwner) ReleaseRef(id trove.ObjectID, _ any) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.released[id]++
}

func (o *countingOwner) count(id trove.ObjectID) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.released[id]
}

func TestNewRefBatch(t *testing.T) {
	own := &countingOwner{released: map[trove.ObjectID]int{}}
	node := trove.NewNodeID()
	ids := []trove.ObjectID{trove.NewObjectID(node, 1), trove.NewObjectID(node, 2), trove.NewObjectID(node, 1)}
	hints := []any{"a", "b", "c"}
	func() {
		refs := trove.NewRefBatch(ids, own, hints)
		for i, r := range refs {
			if h, ok := r.Hint(own); !ok || h != hints[i] || r.ID() != ids[i] || !r.Bound() || r.Dropped() {
				t.Fatalf("ref %d: %v hint %v %v", i, r, h, ok)
			}
			if _, ok := r.Hint(&countingOwner{}); ok {
				t.Fatal("Hint must reject another owner")
			}
		}
		refs[2].Drop()
		refs[2].Drop()
		if own.count(ids[2]) != 1 || !refs[2].Dropped() || refs[0].Dropped() {
			t.Fatalf("after Drop of a member: released %v", own.released)
		}
		if _, ok := refs[2].Hint(own); ok {
			t.Fatal("a dropped member still has a hint")
		}
	}()
	if !collectUntil(func() bool { return own.count(ids[1]) == 1 }) {
		t.Fatal("an unreachable batch was not released")
	}
	if own.count(ids[0]) != 2 { // one for refs[0] by the GC, one for refs[2] by Drop
		t.Fatalf("released %v; want each handle released exactly once", own.released)
	}
	if refs := trove.NewRefBatch(nil, own, nil); refs != nil {
		t.Fatalf("an empty batch: %v", refs)
	}
	defer func() {
		if recover() == nil {
			t.Fatal("NewRefBatch with fewer hints than IDs must panic")
		}
	}()
	trove.NewRefBatch(ids, own, hints[:1])
}

// BenchmarkGetValueRefs decodes a value holding 10,000 refs, each becoming a live
// handle, and drops them: a top-level []Ref (form=list) and the same refs in a
// struct field (form=struct); both are runs of the ref table. pair=struct+list
// decodes both in every iteration, alternating which goes first, and reports
// x_list, the list's time over the struct's in the same iterations (1 when the
// struct costs what the list does): a ratio that holds on a busy machine where the
// times alone do not. (Its ns/op is the two together.)
func BenchmarkGetValueRefs(b *testing.B) {
	const n = 10000
	type listHolder struct{ List []trove.Ref }
	st := newTestStore(b)
	ctx := b.Context()
	inner := make([]trove.Ref, n)
	for i := range inner {
		var err error
		if inner[i], err = st.Put(ctx, []byte{byte(i)}); err != nil {
			b.Fatal(err)
		}
	}
	list, err := trove.PutValue(ctx, st, inner)
	if err != nil {
		b.Fatal(err)
	}
	defer list.Drop()
	holder, err := trove.PutValue(ctx, st, listHolder{List: inner})
	if err != nil {
		b.Fatal(err)
	}
	defer holder.Drop()
	for _, r := range inner {
		r.Drop()
	}
	getList := func(b *testing.B) {
		refs, err := trove.GetValue[[]trove.Ref](ctx, st, list)
		if err != nil {
			b.Fatal(err)
		}
		for _, r := range refs {
			r.Drop()
		}
	}
	getStruct := func(b *testing.B) {
		v, err := trove.GetValue[listHolder](ctx, st, holder)
		if err != nil {
			b.Fatal(err)
		}
		for _, r := range v.List {
			r.Drop()
		}
	}
	for _, form := range []struct {
		name string
		get  func(*testing.B)
	}{{"form=list", getList}, {"form=struct", getStruct}} {
		b.Run(form.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				form.get(b)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/ref")
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "gets/s")
		})
	}
	b.Run("pair=struct+list", func(b *testing.B) {
		var listTime, structTime time.Duration
		timed := func(get func(*testing.B), total *time.Duration) {
			t0 := time.Now()
			get(b)
			*total += time.Since(t0)
		}
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			if i%2 == 0 {
				timed(getList, &listTime)
				timed(getStruct, &structTime)
			} else {
				timed(getStruct, &structTime)
				timed(getList, &listTime)
			}
		}
		b.ReportMetric(listTime.Seconds()/structTime.Seconds(), "x_list")
	})
}

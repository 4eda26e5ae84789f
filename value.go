package trove

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"sync"
	"unsafe"

	"github.com/fxamacker/cbor/v2"

	"github.com/trovedb/trove/zerocopy"
)

// Typed values, like Ray's serialization with out-of-band numpy buffers: a value is
// stored as a zerocopy frame whose CBOR body describes it, and whose 64-byte aligned
// buffers hold its tensors (and a top-level numeric slice), written once and read in
// place. Refs nested in the value are encoded as tagged object IDs and recorded as
// contained refs of the stored object, so the inner objects live as long as it does.
//
// A value that holds refs also has a ref table: the buffer under the reserved key 0
// (zerocopy.ReservedKey), holding 16-byte object IDs back to back. For most values
// it lists each nested object once, in the order PutValue found them, and decoding
// takes handles to all of them with one BorrowAll before it walks the value. A
// top-level []Ref is not encoded element by element at all: its body is TagRefList
// over the element count, and its ref table holds every element's ID in order (the
// zero ID for a zero Ref), so decoding it is a copy of the table and one BorrowAll.
//
// A struct's own []Ref fields are kept out of the CBOR body the same way: when T is
// a struct, each non-empty []Ref field of distinct refs not met before goes into the
// ref table first, in field order, and the field is encoded as null. The body is
// then TagRefFields over [[name, start, count, ...], the struct's body], and
// decoding sets each such field to its run of the table's handles, so a struct
// holding 10,000 refs costs what the list does and not 10,000 CBOR items.

// TagRef is for store implementations and other readers of encoded values: the
// CBOR tag number of an encoded Ref, 0x74726f52, "troR" in ASCII, in
// the first-come-first-served range of the IANA registry and unregistered. Its
// content is the 16-byte ObjectID as a byte string.
const TagRef = 0x74726f52

// TagRefList is for store implementations and other readers of encoded values: the
// CBOR tag number of the body of a top-level []Ref, 0x74726f4c,
// "troL" in ASCII, unregistered like TagRef. Its content is the element count, an
// unsigned integer; the elements are the value's ref table. (A []Ref that holds one
// object twice is encoded as an array of TagRef items instead, so that decoding it
// gives the repeats one shared handle, as for any value.)
const TagRefList = 0x74726f4c

// TagRefFields is the CBOR tag number of the body of a struct whose []Ref fields
// are in the ref table: 0x74726f46, "troF" in ASCII, unregistered like TagRef. Its
// content is an array of two: an array of (field name, first table index, element
// count) triples, flat, and the struct's own body, in which those fields are null.
const TagRefFields = 0x74726f46

// refTableKey is the frame buffer holding a value's ref table.
const refTableKey = zerocopy.ReservedKey

// ErrBadValue: the object's bytes are not a value PutValue wrote (a raw Put, or
// corrupted), or its value does not decode into the type asked for. Read it with the
// type it was put with, or with Get for raw bytes.
var ErrBadValue = errors.New("trove: object is not a value of the requested type")

// The most levels of arrays, maps and tags a value's body may nest. Decoding needs
// stack in proportion, so PutValue refuses values GetValue could not decode.
const maxValueNesting = 256

// The most pointers, interfaces and containers the reflect walks follow down one
// path: deeper is a pointer cycle, or a value no decoder accepts anyway.
const maxWalkDepth = 4 * maxValueNesting

var (
	refType     = reflect.TypeFor[Ref]()
	refListType = reflect.TypeFor[[]Ref]()
	tensorType  = reflect.TypeFor[zerocopy.Tensor]()
	marshaler   = reflect.TypeFor[cbor.Marshaler]()
	unmarsh     = reflect.TypeFor[cbor.Unmarshaler]()
)

var valueEnc, valueDec = func() (cbor.EncMode, cbor.DecMode) {
	// Times keep their nanoseconds and zone (the default is whole Unix seconds).
	em, err := cbor.EncOptions{Time: cbor.TimeRFC3339Nano, TimeTag: cbor.EncTagRequired}.EncMode()
	if err != nil {
		panic(err) // constant options: cannot happen
	}
	// Registered for decoding only, so that a ref or tensor inside an interface
	// (a field of type any) decodes as a Ref or Tensor rather than a cbor.Tag.
	tags := cbor.NewTagSet()
	for _, tt := range []struct {
		typ reflect.Type
		num uint64
	}{{refType, TagRef}, {tensorType, zerocopy.TagTensor}} {
		if err := tags.Add(cbor.TagOptions{EncTag: cbor.EncTagNone, DecTag: cbor.DecTagOptional}, tt.typ, tt.num); err != nil {
			panic(err)
		}
	}
	// Element and pair counts are bounded by the input anyway: the decoder checks
	// the whole item is well formed before it allocates.
	dm, err := cbor.DecOptions{
		MaxNestedLevels:  maxValueNesting,
		MaxArrayElements: math.MaxInt32,
		MaxMapPairs:      math.MaxInt32,
	}.DecModeWithTags(tags)
	if err != nil {
		panic(err)
	}
	return em, dm
}()

// refTagHead is the encoding of TagRef followed by the head of a 16-byte string.
var refTagHead = [...]byte{0xda, TagRef >> 24, TagRef >> 16 & 0xff, TagRef >> 8 & 0xff, TagRef & 0xff, byte(0x40 | ObjectIDLen)}

// MarshalCBOR encodes r as tag TagRef over its object ID; the zero Ref is null. Only
// the ID is encoded, never the handle: PutValue records nested refs itself.
func (r Ref) MarshalCBOR() ([]byte, error) {
	if r.h == nil {
		return []byte{0xf6}, nil
	}
	b := make([]byte, 0, len(refTagHead)+ObjectIDLen)
	b = append(b, refTagHead[:]...)
	return append(b, r.h.s.id[:]...), nil
}

// UnmarshalCBOR decodes what MarshalCBOR wrote into an unbound ref: it names the
// object but belongs to no store, and using it fails with ErrInvalidRef until it is
// bound (GetValue and ViewValue bind every ref they decode). null decodes to the zero
// Ref.
func (r *Ref) UnmarshalCBOR(b []byte) error {
	if len(b) == 1 && (b[0] == 0xf6 || b[0] == 0xf7) { // null, undefined
		*r = Ref{}
		return nil
	}
	if len(b) != len(refTagHead)+ObjectIDLen || !bytes.HasPrefix(b, refTagHead[:]) {
		return fmt.Errorf("trove: decode ref: want tag %#x over a %d-byte object ID, got %d bytes starting %x",
			TagRef, ObjectIDLen, len(b), b[:min(len(b), 8)])
	}
	id := ObjectID(b[len(refTagHead):])
	if id.IsZero() {
		return errors.New("trove: decode ref: the zero object ID names no object")
	}
	*r = unboundRef(id)
	return nil
}

// PutValue encodes v (CBOR) and stores it. Refs nested anywhere in v (struct fields,
// slices, maps, pointers) are recorded as contained refs so the inner objects live as
// long as the outer one. Tensors (zerocopy.Tensor, anywhere in v) and a top-level
// numeric slice or []byte (T = []float32, []byte, ...) are stored out-of-band: written
// once into the object, 64-byte aligned, and read back without a copy.
//
// Everything else is in the CBOR body, copied out on every read: a numeric slice
// nested in a struct, and slices of int or uint (whose size varies by platform);
// wrap large arrays in a Tensor to read them in place. Fields follow the cbor
// package's rules (exported fields, `cbor:` or `json:` tags); refs inside a type
// with its own MarshalCBOR are found only in its exported fields. Nested refs must
// be live refs of st. v must not contain pointer cycles.
func PutValue[T any](ctx context.Context, st Store, v T) (Ref, error) {
	var enc valueEncoder
	body, err := enc.encode(reflect.ValueOf(&v).Elem())
	if err != nil {
		return Ref{}, fmt.Errorf("trove: put value of type %s: %w", reflect.TypeFor[T](), err)
	}
	lens := make([]int, len(enc.bufs))
	for i, b := range enc.bufs {
		lens[i] = len(b.Data)
	}
	size := zerocopy.FrameSize(len(body), lens)
	ref, err := st.PutFunc(ctx, size, enc.refs, func(dst []byte) error {
		return zerocopy.WriteFrame(dst, body, enc.bufs)
	})
	runtime.KeepAlive(v) // the buffers point into v
	if err != nil {
		return Ref{}, fmt.Errorf("trove: put value of type %s (%s, %d nested refs): %w",
			reflect.TypeFor[T](), HumanBytes(int64(size)), len(enc.refs), err)
	}
	return ref, nil
}

// GetValue returns a decoded copy of the value: it owns its memory (tensors and slices
// are copied out), so no Release is needed. Nested refs come back as live handles:
// one per distinct object, which the caller drops when done (or leaves to the
// garbage collector).
//
// The handles are borrowed together, with one BorrowAll if st has it (the engine
// does) and else one Borrow each. Borrowed together, they are collected together:
// the garbage collector releases an undropped one only once all of them are
// unreachable (see Ref). Drop the refs you do not keep.
//
// A value that is not a frame PutValue wrote, or does not decode into T, fails with
// an error wrapping ErrBadValue.
func GetValue[T any](ctx context.Context, st Store, ref Ref) (T, error) {
	var out T
	obj, err := st.Get(ctx, ref)
	if err != nil {
		return out, fmt.Errorf("trove: get value %s: %w", ref, err)
	}
	defer obj.Release()
	if err := decodeValue(st, obj, reflect.ValueOf(&out).Elem(), true); err != nil {
		var zero T
		return zero, fmt.Errorf("trove: get value %s as %s: %w", ref, reflect.TypeFor[T](), err)
	}
	return out, nil
}

// ViewValue is GetValue without copies: tensors and a top-level numeric slice alias
// the object's read-only memory, valid until the returned *Object is Released (the
// caller MUST Release it; writing through them faults). Everything else in the value
// is decoded into ordinary Go memory as by GetValue, and nested refs are live handles.
//
// A buffer is copied after all if the store's bytes are not aligned for its element
// type, which never happens in the arena (objects start 64-byte aligned).
func ViewValue[T any](ctx context.Context, st Store, ref Ref) (T, *Object, error) {
	var out T
	obj, err := st.Get(ctx, ref)
	if err != nil {
		return out, nil, fmt.Errorf("trove: view value %s: %w", ref, err)
	}
	if err := decodeValue(st, obj, reflect.ValueOf(&out).Elem(), false); err != nil {
		obj.Release()
		var zero T
		return zero, nil, fmt.Errorf("trove: view value %s as %s: %w", ref, reflect.TypeFor[T](), err)
	}
	return out, obj, nil
}

// typeInfo is what the encoder and decoder need to know about a type, computed once.
type typeInfo struct {
	// hold: a value of the type can contain a Ref or Tensor. When false the walks
	// skip the value in O(1), however large (a []float32 of a billion elements).
	hold bool
	// fields of a struct that are encoded and can hold a Ref or Tensor.
	fields []int
	// slice: the dtype of a numeric slice that PutValue stores out-of-band when it is
	// the whole value; invalid for every other type.
	slice zerocopy.DType
	// refFields of a struct whose fields the cbor package encodes under their own
	// names (no embedded fields, no toarray or keyasint, no name twice): its []Ref
	// fields that are never omitted, by CBOR name, and their indices in field order.
	// Empty for every other type.
	refFieldByName map[string]int
	refFields      []refFieldOf
}

// refFieldOf is a []Ref field of a struct: its index and its CBOR name.
type refFieldOf struct {
	index int
	name  string
}

var typeInfos sync.Map // reflect.Type → *typeInfo

func typeInfoOf(t reflect.Type) *typeInfo {
	if ti, ok := typeInfos.Load(t); ok {
		return ti.(*typeInfo)
	}
	ti := &typeInfo{hold: reachesRefOrTensor(t, map[reflect.Type]bool{})}
	if t.Kind() == reflect.Struct && ti.hold {
		for i := range t.NumField() {
			if f := t.Field(i); encodedField(f) && reachesRefOrTensor(f.Type, map[reflect.Type]bool{}) {
				ti.fields = append(ti.fields, i)
			}
		}
	}
	if t.Kind() == reflect.Slice && !customCBOR(t) && !customCBOR(t.Elem()) {
		ti.slice, _ = zerocopy.DTypeOfKind(t.Elem().Kind())
	}
	if t.Kind() == reflect.Struct && ti.hold && !customCBOR(t) {
		ti.refFieldByName, ti.refFields = refFieldsOf(t)
	}
	actual, _ := typeInfos.LoadOrStore(t, ti)
	return actual.(*typeInfo)
}

// reachesRefOrTensor reports whether a value of type t can contain a Ref or a Tensor:
// whether one of those, or an interface, is reachable from t through encoded fields,
// elements, map keys and values, and pointers. seen makes it terminate on recursive
// types: a type already on the way is explored by its first visit, so answering
// false for it again loses nothing.
func reachesRefOrTensor(t reflect.Type, seen map[reflect.Type]bool) bool {
	if t == refType || t == tensorType || t.Kind() == reflect.Interface {
		return true
	}
	if seen[t] {
		return false
	}
	seen[t] = true
	switch t.Kind() {
	case reflect.Pointer, reflect.Slice, reflect.Array:
		return reachesRefOrTensor(t.Elem(), seen)
	case reflect.Map:
		return reachesRefOrTensor(t.Key(), seen) || reachesRefOrTensor(t.Elem(), seen)
	case reflect.Struct:
		for i := range t.NumField() {
			if f := t.Field(i); encodedField(f) && reachesRefOrTensor(f.Type, seen) {
				return true
			}
		}
	}
	return false
}

// encodedField mirrors the cbor package: exported and embedded fields are encoded,
// unless tagged "-" (a cbor tag, or failing that a json tag).
func encodedField(f reflect.StructField) bool {
	if !f.IsExported() && !f.Anonymous {
		return false
	}
	tag, ok := f.Tag.Lookup("cbor")
	if !ok {
		tag = f.Tag.Get("json")
	}
	return tag != "-"
}

// refFieldsOf returns the []Ref fields of struct type t that can be kept in the ref
// table, by CBOR name and in field order, or nothing if the cbor package might not
// encode t's fields as a map keyed by their names (an embedded field, toarray,
// keyasint, or two fields of one name), or might omit one (omitempty, omitzero).
func refFieldsOf(t reflect.Type) (map[string]int, []refFieldOf) {
	names := map[string]bool{}
	var byName map[string]int
	var order []refFieldOf
	for i := range t.NumField() {
		f := t.Field(i)
		tag, ok := f.Tag.Lookup("cbor")
		if !ok {
			tag = f.Tag.Get("json")
		}
		name, opts, _ := strings.Cut(tag, ",")
		// toarray is an option of the unexported field _; keyasint of any field.
		if f.Anonymous || slices.ContainsFunc(strings.Split(opts, ","), func(o string) bool {
			return o == "toarray" || o == "keyasint"
		}) {
			return nil, nil
		}
		if !encodedField(f) {
			continue
		}
		if name == "" {
			name = f.Name
		}
		if names[name] {
			return nil, nil
		}
		names[name] = true
		if f.Type != refListType || strings.Contains(opts, "omit") {
			continue
		}
		if byName == nil {
			byName = map[string]int{}
		}
		byName[name] = i
		order = append(order, refFieldOf{i, name})
	}
	return byName, order
}

func customCBOR(t reflect.Type) bool {
	return t.Implements(marshaler) || reflect.PointerTo(t).Implements(unmarsh)
}

// valueEncoder collects what PutValue stores besides the body.
type valueEncoder struct {
	refs   []Ref // nested refs, one per object: the stored object's contained refs
	refIDs map[ObjectID]struct{}
	bufs   []zerocopy.Buffer // out-of-band buffers, sorted by key when encode returns
	bufIdx map[uint64]int
}

// encode returns the body of v, which must be addressable, and collects its nested
// refs and out-of-band buffers, the ref table among them. v is PutValue's own copy
// of the value: encode sets the []Ref fields it moves into the ref table to nil
// while it marshals, and puts them back before it returns.
func (e *valueEncoder) encode(v reflect.Value) ([]byte, error) {
	ti := typeInfoOf(v.Type())
	if ti.slice.Valid() {
		return e.encodeSlice(v, ti.slice)
	}
	if v.Type() == refListType && !v.IsNil() {
		if body, ok := e.encodeRefList(v.Interface().([]Ref)); ok {
			return body, nil
		}
	}
	var header []byte // TagRefFields' triples, if any field went into the table
	if len(ti.refFields) > 0 {
		var restore func()
		header, restore = e.takeRefFields(v, ti.refFields)
		defer restore()
	}
	if ti.hold {
		if err := e.collect(v, 0); err != nil {
			return nil, err
		}
	}
	body, err := valueEnc.Marshal(v.Addr().Interface())
	if err != nil {
		return nil, err
	}
	if err := valueDec.Wellformed(body); err != nil {
		return nil, fmt.Errorf("the value cannot be decoded (it nests deeper than %d levels?): %w", maxValueNesting, err)
	}
	if header != nil {
		wrapped := binary.BigEndian.AppendUint32([]byte{0xda}, TagRefFields)
		wrapped = append(append(append(wrapped, 0x82), header...), body...)
		body = wrapped
	}
	slices.SortFunc(e.bufs, func(a, b zerocopy.Buffer) int {
		switch {
		case a.Key < b.Key:
			return -1
		case a.Key > b.Key:
			return 1
		}
		return 0
	})
	if len(e.refs) > 0 {
		table := make([]byte, 0, len(e.refs)*ObjectIDLen)
		for _, r := range e.refs {
			table = append(table, r.h.s.id[:]...)
		}
		e.addRefTable(table)
	}
	return body, nil
}

// addRefTable adds the ref table as the first buffer: its key, 0, sorts before
// every tensor's.
func (e *valueEncoder) addRefTable(table []byte) {
	e.bufs = slices.Insert(e.bufs, 0, zerocopy.Buffer{Key: refTableKey, Data: table})
}

// encodeRefList encodes a top-level []Ref as TagRefList over its length, with every
// element's ID in the ref table. It declines (false) a list that holds an object
// twice, which the general encoding gives one handle when decoded.
func (e *valueEncoder) encodeRefList(list []Ref) ([]byte, bool) {
	e.refIDs = make(map[ObjectID]struct{}, len(list))
	table := make([]byte, len(list)*ObjectIDLen) // a zero Ref is the zero ID
	nonZero := 0
	for i, r := range list {
		if r.IsZero() {
			continue
		}
		nonZero++
		e.addRef(r)
		copy(table[i*ObjectIDLen:], r.h.s.id[:])
	}
	if len(e.refs) != nonZero {
		e.refs, e.refIDs = nil, nil
		return nil, false
	}
	if len(table) > 0 {
		e.addRefTable(table)
	}
	body := binary.BigEndian.AppendUint32([]byte{0xda}, TagRefList)
	return appendCBORHead(body, 0, uint64(len(list))), true
}

// takeRefFields moves the struct v's []Ref fields (at the indices fields) into the
// ref table, which must be empty: each in turn, if it is non-empty and all its refs
// are distinct, non-zero and in no field before it, gets the next run of the table
// and is set to nil. It returns the TagRefFields triples (nil if no field was taken)
// and a function that puts the fields back.
func (e *valueEncoder) takeRefFields(v reflect.Value, fields []refFieldOf) (header []byte, restore func()) {
	var triples []byte
	var taken []int
	var lists [][]Ref
	for _, f := range fields {
		p := (*[]Ref)(v.Field(f.index).Addr().UnsafePointer())
		list := *p
		if len(list) == 0 {
			continue
		}
		start := len(e.refs)
		for _, r := range list {
			if r.IsZero() {
				break
			}
			e.addRef(r)
		}
		if len(e.refs)-start != len(list) { // a zero Ref or a repeat: leave it to CBOR
			for _, r := range e.refs[start:] {
				delete(e.refIDs, r.ID())
			}
			e.refs = e.refs[:start]
			continue
		}
		triples = append(appendCBORHead(triples, 3, uint64(len(f.name))), f.name...)
		triples = appendCBORHead(triples, 0, uint64(start))
		triples = appendCBORHead(triples, 0, uint64(len(list)))
		taken = append(taken, f.index)
		lists = append(lists, list)
		*p = nil
	}
	restore = func() {
		for k, i := range taken {
			*(*[]Ref)(v.Field(i).Addr().UnsafePointer()) = lists[k]
		}
	}
	if len(taken) == 0 {
		return nil, restore
	}
	return append(appendCBORHead(nil, 4, uint64(3*len(taken))), triples...), restore
}

// appendCBORHead appends the head of a CBOR item of the major type with argument n,
// in its shortest form.
func appendCBORHead(b []byte, major byte, n uint64) []byte {
	m := major << 5
	switch {
	case n < 24:
		return append(b, m|byte(n))
	case n <= math.MaxUint8:
		return append(b, m|24, byte(n))
	case n <= math.MaxUint16:
		return binary.BigEndian.AppendUint16(append(b, m|25), uint16(n))
	case n <= math.MaxUint32:
		return binary.BigEndian.AppendUint32(append(b, m|26), uint32(n))
	}
	return binary.BigEndian.AppendUint64(append(b, m|27), n)
}

// parseCBORUint returns the unsigned integer that is all of b (major type 0, in any
// length of head), and whether b is one.
func parseCBORUint(b []byte) (uint64, bool) {
	if len(b) == 0 || b[0]>>5 != 0 {
		return 0, false
	}
	switch ai := b[0] & 0x1f; {
	case ai < 24 && len(b) == 1:
		return uint64(ai), true
	case ai == 24 && len(b) == 2:
		return uint64(b[1]), true
	case ai == 25 && len(b) == 3:
		return uint64(binary.BigEndian.Uint16(b[1:])), true
	case ai == 26 && len(b) == 5:
		return uint64(binary.BigEndian.Uint32(b[1:])), true
	case ai == 27 && len(b) == 9:
		return binary.BigEndian.Uint64(b[1:]), true
	}
	return 0, false
}

// readCBORHead splits the head of the first item in b (definite lengths only) into
// its major type and argument, and returns the bytes after it.
func readCBORHead(b []byte) (major byte, n uint64, rest []byte, ok bool) {
	if len(b) == 0 {
		return 0, 0, nil, false
	}
	major, ai := b[0]>>5, b[0]&0x1f
	size := 0
	switch {
	case ai < 24:
		return major, uint64(ai), b[1:], true
	case ai == 24:
		size = 1
	case ai == 25:
		size = 2
	case ai == 26:
		size = 4
	case ai == 27:
		size = 8
	default:
		return 0, 0, nil, false
	}
	if len(b) < 1+size {
		return 0, 0, nil, false
	}
	for _, c := range b[1 : 1+size] {
		n = n<<8 | uint64(c)
	}
	return major, n, b[1+size:], true
}

// encodeSlice encodes a top-level numeric slice as a 1-D tensor over its memory, so
// it is stored out-of-band and can be read back in place. A nil slice is null.
func (e *valueEncoder) encodeSlice(v reflect.Value, dt zerocopy.DType) ([]byte, error) {
	if v.IsNil() {
		return valueEnc.Marshal(nil)
	}
	n := v.Len()
	var data []byte
	if n > 0 {
		data = unsafe.Slice((*byte)(v.UnsafePointer()), n*dt.Size())
	}
	t, err := zerocopy.NewTensorFromBytes(dt, []int{n}, data)
	if err != nil {
		return nil, err
	}
	if err := e.addTensor(t); err != nil {
		return nil, err
	}
	return valueEnc.Marshal(t)
}

// collect finds the refs and tensors in v. v need not be addressable.
func (e *valueEncoder) collect(v reflect.Value, depth int) error {
	if depth > maxWalkDepth {
		return fmt.Errorf("the value nests deeper than %d levels (a pointer cycle?)", maxWalkDepth)
	}
	t := v.Type()
	switch {
	case t == refType:
		if v.CanInterface() {
			e.addRef(v.Interface().(Ref))
		}
		return nil
	case t == tensorType:
		if v.CanInterface() {
			return e.addTensor(v.Interface().(zerocopy.Tensor))
		}
		return nil
	case !typeInfoOf(t).hold:
		return nil
	}
	switch t.Kind() {
	case reflect.Pointer, reflect.Interface:
		if !v.IsNil() {
			return e.collect(v.Elem(), depth+1)
		}
	case reflect.Struct:
		for _, i := range typeInfoOf(t).fields {
			if err := e.collect(v.Field(i), depth+1); err != nil {
				return err
			}
		}
	case reflect.Slice, reflect.Array:
		for i := range v.Len() {
			if err := e.collect(v.Index(i), depth+1); err != nil {
				return err
			}
		}
	case reflect.Map:
		for it := v.MapRange(); it.Next(); {
			if err := e.collect(it.Key(), depth+1); err != nil {
				return err
			}
			if err := e.collect(it.Value(), depth+1); err != nil {
				return err
			}
		}
	}
	return nil
}

func (e *valueEncoder) addRef(r Ref) {
	if r.IsZero() {
		return // encoded as null
	}
	if _, ok := e.refIDs[r.ID()]; ok {
		return
	}
	if e.refIDs == nil {
		e.refIDs = map[ObjectID]struct{}{}
	}
	e.refIDs[r.ID()] = struct{}{}
	e.refs = append(e.refs, r)
}

func (e *valueEncoder) addTensor(t zerocopy.Tensor) error {
	if t.Unbound() {
		return fmt.Errorf("%s was decoded without its data (BindBuffer was not called)", t)
	}
	key, data := t.BufferKey(), t.Data()
	if key == 0 {
		return nil // no elements, no buffer
	}
	if i, ok := e.bufIdx[key]; ok {
		if old := e.bufs[i].Data; unsafe.SliceData(old) != unsafe.SliceData(data) || len(old) != len(data) {
			return fmt.Errorf("two tensors' buffers have the same key %#x (a hash collision); put them in separate values", key)
		}
		return nil // shared memory, one buffer
	}
	if e.bufIdx == nil {
		e.bufIdx = map[uint64]int{}
	}
	e.bufIdx[key] = len(e.bufs)
	e.bufs = append(e.bufs, zerocopy.Buffer{Key: key, Data: data})
	return nil
}

// decodeValue decodes the value frame in obj into out, which must be addressable
// and zero, and binds its nested refs to handles from st (borrowed together, see
// borrowAll) and its tensors to their buffers: copies of them if copyBufs, else the
// frame's bytes. On error it drops the refs it bound.
func decodeValue(st Store, obj *Object, out reflect.Value, copyBufs bool) error {
	f, err := zerocopy.ParseFrame(obj.Bytes())
	if err != nil {
		return fmt.Errorf("%w: %w", ErrBadValue, err)
	}
	table, err := refTable(f)
	if err != nil {
		return err
	}
	bd := binder{st: st, obj: obj, frame: f, copy: copyBufs}
	ti := typeInfoOf(out.Type())
	switch body := f.Body(); {
	case ti.slice.Valid() && isTensorTag(body):
		err = bd.bindSlice(out, ti.slice)
	case isRefListTag(body):
		err = bd.bindRefList(out, table)
	case isTag(body, TagRefFields):
		err = bd.bindRefFields(out, table)
	default:
		err = bd.decodeBody(out, body, table, 0)
	}
	bd.finish(err == nil)
	return err
}

// decodeBody decodes the CBOR body into out and binds the refs and tensors in it;
// next is the table index of the first ref the bind walk will meet.
func (bd *binder) decodeBody(out reflect.Value, body []byte, table []ObjectID, next int) error {
	bd.table, bd.next = table, next
	if err := valueDec.Unmarshal(body, out.Addr().Interface()); err != nil {
		return fmt.Errorf("%w: %w", ErrBadValue, err)
	}
	if typeInfoOf(out.Type()).hold {
		return bd.bind(out, 0)
	}
	return nil
}

// refField is a []Ref field kept in the ref table: table[start:start+n].
type refField struct {
	name     string
	start, n int
}

// bindRefFields decodes a body that is TagRefFields over [triples, struct body]. If
// out is a struct with a []Ref field of each name, it decodes the struct's body and
// sets those fields to their runs of the table's handles; otherwise (another type,
// or names that only the cbor package's case-insensitive matching finds) it puts the
// refs back into the body as arrays of TagRef items and decodes that.
func (bd *binder) bindRefFields(out reflect.Value, table []ObjectID) error {
	fields, inner, err := parseRefFields(bd.frame.Body()[5:], len(table))
	if err != nil {
		return err
	}
	byName := typeInfoOf(out.Type()).refFieldByName
	fast := out.Kind() == reflect.Struct
	end := 0
	for _, f := range fields {
		if _, ok := byName[f.name]; !ok {
			fast = false
		}
		end = max(end, f.start+f.n)
	}
	if !fast {
		body, err := expandRefFields(inner, fields, table)
		if err != nil {
			return err
		}
		return bd.decodeBody(out, body, table, 0)
	}
	if err := bd.decodeBody(out, inner, table, end); err != nil {
		return err
	}
	if bd.handles == nil {
		if err := bd.borrowTable(); err != nil {
			return err
		}
	}
	for _, f := range fields {
		p := (*[]Ref)(out.Field(byName[f.name]).Addr().UnsafePointer())
		if *p != nil { // the body has it too, or a triple names it twice
			return fmt.Errorf("%w: field %q is given twice in a struct under tag %#x", ErrBadValue, f.name, TagRefFields)
		}
		run := bd.handles[f.start : f.start+f.n : f.start+f.n] // an append copies
		*p = run
		for i := range run {
			bd.used[f.start+i] = true
		}
	}
	return nil
}

// parseRefFields parses TagRefFields' content, an array of the triples and the
// struct's body, checking the runs are non-empty, in order, disjoint and inside a
// table of tableLen IDs.
func parseRefFields(b []byte, tableLen int) ([]refField, []byte, error) {
	bad := func(what string) error {
		return fmt.Errorf("%w: a struct's body under tag %#x has %s", ErrBadValue, TagRefFields, what)
	}
	major, n, b, ok := readCBORHead(b)
	if !ok || major != 4 || n != 2 {
		return nil, nil, bad("no array of two (the fields, the body)")
	}
	major, n, b, ok = readCBORHead(b)
	if !ok || major != 4 || n%3 != 0 || n == 0 || n/3 > uint64(len(b)) {
		return nil, nil, bad("no array of (name, start, count) triples")
	}
	fields := make([]refField, n/3)
	end := 0 // the runs are in order and disjoint, so expanding them is bounded by the table
	for i := range fields {
		var l, start, count uint64
		var ok1, ok2 bool
		if major, l, b, ok = readCBORHead(b); !ok || major != 3 || l > uint64(len(b)) {
			return nil, nil, bad(fmt.Sprintf("no name for field %d", i))
		}
		name := string(b[:l])
		b = b[l:]
		major, start, b, ok1 = readCBORHead(b)
		ok1 = ok1 && major == 0
		major, count, b, ok2 = readCBORHead(b)
		ok2 = ok2 && major == 0
		if !ok1 || !ok2 || count == 0 || count > uint64(tableLen) || start > uint64(tableLen)-count {
			return nil, nil, bad(fmt.Sprintf("field %q's refs outside its ref table of %d", name, tableLen))
		}
		if start < uint64(end) {
			return nil, nil, bad(fmt.Sprintf("field %q's refs overlapping the field's before", name))
		}
		fields[i] = refField{name: name, start: int(start), n: int(count)}
		end = int(start + count)
	}
	return fields, b, nil
}

// expandRefFields returns the struct body inner, a CBOR map, with each field's
// value replaced by the array of TagRef items its run of table stands for.
func expandRefFields(inner []byte, fields []refField, table []ObjectID) ([]byte, error) {
	major, pairs, rest, ok := readCBORHead(inner)
	if !ok || major != 5 || pairs > uint64(len(rest)) {
		return nil, fmt.Errorf("%w: a struct's body under tag %#x is not a map", ErrBadValue, TagRefFields)
	}
	extra := 0
	for _, f := range fields {
		extra += f.n * (len(refTagHead) + ObjectIDLen)
	}
	// A new slice: inner aliases the object's bytes, which must not be written.
	body := append(make([]byte, 0, len(inner)+extra+9), inner[:len(inner)-len(rest)]...)
	expanded := make([]bool, len(fields))
	dec := valueDec.NewDecoder(bytes.NewReader(rest))
	for range pairs {
		var k, v cbor.RawMessage
		if err := dec.Decode(&k); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrBadValue, err)
		}
		if err := dec.Decode(&v); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrBadValue, err)
		}
		body = append(body, k...)
		i := slices.IndexFunc(fields, func(f refField) bool {
			return bytes.Equal(k, append(appendCBORHead(nil, 3, uint64(len(f.name))), f.name...))
		})
		if i < 0 {
			body = append(body, v...)
			continue
		}
		if expanded[i] {
			return nil, fmt.Errorf("%w: a struct's body under tag %#x has field %q twice", ErrBadValue, TagRefFields, fields[i].name)
		}
		expanded[i] = true
		f := fields[i]
		body = appendCBORHead(body, 4, uint64(f.n))
		for _, id := range table[f.start : f.start+f.n] {
			body = append(append(body, refTagHead[:]...), id[:]...)
		}
	}
	if dec.NumBytesRead() != len(rest) {
		return nil, fmt.Errorf("%w: a struct's body under tag %#x has %d bytes after its map", ErrBadValue, TagRefFields, len(rest)-dec.NumBytesRead())
	}
	return body, nil
}

// refTable returns the frame's ref table as object IDs, aliasing the frame's bytes
// (nil if the frame has none).
func refTable(f zerocopy.Frame) ([]ObjectID, error) {
	if f.NumBuffers() == 0 {
		return nil, nil
	}
	buf := f.Buffer(0) // the lowest key: the table's, if there is one
	if buf.Key != refTableKey {
		return nil, nil
	}
	if len(buf.Data)%ObjectIDLen != 0 {
		return nil, fmt.Errorf("%w: the ref table is %d bytes, not a whole number of %d-byte object IDs",
			ErrBadValue, len(buf.Data), ObjectIDLen)
	}
	// ObjectID is a byte array: any address is aligned for it.
	return unsafe.Slice((*ObjectID)(unsafe.Pointer(unsafe.SliceData(buf.Data))), len(buf.Data)/ObjectIDLen), nil
}

// isTensorTag reports whether body starts with TagTensor, as a top-level numeric
// slice is encoded.
func isTensorTag(body []byte) bool {
	return len(body) >= 5 && body[0] == 0xda && binary.BigEndian.Uint32(body[1:]) == zerocopy.TagTensor
}

// isRefListTag reports whether body starts with TagRefList, as a top-level []Ref
// is encoded.
func isRefListTag(body []byte) bool { return isTag(body, TagRefList) }

// isTag reports whether body starts with the four-byte head of tag num.
func isTag(body []byte, num uint32) bool {
	return len(body) >= 5 && body[0] == 0xda && binary.BigEndian.Uint32(body[1:]) == num
}

// batchBorrower is a store that hands out many handles at once: engine.Store. ids
// may alias an object's bytes, so BorrowAll must not keep the slice.
type batchBorrower interface {
	BorrowAll(ids []ObjectID) ([]Ref, error)
}

// childBorrower is a store that can hand out handles to the objects a pinned
// object contains without looking them up: engine.Store. It reports false (and
// takes nothing) unless ids are exactly obj's contained objects, in order.
type childBorrower interface {
	BorrowContained(obj *Object, ids []ObjectID) ([]Ref, bool)
}

// borrowAll returns new handles to ids, in order, all or nothing: through obj's
// contained objects if st is a childBorrower and ids are those, else with one call
// if st is a batchBorrower, else with one Borrow per ID.
func borrowAll(st Store, obj *Object, ids []ObjectID) ([]Ref, error) {
	if c, ok := st.(childBorrower); ok && obj != nil {
		if refs, ok := c.BorrowContained(obj, ids); ok {
			return refs, nil
		}
	}
	if b, ok := st.(batchBorrower); ok {
		return b.BorrowAll(ids)
	}
	refs := make([]Ref, len(ids))
	for i, id := range ids {
		r, err := st.Borrow(id)
		if err != nil {
			for _, r := range refs[:i] {
				r.Drop()
			}
			return nil, err
		}
		refs[i] = r
	}
	return refs, nil
}

// binder attaches what a decoded value names but does not hold: live handles for its
// refs and buffers for its tensors.
type binder struct {
	st    Store
	obj   *Object // the value's object, pinned while decoding
	frame zerocopy.Frame
	copy  bool

	// table is the value's ref table, aliasing the frame. Binding the first ref
	// found in it borrows handles to the whole table at once; finish drops those
	// no ref was bound to.
	table   []ObjectID
	handles []Ref            // for table[i], once borrowed
	used    []bool           // handles[i] was bound to a ref
	next    int              // the table index the next new ref most likely has
	index   map[ObjectID]int // table index by ID, made when next is not it

	refs   map[ObjectID]Ref  // handles to objects outside the table, one per object
	bound  []Ref             // those handles, dropped if decoding fails
	copies map[uint64][]byte // one copy per buffer
}

// finish drops the handles the decoded value does not hold: those of the table it
// did not use, and, if decoding failed, all of them.
func (bd *binder) finish(ok bool) {
	for i, r := range bd.handles {
		if !ok || !bd.used[i] {
			r.Drop()
		}
	}
	if !ok {
		for _, r := range bd.bound {
			r.Drop()
		}
	}
}

// bindRefList sets out to the top-level []Ref whose body is TagRefList over n and
// whose elements are the ref table. A type other than []Ref (any, []any, a named
// slice type) gets the elements through CBOR, as if the list were an array of refs.
func (bd *binder) bindRefList(out reflect.Value, table []ObjectID) error {
	n, ok := parseCBORUint(bd.frame.Body()[5:])
	if !ok {
		return fmt.Errorf("%w: a ref list's body must be tag %#x over its length, got %x",
			ErrBadValue, TagRefList, bd.frame.Body()[:min(len(bd.frame.Body()), 16)])
	}
	if n != uint64(len(table)) {
		return fmt.Errorf("%w: the ref list has %d elements but its ref table holds %d object IDs",
			ErrBadValue, n, len(table))
	}
	if out.Type() != refListType {
		return bd.bindRefListAs(out, table)
	}
	nonZero := table // the store copies the IDs it keeps: the table may alias the frame
	if slices.Contains(table, ObjectID{}) {
		nonZero = make([]ObjectID, 0, len(table))
		for _, id := range table {
			if !id.IsZero() {
				nonZero = append(nonZero, id)
			}
		}
	}
	if len(nonZero) == 0 {
		out.Set(reflect.ValueOf(make([]Ref, len(table))))
		return nil
	}
	refs, err := borrowAll(bd.st, bd.obj, nonZero)
	if err != nil {
		return fmt.Errorf("bind nested refs: %w", err)
	}
	if len(nonZero) < len(table) { // put the zero Refs back in their places
		all := make([]Ref, len(table))
		j := 0
		for i, id := range table {
			if !id.IsZero() {
				all[i] = refs[j]
				j++
			}
		}
		refs = all
	}
	out.Set(reflect.ValueOf(refs))
	return nil
}

// bindRefListAs decodes a ref list into out, which is not a []Ref, through its CBOR
// form: an array of TagRef items (null for a zero Ref). This path is for
// compatibility, not speed; its refs are borrowed one by one.
func (bd *binder) bindRefListAs(out reflect.Value, table []ObjectID) error {
	body := appendCBORHead(nil, 4, uint64(len(table)))
	for _, id := range table {
		if id.IsZero() {
			body = append(body, 0xf6)
		} else {
			body = append(append(body, refTagHead[:]...), id[:]...)
		}
	}
	if err := valueDec.Unmarshal(body, out.Addr().Interface()); err != nil {
		return fmt.Errorf("%w: %w", ErrBadValue, err)
	}
	if typeInfoOf(out.Type()).hold {
		return bd.bind(out, 0)
	}
	return nil
}

// bindSlice sets out, a slice of dtype dt, to the frame's top-level tensor.
func (bd *binder) bindSlice(out reflect.Value, dt zerocopy.DType) error {
	var t zerocopy.Tensor
	if err := t.UnmarshalCBOR(bd.frame.Body()); err != nil {
		return fmt.Errorf("%w: %w", ErrBadValue, err)
	}
	if t.DType() != dt || t.Rank() != 1 {
		return fmt.Errorf("%w: the value is a %s, not a slice of %s", ErrBadValue, t, dt)
	}
	if err := bd.bindTensor(&t); err != nil {
		return err
	}
	if t.Len() == 0 {
		out.Set(reflect.MakeSlice(out.Type(), 0, 0))
		return nil
	}
	out.Set(reflect.SliceAt(out.Type().Elem(), unsafe.Pointer(unsafe.SliceData(t.Data())), t.Len()))
	return nil
}

// bind binds the refs and tensors in v, which must be addressable.
func (bd *binder) bind(v reflect.Value, depth int) error {
	if depth > maxWalkDepth {
		return fmt.Errorf("%w: the value nests deeper than %d levels", ErrBadValue, maxWalkDepth)
	}
	t := v.Type()
	switch {
	case t == refType:
		if v.CanSet() {
			return bd.bindRef(v.Addr().Interface().(*Ref))
		}
		return nil
	case t == tensorType:
		if v.CanSet() {
			return bd.bindTensor(v.Addr().Interface().(*zerocopy.Tensor))
		}
		return nil
	case !typeInfoOf(t).hold:
		return nil
	}
	switch t.Kind() {
	case reflect.Pointer:
		if !v.IsNil() {
			return bd.bind(v.Elem(), depth+1)
		}
	case reflect.Interface:
		if !needsBind(v) {
			return nil
		}
		switch e := v.Elem(); e.Kind() {
		case reflect.Pointer, reflect.Map, reflect.Slice:
			return bd.bind(e, depth+1) // what they point to can be changed in place
		default:
			if !v.CanSet() {
				return nil
			}
			// The dynamic value is not addressable: bind a copy and put it back.
			c := reflect.New(e.Type()).Elem()
			c.Set(e)
			if err := bd.bind(c, depth+1); err != nil {
				return err
			}
			v.Set(c)
		}
	case reflect.Struct:
		for _, i := range typeInfoOf(t).fields {
			if err := bd.bind(v.Field(i), depth+1); err != nil {
				return err
			}
		}
	case reflect.Slice, reflect.Array:
		for i := range v.Len() {
			if err := bd.bind(v.Index(i), depth+1); err != nil {
				return err
			}
		}
	case reflect.Map:
		// Map entries are not addressable: bind copies and store them back.
		for _, k := range v.MapKeys() {
			val := v.MapIndex(k)
			keyBinds, valBinds := needsBind(k), needsBind(val)
			if !keyBinds && !valBinds {
				continue
			}
			nv := reflect.New(t.Elem()).Elem()
			nv.Set(val)
			if err := bd.bind(nv, depth+1); err != nil {
				return err
			}
			if keyBinds {
				nk := reflect.New(t.Key()).Elem()
				nk.Set(k)
				if err := bd.bind(nk, depth+1); err != nil {
					return err
				}
				v.SetMapIndex(k, reflect.Value{})
				k = nk
			}
			v.SetMapIndex(k, nv)
		}
	}
	return nil
}

// needsBind reports whether v can hold a Ref or Tensor: by its type, or for an
// interface by its dynamic type.
func needsBind(v reflect.Value) bool {
	if v.Kind() == reflect.Interface {
		return !v.IsNil() && typeInfoOf(v.Elem().Type()).hold
	}
	return typeInfoOf(v.Type()).hold
}

func (bd *binder) bindRef(r *Ref) error {
	if r.IsZero() || r.Bound() {
		return nil
	}
	id := r.ID()
	if i := bd.tableIndex(id); i >= 0 {
		if bd.handles == nil {
			if err := bd.borrowTable(); err != nil {
				return err
			}
		}
		bd.used[i] = true
		*r = bd.handles[i]
		return nil
	}
	// Not in the table: a value written before there were tables, or a ref that
	// PutValue did not find (inside a type with its own MarshalCBOR).
	if h, ok := bd.refs[id]; ok {
		*r = h
		return nil
	}
	h, err := bd.st.Borrow(id)
	if err != nil {
		return fmt.Errorf("bind nested %s: %w", *r, err)
	}
	if bd.refs == nil {
		bd.refs = map[ObjectID]Ref{}
	}
	bd.refs[id] = h
	bd.bound = append(bd.bound, h)
	*r = h
	return nil
}

// A table this short is searched in order rather than through a map.
const maxScannedTable = 8

// tableIndex returns the index of id in the ref table, or -1. The table lists the
// objects in the order PutValue's walk first met them, and the bind walk follows
// the same path except through maps: so, unless the value has maps, each ref is
// either at next or seen before, and the index map is made only for the latter.
func (bd *binder) tableIndex(id ObjectID) int {
	if bd.next < len(bd.table) && bd.table[bd.next] == id {
		bd.next++
		return bd.next - 1
	}
	if len(bd.table) <= maxScannedTable {
		for i, t := range bd.table {
			if t == id {
				return i
			}
		}
		return -1
	}
	if bd.index == nil {
		bd.index = make(map[ObjectID]int, len(bd.table))
		for i, t := range slices.Backward(bd.table) { // the first of repeated IDs wins
			bd.index[t] = i
		}
	}
	if i, ok := bd.index[id]; ok {
		return i
	}
	return -1
}

// borrowTable takes handles to every object in the ref table at once.
func (bd *binder) borrowTable() error {
	for i, id := range bd.table {
		if id.IsZero() {
			return fmt.Errorf("%w: entry %d of the ref table is the zero object ID", ErrBadValue, i)
		}
	}
	handles, err := borrowAll(bd.st, bd.obj, bd.table)
	if err != nil {
		return fmt.Errorf("bind nested refs: %w", err)
	}
	bd.handles, bd.used = handles, make([]bool, len(handles))
	return nil
}

func (bd *binder) bindTensor(t *zerocopy.Tensor) error {
	if !t.Unbound() {
		return nil
	}
	key := t.BufferKey()
	buf, ok := bd.frame.Lookup(key)
	if !ok {
		return fmt.Errorf("%w: %s names buffer %#x, which the value does not have", ErrBadValue, t, key)
	}
	if bd.copy || uintptr(unsafe.Pointer(unsafe.SliceData(buf)))%uintptr(t.DType().Size()) != 0 {
		c, ok := bd.copies[key]
		if !ok {
			c = alignedCopy(buf)
			if bd.copies == nil {
				bd.copies = map[uint64][]byte{}
			}
			bd.copies[key] = c
		}
		buf = c
	}
	if err := t.BindBuffer(buf); err != nil {
		return fmt.Errorf("%w: %w", ErrBadValue, err)
	}
	return nil
}

// alignedCopy copies b into new memory aligned for every numeric type.
func alignedCopy(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	w := make([]uint64, (len(b)+7)/8)
	c := unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(w))), len(b))
	copy(c, b)
	return c
}

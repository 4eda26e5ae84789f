package zerocopy

import (
	"fmt"
	"reflect"
)

// Numeric is the set of element types a typed view can have: fixed-size integers and
// floats, and types defined on them. int, uint and uintptr are left out because their
// size depends on the platform, so bytes written on one could be misread on another.
type Numeric interface {
	~int8 | ~uint8 | ~int16 | ~uint16 | ~int32 | ~uint32 | ~int64 | ~uint64 | ~float32 | ~float64
}

// DType names the element type of a tensor or typed buffer. The zero DType is
// invalid: it names no type, so a forgotten field is caught rather than read as int8.
type DType uint8

// The element types, numbered as they are stored: never renumber them.
const (
	Int8 DType = iota + 1
	Uint8
	Int16
	Uint16
	Int32
	Uint32
	Int64
	Uint64
	Float32
	Float64
)

var dtypeNames = [...]string{
	Int8: "int8", Uint8: "uint8", Int16: "int16", Uint16: "uint16", Int32: "int32",
	Uint32: "uint32", Int64: "int64", Uint64: "uint64", Float32: "float32", Float64: "float64",
}

var dtypeSizes = [...]int{
	Int8: 1, Uint8: 1, Int16: 2, Uint16: 2, Int32: 4, Uint32: 4, Int64: 8, Uint64: 8, Float32: 4, Float64: 8,
}

// Valid reports whether d names one of the element types.
func (d DType) Valid() bool { return d >= Int8 && d <= Float64 }

// String returns the numpy name of the type ("float32"), or "DType(n)" if d is invalid.
func (d DType) String() string {
	if !d.Valid() {
		return fmt.Sprintf("DType(%d)", uint8(d))
	}
	return dtypeNames[d]
}

// Size returns the size of one element in bytes, or 0 if d is invalid.
func (d DType) Size() int {
	if !d.Valid() {
		return 0
	}
	return dtypeSizes[d]
}

var kindDTypes = [...]DType{
	reflect.Int8: Int8, reflect.Uint8: Uint8, reflect.Int16: Int16, reflect.Uint16: Uint16,
	reflect.Int32: Int32, reflect.Uint32: Uint32, reflect.Int64: Int64, reflect.Uint64: Uint64,
	reflect.Float32: Float32, reflect.Float64: Float64,
}

// DTypeOfKind returns the DType of values of kind k, and false if k is not one of
// the Numeric kinds (int, uint and uintptr are not: their size varies by platform).
func DTypeOfKind(k reflect.Kind) (DType, bool) {
	if int(k) >= len(kindDTypes) || kindDTypes[k] == 0 {
		return 0, false
	}
	return kindDTypes[k], true
}

// DTypeOf returns the DType of T. Types defined on a numeric type (type Celsius
// float32) have the DType of the underlying type.
func DTypeOf[T Numeric]() DType {
	var zero T
	switch any(zero).(type) {
	case int8:
		return Int8
	case uint8:
		return Uint8
	case int16:
		return Int16
	case uint16:
		return Uint16
	case int32:
		return Int32
	case uint32:
		return Uint32
	case int64:
		return Int64
	case uint64:
		return Uint64
	case float32:
		return Float32
	case float64:
		return Float64
	}
	d, _ := DTypeOfKind(reflect.TypeFor[T]().Kind()) // a defined type: slower, still right
	return d
}

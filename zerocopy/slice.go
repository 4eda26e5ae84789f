package zerocopy

import (
	"fmt"
	"unsafe"
)

// AsSlice reinterprets b as a []T in place, without a copy: the result's first
// element is b's first byte. It fails if len(b) is not a multiple of T's size or b
// does not start at an address aligned to T's size (an unaligned typed view would be
// undefined behaviour on some CPUs and is slow on the rest); it never copies to fix
// either. Numbers are read in the host's byte order, which trove requires to be
// little-endian (see the package documentation).
//
// The result aliases b: it is valid only as long as b is (for an object's bytes,
// until the trove.Object is released), and it is read-only if b is. Its capacity is
// its length, so append copies instead of writing past the view.
//
// An empty b yields a nil slice.
func AsSlice[T Numeric](b []byte) ([]T, error) {
	size := int(unsafe.Sizeof(*new(T)))
	if len(b)%size != 0 {
		return nil, fmt.Errorf("zerocopy: view %d bytes as %s: not a whole number of %d-byte elements (%d bytes left over)",
			len(b), DTypeOf[T](), size, len(b)%size)
	}
	if len(b) == 0 {
		return nil, nil
	}
	p := unsafe.Pointer(unsafe.SliceData(b))
	if uintptr(p)%uintptr(size) != 0 {
		return nil, fmt.Errorf("zerocopy: view bytes at %#x as %s: address not aligned to %d bytes; copy them into aligned memory first",
			uintptr(p), DTypeOf[T](), size)
	}
	return unsafe.Slice((*T)(p), len(b)/size), nil
}

// Bytes returns the memory of s as bytes, without a copy: the inverse of AsSlice.
// The result aliases s and is valid as long as s is. An empty s yields a nil slice.
func Bytes[T Numeric](s []T) []byte {
	if len(s) == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(s))), len(s)*int(unsafe.Sizeof(s[0])))
}

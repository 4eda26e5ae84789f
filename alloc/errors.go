package alloc

import "errors"

// Errors returned by Free. They are wrapped with the offset and what alloc found
// there; test with errors.Is.
var (
	// ErrOutOfRange: the offset is negative or not below Capacity.
	ErrOutOfRange = errors.New("offset outside the arena")
	// ErrNotAllocated: the offset is not the start of a live allocation. It is
	// free already (a double free), inside an allocation rather than at its
	// start, misaligned, or in the unused tail of a slab span. Nothing changed.
	ErrNotAllocated = errors.New("offset is not the start of a live allocation")
)

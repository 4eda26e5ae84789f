// Package zerocopy owns trove's read-only views over object bytes: typed slices
// reinterpreted in place ([AsSlice]), tensors ([Tensor]: dtype, shape and bytes),
// and the frame ([ParseFrame], [WriteFrame]) that lays out a typed value as a CBOR
// body followed by out-of-band buffers, so that large arrays are read where they lie.
//
// Nothing on the read path copies: AsSlice, TensorValues and ParseFrame return
// slices that alias the bytes they were given and allocate nothing.
//
// # Lifetimes
//
// A view made from an object's bytes (a slice from AsSlice, a Frame's body and
// buffers, a Tensor's data) is valid only while the trove.Object it came from is not
// released. Such views are read-only: the store maps its memory read-only, so a write
// through them faults (like numpy's "assignment destination is read-only"). Copy what
// must outlive the view, or must be changed.
//
// # Invariants
//
//   - Typed views assume a little-endian host; the package refuses to build on the
//     big-endian ports (endian_big.go). Frame headers are little-endian on every host.
//   - AsSlice returns a view only if the bytes are a whole number of elements and
//     aligned for the element type; it never copies to fix either.
//   - Every buffer in a frame starts at a multiple of [BufferAlign] bytes from the
//     frame's start. Objects in the arena start 64-aligned, so typed views of their
//     buffers are aligned.
//   - A frame has exactly one valid encoding: ParseFrame accepts exactly the bytes
//     WriteFrame writes for some body and buffers, rejects everything else with an
//     error wrapping [ErrBadFrame], never panics, and allocates nothing.
//   - A Tensor's data is never in its CBOR encoding: the encoding names an
//     out-of-band buffer by key, and the value decoder attaches it with BindBuffer.
//   - No tensor's buffer has key 0 ([ReservedKey]): the key of a tensor with data is
//     never 0, and a decoded tensor with elements that names 0 is rejected. The
//     value encoder in package trove keeps the value's ref table under that key.
package zerocopy

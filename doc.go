// Package trove holds what every trove store shares: object IDs, refs, read-only
// object views, the errors, the Store interface, and typed values on top of it.
//
// trove is a shared-memory object store in the spirit of Ray's remote objects. A
// program puts a value once and gets back a [Ref], a small handle that works like a
// future: it can exist before its value, be passed around, and be resolved with Get.
// The in-process store (package engine), a client in another process on the node,
// and a cluster node all offer the same method set, [Store].
//
// # Lifetimes
//
// A [Ref] keeps its object alive. The object is freed when the last handle is
// dropped (with [Ref.Drop], or by the garbage collector once the handle is
// unreachable), no view pins it, and no stored object contains it. Copies of a Ref
// value share one handle: dropping any copy drops them all.
//
// An [Object] returned by Get is a read-only, zero-copy view of the stored bytes and
// pins the object until [Object.Release]. The caller MUST call Release exactly once
// when done: the garbage collector never releases a pin, because the bytes may still
// be in use. The slice returned by [Object.Bytes] is valid only until Release; writing
// through it faults (the memory is mapped read-only).
//
// # Invariants
//
//   - An ObjectID names its owner node in its first 8 bytes; IDs are never reused.
//   - A sealed object never changes.
//   - Each Ref handle gives back its count exactly once (Drop or GC, never both).
//   - Each Object view gives back its pin exactly once (Release; a second call is a no-op).
package trove

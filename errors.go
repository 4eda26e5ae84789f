package trove

import (
	"context"
	"errors"
	"fmt"
)

// The errors every trove store returns, grouped by when they happen. Returned errors
// wrap these with the object and the figures involved; test for them with errors.Is.

// Errors from using a handle.
var (
	// ErrInvalidRef: the ref is the zero Ref, was dropped, was decoded from bytes
	// without being bound to a store, or belongs to another store. Keep the Ref
	// returned by Put or Create (or Borrow a new one) and pass that.
	ErrInvalidRef = errors.New("trove: invalid ref (zero, dropped, unbound, or from another store); pass a live Ref from this store's Put, Create or Borrow")

	// ErrObjectFreed: the object was freed because every ref to it was dropped.
	// Keep a Ref alive for as long as the object is needed.
	ErrObjectFreed = errors.New("trove: object was freed after its last ref was dropped; keep a Ref alive while the object is needed")

	// ErrUnknownObject: the store has no record of the ID (it never existed here, or
	// was freed long ago). Check the ID, and that you are talking to the owner's node.
	ErrUnknownObject = errors.New("trove: unknown object ID; check the ID and that the object's owner still holds a ref")
)

// Errors from waiting on an object.
var (
	// ErrGetTimeout: the caller's context deadline passed while the object was still
	// pending. errors.Is(err, context.DeadlineExceeded) is also true. Give the
	// producer more time, or use Wait to poll.
	ErrGetTimeout error = getTimeoutError{}

	// ErrObjectAborted: the object's creator called Abort (or was closed) before
	// Seal; the value will never exist. Create and put it again.
	ErrObjectAborted = errors.New("trove: object was aborted by its creator before Seal; it will never have a value")

	// ErrObjectEvicted: this node's secondary copy of an object owned elsewhere
	// was evicted to make room. Fetch it again from its owner.
	ErrObjectEvicted = errors.New("trove: this node's copy of the object was evicted under memory pressure; fetch it again from its owner")

	// ErrSpillCorrupt: a spilled object could not be read back intact (its spill
	// file is damaged or truncated). The object's bytes are lost on this node;
	// the error names the object and the file.
	ErrSpillCorrupt = errors.New("trove: spilled object is damaged on disk")
)

// Errors from creating an object.
var (
	// ErrStoreFull: no room could be made for the object before the caller's
	// context ended. The wrapping StoreFullError says how full the store is. Release
	// views, drop refs, or raise the store's capacity.
	ErrStoreFull = errors.New("trove: object store full")

	// ErrOutOfDisk: the store was full and objects could not be spilled to make
	// room because the spill directories are full. The wrapping OutOfDiskError
	// has the figures. Free disk space, add spill directories, or drop refs.
	ErrOutOfDisk = errors.New("trove: out of disk space for spilling")

	// ErrObjectTooLarge: the object is larger than the store's whole capacity and
	// can never fit. Raise the capacity or split the object.
	ErrObjectTooLarge = errors.New("trove: object larger than the store's capacity")

	// ErrSealed: Seal or Abort on a builder that was already sealed or aborted, or
	// Bytes after that. A builder is used once.
	ErrSealed = errors.New("trove: builder already sealed or aborted; a builder is used once")
)

// Errors from a cluster of stores: another node was needed and could not help.
// Returned errors are a *NodeError naming the node and the object.
var (
	// ErrNodeUnreachable: a node did not answer: it could not be dialled, its
	// connection broke or went idle past the transport's timeout, or the caller's
	// deadline passed first (then context.DeadlineExceeded matches too). Check the
	// node is running and reachable at its address, or give it more time.
	ErrNodeUnreachable = errors.New("trove: node unreachable")

	// ErrOwnerDied: the object's owner node is gone, taking the object's metadata
	// with it, and this node has no copy. Recreate the object on a live node.
	ErrOwnerDied = errors.New("trove: the object's owner node died and this node has no copy")

	// ErrObjectLost: the object's owner is alive but no copy of the object can be
	// reached (every holder died or failed). Recreate the object.
	ErrObjectLost = errors.New("trove: object lost: its owner is alive but no copy can be reached")
)

// Errors from remote functions (package task).
var (
	// ErrTaskFailed: the remote function whose result the object is returned an
	// error or panicked (a write into a read-only argument is such a panic).
	// The wrapping error names the function and the node it ran on, and on the
	// caller's node unwraps to the cause (task.TaskError). Fix the function or
	// its arguments and call it again.
	ErrTaskFailed = errors.New("trove: the remote function that computes this object failed")
)

// Errors from the store itself.
var (
	// ErrClosed: the store has been closed. Every call after Close fails with it,
	// and Gets that were blocked when it closed wake with it. Open a new store.
	ErrClosed = errors.New("trove: store is closed")
)

// getTimeoutError is ErrGetTimeout: it also matches context.DeadlineExceeded, and is
// a timeout in the sense of net.Error.
type getTimeoutError struct{}

func (getTimeoutError) Error() string {
	return "trove: get timed out: the object is not ready on this node (its producer has not sealed it, or its bytes are still being fetched from another node, which may be slow or unreachable); give it more time, or use Wait"
}
func (getTimeoutError) Is(target error) bool { return target == context.DeadlineExceeded }
func (getTimeoutError) Timeout() bool        { return true }
func (getTimeoutError) Temporary() bool      { return true }

// StoreFullError explains an ErrStoreFull: how much was asked for and how full the
// store was when the caller's context ended. It matches ErrStoreFull and the
// context's error with errors.Is.
type StoreFullError struct {
	Requested     int64 // bytes asked for
	Capacity      int64 // the store's capacity in bytes
	Used          int64 // bytes held by objects (including allocator rounding)
	Pinned        int64 // bytes of objects pinned by views
	PinnedObjects int64 // number of objects pinned by views
	LargestFree   int64 // the largest allocation that would have succeeded
	Cause         error // the context's error
}

func (e *StoreFullError) Error() string {
	return fmt.Sprintf("trove: object store full: need %s, %s of %s used (%s pinned by views of %d objects, largest free run %s); release views, drop refs, or raise the capacity",
		HumanBytes(e.Requested), HumanBytes(e.Used), HumanBytes(e.Capacity),
		HumanBytes(e.Pinned), e.PinnedObjects, HumanBytes(e.LargestFree))
}

// Unwrap lets errors.Is match both ErrStoreFull and the context's error.
func (e *StoreFullError) Unwrap() []error { return []error{ErrStoreFull, e.Cause} }

// HumanBytes formats n bytes with a binary unit: "512 B", "1.5 KiB", "3.0 GiB".
func HumanBytes(n int64) string {
	const unit = 1024
	if n < unit && n > -unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit || m <= -unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// OutOfDiskError explains an ErrOutOfDisk: the store needed room, memory was full
// of objects that could have been spilled, and the spill directories had no space.
// It matches ErrOutOfDisk, ErrStoreFull's figures are in Full, and the spill
// error and the context's error match with errors.Is.
type OutOfDiskError struct {
	Full      StoreFullError
	SpillDirs []string
	Spilled   int64 // bytes already on disk
	Err       error // the spill error
}

// Error says each thing once: e.Err, the spiller's error, already says how to
// get disk space, so this adds only what it cannot.
func (e *OutOfDiskError) Error() string {
	return fmt.Sprintf("trove: object store full and spilling failed: need %s, %s of %s in memory, %s already spilled to %v: %v; or drop refs to make room in memory",
		HumanBytes(e.Full.Requested), HumanBytes(e.Full.Used), HumanBytes(e.Full.Capacity),
		HumanBytes(e.Spilled), e.SpillDirs, e.Err)
}

// Unwrap lets errors.Is match ErrOutOfDisk, the spill error and the context's error.
func (e *OutOfDiskError) Unwrap() []error { return []error{ErrOutOfDisk, e.Err, e.Full.Cause} }

// ContextError is for store implementations: the error of a wait that ctx ended,
// as every store reports it:
// ErrGetTimeout (which matches context.DeadlineExceeded) for a deadline, wrapping
// the deadline's cause if it has one; otherwise ctx's cause.
func ContextError(ctx context.Context) error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		if cause := context.Cause(ctx); cause != context.DeadlineExceeded {
			return fmt.Errorf("%w: %w", ErrGetTimeout, cause)
		}
		return ErrGetTimeout
	}
	return context.Cause(ctx)
}

// NodeError explains an ErrNodeUnreachable, ErrOwnerDied or ErrObjectLost: which
// node, at which address, and which object (zero if none was involved). It matches
// Kind and Err with errors.Is.
type NodeError struct {
	Kind   error    // ErrNodeUnreachable, ErrOwnerDied or ErrObjectLost
	Node   string   // the node's name; empty if not known yet (before a handshake)
	Addr   string   // the node's address
	Object ObjectID // the object the call was about; zero if none
	Op     string   // what was being done: "request", "pull", "dial"...
	Err    error    // the cause: a network error, a context's error; may be nil
}

func (e *NodeError) Error() string {
	node := e.Addr
	if e.Node != "" {
		node = fmt.Sprintf("%s (%s)", e.Node, e.Addr)
	}
	msg := fmt.Sprintf("%v: %s: node %s", e.Kind, e.Op, node)
	if !e.Object.IsZero() {
		msg += ", object " + e.Object.String()
	}
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	switch e.Kind {
	case ErrNodeUnreachable:
		msg += "; check the node is running and reachable at that address, or give the call a longer deadline"
	case ErrOwnerDied, ErrObjectLost:
		msg += "; put the object again on a live node"
	}
	return msg
}

// Unwrap lets errors.Is match Kind and the cause.
func (e *NodeError) Unwrap() []error {
	if e.Err == nil {
		return []error{e.Kind}
	}
	return []error{e.Kind, e.Err}
}

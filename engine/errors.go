package engine

import "errors"

// ErrCopyExists: CreateCopy of an object this store already has a copy (or the
// primary) of. Use the one that is there.
var ErrCopyExists = errors.New("engine: the store already holds a copy of this object")

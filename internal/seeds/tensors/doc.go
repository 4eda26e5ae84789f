// Package tensors is the seed's tensor tutorial ("Remote Objects" with torch
// tensors), section by section: 100 tensors created, put, fetched and
// transformed remotely; passing objects by value and by reference; the
// read-only fault; long-running tasks. Each step quotes the Python it stands
// for. examples/tensors runs them in order; the Chinese edition of the guided
// tour (internal/seeds/tour) has the same cells, and `trove demo` walks
// through them too.
//
// A torch.tensor is a zerocopy.Tensor here: shape, dtype and data, stored
// out-of-band by trove.PutValue (64-byte aligned) and read in place by
// trove.ViewValue, read-only, as Ray hands numpy arrays to tasks.
package tensors

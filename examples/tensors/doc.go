// Command tensors runs the seed's tensor tutorial ("Remote Objects" with
// torch tensors: create, put, fetch, transform remotely; passing objects by
// value and by reference; the read-only fault; long-running tasks), step by
// step on an in-process trove cluster of three nodes. The steps, each beside
// the Python it stands for, are in internal/seeds/tensors, which the tour's
// Chinese edition and `trove demo` run too.
//
// A torch.tensor is a zerocopy.Tensor there: shape, dtype and data, stored
// out-of-band by trove.PutValue (64-byte aligned) and read in place by
// trove.ViewValue, read-only, as Ray hands numpy arrays to tasks.
package main

package cluster

import (
	"context"

	"github.com/trovedb/trove"
)

// memberView is what a Node needs of its membership (membership.go's
// *membership satisfies it; the tests also run on a static one).
type memberView interface {
	Self() Member
	Lookup(id trove.NodeID) (Member, bool)
	Members() []Member
	// Watch calls fn for every change, in order, from one goroutine, never
	// with a lock held; cancel stops it.
	Watch(fn func(Event)) (cancel func())
	Leave(ctx context.Context) error
	Close() error
}

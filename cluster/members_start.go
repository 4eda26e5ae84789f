package cluster

import "context"

// startMembers starts a node's membership (membership.go). It is a variable
// so that a test can substitute a double; the package's tests run on the real
// membership.
var startMembers = func(ctx context.Context, cfg membershipConfig) (memberView, error) {
	return startMembership(ctx, cfg)
}

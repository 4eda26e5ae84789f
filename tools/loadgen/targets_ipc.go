package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/trovedb/trove/net/ipc"
)

// clientName is how loadgen's connections show in `trove memory`.
const clientName = "loadgen"

func defaultSocket() string { return ipc.DefaultSocket() }

// dialTarget connects to the daemon at path, retrying for up to timeout while it
// is not up yet.
func dialTarget(ctx context.Context, path string, timeout time.Duration) (openTarget, error) {
	dctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	c, err := ipc.DialContext(dctx, path, ipc.DialOptions{Name: clientName})
	if err != nil {
		return openTarget{}, fmt.Errorf("-socket %s: %w", path, err)
	}
	return openTarget{
		target: target{Name: path, Store: c},
		closer: c,
		state: func(ctx context.Context) StoreState {
			ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			// Drops and Releases reach the daemon in batches: send them all first.
			if err := c.Flush(ctx); err != nil {
				return StoreState{Target: path, Error: "flush: " + err.Error()}
			}
			st, err := c.Status(ctx)
			if err != nil {
				return StoreState{Target: path, Error: "status: " + err.Error()}
			}
			// The daemon's figures include other clients' objects: drained means
			// that this process's connection holds nothing there any more.
			s := engineState(path, st.Store)
			for _, ci := range st.Clients {
				if ci.PID == os.Getpid() {
					s.ClientRefs += int64(ci.Refs)
					s.ClientViews += int64(ci.Views + ci.Builders)
				}
			}
			drained := s.ClientRefs == 0 && s.ClientViews == 0
			s.Drained = &drained
			return s
		},
	}, nil
}

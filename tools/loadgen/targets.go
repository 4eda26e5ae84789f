package main

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/trovedb/trove"
	"github.com/trovedb/trove/engine"
)

// closingStore is what loadgen needs of a target: the store's method set, and
// Close at the end. Both *engine.Store and *ipc.Client are one.
type closingStore interface {
	trove.Store
	Close() error
}

// openTarget is a target with what loadgen does with it after the run.
type openTarget struct {
	target
	closer closingStore
	state  func(ctx context.Context) StoreState        // its figures after the run (refs all dropped)
	node   func(ctx context.Context) (string, error)   // daemons only: the node ID its objects' IDs carry
	info   func(ctx context.Context) (nodeInfo, error) // daemons and cluster nodes: name, pprof address, cluster counters (nil otherwise)
	// inProcess: the store runs in loadgen's process (-embedded, -embedded-cluster).
	inProcess bool
}

type targetSet []openTarget

func (ts targetSet) list() []target {
	out := make([]target, len(ts))
	for i, t := range ts {
		out[i] = t.target
	}
	return out
}

func (ts targetSet) states(ctx context.Context) []StoreState {
	var out []StoreState
	for _, t := range ts {
		if t.state != nil {
			out = append(out, t.state(ctx))
		}
	}
	return out
}

// openTargets dials every -socket and opens the embedded store if asked. The
// returned func closes them all (daemon clients first) and returns the errors.
func openTargets(ctx context.Context, o *options, stderr io.Writer) (targetSet, func() error, error) {
	var ts targetSet
	closeAll := func() error {
		var errs []error
		for _, t := range ts {
			if err := t.closer.Close(); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", t.Name, err))
			}
		}
		return errors.Join(errs...)
	}
	for _, path := range o.sockets {
		t, err := dialTarget(ctx, path, o.dialTimeout)
		if err != nil {
			closeAll()
			return nil, nil, err
		}
		ts = append(ts, t)
	}
	if o.load.Cluster && o.embeddedCluster == 0 {
		if err := checkClusterSockets(ctx, ts); err != nil {
			closeAll()
			return nil, nil, err
		}
	}
	if o.embeddedCluster > 0 {
		nodes, err := embeddedCluster(ctx, o, o.embeddedCluster, stderr)
		if err != nil {
			closeAll()
			return nil, nil, err
		}
		ts = append(ts, nodes...)
	}
	if o.embedded {
		t, err := embeddedTarget(engine.Config{
			Capacity:        int64(o.capacity),
			InlineThreshold: int64(o.inline),
			SpillDirs:       o.spillDirs,
		})
		if err != nil {
			closeAll()
			return nil, nil, err
		}
		ts = append(ts, t)
	}
	return ts, closeAll, nil
}

// embeddedTarget opens an in-process store. After the run, its figures must show
// it empty: loadgen dropped every ref and released every view.
func embeddedTarget(cfg engine.Config) (openTarget, error) {
	st, err := engine.Open(cfg)
	if err != nil {
		return openTarget{}, fmt.Errorf("-embedded: %w", err)
	}
	return openTarget{
		target:    target{Name: "embedded", Store: st},
		closer:    st,
		inProcess: true,
		state: func(context.Context) StoreState {
			st.WaitIdle() // an object dropped while being spilled is freed when the write ends
			s := engineState("embedded", st.Stats())
			drained := s.Objects == 0 && s.Used == 0 && s.PinnedObjects == 0 && s.Views == 0
			s.Drained = &drained
			return s
		},
	}, nil
}

func engineState(name string, s engine.Stats) StoreState {
	return StoreState{
		Target:        name,
		Objects:       s.Objects,
		Used:          s.Used,
		PinnedObjects: s.PinnedObjects,
		Views:         s.Views,
		Capacity:      s.Capacity,
		Spills:        s.Spills,
		SpillBytes:    s.SpillBytesTotal,
		Restores:      s.Restores,
		RestoreBytes:  s.RestoreBytesTotal,
		Fallbacks:     s.FallbackAllocations,
		FullWaits:     s.FullWaits,
	}
}

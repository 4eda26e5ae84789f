package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"

	"github.com/trovedb/trove/net/ipc"
)

// clientName is how loadgen's connections show in `trove memory`.
const clientName = "loadgen"

func defaultSocket() string { return ipc.DefaultSocket() }

// errNoDaemon marks a -socket nobody serves (exit status 1, reported at once).
var errNoDaemon = errors.New("no daemon")

// handshakeTimeout bounds the connection and handshake to a daemon that is
// there: one stopped (SIGSTOP) or wedged fails the run rather than hang it.
const handshakeTimeout = 5 * time.Second

// dialTarget connects to the daemon at path. With wait 0, a missing or stale
// socket fails at once; otherwise loadgen keeps dialling for up to wait, for a
// daemon that is still starting.
func dialTarget(ctx context.Context, path string, wait time.Duration) (openTarget, error) {
	if wait == 0 {
		if err := probeSocket(path, 0); err != nil {
			return openTarget{}, err
		}
	}
	dctx, cancel := context.WithTimeout(ctx, max(wait, handshakeTimeout))
	defer cancel()
	c, err := ipc.DialContext(dctx, path, ipc.DialOptions{Name: clientName})
	switch {
	case err == nil:
	case ctx.Err() != nil:
		return openTarget{}, fmt.Errorf("-socket %s: interrupted while connecting", path)
	case errors.Is(err, syscall.ENOENT), errors.Is(err, syscall.ECONNREFUSED):
		// DialContext retried until wait ran out: say what is wrong, once.
		if err := probeSocket(path, wait); err != nil {
			return openTarget{}, err
		}
		return openTarget{}, fmt.Errorf("-socket %s: no daemon answered within -dial-timeout %v", path, wait)
	case errors.Is(err, context.DeadlineExceeded):
		return openTarget{}, fmt.Errorf("-socket %s: the daemon did not answer within %v: is troved stopped (SIGSTOP) or overloaded?", path, max(wait, handshakeTimeout))
	default:
		return openTarget{}, fmt.Errorf("-socket %s: %w", path, err)
	}
	return openTarget{
		target: target{Name: path, Store: c},
		closer: c,
		state:  func(ctx context.Context) StoreState { return settledState(ctx, c, path) },
		node: func(ctx context.Context) (string, error) {
			ctx, cancel := context.WithTimeout(ctx, handshakeTimeout)
			defer cancel()
			st, err := c.Status(ctx)
			return st.Daemon.Node, err
		},
		info: func(ctx context.Context) (nodeInfo, error) {
			ctx, cancel := context.WithTimeout(ctx, handshakeTimeout)
			defer cancel()
			st, err := c.Status(ctx)
			if err != nil {
				return nodeInfo{}, fmt.Errorf("status: %w", err)
			}
			return daemonNodeInfo(st), nil
		},
	}, nil
}

// How long, and how often, loadgen reads a daemon's figures after the run
// for them to settle.
const (
	settleTimeout = 5 * time.Second
	settlePoll    = 100 * time.Millisecond
)

// settledState is a daemon's figures after the run. The daemon frees what
// loadgen dropped after it has replied (and an object dropped while being
// spilled once the write ends), so the figures are read until loadgen's
// connection holds nothing and two reads settlePoll apart agree, for up to
// settleTimeout. They include other clients' objects: Drained says only that
// loadgen's connection holds nothing there; Settled that the figures stopped
// changing.
func settledState(ctx context.Context, c *ipc.Client, path string) StoreState {
	ctx, cancel := context.WithTimeout(ctx, settleTimeout+handshakeTimeout)
	defer cancel()
	// Drops and Releases reach the daemon in batches: send them all first.
	if err := c.Flush(ctx); err != nil {
		return StoreState{Target: path, Error: "flush: " + err.Error()}
	}
	deadline := time.Now().Add(settleTimeout)
	var prev StoreState
	for i := 0; ; i++ {
		st, err := c.Status(ctx)
		if err != nil {
			return StoreState{Target: path, Error: "status: " + err.Error()}
		}
		s := engineState(path, st.Store)
		for _, ci := range st.Clients {
			if ci.PID == os.Getpid() {
				s.ClientRefs += int64(ci.Refs)
				s.ClientViews += int64(ci.Views + ci.Builders)
			}
		}
		drained := s.ClientRefs == 0 && s.ClientViews == 0
		settled := drained && i > 0 && sameFigures(prev, s)
		if settled || !time.Now().Before(deadline) {
			s.Drained, s.Settled = &drained, &settled
			return s
		}
		prev = s
		select {
		case <-time.After(settlePoll):
		case <-ctx.Done():
		}
	}
}

// sameFigures reports whether two reads of a store's figures agree on what
// is held in it.
func sameFigures(a, b StoreState) bool {
	return a.Objects == b.Objects && a.Used == b.Used && a.PinnedObjects == b.PinnedObjects && a.Views == b.Views &&
		a.ClientRefs == b.ClientRefs && a.ClientViews == b.ClientViews
}

// probeSocket connects to path once and hangs up (a daemon ignores a
// connection closed before its handshake), to tell a missing or stale socket
// from a live daemon without waiting. waited is the -dial-timeout already
// spent waiting for one, if any.
func probeSocket(path string, waited time.Duration) error {
	err := ipc.Probe(path, handshakeTimeout)
	var pe *ipc.ProbeError
	switch {
	case err == nil:
		return nil
	case !errors.As(err, &pe):
		return fmt.Errorf("-socket %s: %w", path, err)
	case !errors.Is(err, ipc.ErrNoDaemon):
		return fmt.Errorf("-socket %s: %s", path, pe.Reason)
	case waited > 0:
		return fmt.Errorf("%w at -socket %s after -dial-timeout %v: %s; start troved, or point -socket at a running daemon's socket",
			errNoDaemon, path, waited, pe.Reason)
	}
	return fmt.Errorf("%w at -socket %s: %s; start troved, point -socket at a running daemon's socket, "+
		"give -dial-timeout to wait for one that is starting, or use -embedded", errNoDaemon, path, pe.Reason)
}

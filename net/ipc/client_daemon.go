package ipc

import (
	"context"
	"fmt"
	"math"
	"runtime"

	"github.com/fxamacker/cbor/v2"

	"github.com/trovedb/trove"
)

// Ping is a round trip to the daemon that does nothing.
func (c *Client) Ping(ctx context.Context) error {
	_, _, err := c.roundTrip(ctx, opSync, nil, nil)
	return err
}

// Status returns the daemon's figures and clients.
func (c *Client) Status(ctx context.Context) (Status, error) {
	var st Status
	return st, c.cborCall(ctx, opStatus, &st)
}

// Memory lists every object the daemon holds and what holds it.
func (c *Client) Memory(ctx context.Context) (MemoryReport, error) {
	var rep MemoryReport
	return rep, c.cborCall(ctx, opMemory, &rep)
}

// ClusterMemory lists the objects of every member of the daemon's cluster,
// at most limit per node (the daemon must be a cluster node: troved -listen).
func (c *Client) ClusterMemory(ctx context.Context, limit int) (ClusterMemory, error) {
	var rep ClusterMemory
	if limit <= 0 || limit > math.MaxUint32 {
		return rep, fmt.Errorf("cluster memory: limit %d: want a positive number", limit)
	}
	return rep, c.cborCallBody(ctx, opClusterMemory, func(b []byte) []byte { return putU32(b, uint32(limit)) }, &rep)
}

func (c *Client) cborCall(ctx context.Context, o op, v any) error {
	return c.cborCallBody(ctx, o, nil, v)
}

func (c *Client) cborCallBody(ctx context.Context, o op, enc func([]byte) []byte, v any) error {
	r, _, err := c.roundTrip(ctx, o, nil, enc)
	if err != nil {
		return fmt.Errorf("%s: %w", o, err)
	}
	if err := cbor.Unmarshal(r.rest(), v); err != nil {
		return c.broken(err)
	}
	return nil
}

// Keep makes the daemon hold ref's object after this client is gone, until
// Unkeep: what `trove put` does so that a later `trove get` finds it.
func (c *Client) Keep(ctx context.Context, ref trove.Ref) error {
	defer runtime.KeepAlive(ref)
	id, err := c.idOf(ref)
	if err != nil {
		return fmt.Errorf("keep: %w", err)
	}
	_, _, err = c.roundTrip(ctx, opKeep, nil, func(b []byte) []byte { return putID(b, id) })
	return err
}

// Unkeep gives back the daemon's hold taken by Keep.
func (c *Client) Unkeep(ctx context.Context, id trove.ObjectID) error {
	_, _, err := c.roundTrip(ctx, opUnkeep, nil, func(b []byte) []byte { return putID(b, id) })
	return err
}

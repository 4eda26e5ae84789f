package ipc

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/trovedb/trove"
	"github.com/trovedb/trove/engine"
)

// slowOwner is an engine.Remote whose owner answers a registration only when
// the test says so (a slow or dying owner node), and then refuses it.
type slowOwner struct {
	entered chan struct{}
	answer  chan error
}

func (r *slowOwner) Fetch(context.Context, trove.ObjectID, *engine.Store) error {
	return trove.ErrOwnerDied
}

func (r *slowOwner) Borrowed(ctx context.Context, _ trove.ObjectID) error {
	r.entered <- struct{}{}
	select {
	case err := <-r.answer:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (r *slowOwner) Released(trove.ObjectID) {}

// TestBorrowStallsOnlyItsCaller: a Borrow of a foreign ID waiting on its
// owner holds no lock that status or the client's other requests need; the
// owner's error then crosses the socket as itself.
func TestBorrowStallsOnlyItsCaller(t *testing.T) {
	rem := &slowOwner{entered: make(chan struct{}, 1), answer: make(chan error, 1)}
	d := startDaemon(t, engine.Config{Remote: rem})
	c := d.dial(t)
	foreign := trove.NewObjectID(trove.NewNodeID(), 1)
	done := make(chan error, 1)
	go func() {
		_, err := c.Borrow(foreign)
		done <- err
	}()
	<-rem.entered
	// The borrowing client's connection is in the middle of its Borrow:
	// the daemon's status, which reads every connection, still answers.
	other := d.dial(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	st, err := other.Status(ctx)
	if err != nil {
		t.Fatalf("status while a Borrow waits on its owner: %v", err)
	}
	if len(st.Clients) != 2 {
		t.Fatalf("status lists %d clients, want 2", len(st.Clients))
	}
	rem.answer <- &trove.NodeError{Kind: trove.ErrOwnerDied, Node: "node-x", Object: foreign, Op: "borrow", Err: errors.New("it was declared dead")}
	if err := <-done; !errors.Is(err, trove.ErrOwnerDied) {
		t.Fatalf("Borrow whose owner died: %v, want ErrOwnerDied across the socket", err)
	}
	if st := d.st.Stats(); st.Objects != 0 || st.Used != 0 {
		t.Fatalf("store after a failed Borrow: %d objects, %d bytes used", st.Objects, st.Used)
	}
}

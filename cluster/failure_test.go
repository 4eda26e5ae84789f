package cluster

import (
	"bytes"
	"context"
	"errors"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/trovedb/trove"
	"github.com/trovedb/trove/engine"
)

func TestOwnerDies(t *testing.T) {
	ctx := context.Background()
	nodes := newCluster(t, 3, nil)
	a, b := nodes[0], nodes[1]
	small, large := pattern(1000, 7), pattern(3<<20, 8)
	rs, err := a.Put(ctx, small)
	if err != nil {
		t.Fatal(err)
	}
	rl, err := a.Put(ctx, large)
	if err != nil {
		t.Fatal(err)
	}
	bp, err := a.local.Create(ctx, 4<<20)
	if err != nil {
		t.Fatal(err)
	}
	var refs []trove.Ref
	for _, id := range []trove.ObjectID{rs.ID(), rl.ID(), bp.Ref().ID()} {
		r, err := b.Borrow(id)
		if err != nil {
			t.Fatal(err)
		}
		refs = append(refs, r)
	}
	bs, bl, bpend := refs[0], refs[1], refs[2]
	if got := getBytes(t, ctx, b, bs); !bytes.Equal(got, small) {
		t.Fatal("small differs")
	}
	pending := make(chan error, 1)
	go func() {
		_, err := b.Get(ctx, bpend)
		pending <- err
	}()
	// Wait until B is waiting on A's future, then A dies.
	if ready, _, err := b.Wait(ctx, []trove.Ref{bpend}, 0); err != nil || len(ready) != 0 {
		t.Fatalf("Wait: %v %v", ready, err)
	}
	crashDead(t, a, b)
	err = <-pending
	if !errors.Is(err, trove.ErrOwnerDied) || !strings.Contains(err.Error(), bpend.ID().String()) || !strings.Contains(err.Error(), "node-a") {
		t.Fatalf("Get of a pending object whose owner died: %v, want ErrOwnerDied naming the object and node-a", err)
	}
	if _, err := b.Get(ctx, bl); !errors.Is(err, trove.ErrOwnerDied) {
		t.Fatalf("Get of a never-fetched object whose owner died: %v, want ErrOwnerDied", err)
	}
	// The sealed copy B already holds still serves B's holders.
	if got := getBytes(t, ctx, b, bs); !bytes.Equal(got, small) {
		t.Fatal("small copy differs after the owner died")
	}
	for _, r := range refs {
		r.Drop()
	}
	rs.Drop()
	rl.Drop()
}

func TestBorrowerDies(t *testing.T) {
	ctx := context.Background()
	nodes := newCluster(t, 3, nil)
	a, b, c := nodes[0], nodes[1], nodes[2]
	r, err := a.Put(ctx, pattern(2<<20, 9))
	if err != nil {
		t.Fatal(err)
	}
	var keep []trove.Ref
	for _, n := range []*Node{b, c} {
		br, err := n.Borrow(r.ID())
		if err != nil {
			t.Fatal(err)
		}
		getBytes(t, ctx, n, br)
		keep = append(keep, br)
	}
	if n := a.own.borrowerCount(r.ID()); n != 2 {
		t.Fatalf("owner counts %d borrowing nodes, want 2", n)
	}
	crashDead(t, b, a, c) // B dies holding its ref
	deadline := time.Now().Add(20 * time.Second)
	for a.own.borrowerCount(r.ID()) != 1 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if n := a.own.borrowerCount(r.ID()); n != 1 {
		t.Fatalf("owner counts %d borrowing nodes after B died, want 1 (C)", n)
	}
	r.Drop()
	keep[1].Drop()
	runtime.KeepAlive(keep) // B's ref lived until B was gone
}

func TestHolderFailsMidPull(t *testing.T) {
	ctx := context.Background()
	nodes := newCluster(t, 3, nil)
	a, b, c := nodes[0], nodes[1], nodes[2]
	want := pattern(4<<20+5, 10)
	r, br := putBorrowed(t, a, b, want)
	getBytes(t, ctx, b, br)
	// Wait until A lists B as a holder, so that C's pull tries B first.
	awaitHolder(t, a, r.ID())
	var faults atomic.Int64
	fail := func(context.Context, trove.ObjectID) error {
		faults.Add(1)
		return errors.New("holder failing mid-chunk")
	}
	b.chunkFault.Store(&fail)
	cr, err := c.Borrow(r.ID())
	if err != nil {
		t.Fatal(err)
	}
	if got := getBytes(t, ctx, c, cr); !bytes.Equal(got, want) {
		t.Fatal("bytes pulled after a holder failed differ")
	}
	if faults.Load() == 0 {
		t.Fatal("C never pulled from B: the test proves nothing")
	}
	cr.Drop()
	// Every holder failing: ErrObjectLost, and the copy is not kept.
	a.chunkFault.Store(&fail)
	cr, err = c.Borrow(r.ID())
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for c.local.Stats().Objects != 1 && time.Now().Before(deadline) { // the first copy is freed
		time.Sleep(time.Millisecond)
	}
	if _, err := c.Get(ctx, cr); !errors.Is(err, trove.ErrObjectLost) {
		t.Fatalf("Get with every holder failing: %v, want ErrObjectLost", err)
	}
	a.chunkFault.Store(nil)
	b.chunkFault.Store(nil)
	if got := getBytes(t, ctx, c, cr); !bytes.Equal(got, want) {
		t.Fatal("bytes differ on a later Get")
	}
	for _, x := range []trove.Ref{cr, br, r} {
		x.Drop()
	}
}

func TestUnresponsivePeer(t *testing.T) {
	nodes := newCluster(t, 2, nil, func(i int, c *Config) { c.RequestTimeout = 300 * time.Millisecond })
	a, b := nodes[0], nodes[1]
	r, err := a.Put(context.Background(), []byte("x"))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Drop()
	// A is alive but its handler does not answer.
	stall := func(ctx context.Context) { <-ctx.Done() }
	a.stall.Store(&stall)
	_, err = b.Borrow(r.ID())
	a.stall.Store(nil)
	if !errors.Is(err, trove.ErrNodeUnreachable) {
		t.Fatalf("Borrow of an object owned by a node that does not answer: %v, want ErrNodeUnreachable", err)
	}
}

func TestCertificates(t *testing.T) {
	ctx := context.Background()
	dirs := makeCerts(t, "node-a", "node-b", "node-c")
	nodes := newCluster(t, 3, dirs)
	a, b := nodes[0], nodes[1]
	if a.Name() != "node-a" {
		t.Fatalf("name %q, want the certificate's", a.Name())
	}
	want := pattern(2<<20, 11)
	r, br := putBorrowed(t, a, b, want)
	if got := getBytes(t, ctx, b, br); !bytes.Equal(got, want) {
		t.Fatal("bytes differ")
	}
	br.Drop()
	r.Drop()

	// A node with another CA's certificate can neither join the cluster nor
	// pull from its members.
	other := makeCerts(t, "node-x")
	xcfg := Config{Store: engine.Config{Capacity: testCapacity}, CertsDir: other[0], RequestTimeout: 2 * time.Second, Join: []string{a.Addr()}}
	if x, err := Open(ctx, xcfg); err == nil {
		x.Close()
		t.Fatal("a node with another CA's certificate joined the cluster")
	}
	for _, m := range b.Members() {
		if m.Name == "node-x" {
			t.Fatalf("the outsider is listed as a member: %+v", m)
		}
	}
	xcfg.Join = nil
	x, err := Open(ctx, xcfg)
	if err != nil {
		t.Fatal(err)
	}
	defer x.Close()
	ra, err := a.Put(ctx, pattern(1<<20, 12))
	if err != nil {
		t.Fatal(err)
	}
	defer ra.Drop()
	dst := make([]byte, 1<<20)
	if err := x.tr.Pull(ctx, a.Addr(), ra.ID(), 0, dst); !errors.Is(err, trove.ErrNodeUnreachable) || !strings.Contains(err.Error(), "TLS") {
		t.Fatalf("pull by a node of another CA: %v, want ErrNodeUnreachable saying the TLS handshake was refused", err)
	}
}

func TestDropOrders(t *testing.T) {
	for _, tc := range []struct {
		name  string
		order []int // which node's refs go first: 0 = owner A, 1 = B, 2 = C
		get   bool  // B and C take copies before dropping
	}{
		{"owner first", []int{0, 1, 2}, true},
		{"borrowers first", []int{2, 1, 0}, true},
		{"interleaved", []int{1, 0, 2}, true},
		{"no copies", []int{0, 2, 1}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			nodes := newCluster(t, 3, nil)
			a := nodes[0]
			refs := make([][]trove.Ref, 3)
			for _, data := range [][]byte{pattern(10, 1), pattern(3<<20, 2)} {
				r, err := a.Put(ctx, data)
				if err != nil {
					t.Fatal(err)
				}
				refs[0] = append(refs[0], r)
				for i := 1; i < 3; i++ {
					br, err := nodes[i].Borrow(r.ID())
					if err != nil {
						t.Fatal(err)
					}
					if tc.get && !bytes.Equal(getBytes(t, ctx, nodes[i], br), data) {
						t.Fatal("bytes differ")
					}
					// A second handle on the same node: released together.
					br2, err := nodes[i].Borrow(r.ID())
					if err != nil {
						t.Fatal(err)
					}
					refs[i] = append(refs[i], br, br2)
				}
			}
			for _, i := range tc.order {
				for _, r := range refs[i] {
					r.Drop()
				}
			}
		})
	}
}

func TestHolderCrashesMidPull(t *testing.T) {
	ctx := context.Background()
	nodes := newCluster(t, 3, nil)
	a, b, c := nodes[0], nodes[1], nodes[2]
	want := pattern(6<<20+1, 13)
	r, br := putBorrowed(t, a, b, want)
	defer r.Drop()
	getBytes(t, ctx, b, br)
	awaitHolder(t, a, r.ID())
	// B dies while serving C's first chunk: its transport closes under the
	// pull (and the membership later declares it dead).
	var once sync.Once
	crashed := make(chan struct{})
	die := func(ctx context.Context, _ trove.ObjectID) error {
		once.Do(func() {
			go func() {
				b.crash(t)
				close(crashed)
			}()
		})
		<-ctx.Done() // the transport closing ends the handler's context
		return errors.New("holder died")
	}
	b.chunkFault.Store(&die)
	cr, err := c.Borrow(r.ID())
	if err != nil {
		t.Fatal(err)
	}
	defer cr.Drop()
	if got := getBytes(t, ctx, c, cr); !bytes.Equal(got, want) {
		t.Fatal("bytes pulled after the holder died differ")
	}
	defer runtime.KeepAlive(br) // B holds its copy until it dies
	select {
	case <-crashed:
	case <-time.After(20 * time.Second):
		t.Fatal("C never pulled from B (or B never finished crashing): the test proves nothing")
	}
}

// awaitHolder waits (a generous bound) until owner lists a node holding a copy
// of id: a copy's owner learns of it in a batched update after the Get.
func awaitHolder(t *testing.T, owner *Node, id trove.ObjectID) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for len(owner.own.holders(id, nil)) == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if len(owner.own.holders(id, nil)) == 0 {
		t.Fatalf("the owner never learnt of a copy of %s", id)
	}
}

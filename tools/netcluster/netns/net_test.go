package netns

import (
	"context"
	"errors"
	"os"
	"syscall"
	"testing"
	"time"
)

func TestParseRate(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
		ok   bool
	}{
		{"200mbit", 200e6, true},
		{"1gbit", 1e9, true},
		{"1.5Mbit", 1.5e6, true},
		{"64kbit", 64e3, true},
		{"10mbps", 80e6, true},
		{"100", 0, false},
		{"-1mbit", 0, false},
		{"fastmbit", 0, false},
		{"", 0, false},
	} {
		got, err := ParseRate(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("ParseRate(%q) = %d, %v; want %d, ok=%v", tc.in, got, err, tc.want, tc.ok)
		}
	}
}

// TestNetLossAndPartition makes two hosts and checks, by what a TCP dial from
// one to the other meets, that the link works (refused: nobody listens), that
// a loss of 1 drops everything and counts it, and that a partition cuts it.
func TestNetLossAndPartition(t *testing.T) {
	if err := Available(); err != nil {
		t.Skip(err)
	}
	ctx := context.Background()
	n, err := New(ctx, Config{Hosts: 2, Rate: "100mbit", Log: func(c string) { t.Log(c) }})
	if err != nil {
		if errors.Is(err, ErrUnavailable) {
			t.Skip(err)
		}
		t.Fatal(err)
	}
	defer func() {
		if err := n.Close(); err != nil {
			t.Error(err)
		}
		if left, err := Leftovers(); err != nil || len(left) > 0 {
			t.Errorf("left after Close: %v (%v)", left, err)
		}
	}()
	a, b := n.Hosts[0], n.Hosts[1]
	dial := func(wait time.Duration) error {
		dctx, cancel := context.WithTimeout(ctx, wait)
		defer cancel()
		c, err := a.DialTCP(dctx, b.IP+":9")
		if err == nil {
			c.Close()
		}
		return err
	}
	if err := dial(10 * time.Second); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("dial across a working link: %v, want connection refused", err)
	}
	if err := b.SetLoss(1); err != nil {
		if errors.Is(err, ErrUnavailable) {
			t.Skip(err)
		}
		t.Fatal(err)
	}
	// The dialer reports its ctx's deadline either way, depending on which
	// fires first: the ctx (context.DeadlineExceeded) or the socket's connect
	// deadline set from it (os.ErrDeadlineExceeded, "i/o timeout").
	if err := dial(time.Second); !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("dial with every packet dropped: %v, want the deadline", err)
	}
	d, err := b.Drops()
	if err != nil {
		t.Fatal(err)
	}
	if d.In == 0 {
		t.Fatalf("drops %+v: want the SYNs to b counted", d)
	}
	if err := b.SetLoss(0); err != nil {
		t.Fatal(err)
	}
	if err := dial(10 * time.Second); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("dial after the loss was removed: %v, want connection refused", err)
	}
	if err := b.SetRate(ctx, "10mbit"); err != nil {
		t.Fatal(err)
	}
	if err := b.Partition(ctx); err != nil {
		t.Fatal(err)
	}
	if err := dial(time.Second); err == nil || errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("dial to a partitioned host: %v, want no answer", err)
	}
	if err := b.Heal(ctx); err != nil {
		t.Fatal(err)
	}
	if err := dial(10 * time.Second); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("dial after Heal: %v, want connection refused", err)
	}
	if c, err := a.Counters(); err != nil || c.OutPackets == 0 {
		t.Fatalf("host a's counters %+v, %v: want packets sent", c, err)
	}
}

package trove_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/trovedb/trove"
)

func TestObjectIDRoundTrip(t *testing.T) {
	node := trove.NewNodeID()
	for _, seq := range []uint64{0, 1, 1 << 40, ^uint64(0)} {
		id := trove.NewObjectID(node, seq)
		if id.Node() != node || id.Seq() != seq {
			t.Fatalf("NewObjectID(%s, %d) = %s: node %s seq %d", node, seq, id, id.Node(), id.Seq())
		}
		back, err := trove.ParseObjectID(id.String())
		if err != nil || back != id {
			t.Fatalf("ParseObjectID(%q) = %s, %v", id.String(), back, err)
		}
	}
	if trove.NewNodeID() == node {
		t.Fatal("two random node IDs are equal")
	}
}

func TestParseObjectIDErrors(t *testing.T) {
	for _, s := range []string{"", "abc", strings.Repeat("0", 31), strings.Repeat("g", 32), strings.Repeat("0", 33)} {
		if _, err := trove.ParseObjectID(s); err == nil {
			t.Errorf("ParseObjectID(%q) succeeded", s)
		}
	}
}

func FuzzParseObjectID(f *testing.F) {
	f.Add(trove.NewObjectID(trove.NewNodeID(), 7).String())
	f.Add("")
	f.Add(strings.Repeat("zz", 16))
	f.Fuzz(func(t *testing.T, s string) {
		id, err := trove.ParseObjectID(s)
		if err != nil {
			return
		}
		if !strings.EqualFold(id.String(), s) {
			t.Fatalf("ParseObjectID(%q) = %s: does not round-trip", s, id)
		}
	})
}

func TestErrGetTimeoutMatchesDeadline(t *testing.T) {
	if !errors.Is(trove.ErrGetTimeout, context.DeadlineExceeded) {
		t.Fatal("ErrGetTimeout does not match context.DeadlineExceeded")
	}
	var te interface{ Timeout() bool }
	if !errors.As(trove.ErrGetTimeout, &te) || !te.Timeout() {
		t.Fatal("ErrGetTimeout is not a timeout error")
	}
	full := &trove.StoreFullError{Requested: 3 << 20, Capacity: 8 << 20, Used: 6 << 20, Cause: context.DeadlineExceeded}
	if !errors.Is(full, trove.ErrStoreFull) || !errors.Is(full, context.DeadlineExceeded) {
		t.Fatal("StoreFullError does not match ErrStoreFull and its cause")
	}
	if msg := full.Error(); !strings.Contains(msg, "6.0 MiB of 8.0 MiB") || !strings.Contains(msg, "raise the capacity") {
		t.Fatalf("StoreFullError message lacks figures or advice: %s", msg)
	}
}

func TestHumanBytes(t *testing.T) {
	for n, want := range map[int64]string{0: "0 B", 1023: "1023 B", 1024: "1.0 KiB", 1536: "1.5 KiB", 3 << 30: "3.0 GiB"} {
		if got := trove.HumanBytes(n); got != want {
			t.Errorf("HumanBytes(%d) = %q, want %q", n, got, want)
		}
	}
}

package seeds

import (
	"bytes"
	"context"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestRun: Run refuses a zero unit; it runs the steps in order on a cluster,
// GetRange and TimedOutCall check what they must (a call that ends before
// its timeout is an error, not a timeout), and it ends once every store is
// empty.
func TestRun(t *testing.T) {
	ctx := context.Background()
	if err := Run(ctx, &bytes.Buffer{}, Config{}); err == nil || !strings.Contains(err.Error(), "Config.Unit") {
		t.Errorf("Run with no unit: %v, want an error naming Config.Unit", err)
	}
	var out bytes.Buffer
	var order []string
	err := Run(ctx, &out, Config{Unit: time.Millisecond},
		Heading("# heading"),
		func(ctx context.Context, d *Driver) error {
			order = append(order, "range")
			got, err := GetRange(ctx, d, 3)
			if err != nil || !slices.Equal(got, []int{0, 1, 2}) {
				t.Errorf("GetRange(3) = %v, %v; want [0 1 2]", got, err)
			}
			return nil
		},
		func(ctx context.Context, d *Driver) error {
			order = append(order, "timeout")
			// A call that sleeps nothing, given a generous timeout: its Get
			// returns the value, which TimedOutCall must report.
			if r, err := TimedOutCall(ctx, d, 0, time.Minute); err == nil || !strings.Contains(err.Error(), "want trove.ErrGetTimeout") {
				r.Drop()
				t.Errorf("TimedOutCall of a call that finished: %v, want an error", err)
			}
			// (A call still running when its Get's context ends is every
			// example's timeout cell: their tests cover it.)
			return nil
		},
	)
	if err != nil {
		t.Fatalf("Run: %v\n%s", err, out.String())
	}
	if !slices.Equal(order, []string{"range", "timeout"}) {
		t.Errorf("steps ran %v", order)
	}
	if s := out.String(); !strings.HasPrefix(s, "# heading\n") || !strings.HasSuffix(s, "all refs dropped: every node's store is empty\n") {
		t.Errorf("output %q: want the heading first and the drained line last", s)
	}
}

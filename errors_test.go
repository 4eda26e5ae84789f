package trove_test

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/trovedb/trove"
)

// The cluster errors match their sentinel and their cause with errors.Is, and
// their message names the node and the object.
func TestNodeError(t *testing.T) {
	id := trove.NewObjectID(trove.NodeID{1}, 2)
	for _, tc := range []struct {
		err   *trove.NodeError
		match []error
		says  []string
	}{
		{&trove.NodeError{Kind: trove.ErrNodeUnreachable, Node: "n2", Addr: "10.0.0.2:7100", Object: id, Op: "pull", Err: trove.ErrGetTimeout},
			[]error{trove.ErrNodeUnreachable, trove.ErrGetTimeout, context.DeadlineExceeded},
			[]string{"node unreachable", "n2 (10.0.0.2:7100)", id.String(), "pull", "longer deadline"}},
		{&trove.NodeError{Kind: trove.ErrOwnerDied, Addr: "10.0.0.3:7100", Object: id, Op: "get"},
			[]error{trove.ErrOwnerDied}, []string{"owner node died", "node 10.0.0.3:7100", id.String(), "live node"}},
		{&trove.NodeError{Kind: trove.ErrObjectLost, Node: "n4", Addr: "a:1", Object: id, Op: "get", Err: io.ErrUnexpectedEOF},
			[]error{trove.ErrObjectLost, io.ErrUnexpectedEOF}, []string{"object lost", "n4 (a:1)", id.String()}},
	} {
		var err error = tc.err
		for _, m := range tc.match {
			if !errors.Is(err, m) {
				t.Errorf("%v does not match %v", err, m)
			}
		}
		for _, other := range []error{trove.ErrNodeUnreachable, trove.ErrOwnerDied, trove.ErrObjectLost} {
			if other != tc.err.Kind && errors.Is(err, other) {
				t.Errorf("%v matches %v too", err, other)
			}
		}
		for _, s := range tc.says {
			if !strings.Contains(err.Error(), s) {
				t.Errorf("%q does not say %q", err, s)
			}
		}
		var ne *trove.NodeError
		if !errors.As(err, &ne) || ne.Object != id {
			t.Errorf("errors.As(%v) = %v", err, ne)
		}
	}
}

package main

import (
	"testing"
	"time"

	"github.com/trovedb/trove/internal/seeds/seedtest"
)

// TestRun runs the guide with its sleeps shortened and checks each step's
// output; run checks every result and ends once every node's store is empty.
func TestRun(t *testing.T) {
	defer func(u time.Duration) { unit = u }(unit)
	unit = time.Second / 20
	s := seedtest.Output(t, run)
	seedtest.Contains(t, s,
		"ray.get(obj_ref) == 1\n",
		"ray.get([ray.put(i) for i in range(3)]) == [0 1 2]\n",
		"`get` timed out.\n",
		"values: [1 2 3]\n",
		"(print_via_capture on node-",
		"the inner object lived while the list did",
		"all refs dropped: every node's store is empty",
	)
	seedtest.Matches(t, s,
		`(?m)^\(echo on node-[123]\) 1 2 3$`,                  // by value: literal arguments
		`(?m)^\(echo on node-[123]\) 1 2 3$[\s\S]*^\(echo on`, // and by ref, resolved
		`(?m)^\(echo_and_get on node-[123]\) args: \[Ref\([0-9a-f]{32}\) Ref\([0-9a-f]{32}\) Ref\([0-9a-f]{32}\)\]$`,
		`(?m)^\(print_via_capture on node-[123]\) \[1 2 3\]$`,
		`node-3: ray.get\(ray.get\(object_ref_2\)\[0\]\) = 1 `,
	)
}

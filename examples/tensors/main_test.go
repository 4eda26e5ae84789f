package main

import (
	"testing"
	"time"

	"github.com/trovedb/trove/internal/seeds/seedtest"
)

// TestRun runs the tutorial with its sleeps shortened and checks each step's
// output; run checks every result (each transformed tensor against its
// original) and ends once every node's store is empty.
func TestRun(t *testing.T) {
	defer func(u time.Duration) { unit = u }(unit)
	unit = time.Second / 20
	s := seedtest.Output(t, run)
	seedtest.Contains(t, s,
		"val.size() = torch.Size([25 50]), val[0][:3] = [",
		"read in place: true\n",
		"results = ray.get(tensor_list_obj_ref): 100 tensors",
		"transformed_tensor_values = ray.get(transformed_object_list): 100 tensors (6312500 elements), each the original times an integer in [2, 10]",
		"errors.Is(err, task.ErrTaskFailed) = true\n",
		"current value of argument x: 25\n",
		"current value of argument x: [0 1 2 3 4 5 6 7 8 9]\n",
		"with arr = arr.copy(): arr[0] = 1, and the stored array is unchanged (arr[0] = 0)",
		"`get` timed out\n",
		"without a timeout, Get waits for it: 42",
		"all refs dropped: every node's store is empty",
	)
	seedtest.Matches(t, s,
		`tensor_list_obj_ref\[:2\], len\(tensor_list_obj_ref\) = \[Ref\([0-9a-f]{32}\) Ref\([0-9a-f]{32}\)\], 100`,
		`current value of argument x: map\[obj:Ref\([0-9a-f]{32}\)\]`,
		`current value of argument x: \[Ref\([0-9a-f]{32}\)\]`,
		`RayTaskError as e: task f failed on node-[123]: .*(fault|invalid memory address).* \(a write into memory mapped read-only\)`,
	)
}

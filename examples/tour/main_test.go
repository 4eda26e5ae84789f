package main

import (
	"strings"
	"testing"
	"time"

	"github.com/trovedb/trove/internal/seeds/seedtest"
)

// TestRun runs both editions of the tour with their sleeps shortened and
// checks each cell's output; run checks every result and ends once every
// node's store is empty.
func TestRun(t *testing.T) {
	defer func(u time.Duration) { unit = u }(unit)
	unit = time.Second / 20
	s := seedtest.Output(t, run)
	seedtest.Contains(t, s,
		"ray.get(obj_ref) = [23 42 93]\n",
		"ray.get(calc_ref) = 158\n",
		"ray.get([ray.put(i) for i in range(3)]) = [0 1 2]\n",
		"# A Guided Tour of Ray Core: Remote Objects (中文版)",
		"## 例1：远程对象\ntensor_list_obj_ref[:2], len(tensor_list_obj_ref) = [Ref(",
		"val.size() = torch.Size([25 50]), val[0][:3] = [",
		"results = ray.get(tensor_list_obj_ref): 100 tensors",
		"100 tensors (6312500 elements), each the original times an integer in [2, 10]",
		"current value of argument x: 25\n",
		"current value of argument x: [0 1 2 3 4 5 6 7 8 9]\n",
		"### 长时间运行的任务呢?",
		"all refs dropped: every node's store is empty",
	)
	if n := strings.Count(s, "`get` timed out\nwithout a timeout, Get waits for it: 42\n"); n != 2 {
		t.Errorf("%d timed-out Gets followed by the value, want 2 (one per edition):\n%s", n, s)
	}
	seedtest.Matches(t, s,
		`obj_ref = Ref\([0-9a-f]{32}\)\nWall time: `,
		`calc_ref = my_function.remote\(obj_ref\) = Ref\([0-9a-f]{32}\)`,
		`current value of argument x: map\[obj:Ref\([0-9a-f]{32}\)\]`,
		`current value of argument x: \[Ref\([0-9a-f]{32}\)\]`,
	)
}

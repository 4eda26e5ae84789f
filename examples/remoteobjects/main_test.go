package main

import (
	"strings"
	"testing"
	"time"

	"github.com/trovedb/trove/internal/seeds/seedtest"
)

// TestRun runs the program with its sleeps shortened and checks each cell's
// output. run itself checks every result and ends by waiting until every
// node's store is empty.
func TestRun(t *testing.T) {
	defer func(u time.Duration) { unit = u }(unit)
	unit = time.Second / 20
	s := seedtest.Output(t, run)
	seedtest.Contains(t, s,
		"ray.cluster_resources() = {CPU: 4, Custom: 2}, object store memory 768.0 MiB on 3 nodes",
		"result=1\n",
		"result=[0 1 2]\n",
		"`get` timed out.\n",
		"without a timeout, Get returns when long_running_function does",
		"ready_refs=[Ref(",
		"remaining_refs=[]\n",
		"all refs dropped: every node's store is empty",
	)
	if n := strings.Count(s, "Ref("); n != 10 {
		t.Errorf("ready_refs lists %d refs, want 10:\n%s", n, s)
	}
}

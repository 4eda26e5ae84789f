package main

import (
	"fmt"
	"regexp"
	"strings"
	"testing"

	"github.com/trovedb/trove/internal/batchinfer"
	"github.com/trovedb/trove/internal/seeds/seedtest"
)

// TestRun runs the batch inference on shards a hundredth of the seed's size
// and checks its output: a line per shard with its row count (run checks the
// tips against the shard itself, and that they were read in place), the model
// pulled once per other node that ran calls, and every store empty at the end.
func TestRun(t *testing.T) {
	defer func(r []int) { shardRows = r }(shardRows)
	shardRows = make([]int, len(batchinfer.SeedRows))
	total := 0
	for i, n := range batchinfer.SeedRows {
		shardRows[i] = n / 100
		total += shardRows[i]
	}
	s := seedtest.Output(t, run)
	for i, n := range shardRows {
		re := fmt.Sprintf(`(?m)^Predictions dataframe size: %d \| Total score for tips: \d+$`, n)
		if !regexp.MustCompile(re).MatchString(s) {
			t.Errorf("no line for shard %d (%d rows):\n%s", i, n, s)
		}
	}
	if n := strings.Count(s, "Predictions dataframe size:"); n != 12 {
		t.Errorf("%d prediction lines, want 12:\n%s", n, s)
	}
	seedtest.Matches(t, s,
		fmt.Sprintf(`input_files: 12 Parquet shards of NYC yellow-taxi trips \(19 columns, %d rows in all\)`, total),
		`model_ref = ray.put\(model\): Ref\([0-9a-f]{32}\), 781\.\d KiB`,
		`the model's 781\.\d KiB crossed the network (\d) times \(once to each other node that ran calls: (\d)\), for 12 calls`,
		`all refs dropped: every node's store is empty`,
	)
}

package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/trovedb/trove/internal/batchinfer"
	"github.com/trovedb/trove/internal/seeds"
	"github.com/trovedb/trove/internal/seeds/batchinference"
)

// shardRows are the shards' row counts: the seed's. The test shrinks them.
var shardRows = batchinfer.SeedRows

func main() {
	if err := run(context.Background(), os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "batchinference:", err)
		os.Exit(1)
	}
}

// run is the seed's cells (internal/seeds/batchinference has them with the
// Python they stand for), from ray.init to every ref dropped. The seed sleeps
// nowhere: the unit is only Run's requirement.
func run(ctx context.Context, w io.Writer) error {
	return seeds.Run(ctx, w, seeds.Config{Unit: time.Second, Log: os.Stderr}, batchinference.Step(shardRows))
}

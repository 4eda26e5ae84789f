package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/trovedb/trove/internal/seeds"
	"github.com/trovedb/trove/internal/seeds/tour"
)

// unit is the tour's second. The test shortens it.
var unit = time.Second / 4

func main() {
	if err := run(context.Background(), os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "tour:", err)
		os.Exit(1)
	}
}

// run is both editions' cells in order (internal/seeds/tour has the English
// ones with the Python they stand for; the Chinese edition's are the tensor
// tutorial's), from ray.init to ray.shutdown with every ref dropped.
func run(ctx context.Context, w io.Writer) error {
	steps := []seeds.Step{
		tour.Title,
		tour.RemoteObjects, // ## Remote Objects example
		tour.GetList,       // ray.get([ray.put(i) for i in range(3)])
		tour.LongRunning,   // long_running_function, ray.get(obj_ref, timeout=6)
	}
	steps = append(steps, tour.Chinese...)
	return seeds.Run(ctx, w, seeds.Config{Unit: unit, Log: os.Stderr}, steps...)
}

package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/trovedb/trove/internal/seeds"
	"github.com/trovedb/trove/internal/seeds/tensors"
)

// unit is the tutorial's second, scaled: its 10 s task and 6 s timeout are
// 2.5 s and 1.5 s here. The test shortens it.
var unit = time.Second / 4

func main() {
	if err := run(context.Background(), os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "tensors:", err)
		os.Exit(1)
	}
}

// run is the tutorial's sections in order (internal/seeds/tensors has each
// with the Python it stands for), from ray.init to every ref dropped.
func run(ctx context.Context, w io.Writer) error {
	return seeds.Run(ctx, w, seeds.Config{Unit: unit, Log: os.Stderr},
		tensors.Tensors,         // create, put, get and transform 100 tensors
		tensors.PassByValue,     // ### Pass by value
		tensors.PassByReference, // ### Pass by reference
		tensors.ReadOnly,        // Fixing "assignment destination is read-only"
		tensors.LongRunning,     // ## Long-Running Tasks
	)
}

package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/trovedb/trove/internal/seeds"
	"github.com/trovedb/trove/internal/seeds/objects"
)

// unit is the guide's second. The test shortens it.
var unit = time.Second / 4

func main() {
	if err := run(context.Background(), os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "objects:", err)
		os.Exit(1)
	}
}

// run is the guide's sections in order (internal/seeds/objects has each with
// the Python it stands for), from ray.init to every ref dropped.
func run(ctx context.Context, w io.Writer) error {
	return seeds.Run(ctx, w, seeds.Config{Unit: unit, Log: os.Stderr},
		objects.FetchingObjectData,     // ## Fetching Object Data
		objects.Timeout,                // a get with a timeout
		objects.PassingObjectArguments, // ## Passing Object Arguments
		objects.ClosureCapture,         // ## Closure Capture of Objects
		objects.Nested,                 // ## Nested Objects
	)
}

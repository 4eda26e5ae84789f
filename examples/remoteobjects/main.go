package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/trovedb/trove/internal/seeds"
	"github.com/trovedb/trove/internal/seeds/remoteobjects"
)

// unit is the seed's second. The test shortens it.
var unit = time.Second / 4

func main() {
	if err := run(context.Background(), os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "remoteobjects:", err)
		os.Exit(1)
	}
}

// run is the seed's cells in order (internal/seeds/remoteobjects has each
// with the Python it stands for), from ray.init to every ref dropped.
func run(ctx context.Context, w io.Writer) error {
	return seeds.Run(ctx, w, seeds.Config{Unit: unit, Tasks: remoteobjects.Tasks, Log: os.Stderr},
		remoteobjects.ClusterResources,       // ray.cluster_resources()
		remoteobjects.SingleRef,              // ## Single object refs
		remoteobjects.MultipleRefs,           // ## Multiple object refs
		remoteobjects.TimingOut,              // ## Timing out
		remoteobjects.WaitingWithoutBlocking, // ## Waiting without blocking
	)
}

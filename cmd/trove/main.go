package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
)

func main() {
	if err := run(context.Background(), os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "trove:", err)
		os.Exit(1)
	}
}

const usage = `usage: trove <command> [flags]

commands:
  demo   walk through Ray's remote-objects tutorial on an embedded store
`

func run(ctx context.Context, args []string, out io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(out, usage)
		return fmt.Errorf("no command given")
	}
	switch args[0] {
	case "demo":
		fs := flag.NewFlagSet("demo", flag.ContinueOnError)
		fs.SetOutput(out)
		capacity := fs.Int64("capacity", 256<<20, "store capacity in bytes")
		quick := fs.Bool("quick", false, "shorten the waits (for tests)")
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		return demo(ctx, out, demoOptions{capacity: *capacity, quick: *quick})
	case "help", "-h", "--help":
		fmt.Fprint(out, usage)
		return nil
	default:
		fmt.Fprint(out, usage)
		return fmt.Errorf("unknown command %q", args[0])
	}
}

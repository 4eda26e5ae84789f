package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
)

func main() {
	if err := runIO(context.Background(), os.Args[1:], os.Stdin, os.Stdout); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return
		}
		fmt.Fprintln(os.Stderr, "trove:", err)
		os.Exit(1)
	}
}

const usage = `usage: trove <command> [flags]

commands:
  demo     walk through Ray's remote-objects tutorial on an embedded store
  status   the daemon's memory, objects, spilling and clients
  memory   every object and what holds it, like ray memory
  put      store a file (or - for stdin) in the daemon; prints its object ID
  get      write an object's bytes to stdout, or to -o FILE
  drop     let the daemon free an object trove put stored

Every command but demo talks to troved on -socket (default $TROVE_SOCKET, else
$XDG_RUNTIME_DIR/trove/troved.sock, else /tmp/trove-$UID/troved.sock) and
prints JSON with --json. Run trove <command> -h for a command's flags.
`

// run runs the command in args, writing to out; commands that read stdin get none.
func run(ctx context.Context, args []string, out io.Writer) error {
	return runIO(ctx, args, eofReader{}, out)
}

type eofReader struct{}

func (eofReader) Read([]byte) (int, error) { return 0, io.EOF }

func runIO(ctx context.Context, args []string, stdin io.Reader, out io.Writer) error {
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
	case "status":
		return cmdStatus(ctx, args[1:], out)
	case "memory":
		return cmdMemory(ctx, args[1:], out)
	case "put":
		return cmdPut(ctx, args[1:], stdin, out)
	case "get":
		return cmdGet(ctx, args[1:], out)
	case "drop":
		return cmdDrop(ctx, args[1:], out)
	case "help", "-h", "--help":
		fmt.Fprint(out, usage)
		return nil
	default:
		fmt.Fprint(out, usage)
		return fmt.Errorf("unknown command %q", args[0])
	}
}

package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/trovedb/trove/internal/version"
)

// Exit statuses, the same for trove, troved and loadgen (docs/cli.md).
const (
	exitOK    = 0
	exitFail  = 1 // the command failed: no daemon, no such object, a file error...
	exitUsage = 2 // bad flags or arguments: nothing was done
)

func main() {
	os.Exit(runMain(context.Background(), os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

const usage = `usage: trove <command> [flags]

commands:
  demo     walk through Ray's remote-objects tutorial on an in-process cluster of three nodes
  status   the daemon's memory, objects, spilling and clients
  memory   every object and what holds it, like ray memory
  put      store a file (or - for stdin) in the daemon; prints its object ID
  get      write an object's bytes to stdout, or to -o FILE
  drop     let the daemon free an object trove put stored
  cert     make a cluster's credentials: create-ca, create-node (no daemon needed)
  version  print trove's version (the release's, or the build's VCS revision)

Every command but demo, cert and version talks to troved on -socket (default $TROVE_SOCKET, else
$XDG_RUNTIME_DIR/trove/troved.sock, else /tmp/trove-$UID/troved.sock) and
prints JSON with --json, errors included. Run trove <command> -h for a
command's flags. Exit status: 0 done, 1 failed, 2 bad flags or arguments.
`

// runMain runs the command in args and returns its exit status. An error is
// printed to stderr as "trove: ..."; with --json it is also printed to stdout
// as a JSON object (errorJSON), so that a script reading stdout sees it.
func runMain(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	err := runIO(ctx, args, stdin, stdout)
	if err == nil || errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	code := exitFail
	var ue *usageError
	if errors.As(err, &ue) {
		code = exitUsage
	}
	if wantsJSON(args) {
		cmd := ""
		if len(args) > 0 {
			cmd = args[0]
		}
		_ = printJSON(stdout, errorJSON{Command: cmd, Error: err.Error(), Kind: errorKind(err), ExitCode: code})
	}
	fmt.Fprintln(stderr, "trove:", err)
	return code
}

// wantsJSON reports whether args ask for JSON output, even if they do not
// parse: an error about a bad flag is then JSON too.
func wantsJSON(args []string) bool {
	for _, a := range args {
		if a == "--" {
			return false
		}
		name, val, hasVal := strings.Cut(strings.TrimPrefix(strings.TrimPrefix(a, "-"), "-"), "=")
		if !strings.HasPrefix(a, "-") || name != "json" {
			continue
		}
		if b, err := strconv.ParseBool(val); !hasVal || err == nil && b {
			return true
		}
	}
	return false
}

// usageError is a bad flag or argument: the command did nothing (exit 2).
type usageError struct{ err error }

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error {
	return &usageError{fmt.Errorf(format, args...)}
}

// run runs the command in args, writing to out; commands that read stdin get none.
func run(ctx context.Context, args []string, out io.Writer) error {
	return runIO(ctx, args, eofReader{}, out)
}

type eofReader struct{}

func (eofReader) Read([]byte) (int, error) { return 0, io.EOF }

func runIO(ctx context.Context, args []string, stdin io.Reader, out io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(out, usage)
		return usagef("no command given")
	}
	switch args[0] {
	case "demo":
		return cmdDemo(ctx, args[1:], out)
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
	case "cert":
		return cmdCert(ctx, args[1:], out)
	case "version", "-version", "--version":
		if len(args) > 1 {
			return usagef("trove version takes no arguments, got %q", args[1])
		}
		fmt.Fprintln(out, "trove", version.String())
		return nil
	case "help", "-h", "-help", "--help":
		fmt.Fprint(out, usage)
		return nil
	default:
		return usagef("unknown command %q: want demo, status, memory, put, get, drop, cert or version (trove help lists them)", args[0])
	}
}

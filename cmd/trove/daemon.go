package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"syscall"
	"time"

	"github.com/trovedb/trove/net/ipc"
)

// dialTimeout bounds a connection and its handshake: a daemon that is stopped
// (SIGSTOP) or wedged makes the command fail rather than hang.
const dialTimeout = 3 * time.Second

// daemonFlags are the flags of every subcommand that talks to the daemon.
type daemonFlags struct {
	socket string
	json   bool
}

// newDaemonFlagSet returns the flag set of subcommand name with -socket and
// -json (Go's flag package accepts --json as well). usage is the synopsis.
func newDaemonFlagSet(name, usage string, out io.Writer) (*flag.FlagSet, *daemonFlags) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(out)
	fs.Usage = func() {
		fmt.Fprintf(out, "usage: trove %s\n\nflags:\n", usage)
		fs.PrintDefaults()
	}
	df := &daemonFlags{}
	fs.StringVar(&df.socket, "socket", ipc.DefaultSocket(), "the daemon's unix socket ($TROVE_SOCKET)")
	fs.BoolVar(&df.json, "json", false, "print JSON instead of text")
	return fs, df
}

// parseInterspersed parses args allowing flags after positional arguments
// (`trove get ID -o FILE`), and returns the positional ones. "--" ends flags.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		if used := len(args) - len(rest); used > 0 && args[used-1] == "--" {
			return append(pos, rest...), nil
		}
		pos, args = append(pos, rest[0]), rest[1:]
	}
}

// dial connects to the daemon on socket as "trove <cmd>", with an error that
// says what to do when there is none.
func dial(ctx context.Context, socket, cmd string) (*ipc.Client, error) {
	noDaemon := func(err error) error {
		return fmt.Errorf("no daemon at %s: start troved or set TROVE_SOCKET (%w)", socket, err)
	}
	if _, err := os.Stat(socket); errors.Is(err, fs.ErrNotExist) {
		return nil, noDaemon(err)
	}
	dctx, cancel := context.WithTimeout(ctx, dialTimeout)
	defer cancel()
	c, err := ipc.DialContext(dctx, socket, ipc.DialOptions{Name: "trove " + cmd})
	switch {
	case err == nil:
		return c, nil
	case errors.Is(err, syscall.ENOENT), errors.Is(err, syscall.ECONNREFUSED):
		return nil, noDaemon(err)
	case errors.Is(err, context.DeadlineExceeded):
		return nil, fmt.Errorf("the daemon at %s did not answer within %v; is troved stopped or overloaded? (%w)", socket, dialTimeout, err)
	}
	return nil, err
}

func printJSON(out io.Writer, v any) error {
	enc := json.NewEncoder(out)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

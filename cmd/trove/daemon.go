package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"time"

	"github.com/trovedb/trove"
	"github.com/trovedb/trove/net/ipc"
)

// dialTimeout bounds a connection and its handshake: a daemon that is stopped
// (SIGSTOP) or wedged makes the command fail rather than hang.
const dialTimeout = 3 * time.Second

// command is one subcommand's flag set and synopsis. Every subcommand's help
// has the same shape: "usage: trove SYNOPSIS", a sentence, then the flags.
type command struct {
	fs       *flag.FlagSet
	name     string
	synopsis string // after "trove "
	about    string
}

// newCommand returns the flag set of subcommand name. Parse errors are
// returned, not printed: the caller prints one line (and JSON with --json).
func newCommand(name, synopsis, about string) *command {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	return &command{fs: fs, name: name, synopsis: synopsis, about: about}
}

func (c *command) printUsage(out io.Writer) {
	fmt.Fprintf(out, "usage: trove %s\n\n%s\n\nflags:\n", c.synopsis, c.about)
	c.fs.SetOutput(out)
	c.fs.PrintDefaults()
	c.fs.SetOutput(io.Discard)
}

// parse parses args allowing flags after positional arguments (`trove get ID
// -o FILE`) and returns the positional ones; "--" ends flags. -h prints the
// help to out and returns flag.ErrHelp; a bad flag is a usageError.
func (c *command) parse(args []string, out io.Writer) ([]string, error) {
	pos, err := parseInterspersed(c.fs, args)
	if errors.Is(err, flag.ErrHelp) {
		c.printUsage(out)
		return nil, err
	}
	if err != nil {
		return nil, usagef("%s: %v (trove %s -h lists the flags)", c.name, err, c.name)
	}
	return pos, nil
}

// daemonFlags are the flags of every subcommand that talks to the daemon.
type daemonFlags struct {
	socket string
	json   bool
}

// newDaemonCommand is newCommand with -socket and -json (Go's flag package
// accepts --json as well).
func newDaemonCommand(name, synopsis, about string) (*command, *daemonFlags) {
	c := newCommand(name, synopsis, about)
	df := &daemonFlags{}
	c.fs.StringVar(&df.socket, "socket", ipc.DefaultSocket(), "the daemon's unix socket `PATH` ($TROVE_SOCKET)")
	c.fs.BoolVar(&df.json, "json", false, "print JSON instead of text, errors included (schemas in docs/cli.md)")
	return c, df
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

// Errors of dial, for errorKind (the messages say more).
var (
	errNoDaemon     = errors.New("no daemon")
	errUnresponsive = errors.New("daemon not answering")
)

// dial connects to the daemon on socket as "trove <cmd>", with an error that
// says what to do when there is none. A missing or stale socket is reported at
// once: ipc.DialContext would keep retrying it until dialTimeout, for a daemon
// that is starting, which a command run by hand does not wait for.
func dial(ctx context.Context, socket, cmd string) (*ipc.Client, error) {
	if err := probeSocket(socket); err != nil {
		return nil, err
	}
	dctx, cancel := context.WithTimeout(ctx, dialTimeout)
	defer cancel()
	c, err := ipc.DialContext(dctx, socket, ipc.DialOptions{Name: "trove " + cmd})
	switch {
	case err == nil:
		return c, nil
	case errors.Is(err, context.DeadlineExceeded):
		return nil, explain(errUnresponsive, "the daemon at %s did not answer within %v: is troved stopped (SIGSTOP) or overloaded?", socket, dialTimeout)
	}
	return nil, fmt.Errorf("connecting to the daemon at %s: %w", socket, err)
}

// probeSocket connects to socket once and hangs up (the daemon ignores a
// connection closed before its handshake), to tell a missing or stale socket
// from a live daemon without waiting.
func probeSocket(socket string) error {
	err := ipc.Probe(socket, dialTimeout)
	var pe *ipc.ProbeError
	switch {
	case err == nil:
		return nil
	case errors.Is(err, fs.ErrNotExist):
		return explain(errNoDaemon, "no daemon at %s: the socket does not exist; start troved, or point -socket (or $TROVE_SOCKET) at a running daemon's socket", socket)
	case errors.Is(err, ipc.ErrNoDaemon):
		return explain(errNoDaemon, "no daemon at %s: nothing listens on the socket (a daemon that exited left it behind); start troved, which replaces it", socket)
	case errors.As(err, &pe):
		return explain(err, "cannot connect to the daemon at %s: %s", socket, pe.Reason)
	}
	return fmt.Errorf("cannot connect to the daemon at %s: %w", socket, err)
}

// explained is an error whose message says what happened once, in the CLI's
// words, while errors.Is and errors.As still see the cause.
type explained struct {
	msg   string
	cause error
}

func (e *explained) Error() string { return e.msg }
func (e *explained) Unwrap() error { return e.cause }

func explain(cause error, format string, args ...any) error {
	return &explained{msg: fmt.Sprintf(format, args...), cause: cause}
}

func printJSON(out io.Writer, v any) error {
	enc := json.NewEncoder(out)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// errorJSON is what a failed command prints on stdout with --json.
type errorJSON struct {
	Command  string `json:"command"`   // the subcommand, as given
	Error    string `json:"error"`     // the message, as printed on stderr
	Kind     string `json:"kind"`      // one of errorKind's words
	ExitCode int    `json:"exit_code"` // the process's exit status
}

// errorKind is a word for the class of err, for scripts (docs/cli.md).
func errorKind(err error) string {
	var ue *usageError
	var pe *fs.PathError
	switch {
	case errors.As(err, &ue):
		return "usage"
	case errors.Is(err, errNoDaemon):
		return "no_daemon"
	case errors.Is(err, errUnresponsive):
		return "daemon_not_answering"
	case errors.Is(err, trove.ErrUnknownObject), errors.Is(err, trove.ErrObjectFreed):
		return "unknown_object"
	case errors.Is(err, trove.ErrOutOfDisk):
		return "out_of_disk"
	case errors.Is(err, trove.ErrStoreFull):
		return "store_full"
	case errors.Is(err, trove.ErrGetTimeout), errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	case errors.Is(err, ipc.ErrDisconnected), errors.Is(err, ipc.ErrServerClosed):
		return "disconnected"
	case errors.As(err, &pe):
		return "file"
	}
	return "other"
}

package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"golang.org/x/sys/unix"
)

func main() {
	ctx, cancel := context.WithCancelCause(context.Background())
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		sig := <-sigs
		cancel(fmt.Errorf("received %s", signalName(sig)))
		sig = <-sigs
		fmt.Fprintf(os.Stderr, "troved: second signal (%s) during shutdown: exiting now, without finishing it\n", signalName(sig))
		os.Exit(1)
	}()
	err := run(ctx, os.Args[1:], os.LookupEnv, os.Stdout, os.Stderr)
	code := exitStatus(err)
	if code != exitOK {
		fmt.Fprintln(os.Stderr, "troved:", err)
	}
	os.Exit(code)
}

// Exit statuses, the same for trove, troved and loadgen (docs/cli.md).
const (
	exitOK    = 0 // a clean shutdown (SIGTERM, SIGINT), or -h
	exitFail  = 1 // the daemon could not start, or failed while serving
	exitUsage = 2 // bad flags or settings: nothing was started
)

// exitStatus is the exit status of run's error.
func exitStatus(err error) int {
	var ue *usageError
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return exitOK
	case errors.As(err, &ue):
		return exitUsage
	}
	return exitFail
}

// usageError is a bad flag, environment variable or config file setting.
type usageError struct{ err error }

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

func signalName(sig os.Signal) string {
	if s, ok := sig.(syscall.Signal); ok {
		if name := unix.SignalName(s); name != "" {
			return name
		}
	}
	return sig.String()
}

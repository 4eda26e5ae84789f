package ipc

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"syscall"
	"time"
)

// ErrNoDaemon is what Probe reports, wrapped in a *ProbeError, when nothing
// serves the socket: it does not exist, or it is left over from a daemon that
// exited.
var ErrNoDaemon = errors.New("ipc: no daemon")

// ProbeError says why Probe found no daemon it could talk to.
type ProbeError struct {
	Path string
	// Reason is the cause in words, e.g. "the socket does not exist"; callers
	// put it in their own message, next to the knob their user has.
	Reason string
	Err    error // the dial's error: fs.ErrNotExist, ECONNREFUSED, fs.ErrPermission, ...
}

func (e *ProbeError) Error() string { return fmt.Sprintf("ipc: %s: %s", e.Path, e.Reason) }

// Unwrap lets errors.Is match the dial's error and, for a missing or stale
// socket, ErrNoDaemon.
func (e *ProbeError) Unwrap() []error {
	if errors.Is(e.Err, fs.ErrNotExist) || errors.Is(e.Err, syscall.ECONNREFUSED) {
		return []error{ErrNoDaemon, e.Err}
	}
	return []error{e.Err}
}

// Probe connects to the socket at path once and hangs up (a daemon ignores a
// connection closed before its handshake). It tells a missing or stale socket
// from a live daemon at once, where DialContext keeps retrying until its
// context ends, for a daemon that is starting. It returns nil if something
// accepts connections at path, or a *ProbeError.
func Probe(path string, timeout time.Duration) error {
	nc, err := net.DialTimeout("unix", path, timeout)
	if err == nil {
		nc.Close()
		return nil
	}
	reason := err.Error()
	switch {
	case errors.Is(err, fs.ErrNotExist):
		reason = "the socket does not exist"
	case errors.Is(err, syscall.ECONNREFUSED):
		reason = "nothing listens on the socket (a daemon that exited left it behind)"
	case errors.Is(err, fs.ErrPermission):
		reason = "permission denied; the socket is its owner's only (mode 0600): run as the user that runs troved"
	}
	return &ProbeError{Path: path, Reason: reason, Err: err}
}

package quic

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"

	quicgo "github.com/quic-go/quic-go"

	"github.com/trovedb/trove"
)

// status is a reply's first byte: 0 for success, else which trove error the
// handler's error matched, so the caller can test the reply with errors.Is as if
// the call had been local.
type status uint8

const (
	statusOK status = iota
	statusError
	statusUnknownObject
	statusObjectFreed
	statusObjectEvicted
	statusObjectAborted
	statusObjectLost
	statusOwnerDied
	statusNodeUnreachable
	statusGetTimeout
	statusStoreFull
	statusObjectTooLarge
	statusClosed
	statusTooLarge
	statusTaskFailed
	statusBusy
	statusCount
)

// statusErrors maps a status to the sentinel it stands for; statusError
// stands for none, statusTooLarge and statusBusy for this package's.
var statusErrors = [statusCount]error{
	statusUnknownObject:   trove.ErrUnknownObject,
	statusObjectFreed:     trove.ErrObjectFreed,
	statusObjectEvicted:   trove.ErrObjectEvicted,
	statusObjectAborted:   trove.ErrObjectAborted,
	statusObjectLost:      trove.ErrObjectLost,
	statusOwnerDied:       trove.ErrOwnerDied,
	statusNodeUnreachable: trove.ErrNodeUnreachable,
	statusGetTimeout:      trove.ErrGetTimeout,
	statusStoreFull:       trove.ErrStoreFull,
	statusObjectTooLarge:  trove.ErrObjectTooLarge,
	statusClosed:          trove.ErrClosed,
	statusTooLarge:        ErrTooLarge,
	statusTaskFailed:      trove.ErrTaskFailed,
	statusBusy:            ErrBusy,
}

// ErrBusy: a holder refused a chunk because it is serving as many as it
// takes at once and as many more are waiting (the cluster's
// Config.ServeSlots and ServeQueue). Ask another holder, or this one again
// shortly; nothing is wrong with either end.
var ErrBusy = errors.New("quic: the holder is serving as many chunks as it takes; ask another holder or retry shortly")

// ErrTooLarge: a request, reply or chunk exceeds the bound of the node that
// refused it (Config.MaxMessage or Config.MaxChunk). Raise the bound on every
// node, or send less at once.
var ErrTooLarge = errors.New("quic: message or chunk exceeds the peer's bound (Config.MaxMessage, Config.MaxChunk)")

// ErrHandshakeRefused: one side of a connection refused the other's
// certificate (not from the cluster's CA, or no certificate at all), so no
// call to that node can succeed until the credentials are fixed. A dial's
// *trove.NodeError wraps it.
var ErrHandshakeRefused = errors.New("TLS handshake refused")

// statusOf is the status a handler's error is sent with.
func statusOf(err error) status {
	for st := statusUnknownObject; st < statusCount; st++ {
		if errors.Is(err, statusErrors[st]) {
			return st
		}
	}
	return statusError
}

// RemoteError is a handler's error as its caller sees it: the peer, what was
// asked, and the handler's message. It matches, with errors.Is, the trove error
// the handler's error matched (trove.ErrUnknownObject, trove.ErrObjectLost...).
type RemoteError struct {
	Peer   string         // the peer's name
	Addr   string         // the peer's address
	Op     Op             // the request's op; 0 for a chunk
	Object trove.ObjectID // the chunk's object; zero for a request
	Msg    string         // the handler's error message
	status status
}

func (e *RemoteError) Error() string {
	if e.Op == 0 {
		return fmt.Sprintf("quic: node %s (%s) could not serve a chunk of object %s: %s", e.Peer, e.Addr, e.Object, e.Msg)
	}
	return fmt.Sprintf("quic: node %s (%s) failed request op %d: %s", e.Peer, e.Addr, e.Op, e.Msg)
}

// Unwrap returns the trove error the handler's error matched, if any.
func (e *RemoteError) Unwrap() error { return statusErrors[e.status] }

// noAnswerInTime is a call whose caller's deadline passed before the peer
// answered. It matches what trove.ContextError gives (trove.ErrGetTimeout and
// context.DeadlineExceeded) without its words, which speak of a pending object:
// most calls here are control requests.
type noAnswerInTime struct{ ctxErr error }

func (noAnswerInTime) Error() string   { return "no answer before the caller's deadline" }
func (e noAnswerInTime) Unwrap() error { return e.ctxErr }

// Stream and connection error codes the transport sends.
const (
	codeClosing     quicgo.ApplicationErrorCode = 0 // the transport is closing
	codeProtocol    quicgo.ApplicationErrorCode = 1 // the peer broke the wire format
	codeChunkFailed quicgo.StreamErrorCode      = 1 // the chunk server failed mid-chunk
	codeCanceled    quicgo.StreamErrorCode      = 2 // the caller gave up (its context ended)
	codeNoHandler   quicgo.StreamErrorCode      = 3 // no handler for the tagged stream's tag
)

// unreachable wraps a network-side failure of a call to addr: trove.ErrNodeUnreachable
// with the cause, unless ctx was canceled by its caller (not a deadline), which is
// the caller's doing and is returned as ctx's cause.
func unreachable(ctx context.Context, op, peer, addr string, id trove.ObjectID, err error) error {
	if ctx.Err() != nil {
		if !errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return context.Cause(ctx)
		}
		err = noAnswerInTime{trove.ContextError(ctx)}
	} else if errors.Is(err, os.ErrDeadlineExceeded) {
		// The transport's own bounds (handshake, idle timeout) are not the
		// caller's deadline: keep the cause, not DeadlineExceeded.
		err = fmt.Errorf("no answer: %v", err)
	}
	var re *RemoteError
	if errors.As(err, &re) {
		return err
	}
	err = explain(err)
	return &trove.NodeError{Kind: trove.ErrNodeUnreachable, Node: peer, Addr: addr, Object: id, Op: op, Err: err}
}

// isClosed says whether err means the connection or transport is closed (no
// log line is due: it is an ordinary end).
func isClosed(err error) bool {
	var ae *quicgo.ApplicationError
	if errors.As(err, &ae) && ae.ErrorCode == codeClosing {
		return true
	}
	return errors.Is(err, net.ErrClosed) || errors.Is(err, context.Canceled)
}

// explain says in words what quic-go's connection errors mean for a caller.
func explain(err error) error {
	var (
		te    *quicgo.TransportError
		ae    *quicgo.ApplicationError
		idle  *quicgo.IdleTimeoutError
		reset *quicgo.StatelessResetError
		hs    *quicgo.HandshakeTimeoutError
	)
	switch {
	case errors.As(err, &te) && te.ErrorCode.IsCryptoError():
		return fmt.Errorf("%w: a certificate is not from this cluster's CA (the refusing node's log says whose and why): %w", ErrHandshakeRefused, err)
	case errors.As(err, &ae) && ae.Remote && ae.ErrorCode == codeClosing:
		return fmt.Errorf("the node closed its connections (it is shutting down): %w", err)
	case errors.As(err, &ae) && ae.Remote && ae.ErrorCode == codeProtocol:
		return fmt.Errorf("the node disconnected this one for breaking the protocol (its log says how): %w", err)
	case errors.As(err, &idle):
		return fmt.Errorf("no packets from the node within the idle timeout (Config.IdleTimeout): %w", err)
	case errors.As(err, &reset):
		return fmt.Errorf("the node restarted or lost the connection (stateless reset): %w", err)
	case errors.As(err, &hs):
		return fmt.Errorf("no handshake within the dial timeout (Config.DialTimeout): %w", err)
	}
	return err
}

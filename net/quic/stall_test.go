package quic_test

import (
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/trovedb/trove"
	"github.com/trovedb/trove/net/quic"
)

// pacedHandler serves chunks in pieces: trickle pauses briefly between
// them (slow but steady, as a holder serving many pullers is); stall sends
// half the chunk and then nothing until the puller gives up.
type pacedHandler struct {
	stall bool
	data  []byte
}

func (h *pacedHandler) HandleRequest(_ context.Context, _ quic.Peer, _ quic.Op, body, reply []byte) ([]byte, error) {
	return append(reply, body...), nil
}

func (h *pacedHandler) ServeChunk(ctx context.Context, _ quic.Peer, _ trove.ObjectID, off, n int64, w io.Writer) error {
	b := h.data[off : off+n]
	const piece = 64 << 10
	for len(b) > 0 {
		if h.stall && int64(len(b)) <= n/2 {
			<-ctx.Done()
			return ctx.Err()
		}
		k := min(piece, len(b))
		if _, err := w.Write(b[:k]); err != nil {
			return err
		}
		b = b[k:]
		if !h.stall {
			time.Sleep(10 * time.Millisecond)
		}
	}
	return nil
}

// TestStallTimeout: a chunk that arrives slowly but steadily is never cut
// by StallTimeout, however long it takes in all; one whose holder stops
// sending fails with ErrNodeUnreachable and context.DeadlineExceeded, and
// the connection lives on.
func TestStallTimeout(t *testing.T) {
	certs := makeCerts(t, "a", "b", "c")
	data := pattern(1<<20, 9)
	trickle := listen(t, quic.Config{CertsDir: certs["b"], Handler: &pacedHandler{data: data}})
	stall := listen(t, quic.Config{CertsDir: certs["c"], Handler: &pacedHandler{data: data, stall: true}})
	// 16 pieces 10 ms apart: a bound on the whole chunk as short as the
	// stall bound (one piece's gap, many times over) would cut it.
	a := listen(t, quic.Config{CertsDir: certs["a"], StallTimeout: 2 * time.Second})
	dst := make([]byte, len(data))
	if err := a.Pull(bg, trickle.Addr(), oid(1), 0, dst); err != nil {
		t.Fatalf("a slow but steady chunk: %v", err)
	}
	if string(dst) != string(data) {
		t.Fatal("a slow but steady chunk: bytes differ")
	}
	ctx, cancel := context.WithTimeout(bg, time.Minute)
	defer cancel()
	err := a.Pull(ctx, stall.Addr(), oid(1), 0, dst)
	if !errors.Is(err, trove.ErrNodeUnreachable) || !errors.Is(err, context.DeadlineExceeded) || ctx.Err() != nil {
		t.Fatalf("a stalled chunk: %v (ctx %v), want ErrNodeUnreachable and DeadlineExceeded before the caller's deadline", err, ctx.Err())
	}
	if _, err := a.Request(bg, stall.Addr(), 1, []byte("x"), nil); err != nil || a.Stats().Dials != 2 {
		t.Fatalf("request after the stalled chunk: %v, %d dials (want the connection kept: 2 in all)", err, a.Stats().Dials)
	}
}

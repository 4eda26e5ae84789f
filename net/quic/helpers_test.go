package quic_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/trovedb/trove"
	"github.com/trovedb/trove/cluster"
	"github.com/trovedb/trove/net/quic"
)

// Ops of the test handler.
const (
	opEcho    quic.Op = 1 // reply = body
	opUnknown quic.Op = 2 // fails with trove.ErrUnknownObject
	opBig     quic.Op = 3 // reply of the size the body's first byte says, in MiB
	opPeer    quic.Op = 4 // reply = the caller's name as the handler saw it
)

// makeCerts creates a CA and a node directory for each name (host 127.0.0.1),
// and returns the node directories by name.
func makeCerts(t testing.TB, names ...string) map[string]string {
	t.Helper()
	root := t.TempDir()
	ca := filepath.Join(root, "ca")
	if err := cluster.CreateCA(ca); err != nil {
		t.Fatal(err)
	}
	dirs := map[string]string{}
	for _, n := range names {
		dirs[n] = filepath.Join(root, n)
		if err := cluster.CreateNodeCert(ca, dirs[n], n, "127.0.0.1"); err != nil {
			t.Fatal(err)
		}
	}
	return dirs
}

// logBuf is a log the tests read back.
type logBuf struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func (l *logBuf) logger() *slog.Logger { return slog.New(slog.NewTextHandler(l, nil)) }

// waitLog waits (generously) until the log holds every one of subs.
func (l *logBuf) waitLog(t *testing.T, subs ...string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		s := l.String()
		ok := true
		for _, sub := range subs {
			ok = ok && strings.Contains(s, sub)
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("log lacks %q:\n%s", subs, s)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// handler serves echo requests and chunks of in-memory objects. If gate is set,
// a chunk of a gated object writes its first half, signals halfway, and waits for
// gate (or its ctx) before the rest.
type handler struct {
	mu      sync.Mutex
	objects map[trove.ObjectID][]byte
	gated   map[trove.ObjectID]bool
	failing map[trove.ObjectID]bool // chunks of these fail after half is sent
	halfway chan struct{}           // receives once per gated chunk that reached its middle
	gate    chan struct{}           // closed to let gated chunks finish
}

func newHandler() *handler {
	return &handler{objects: map[trove.ObjectID][]byte{}, gated: map[trove.ObjectID]bool{}, failing: map[trove.ObjectID]bool{},
		halfway: make(chan struct{}, 64), gate: make(chan struct{})}
}

func (h *handler) add(id trove.ObjectID, data []byte, gated bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.objects[id], h.gated[id] = data, gated
}

func (h *handler) HandleRequest(ctx context.Context, peer quic.Peer, op quic.Op, body, reply []byte) ([]byte, error) {
	switch op {
	case opEcho:
		return append(reply, body...), nil
	case opUnknown:
		return nil, fmt.Errorf("locate %x: %w", body, trove.ErrUnknownObject)
	case opBig:
		return append(reply, make([]byte, int(body[0])<<20)...), nil
	case opPeer:
		return append(reply, peer.Name...), nil
	}
	return nil, fmt.Errorf("unknown op %d", op)
}

func (h *handler) ServeChunk(ctx context.Context, peer quic.Peer, id trove.ObjectID, off, n int64, w io.Writer) error {
	h.mu.Lock()
	data, ok := h.objects[id]
	gated, failing := h.gated[id], h.failing[id]
	h.mu.Unlock()
	if !ok {
		return fmt.Errorf("object %s: %w", id, trove.ErrUnknownObject)
	}
	if off+n > int64(len(data)) {
		return fmt.Errorf("range [%d, +%d) past the end of object %s (%d bytes)", off, n, id, len(data))
	}
	part := data[off : off+n]
	if failing {
		if _, err := w.Write(part[:n/2]); err != nil {
			return err
		}
		return fmt.Errorf("disk read of object %s failed", id)
	}
	if !gated {
		_, err := w.Write(part)
		return err
	}
	if _, err := w.Write(part[:n/2]); err != nil {
		return err
	}
	h.halfway <- struct{}{}
	select {
	case <-h.gate:
	case <-ctx.Done():
		return context.Cause(ctx)
	}
	_, err := w.Write(part[n/2:])
	return err
}

// listen opens a transport closed when the test ends.
func listen(t *testing.T, cfg quic.Config) *quic.Transport {
	t.Helper()
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1:0"
	}
	tr, err := quic.Listen(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := tr.Close(); err != nil {
			t.Errorf("close %s: %v", tr.Addr(), err)
		}
	})
	return tr
}

// pattern returns n bytes that differ at every offset of a chunk boundary.
func pattern(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7+i>>13) ^ seed
	}
	return b
}

func oid(seq uint64) trove.ObjectID { return trove.NewObjectID(trove.NodeID{7}, seq) }

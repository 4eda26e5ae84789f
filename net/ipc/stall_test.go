package ipc

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/trovedb/trove/engine"
)

// lockedBuffer is a log destination safe for the daemon's goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// rawClient is a connection that has done the handshake by hand, for sending
// what a Client never would.
func rawClient(t *testing.T, path string) net.Conn {
	t.Helper()
	nc, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	if _, err := nc.Write(finish((&helloReq{version: Version, name: "raw"}).encode(appendHeader(nil, opHello, 0, 0)), 0)); err != nil {
		t.Fatal(err)
	}
	if h := readRawFrame(t, nc); h.op != opReply {
		t.Fatalf("handshake answered with a %s", h.op)
	}
	return nc
}

// readRawFrame reads one frame from nc (descriptors sent with it are dropped
// by the kernel, as a plain read does not take them) and returns its header;
// it fails the test if none comes within a generous bound.
func readRawFrame(t *testing.T, nc net.Conn) header {
	t.Helper()
	nc.SetReadDeadline(time.Now().Add(20 * time.Second))
	defer nc.SetReadDeadline(time.Time{})
	var hb [headerSize]byte
	if _, err := io.ReadFull(nc, hb[:]); err != nil {
		t.Fatalf("reading a reply: %v", err)
	}
	h, err := parseHeader(hb[:], maxReply)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(nc, make([]byte, h.bodyLen())); err != nil {
		t.Fatalf("reading a reply's body: %v", err)
	}
	return h
}

// A client that stops in the middle of a frame is cut off after FrameTimeout
// with a logged reason and loses what it held; a client quiet between frames
// keeps its connection however long it waits.
func TestStalledFrameIsCutOff(t *testing.T) {
	var log lockedBuffer
	d := startDaemonWith(t, engine.Config{}, ServerConfig{
		FrameTimeout: 200 * time.Millisecond,
		Logger:       slog.New(slog.NewTextHandler(&log, nil)),
	})
	ctx := context.Background()
	// The quiet client: it puts an object, then says nothing until every
	// stalled connection below has been closed, each after more than
	// FrameTimeout without a byte.
	quiet := d.dial(t)
	ref, err := quiet.Put(ctx, []byte("still here"))
	if err != nil {
		t.Fatal(err)
	}
	if err := quiet.Flush(ctx); err != nil {
		t.Fatal(err)
	}

	put := finish((&putReq{data: []byte("a frame that never ends")}).encode(appendHeader(nil, opPut, 1, 0)), 0)
	cases := []struct {
		name   string
		bytes  []byte
		reason string
	}{
		{"half a header", put[:7], "sent 7 of a frame header's 16 bytes"},
		{"a header, no body", put[:headerSize], "sent 0 of a put frame's"},
		{"most of a body", put[:len(put)-3], "sent "},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			nc := rawClient(t, d.path)
			// It holds an object when it stalls: the daemon must release it.
			held := finish((&putReq{data: []byte("held")}).encode(appendHeader(nil, opPut, 2, 0)), 0)
			if _, err := nc.Write(held); err != nil {
				t.Fatal(err)
			}
			if h := readRawFrame(t, nc); h.op != opReply || h.id != 2 {
				t.Fatalf("put answered with a %s to request %d", h.op, h.id)
			}
			if _, err := nc.Write(tc.bytes); err != nil {
				t.Fatal(err)
			}
			nc.SetReadDeadline(time.Now().Add(20 * time.Second))
			_, err := nc.Read(make([]byte, 64))
			if !errors.Is(err, io.EOF) && !errors.Is(err, syscall.ECONNRESET) {
				t.Fatalf("the daemon did not close a connection stalled mid-frame: read gave %v", err)
			}
			if n := d.srv.Stats().StalledFrames; n != uint64(i+1) {
				t.Fatalf("%d stalled frames counted, want %d", n, i+1)
			}
			logged := log.String()
			if !strings.Contains(logged, "stuck in the middle of a frame") || !strings.Contains(logged, tc.reason) ||
				!strings.Contains(logged, "FrameTimeout") {
				t.Fatalf("the log does not say why (%q):\n%s", tc.reason, logged)
			}
		})
	}

	// The quiet client was idle longer than FrameTimeout: its connection is open.
	obj, err := quiet.Get(ctx, ref)
	if err != nil || string(obj.Bytes()) != "still here" {
		t.Fatalf("a client quiet between frames lost its connection: %v", err)
	}
	obj.Release()
	if st := d.srv.Stats(); st.ProtocolErrors != 0 {
		t.Fatalf("stalls counted as protocol errors: %+v", st)
	}
	ref.Drop()
	requireDrained(t, d, quiet)
}

// A frame that keeps coming, however slowly, is not cut off: the timeout is
// for a client that stops, not for a slow one.
func TestSlowFrameIsServed(t *testing.T) {
	const timeout = time.Second
	d := startDaemonWith(t, engine.Config{}, ServerConfig{
		FrameTimeout: timeout,
		Logger:       slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	nc := rawClient(t, d.path)
	put := finish((&putReq{data: bytes.Repeat([]byte("slow"), 16)}).encode(appendHeader(nil, opPut, 1, 0)), 0)
	// 1.5 timeouts in all, a byte or two every 30ms: only a pause of a whole
	// timeout between two writes would cut it off.
	const pieces = 50
	for i := range pieces {
		lo, hi := i*len(put)/pieces, (i+1)*len(put)/pieces
		if _, err := nc.Write(put[lo:hi]); err != nil {
			t.Fatalf("piece %d: %v", i, err)
		}
		time.Sleep(timeout * 3 / 2 / pieces)
	}
	if h := readRawFrame(t, nc); h.op != opReply || h.id != 1 {
		t.Fatalf("put answered with a %s to request %d", h.op, h.id)
	}
	if n := d.srv.Stats().StalledFrames; n != 0 {
		t.Fatalf("a slow frame was counted as stalled")
	}
	nc.Close()
	requireDrained(t, d)
}

package quic_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/trovedb/trove/net/quic"
)

// A tagged stream carries another protocol's bytes both ways over the
// authenticated connection, as a net.Conn; the server side learns the peer.
func TestTaggedStream(t *testing.T) {
	certs := makeCerts(t, "a", "b")
	a := listen(t, quic.Config{CertsDir: certs["a"]})
	b := listen(t, quic.Config{CertsDir: certs["b"]})
	peers := make(chan quic.Peer, 1)
	remove, err := b.HandleTag(5, quic.TagHandler{Stream: func(p quic.Peer, c net.Conn) {
		peers <- p
		go func() {
			defer c.Close()
			buf := make([]byte, 5)
			if _, err := io.ReadFull(c, buf); err != nil {
				return
			}
			c.Write(append(buf, " back"...))
		}()
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer remove()
	if _, err := b.HandleTag(5, quic.TagHandler{}); err == nil {
		t.Fatal("a second handler for tag 5 was accepted")
	}
	c, err := a.DialStream(bg, b.Addr(), 5)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.SetDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(c)
	if err != nil || string(got) != "hello back" {
		t.Fatalf("read %q, %v", got, err)
	}
	if p := <-peers; p.Name != "a" || p.Addr != a.Addr() {
		t.Fatalf("handler saw peer %+v, want a at %s", p, a.Addr())
	}
	if c.RemoteAddr().String() != b.Addr() {
		t.Fatalf("RemoteAddr %s, want %s", c.RemoteAddr(), b.Addr())
	}

	// A tag nobody handles: the stream is reset, and the read says why.
	c2, err := a.DialStream(bg, b.Addr(), 9)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	c2.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c2.Read(make([]byte, 1)); err == nil || !strings.Contains(err.Error(), "does not serve stream tag 9") {
		t.Fatalf("read of an unhandled tag: %v", err)
	}
	// The connection lives on: requests still work.
	if a.Stats().Dials != 1 {
		t.Fatalf("%d dials, want 1", a.Stats().Dials)
	}
}

// Packets arrive, from the authenticated peer; they are bounded; after the
// handler is removed they are dropped; a packet to nowhere is dropped quietly.
func TestPackets(t *testing.T) {
	certs := makeCerts(t, "a", "b")
	a := listen(t, quic.Config{CertsDir: certs["a"], DialTimeout: 500 * time.Millisecond})
	b := listen(t, quic.Config{CertsDir: certs["b"]})
	type pkt struct {
		from string
		b    []byte
	}
	got := make(chan pkt, 16)
	remove, err := b.HandleTag(5, quic.TagHandler{Packet: func(p quic.Peer, b []byte) { got <- pkt{p.Name, b} }})
	if err != nil {
		t.Fatal(err)
	}
	big := bytes.Repeat([]byte{7}, quic.MaxPacket)
	for _, p := range [][]byte{[]byte("ping"), big, {}} {
		if err := a.SendPacket(b.Addr(), 5, p); err != nil {
			t.Fatal(err)
		}
		select {
		case r := <-got:
			if r.from != "a" || !bytes.Equal(r.b, p) {
				t.Fatalf("got %d bytes from %q, want %d from a", len(r.b), r.from, len(p))
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("a %d-byte packet did not arrive", len(p))
		}
	}
	if err := a.SendPacket(b.Addr(), 5, make([]byte, quic.MaxPacket+1)); !errors.Is(err, quic.ErrTooLarge) {
		t.Fatalf("oversized packet: %v", err)
	}
	if err := a.SendPacket(b.Addr(), 0, nil); err == nil {
		t.Fatal("a packet of tag 0 was accepted")
	}
	// After remove, the old handler gets nothing; a new one gets what is sent
	// from then on (and maybe "dropped", sent while no handler was there,
	// if it arrived after the new handler came).
	remove()
	if err := a.SendPacket(b.Addr(), 5, []byte("dropped")); err != nil {
		t.Fatal(err)
	}
	got2 := make(chan pkt, 16)
	if _, err := b.HandleTag(5, quic.TagHandler{Packet: func(p quic.Peer, b []byte) { got2 <- pkt{p.Name, b} }}); err != nil {
		t.Fatal(err)
	}
	if err := a.SendPacket(b.Addr(), 5, []byte("after")); err != nil {
		t.Fatal(err)
	}
	for r := (pkt{}); string(r.b) != "after"; {
		select {
		case r = <-got2:
			if string(r.b) != "after" && string(r.b) != "dropped" {
				t.Fatalf("new handler got %q", r.b)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("no packet after re-registering")
		}
	}
	if len(got) != 0 {
		t.Fatalf("the removed handler got %q", (<-got).b)
	}
	// Nobody listens there: dropped, and a's Close still returns (cleanup).
	dead := listen(t, quic.Config{Insecure: true})
	addr := dead.Addr()
	dead.Close()
	if err := a.SendPacket(addr, 5, []byte("lost")); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(bg, time.Minute)
	defer cancel()
	if _, err := a.DialStream(ctx, addr, 5); err == nil {
		t.Fatal("a stream to a closed node opened")
	}
}

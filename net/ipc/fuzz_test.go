package ipc

import (
	"bytes"
	"context"
	"net"
	"testing"
	"time"

	"github.com/trovedb/trove"
	"github.com/trovedb/trove/engine"
)

// FuzzDecode feeds arbitrary bytes to every decoder of the protocol, the
// daemon's (requests) and the client's (replies): none may panic or allocate
// beyond what the input holds, and whatever decodes re-encodes to the same bytes.
func FuzzDecode(f *testing.F) {
	id := trove.NewObjectID(trove.NodeID{1}, 7)
	seeds := [][]byte{
		(&helloReq{version: Version, pid: 42, name: "seed"}).encode(nil),
		(&putReq{deadline: 5, contains: []trove.ObjectID{id}, data: []byte("data")}).encode(nil),
		(&createReq{deadline: 1, size: 1 << 20, contains: []trove.ObjectID{id, id}}).encode(nil),
		(&sealReq{id: id, data: []byte("x")}).encode(nil),
		(&idsReq{deadline: 3, n: 1, ids: []trove.ObjectID{id}}).encode(nil, true, true),
		(&helloReply{version: 1, arenaSize: 1 << 30, inline: 100 << 10, maxMsg: 1 << 20, pid: 9}).encode(nil),
		(&createReply{id: id, off: 4096}).encode(nil),
		(&getItem{place: placeInline, size: 3, data: []byte("abc")}).encode(putU32(nil, 1)),
		encodeWait(nil, 0, []int{0, 2}),
		appendHeader(nil, opGet, 9, 0),
		(&createResultReq{deadline: 2, id: id, size: 1 << 20, contains: []trove.ObjectID{id}}).encode(nil),
	}
	for i, s := range seeds {
		f.Add(uint8(i), s)
	}
	f.Fuzz(func(t *testing.T, which uint8, b []byte) {
		r := &reader{b: b}
		var out []byte
		switch which % 13 {
		case 0:
			var m helloReq
			m.decode(r)
			out = m.encode(nil)
		case 1:
			var m putReq
			m.decode(r)
			out = m.encode(nil)
		case 2:
			var m createReq
			m.decode(r)
			out = m.encode(nil)
		case 3:
			var m sealReq
			m.decode(r)
			out = m.encode(nil)
		case 4:
			var m idsReq
			m.decode(r, true, true)
			out = m.encode(nil, true, true)
		case 5:
			var m helloReply
			m.decode(r)
			out = m.encode(nil)
		case 6:
			var m createReply
			m.decode(r)
			out = m.encode(nil)
		case 7:
			items := decodeGetReply(r, 1)
			out = putU32(nil, uint32(len(items)))
			for i := range items {
				out = items[i].encode(out)
			}
		case 8:
			timedOut := r.u8()
			idx := decodeIndices(r, 1000)
			out = encodeWait(nil, timedOut, idx)
		case 9:
			v := decodeViews(r)
			out = putU32(nil, uint32(len(v)))
			for _, x := range v {
				out = putU64(out, x)
			}
		case 10:
			if err := decodeStatus(r); err != nil {
				re := err.(*remoteError) // unknown codes stay as they came
				out = putStr(putU8(nil, re.code), re.msg)
			} else {
				out = []byte{0}
			}
		case 11:
			h, err := parseHeader(b, DefaultMaxMessage)
			if err == nil && (h.op == 0 || h.op >= opMax || int(h.length)+lenSize > DefaultMaxMessage) {
				t.Fatalf("header accepted: %+v", h)
			}
			return
		case 12:
			var m createResultReq
			m.decode(r)
			out = m.encode(nil)
		}
		if r.done() != nil {
			return
		}
		if !bytes.Equal(out, b) {
			t.Fatalf("decoder %d: %x re-encodes as %x", which%13, b, out)
		}
	})
}

// FuzzServerStream sends arbitrary bytes after a valid handshake to a running
// daemon: the connection may be closed, but the daemon stays up, serves other
// clients, and holds nothing for the fuzzing client once it is gone.
func FuzzServerStream(f *testing.F) {
	d := startDaemon(f, engine.Config{Capacity: 16 << 20})
	watcher := d.dial(f)
	id := trove.NewObjectID(watcher.Node(), 1)
	frame := func(o op, body []byte) []byte {
		return finish(append(appendHeader(nil, o, 5, 0), body...), 0)
	}
	f.Add(frame(opPut, (&putReq{data: []byte("hello")}).encode(nil)))
	f.Add(append(frame(opPut, (&putReq{data: []byte("hi")}).encode(nil)), frame(opGet, (&idsReq{ids: []trove.ObjectID{id}}).encode(nil, true, false))...))
	f.Add(frame(opCreate, (&createReq{size: 1 << 20}).encode(nil)))
	f.Add(frame(opWait, (&idsReq{n: 1, ids: []trove.ObjectID{id}}).encode(nil, true, true)))
	f.Add(frame(opRelease, (&idsReq{ids: []trove.ObjectID{id}}).encode(nil, false, false)))
	f.Add(frame(opStatus, nil))
	f.Add(frame(opMemory, nil))
	f.Add([]byte{0xff, 0xff, 0xff, 0x7f, byte(opPut), 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, stream []byte) {
		nc, err := net.Dial("unix", d.path)
		if err != nil {
			t.Fatal(err)
		}
		hello := (&helloReq{version: Version, name: "fuzz"}).encode(nil)
		if _, err := nc.Write(append(frame(opHello, hello), stream...)); err != nil {
			t.Fatal(err)
		}
		// Read whatever comes back until the daemon closes or goes quiet.
		nc.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
		buf := make([]byte, 64<<10)
		for {
			if _, err := nc.Read(buf); err != nil {
				break
			}
		}
		nc.Close()
		if err := watcher.Ping(context.Background()); err != nil {
			t.Fatalf("the daemon stopped serving others: %v", err)
		}
		// Everything the fuzzing client held goes with its connection.
		for i := 0; ; i++ {
			ss, st := d.srv.Stats(), d.st.Stats()
			if ss.Clients == 1 && ss.Refs == 0 && ss.Views == 0 && ss.Builders == 0 && st.Objects == 0 && st.Used == 0 {
				break
			}
			if i == 500 {
				t.Fatalf("a gone client's holdings remain: server %+v, store objects=%d used=%d", ss, st.Objects, st.Used)
			}
			time.Sleep(2 * time.Millisecond)
		}
	})
}

package cluster

import (
	"bytes"
	"errors"
	"testing"

	"github.com/trovedb/trove"
)

func TestNodeMeta(t *testing.T) {
	id := trove.NodeID{1, 2, 3, 4, 5, 6, 7, 8}
	good := nodeMeta{ID: id, Boot: 99, Capacity: 4 << 30, Used: 123, Slots: 3, Leaving: true}
	enc := good.append(nil)
	if len(enc) != metaLen+1 {
		t.Fatalf("encoded %d bytes, want %d", len(enc), metaLen+1)
	}
	// Version 2's resources.
	withRes := good
	withRes.NRes, withRes.Res = metaResources([]Resource{{Name: "Custom", Total: 2, Free: 1}, {Name: "CPU", Total: 4, Free: 4}})
	if got, err := decodeNodeMeta(withRes.append(nil)); err != nil || got != withRes || got.Res[0].Name != "CPU" {
		t.Fatalf("round trip with resources: %+v %v, want %+v", got, err, withRes)
	}
	// A version 1 meta (no resource count) still decodes.
	v1 := append([]byte{1}, enc[1:metaLen]...)
	if got, err := decodeNodeMeta(v1); err != nil || got != good {
		t.Fatalf("version 1: %+v %v", got, err)
	}
	if got, err := decodeNodeMeta(enc); err != nil || got != good {
		t.Fatalf("round trip: %+v %v, want %+v", got, err, good)
	}
	// A later version's longer meta: the known prefix decodes.
	if got, err := decodeNodeMeta(append(append([]byte{3}, enc[1:]...), 0xaa, 0xbb)); err != nil || got != good {
		t.Fatalf("version 3 with a trailing field: %+v %v", got, err)
	}
	bad := func(f func(b []byte) []byte) []byte { return f(bytes.Clone(enc)) }
	for name, b := range map[string][]byte{
		"empty":     nil,
		"version 0": bad(func(b []byte) []byte { b[0] = 0; return b }),
		"short":     enc[:metaLen-1],
		"zero ID":   nodeMeta{Capacity: 1}.append(nil),
		"negative":  nodeMeta{ID: id, Used: -1}.append(nil),
		"slots":     nodeMeta{ID: id, Slots: maxSlots + 1}.append(nil),
		"flags":     bad(func(b []byte) []byte { b[metaLen-1] = 0x80; return b }),
		"no count":  enc[:metaLen],
		"count":     bad(func(b []byte) []byte { b[metaLen] = maxMetaResources + 1; return b }),
		"res cut":   withRes.append(nil)[:metaLen+5],
		"res nan": func() []byte {
			b := withRes.append(nil)
			copy(b[metaLen+5:], []byte{0x7f, 0xf8, 0, 0, 0, 0, 0, 1})
			return b
		}(),
		"too long": append(bytes.Clone(enc), make([]byte, maxMetaLen)...),
	} {
		if _, err := decodeNodeMeta(b); !errors.Is(err, errMeta) {
			t.Errorf("%s: %v, want errMeta", name, err)
		}
	}
}

// FuzzNodeMeta feeds arbitrary bytes to the meta decoder (gossiped by any
// member): it must not panic, must keep every field in its bounds, and what
// it decodes must re-encode to the bytes' known prefix.
func FuzzNodeMeta(f *testing.F) {
	f.Add(nodeMeta{ID: trove.NodeID{9}, Boot: 1, Capacity: 1 << 30, Used: 5, Slots: 2}.append(nil))
	f.Add(nodeMeta{ID: trove.NodeID{9}, Leaving: true}.append(nil))
	f.Add([]byte{1, 2, 3})
	res := nodeMeta{ID: trove.NodeID{9}, Slots: 4}
	res.NRes, res.Res = metaResources([]Resource{{Name: "CPU", Total: 4, Free: 2}, {Name: "GPU", Total: 1}})
	f.Add(res.append(nil))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := decodeNodeMeta(b)
		if err != nil {
			if !errors.Is(err, errMeta) {
				t.Fatalf("error %v is not errMeta", err)
			}
			return
		}
		if m.ID == (trove.NodeID{}) || m.Capacity < 0 || m.Used < 0 || m.Slots < 0 || m.Slots > maxSlots || len(b) > maxMetaLen {
			t.Fatalf("decoded %+v out of bounds", m)
		}
		if enc := m.append(nil); b[0] == 1 && !bytes.Equal(enc[1:metaLen], b[1:metaLen]) || b[0] > 1 && !bytes.Equal(enc[1:], b[1:len(enc)]) {
			t.Fatalf("re-encoded %x, want the prefix of %x", enc, b)
		}
	})
}

// FuzzSnoop feeds arbitrary packets to the gossip snooper (packets from
// members, parsed as untrusted): it must not panic, and every note it queues
// names a node.
func FuzzSnoop(f *testing.F) {
	f.Add([]byte{mlSuspectMsg, 0x82, 0xab, 'I', 'n', 'c', 'a', 'r', 'n', 'a', 't', 'i', 'o', 'n', 0x05, 0xa4, 'N', 'o', 'd', 'e', 0xa1, 'x'})
	f.Add([]byte{mlCompoundMsg, 2, 0, 1, 0, 1, mlAliveMsg, mlSuspectMsg})
	f.Add([]byte{mlHasCrcMsg, 0, 0, 0, 0, mlCompoundMsg, 1, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		m := &membership{}
		m.notes.wake = make(chan struct{}, 1)
		m.snoop(b, true)
		for _, n := range m.notes.q {
			if n.name == "" || (n.kind != noteSuspect && n.kind != noteAlive) {
				t.Fatalf("note %+v", n)
			}
		}
	})
}

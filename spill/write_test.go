package spill

import (
	"testing"
)

// TestPlan checks how batches are cut into writes: windows of about writeWindow
// bytes and at most iovMax buffers, small objects never split, large ones cut
// on checksum blocks, and a header rewrite only for objects that span windows.
func TestPlan(t *testing.T) {
	const W = writeWindow
	tests := []struct {
		name    string
		sizes   []int
		windows int
		patches int
	}{
		{"empty objects", []int{0, 0, 0}, 1, 0},
		{"window-sized objects", []int{W, W, W}, 3, 0},
		{"small objects", []int{W/2 - HeaderSize, W/2 - HeaderSize, W/2 - HeaderSize, W/2 - HeaderSize}, 3, 0}, // the first one's padding pushes the second out
		{"small packed objects", []int{alignMin - 1, alignMin - 1, alignMin - 1}, 1, 0},
		{"too large to share", []int{W / 2, W / 2}, 2, 0}, // the headers make it W+80
		{"one large object", []int{16 * W}, 17, 1},        // the header pushes a block into a 17th
		{"large after small", []int{100, 3*W + 7, 5}, 4, 1},
		{"just over a window", []int{W + 1}, 2, 1},
		{"large after a block's worth", []int{W - checksumBlock, 2 * W}, 3, 1},
		{"large after most of a window", []int{W - checksumBlock/2, 2 * W}, 3, 1},
		{"many tiny objects", ones(1500), 3, 0}, // 1024 buffers per write at most
		{"many empty objects", make([]int, 1500), 2, 0},
		{"aligned after packed", []int{100, alignMin, alignMin - 1, alignMin + 1, 5}, 1, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			objs := make([]Object, len(tt.sizes))
			var want int64
			for i, n := range tt.sizes {
				objs[i] = Object{ID: ID{byte(i)}, Data: make([]byte, n)}
				if n >= alignMin {
					want += alignPad(want)
				}
				want += HeaderSize + int64(n)
			}
			p := newPlan(objs)
			if p.size != want {
				t.Errorf("size %d, want %d", p.size, want)
			}
			if len(p.ends) != tt.windows || len(p.patches)/HeaderSize != tt.patches {
				t.Errorf("%d windows and %d header rewrites, want %d and %d", len(p.ends), len(p.patches)/HeaderSize, tt.windows, tt.patches)
			}
			// The segs are the file: each object's header at hdrOff, its data after.
			var off int64
			var last = -1
			for w := range p.ends {
				var n int64
				segs := p.window(w)
				for _, s := range segs {
					if s.pad {
						if int(s.obj) != last+1 || len(s.buf) >= dataAlign || len(s.buf) == 0 {
							t.Fatalf("%d bytes of padding before object %d, after object %d", len(s.buf), s.obj, last)
						}
						for _, c := range s.buf {
							if c != 0 {
								t.Fatalf("padding before object %d is not zeros", s.obj)
							}
						}
						off += int64(len(s.buf))
						n += int64(len(s.buf))
						continue
					}
					if s.header {
						if int(s.obj) != last+1 || p.hdrOff[s.obj] != off {
							t.Fatalf("header of object %d at %d, want object %d at %d", s.obj, off, last+1, p.hdrOff[s.obj])
						}
						last = int(s.obj)
					} else if int(s.obj) != last {
						t.Fatalf("data of object %d after the header of %d", s.obj, last)
					} else if start := off - p.hdrOff[s.obj] - HeaderSize; start%checksumBlock != 0 || !s.last && len(s.buf)%checksumBlock != 0 {
						// Each checksum block is hashed in one call.
						t.Fatalf("object %d: a piece of %d bytes at %d cuts a checksum block", s.obj, len(s.buf), start)
					}
					off += int64(len(s.buf))
					n += int64(len(s.buf))
				}
				if n > W+HeaderSize+dataAlign || len(segs) > iovMax || len(segs) == 0 {
					t.Errorf("window %d: %d bytes in %d buffers", w, n, len(segs))
				}
			}
			for i, o := range objs {
				if aligned := (p.hdrOff[i]+HeaderSize)%dataAlign == 0; len(o.Data) >= alignMin && !aligned {
					t.Errorf("object %d of %d bytes: data at %d, not on a multiple of %d", i, len(o.Data), p.hdrOff[i]+HeaderSize, dataAlign)
				}
				spans := p.patch[i] >= 0
				if len(o.Data) <= W && spans {
					t.Errorf("object %d of %d bytes is split", i, len(o.Data))
				}
			}
		})
	}
}

func ones(n int) []int {
	s := make([]int, n)
	for i := range s {
		s[i] = 1
	}
	return s
}

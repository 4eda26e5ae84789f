package spill

import (
	"io"
	"os"
)

// writeWindow is the size of one write of a batch, and the unit in which the
// data is checksummed ahead of the write. A batch is written with one WriteV
// call per window, straight from the objects' memory, while a second goroutine
// checksums the next windows: the data is read from memory once, by the
// checksum, and copied to the file from the CPU cache (it is at most three
// windows, 6 MiB, behind: in L3), and the two run on two cores. Measured on
// 256 MiB batches, checksumming first and writing after ran at ~0.55 of a raw
// write, this at ~0.75; 1, 2 and 4 MiB windows were within noise of each other,
// and 2 MiB halves the syscalls of 1. A window also bounds how long a batch
// takes to notice Close or a canceled context.
const writeWindow = 2 << 20

// checksumAhead is how many windows the checksum may run ahead of the writes:
// enough to keep both busy, few enough to stay in the L3 cache.
const checksumAhead = 2

// plan lays a batch out in its file and cuts it into windows. It is made once
// per batch and reused if a directory turns out to be full.
//
// An object of at most writeWindow bytes is never split: it goes into one
// window with its header and padding (a window may so exceed writeWindow by a
// header and a page). A
// larger one fills windows to writeWindow, in whole checksum blocks of its data
// (checksumBlock; only its last piece may end inside one); its header goes out
// with the first, holding a placeholder checksum, and is rewritten
// (File.WriteAt) once the last window of its data is written: one header-sized
// write per large object.
type plan struct {
	objs    []Object
	hdrs    []byte  // HeaderSize per object, in file order; written by the checksummer
	patches []byte  // HeaderSize per spanning object: its final header
	hdrOff  []int64 // file offset of each object's header
	patch   []int32 // index into patches of each object's final header; -1 if it is not spanning
	segs    []seg   // the file's contents, in order
	ends    []int   // window w is segs[ends[w-1]:ends[w]]
	size    int64   // the file's size
}

// seg is one buffer of the file: an object's header, a piece of its data, or
// the zeros before its header that align its data (pad).
type seg struct {
	buf    []byte
	obj    int32
	header bool
	pad    bool
	last   bool // the last seg of the object: its checksum is complete after it
}

// zeros is the padding written before the headers of aligned objects (read only).
var zeros [dataAlign]byte

func newPlan(objs []Object) *plan {
	p := &plan{
		objs:   objs,
		hdrs:   make([]byte, len(objs)*HeaderSize),
		hdrOff: make([]int64, len(objs)),
		patch:  make([]int32, len(objs)),
		segs:   make([]seg, 0, 2*len(objs)),
	}
	var pending int64 // bytes in the open window
	var count int     // segs in the open window
	closeWindow := func() {
		if count > 0 {
			p.ends = append(p.ends, len(p.segs))
			pending, count = 0, 0
		}
	}
	put := func(s seg) { // into the open window, whatever its size
		p.segs = append(p.segs, s)
		pending += int64(len(s.buf))
		p.size += int64(len(s.buf))
		count++
	}
	add := func(s seg) {
		put(s)
		if pending >= writeWindow || count == iovMax {
			closeWindow()
		}
	}
	for i, o := range objs {
		n := int64(len(o.Data))
		small := n <= writeWindow
		var pad int64
		if n >= alignMin {
			pad = alignPad(p.size)
		}
		segs := 2 // in the object's first window: its header and data, and any padding
		if pad > 0 {
			segs++
		}
		if small && pending+pad+HeaderSize+n > writeWindow || count+segs > iovMax {
			closeWindow()
		}
		if pad > 0 {
			put(seg{buf: zeros[:pad], obj: int32(i), pad: true})
		}
		hdr := p.hdrs[i*HeaderSize : (i+1)*HeaderSize]
		// The header as a placeholder: a spanning object's stays so until rewritten;
		// the others' are encoded again, with the checksum, before they are written.
		(&header{id: o.ID, length: n}).encode(hdr)
		p.hdrOff[i] = p.size
		p.patch[i] = -1
		first := len(p.ends) // the window of the header
		if n == 0 {
			add(seg{buf: hdr, obj: int32(i), header: true, last: true})
			continue
		}
		if small {
			put(seg{buf: hdr, obj: int32(i), header: true}) // keep header and data in one window
			add(seg{buf: o.Data, obj: int32(i), last: true})
			continue
		}
		add(seg{buf: hdr, obj: int32(i), header: true})
		for d := o.Data; len(d) > 0; {
			// Pieces end on checksum blocks of the object (but the last), so that
			// each block is hashed in one call, never across windows.
			room := (writeWindow - pending) / checksumBlock * checksumBlock
			if room == 0 {
				closeWindow()
				room = writeWindow
			}
			piece := d[:min(int64(len(d)), room)]
			d = d[len(piece):]
			if len(d) == 0 && len(p.ends) != first {
				p.patch[i] = int32(len(p.patches) / HeaderSize)
				p.patches = append(p.patches, make([]byte, HeaderSize)...)
			}
			add(seg{buf: piece, obj: int32(i), last: len(d) == 0})
		}
	}
	closeWindow()
	return p
}

func (p *plan) window(w int) []seg {
	start := 0
	if w > 0 {
		start = p.ends[w-1]
	}
	return p.segs[start:p.ends[w]]
}

// finalHeader returns where object i's header with its checksum goes.
func (p *plan) finalHeader(i int32) []byte {
	if k := p.patch[i]; k >= 0 {
		return p.patches[int(k)*HeaderSize : int(k+1)*HeaderSize]
	}
	return p.hdrs[int(i)*HeaderSize : int(i+1)*HeaderSize]
}

// checksumWindow checksums window w's data and encodes the final header of each
// object that ends in it. sum carries an object's checksum from one window to
// the next; every data seg begins on a checksum block of its object (newPlan).
func (p *plan) checksumWindow(w int, sum *summer) {
	for _, s := range p.window(w) {
		switch {
		case s.header:
			sum.reset()
		case s.pad:
			continue
		default:
			sum.blocks(s.buf)
		}
		if s.last {
			o := &p.objs[s.obj]
			h := header{id: o.ID, length: int64(len(o.Data)), dataSum: sum.sum()}
			h.encode(p.finalHeader(s.obj))
		}
	}
}

// write writes the plan to f, calling check before each window. It returns the
// bytes written and, on error, the file offset of the write that failed. When it
// returns, nothing reads the objects' memory any more.
func (p *plan) write(f File, path string, check func() error) (written, failedAt int64, err error) {
	var ready chan struct{}
	if len(p.ends) > 1 {
		ready = make(chan struct{}, checksumAhead)
		stop := make(chan struct{})
		exited := make(chan struct{})
		go func() {
			defer close(exited)
			var sum summer
			for w := range p.ends {
				p.checksumWindow(w, &sum)
				select {
				case ready <- struct{}{}:
				case <-stop:
					return
				}
			}
		}()
		defer func() {
			close(stop)
			<-exited // Object.Data must not be read after done is called
		}()
	}

	iov := make([][]byte, 0, min(len(p.segs), iovMax))
	var sum *summer
	for w := range p.ends {
		if ready != nil {
			<-ready
		} else {
			if sum == nil {
				sum = new(summer)
			}
			p.checksumWindow(w, sum)
		}
		if err := check(); err != nil {
			return written, written, err
		}
		var want int64
		for _, s := range p.window(w) {
			iov = append(iov, s.buf)
			want += int64(len(s.buf))
		}
		n, err := f.WriteV(iov)
		clear(iov) // drop the slices of the caller's memory
		iov = iov[:0]
		if err == nil && n < want {
			err = &os.PathError{Op: "write", Path: path, Err: io.ErrShortWrite}
		}
		if err != nil {
			return written + n, written + n, err
		}
		written += n
		for _, s := range p.window(w) {
			if s.last && p.patch[s.obj] >= 0 {
				off := p.hdrOff[s.obj]
				if _, err := f.WriteAt(p.finalHeader(s.obj), off); err != nil {
					return written, off, err
				}
			}
		}
	}
	return written, 0, nil
}

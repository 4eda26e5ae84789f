package ipc

import (
	"fmt"
	"net"

	"golang.org/x/sys/unix"
)

// frameReader reads a client's incoming frames with recvmsg, so that the file
// descriptors the daemon sends (SCM_RIGHTS) arrive with the frames that name
// them.
type frameReader struct {
	nc   *net.UnixConn
	buf  []byte
	r, w int // buf[r:w] is read and not yet parsed
	oob  []byte
	fds  []int // received, not yet claimed by a frame
	body []byte
}

func newFrameReader(nc *net.UnixConn) *frameReader {
	return &frameReader{nc: nc, buf: make([]byte, 256<<10), oob: make([]byte, unix.CmsgSpace(4*maxFDs))}
}

// next returns the next frame's header, its body (valid until the next call) and
// its descriptors.
func (fr *frameReader) next() (header, []byte, []int, error) {
	if err := fr.fill(headerSize); err != nil {
		return header{}, nil, nil, err
	}
	h, err := parseHeader(fr.buf[fr.r:fr.w], maxReply)
	if err != nil {
		return h, nil, nil, err
	}
	n := h.bodyLen()
	if err := fr.fill(headerSize + n); err != nil {
		return h, nil, nil, err
	}
	body := fr.buf[fr.r+headerSize : fr.r+headerSize+n]
	fr.r += headerSize + n
	if int(h.nfds) > len(fr.fds) {
		return h, nil, nil, fmt.Errorf("%w: a frame with %d descriptors, %d received", errProtocol, h.nfds, len(fr.fds))
	}
	fds := append([]int(nil), fr.fds[:h.nfds]...)
	fr.fds = fr.fds[h.nfds:]
	return h, body, fds, nil
}

// fill reads until at least n unparsed bytes are buffered.
func (fr *frameReader) fill(n int) error {
	if fr.w-fr.r >= n {
		return nil
	}
	if fr.r > 0 { // move the unparsed bytes to the front
		fr.w = copy(fr.buf, fr.buf[fr.r:fr.w])
		fr.r = 0
	}
	if n > len(fr.buf) {
		nb := make([]byte, max(n, 2*len(fr.buf)))
		copy(nb, fr.buf[:fr.w])
		fr.buf = nb
	}
	for fr.w < n {
		m, oobn, _, _, err := fr.nc.ReadMsgUnix(fr.buf[fr.w:], fr.oob)
		// A failed read (a deadline) may report -1 bytes.
		if oobn > 0 && err == nil {
			if perr := fr.takeFDs(fr.oob[:oobn]); perr != nil {
				err = perr
			}
		}
		fr.w += max(m, 0)
		if err != nil {
			return err
		}
		if m == 0 && oobn == 0 {
			return fmt.Errorf("connection closed by the daemon")
		}
	}
	return nil
}

func (fr *frameReader) takeFDs(oob []byte) error {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return fmt.Errorf("%w: control message: %v", errProtocol, err)
	}
	for _, m := range msgs {
		fds, err := unix.ParseUnixRights(&m)
		if err != nil {
			continue
		}
		fr.fds = append(fr.fds, fds...)
	}
	if len(fr.fds) > 4*maxFDs {
		closeFDs(fr.fds)
		fr.fds = nil
		return fmt.Errorf("%w: too many descriptors received", errProtocol)
	}
	return nil
}

package ipc

import (
	"errors"
	"net"
	"sync"

	"golang.org/x/sys/unix"
)

// sender writes frames to a connection from many goroutines, coalescing them: a
// goroutine appends its frame to the pending bytes and, if nobody is writing,
// writes everything pending itself; otherwise the writer picks its frame up. Under
// load many frames go out in one system call; alone, a frame goes out at once.
type sender struct {
	conn *net.UnixConn

	// wmu is held by the one goroutine writing to the socket.
	wmu sync.Mutex

	mu      sync.Mutex // guards the fields below
	pending []byte
	spare   []byte
	err     error // the first write error: the connection is dead
	corked  bool  // hold frames back: the reader has more requests in hand (see cork)
}

// bufPool holds frame-building buffers.
var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

func getBuf() *[]byte { return bufPool.Get().(*[]byte) }
func putBuf(b *[]byte) {
	if cap(*b) <= 1<<20 {
		*b = (*b)[:0]
		bufPool.Put(b)
	}
}

// send queues frame (copied) and writes it, or leaves it to the goroutine that is
// writing. An error means the connection is dead; the frame may not have gone.
func (s *sender) send(frame []byte) error {
	s.mu.Lock()
	if s.err != nil {
		err := s.err
		s.mu.Unlock()
		return err
	}
	s.pending = append(s.pending, frame...)
	corked := s.corked
	s.mu.Unlock()
	if corked {
		return nil
	}
	return s.flush()
}

// cork holds frames back until uncork, so that the replies to requests that
// arrived together leave together, in one write. The daemon's read loop corks
// while it has more requests buffered and uncorks before it waits for more.
func (s *sender) cork() {
	s.mu.Lock()
	s.corked = true
	s.mu.Unlock()
}

// uncork writes what was held back.
func (s *sender) uncork() error {
	s.mu.Lock()
	if !s.corked {
		s.mu.Unlock()
		return nil
	}
	s.corked = false
	s.mu.Unlock()
	return s.flush()
}

// flush writes pending bytes until none are left, unless another goroutine is
// writing (it will write them).
func (s *sender) flush() error {
	for s.wmu.TryLock() {
		err := s.writePending()
		s.wmu.Unlock()
		if err != nil {
			return err
		}
		// A frame queued while we held wmu found it locked and left its bytes to
		// us: look again now that it is free.
		s.mu.Lock()
		more := len(s.pending) > 0 && s.err == nil
		s.mu.Unlock()
		if !more {
			return nil
		}
	}
	return nil
}

// writePending writes what is pending, repeatedly; the caller holds wmu.
func (s *sender) writePending() error {
	for {
		s.mu.Lock()
		out := s.pending
		if len(out) == 0 || s.err != nil {
			err := s.err
			s.mu.Unlock()
			return err
		}
		s.pending, s.spare = s.spare[:0], nil
		s.mu.Unlock()
		_, err := s.conn.Write(out)
		s.mu.Lock()
		if cap(out) <= 4<<20 {
			s.spare = out[:0]
		}
		if err != nil && s.err == nil {
			s.err = err
		}
		s.mu.Unlock()
		if err != nil {
			s.conn.Close() // wakes the reader, which cleans up
			return err
		}
	}
}

// sendFDs writes frame with fds attached (SCM_RIGHTS), after everything queued
// before it, so the peer receives the descriptors with the frame's first byte.
func (s *sender) sendFDs(frame []byte, fds []int) error {
	s.wmu.Lock()
	err := s.writePending()
	if err == nil {
		var n int
		n, _, err = s.conn.WriteMsgUnix(frame, unix.UnixRights(fds...), nil)
		if err == nil && n < len(frame) {
			// The descriptors went with the first bytes; the rest follows plainly.
			_, err = s.conn.Write(frame[n:])
		}
		if err != nil {
			s.mu.Lock()
			if s.err == nil {
				s.err = err
			}
			s.mu.Unlock()
			s.conn.Close()
		}
	}
	s.wmu.Unlock()
	if err != nil {
		return err
	}
	return s.flush()
}

var errDead = errors.New("connection closed")

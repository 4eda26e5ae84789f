package quic

import (
	"log/slog"
	"net"
	"os"
	"sync"

	"golang.org/x/sys/unix"
)

// udpBuffer is the socket buffer size quic-go wants (its desiredBufferSize):
// below it, a burst of packets on a fast link overflows the socket and is lost.
const udpBuffer = 7 << 20

var udpWarnOnce sync.Once

// raiseBuffers raises the socket's receive and send buffers to udpBuffer:
// within net.core.rmem_max/wmem_max, or past them with SO_RCVBUFFORCE and
// SO_SNDBUFFORCE where the process may (CAP_NET_ADMIN). Where neither works it
// logs one line, once per process, naming the sysctls to raise, and silences
// quic-go's own warning about the same thing (QUIC_GO_DISABLE_RECEIVE_BUFFER_WARNING),
// which would otherwise go to the standard logger in another format.
func raiseBuffers(c *net.UDPConn, log *slog.Logger) {
	raw, err := c.SyscallConn()
	if err != nil {
		return
	}
	var rcv, snd int
	_ = raw.Control(func(fd uintptr) {
		rcv = raise(int(fd), unix.SO_RCVBUF, unix.SO_RCVBUFFORCE)
		snd = raise(int(fd), unix.SO_SNDBUF, unix.SO_SNDBUFFORCE)
	})
	if rcv >= udpBuffer && snd >= udpBuffer {
		return
	}
	udpWarnOnce.Do(func() {
		_ = os.Setenv("QUIC_GO_DISABLE_RECEIVE_BUFFER_WARNING", "true")
		log.Warn("quic: could not raise the UDP socket buffers; bulk pulls may lose packets and slow down. Raise them with sysctl -w net.core.rmem_max=7500000 net.core.wmem_max=7500000, or run with CAP_NET_ADMIN",
			"receive_buffer", rcv, "send_buffer", snd, "wanted", udpBuffer)
	})
}

// raise sets one buffer and returns its size as the kernel reports it.
func raise(fd, opt, force int) int {
	if size, _ := unix.GetsockoptInt(fd, unix.SOL_SOCKET, opt); size >= udpBuffer {
		return size
	}
	_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, opt, udpBuffer)
	if size, _ := unix.GetsockoptInt(fd, unix.SOL_SOCKET, opt); size >= udpBuffer {
		return size
	}
	_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, force, udpBuffer)
	size, _ := unix.GetsockoptInt(fd, unix.SOL_SOCKET, opt)
	return size
}

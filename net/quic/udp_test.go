package quic

import (
	"log/slog"
	"net"
	"os"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// With CAP_NET_ADMIN (root, as in CI) the buffers reach what quic-go wants even
// above net.core.rmem_max, and nothing is logged.
func TestRaiseBuffers(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs CAP_NET_ADMIN to pass net.core.rmem_max; the warning path is taken instead")
	}
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var log strings.Builder
	raiseBuffers(c, slog.New(slog.NewTextHandler(&log, nil)))
	raw, _ := c.SyscallConn()
	var rcv, snd int
	raw.Control(func(fd uintptr) {
		rcv, _ = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF)
		snd, _ = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUF)
	})
	if rcv < udpBuffer || snd < udpBuffer {
		t.Fatalf("buffers %d / %d bytes, want at least %d", rcv, snd, udpBuffer)
	}
	if log.Len() != 0 {
		t.Fatalf("logged %q", log.String())
	}
}

//go:build mips || mips64 || ppc64 || s390x

package zerocopy

// Typed views reinterpret stored bytes in the host's byte order, and trove writes
// them on little-endian hosts. Rather than silently read byte-swapped numbers on a
// big-endian port, the package does not build there.
var _ = zerocopyRequiresALittleEndianHost

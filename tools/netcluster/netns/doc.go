// Package netns builds a small network of Linux network namespaces on one
// machine, for trove's namespace cluster (tools/netcluster): a bridge, and per
// host a namespace with its own address, a veth pair to the bridge, its
// loopback up, and both directions of its link capped by a tc tbf qdisc. It
// injects faults on a host's link: a partition (the host-side veth set down),
// a slower rate (the tbf changed in place), and random packet loss in both
// directions by a small eBPF program attached with TCX to the host-side veth
// (ingress: what the host sends; egress: what it receives), which counts what
// it drops.
//
// It shells out to ip(8) and tc(8) rather than speaking netlink itself: every
// step is a command a person can read in the error, type again to look, and
// the leftovers of a crashed run are removed by name with the same tool
// (Cleanup), with no module added. Creating 16 hosts costs ~100 commands, well
// under a second.
//
// # What it creates, and the invariants
//
//   - Every name it creates starts with a fixed prefix: namespaces
//     "trove-nc-<i>", host-side veths "tnc-<i>" (the namespace side is "eth0"),
//     and one bridge "trovebr0". Cleanup removes exactly those, so it can run
//     after a crash, and touches nothing else on the machine.
//   - Addresses are 10.77.0.<i+1>/24, on a bridge with no address of its own:
//     the machine's own stack has no route to the hosts, and the hosts' traffic
//     never leaves the bridge.
//   - A Net is single-use and owned by one process at a time: New takes an
//     exclusive flock on /tmp/trove-netcluster.lock (the bridge name is global)
//     and Close releases it after removing everything, loss programs included.
//     Close is idempotent and safe to call from a signal handler's goroutine.
//
// Where namespaces cannot be made (not root, no ip or tc, no veth or bridge
// support), Available and New return an error wrapping ErrUnavailable, in one
// line that says why; tests skip with it.
package netns

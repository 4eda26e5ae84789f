#!/usr/bin/env bash
# loadgen-cluster.sh — start N troved cluster nodes on 127.0.0.1 (-insecure,
# each with its own socket, spill directory and HTTP port), run
# loadgen -cluster against them with the given flags, and stop them (also
# when interrupted). The figures in perf.md's "loadgen -cluster" section are
# this script's output.
#
# Usage: scripts/loadgen-cluster.sh [-n N] [-capacity SIZE] [LOADGEN FLAGS...]
#   e.g. scripts/loadgen-cluster.sh -n 3 -duration 10s -profile /tmp/cluster.pb.gz
# Environment: GO (go). Defaults: 3 nodes of 1GiB each.
set -uo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}
n=3
capacity=1GiB
while [ $# -gt 0 ]; do
	case $1 in
	-n) n=$2; shift 2 ;;
	-capacity) capacity=$2; shift 2 ;;
	*) break ;;
	esac
done
dir=$(mktemp -d /tmp/loadgen-cluster.XXXXXX)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill -INT "$p" 2>/dev/null; done
	wait "${pids[@]}" 2>/dev/null
	rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
$GO build -o "$dir/troved" ./cmd/troved && $GO build -o "$dir/loadgen" ./tools/loadgen || exit 1

join=""
socks=""
for i in $(seq 1 "$n"); do
	name=n$i
	mkdir -p "$dir/$name"
	args=(-socket "$dir/$name/s.sock" -http 127.0.0.1:0 -capacity "$capacity" -spill-dir "$dir/$name/spill"
		-listen 127.0.0.1:0 -name "$name" -insecure -log-level warn)
	[ -n "$join" ] && args+=(-join "$join")
	"$dir/troved" "${args[@]}" >"$dir/$name/out" 2>"$dir/$name/err" &
	pids+=($!)
	for _ in $(seq 200); do
		grep -q '^troved: cluster node' "$dir/$name/out" 2>/dev/null && break
		sleep 0.1
	done
	addr=$(sed -n "s/^troved: cluster node $name on //p" "$dir/$name/out")
	if [ -z "$addr" ]; then
		echo "loadgen-cluster: troved $name did not start within 20s:" >&2
		cat "$dir/$name/err" >&2
		exit 1
	fi
	[ -z "$join" ] && join=$addr
	socks+="${socks:+,}$dir/$name/s.sock"
done
# Let membership converge (gossip every 200 ms by default).
sleep 2
"$dir/loadgen" -cluster -socket "$socks" "$@"

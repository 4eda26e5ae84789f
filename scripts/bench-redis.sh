#!/usr/bin/env bash
# bench-redis.sh — trove against Redis, the store a user would pick instead.
#
# Starts a throwaway redis-server on 127.0.0.1 (a free port, a temporary
# directory, no persistence), runs the Redis and IPC benchmarks in bench/ with
# TROVE_REDIS_ADDR pointing at it, writes the raw output to bench/out/redis.txt
# and summarises it with benchstat. Redis is always stopped and its directory
# removed, whatever happens.
#
# Installs redis-server with apt-get if it is missing; if that is impossible
# (no root, no network), it says so and exits 0: the comparison is skipped, not
# failed.
#
# Environment: GO (default go), COUNT (6), BENCHTIME (1s), BENCH (the -bench
# pattern, default 'Redis|IPC'), BENCHSTAT (the benchstat command; default the
# pinned version the Makefile uses), REDIS_SERVER (the redis-server binary).
set -uo pipefail
cd "$(dirname "$0")/.."

GO=${GO:-go}
COUNT=${COUNT:-6}
BENCHTIME=${BENCHTIME:-1s}
BENCH=${BENCH:-Redis|IPC}
BENCHSTAT=${BENCHSTAT:-$GO run golang.org/x/perf/cmd/benchstat@v0.0.0-20260908200009-22c9c6c9d4da}
OUT=bench/out/redis.txt

redis_server=${REDIS_SERVER:-$(command -v redis-server || true)}
if [ -z "$redis_server" ]; then
	echo "bench-redis: redis-server not found; installing it with apt-get" >&2
	sudo=""
	if [ "$(id -u)" -ne 0 ]; then
		sudo=$(command -v sudo || true)
	fi
	if { [ "$(id -u)" -eq 0 ] || [ -n "$sudo" ]; } &&
		$sudo apt-get update -qq &&
		DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq redis-server >/dev/null; then
		redis_server=$(command -v redis-server || true)
	fi
	if [ -z "$redis_server" ]; then
		echo "bench-redis: SKIPPED: could not install redis-server (apt-get install -y redis-server failed)." >&2
		echo "bench-redis: install Redis by hand, or set REDIS_SERVER=/path/to/redis-server, and run 'make bench-redis' again." >&2
		exit 0
	fi
fi
redis_cli=$(command -v redis-cli || true)

tmp=$(mktemp -d "${TMPDIR:-/tmp}/trove-bench-redis.XXXXXX")
redis_pid=""
cleanup() {
	if [ -n "$redis_pid" ]; then
		kill "$redis_pid" 2>/dev/null
		wait "$redis_pid" 2>/dev/null
	fi
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ping answers 0 if a Redis answers PONG on port $1.
ping() {
	if [ -n "$redis_cli" ]; then
		[ "$("$redis_cli" -h 127.0.0.1 -p "$1" ping 2>/dev/null)" = "PONG" ]
		return
	fi
	# No redis-cli: speak RESP through bash's /dev/tcp.
	exec 9<>"/dev/tcp/127.0.0.1/$1" 2>/dev/null || return 1
	printf 'PING\r\n' >&9
	local reply=""
	read -r -t 1 reply <&9
	exec 9<&- 9>&-
	[ "${reply%$'\r'}" = "+PONG" ]
}

# port_busy answers 0 if something listens on 127.0.0.1:$1.
port_busy() { (exec 8<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Pick a free port; if another process takes it before Redis binds, Redis exits
# and the next candidate is tried.
port=""
for _ in $(seq 1 20); do
	candidate=$((20000 + RANDOM % 40000))
	port_busy "$candidate" && continue
	"$redis_server" --bind 127.0.0.1 --port "$candidate" --dir "$tmp" \
		--save '' --appendonly no --daemonize no --protected-mode yes \
		--logfile "$tmp/redis.log" &
	redis_pid=$!
	for _ in $(seq 1 100); do
		if ping "$candidate"; then
			port=$candidate
			break
		fi
		kill -0 "$redis_pid" 2>/dev/null || break
		sleep 0.05
	done
	[ -n "$port" ] && break
	kill "$redis_pid" 2>/dev/null
	wait "$redis_pid" 2>/dev/null
	redis_pid=""
done
if [ -z "$port" ]; then
	echo "bench-redis: redis-server did not start; its log:" >&2
	cat "$tmp/redis.log" >&2 2>/dev/null
	exit 1
fi
echo "bench-redis: $("$redis_server" --version) on 127.0.0.1:$port (pid $redis_pid, dir $tmp)"

mkdir -p bench/out
TROVE_REDIS_ADDR=127.0.0.1:$port $GO test -run '^$' -bench "$BENCH" -benchtime "$BENCHTIME" \
	-count "$COUNT" -timeout 60m ./bench/ | tee "$OUT"
status=${PIPESTATUS[0]}
if [ "$status" -ne 0 ]; then
	echo "bench-redis: go test failed (exit $status); raw output in $OUT" >&2
	exit "$status"
fi
$BENCHSTAT "$OUT"

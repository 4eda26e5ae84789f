#!/usr/bin/env bash
# fuzz.sh — run each fuzz target for FUZZTIME (go test -fuzz takes one target per run).
#
# Go 1.26's fuzzing coordinator can fail a target at the end of a duration
# -fuzztime with a bare "context deadline exceeded" and no failing input
# (go.dev/issue/75804, fixed in Go 1.27). A target that fails that way, having
# written no reproducer under testdata/fuzz/, is run once more; any other
# failure, or a second one, fails the run.
#
# Usage: scripts/fuzz.sh PKG:TARGET ...   Environment: GO (go), FUZZTIME (8s).
set -uo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}
FUZZTIME=${FUZZTIME:-8s}

corpus_files() { find "$1/testdata/fuzz/$2" -type f 2>/dev/null | sort; }

status=0
for spec in "$@"; do
	pkg=${spec%%:*}
	target=${spec#*:}
	for attempt in 1 2; do
		before=$(corpus_files "$pkg" "$target")
		out=$($GO test -run '^$' -fuzz "^${target}\$" -fuzztime "$FUZZTIME" "./$pkg/" 2>&1)
		rc=$?
		printf '%s\n' "$out" | tail -n 3
		[ $rc -eq 0 ] && break
		after=$(corpus_files "$pkg" "$target")
		if [ $attempt -eq 1 ] && [ "$before" = "$after" ] &&
			printf '%s\n' "$out" | grep -q '^    context deadline exceeded$' &&
			! printf '%s\n' "$out" | grep -qE 'panic:|Failing input written|fuzz_test.go:[0-9]+:'; then
			echo "fuzz: $target: Go's coordinator deadline race (go.dev/issue/75804), no failing input written; running it again" >&2
			continue
		fi
		printf '%s\n' "$out" >&2
		echo "fuzz: $target FAILED" >&2
		status=1
		break
	done
done
exit $status

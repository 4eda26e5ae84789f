#!/usr/bin/env bash
# loaded-test.sh: run the suite with both cores kept busy, as a shared CI
# machine would be, to find tests that depend on timing. Arguments go to
# `go test` (e.g. -race -count 2 -timeout 20m). The busy loops are bounded
# (timeout) and killed when the run ends.
#   scripts/loaded-test.sh -race -count 2 -timeout 20m
set -uo pipefail
cd "$(dirname "$0")/.."
busy=()
for _ in $(seq "$(nproc)"); do
	timeout 3000 bash -c 'while :; do :; done' &
	busy+=($!)
done
trap 'kill "${busy[@]}" 2>/dev/null' EXIT
echo "loaded-test: $(nproc) busy loops; go test $* ./..."
go test "$@" ./...
rc=$?
echo "loaded-test: rc=$rc"
exit $rc

#!/usr/bin/env bash
# chromium.sh — install headless Chromium (Debian's chromium package) for the
# dashboard's browser test (dashboard/browser_test.go), which skips with a
# message where there is none. Needs root and apt; does nothing if a chromium
# is already on PATH. Never fails the caller: where it cannot install, it
# says why and exits 0, and the browser test skips.
set -uo pipefail
for c in chromium chromium-browser; do
	if command -v "$c" >/dev/null 2>&1; then
		echo "chromium.sh: $(command -v "$c") is installed"
		exit 0
	fi
done
if ! command -v apt-get >/dev/null 2>&1; then
	echo "chromium.sh: no apt-get here: install Chromium by hand, or set CHROMIUM; the browser test will skip"
	exit 0
fi
if [ "$(id -u)" != 0 ]; then
	echo "chromium.sh: not root: run 'sudo apt-get install chromium', or set CHROMIUM; the browser test will skip"
	exit 0
fi
log=$(mktemp)
if apt-get update >"$log" 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium >>"$log" 2>&1; then
	echo "chromium.sh: installed $(command -v chromium)"
else
	echo "chromium.sh: apt-get could not install chromium (last lines below); the browser test will skip"
	tail -5 "$log"
fi
rm -f "$log"
exit 0

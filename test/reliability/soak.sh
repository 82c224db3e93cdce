#!/bin/sh
# The reliability suite's long form (BOOTSTRAPD_SOAK=1): builds bootstrapd, runs it under
# crashes, floods and signals, and prints each test's SOAK: figures at the end.
# Usage: test/reliability/soak.sh [extra go test flags, e.g. -run TestSpoofedMACFlood]
set -eu
cd "$(dirname "$0")/../.."
log=$(mktemp "${TMPDIR:-/tmp}/bootstrapd-soak.XXXXXX")
trap 'rm -f "$log"' EXIT
status=0
BOOTSTRAPD_SOAK=1 go test -v -count=1 -timeout 60m "$@" ./test/reliability/ >"$log" 2>&1 || status=$?
cat "$log"
echo
echo "== SOAK figures =="
grep 'SOAK:' "$log" | sed 's/^.*SOAK: /SOAK: /' || true
exit "$status"

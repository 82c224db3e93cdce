#!/bin/sh
# fetch-ipxe-sha.sh: packaging/fetch-ipxe.sh must stop with a clear error, and extract
# nothing, when the downloaded ipxe .deb does not have the pinned sha256.
set -eu
cd "$(dirname "$0")/../.."
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
if IPXE_SHA256=0000000000000000000000000000000000000000000000000000000000000000 \
	packaging/fetch-ipxe.sh "$work/ipxe" 2>"$work/err"; then
	echo "FAIL: fetch-ipxe.sh accepted a wrong sha256" >&2
	exit 1
fi
grep -q "sha256 mismatch for ipxe_.*want 0000" "$work/err" || { echo "FAIL: no clear sha256 error:" >&2; cat "$work/err" >&2; exit 1; }
if [ -n "$(ls -A "$work/ipxe" 2>/dev/null)" ]; then
	echo "FAIL: files extracted despite the mismatch: $(ls "$work/ipxe")" >&2
	exit 1
fi
echo "ok: fetch-ipxe.sh refuses a wrong sha256: $(cat "$work/err")"

#!/bin/sh
# fetch-arm64-kernel-sha.sh: packaging/fetch-arm64-kernel.sh must stop with a clear error, and
# extract nothing, when the downloaded kernel .deb does not have the pinned sha256.
set -eu
cd "$(dirname "$0")/../.."
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
if ARM64_KERNEL_SHA256=0000000000000000000000000000000000000000000000000000000000000000 \
	packaging/fetch-arm64-kernel.sh "$work/k" 2>"$work/err"; then
	echo "FAIL: fetch-arm64-kernel.sh accepted a wrong sha256" >&2
	exit 1
fi
grep -q "sha256 mismatch for linux-image-.*want 0000" "$work/err" || { echo "FAIL: no clear sha256 error:" >&2; cat "$work/err" >&2; exit 1; }
if [ -n "$(ls -A "$work/k" 2>/dev/null)" ]; then
	echo "FAIL: files extracted despite the mismatch: $(ls "$work/k")" >&2
	exit 1
fi
echo "ok: fetch-arm64-kernel.sh refuses a wrong sha256: $(cat "$work/err")"

#!/bin/sh
# fetch-syslinux-sha.sh: packaging/fetch-syslinux.sh must stop with a clear error, and extract
# nothing (not even the package whose sha256 is right), when a downloaded .deb does not have
# its pinned sha256.
set -eu
cd "$(dirname "$0")/../.."
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
if SYSLINUX_COMMON_SHA256=0000000000000000000000000000000000000000000000000000000000000000 \
	packaging/fetch-syslinux.sh "$work/syslinux" 2>"$work/err"; then
	echo "FAIL: fetch-syslinux.sh accepted a wrong sha256" >&2
	exit 1
fi
grep -q "sha256 mismatch for syslinux-common_.*want 0000" "$work/err" ||
	{ echo "FAIL: no clear sha256 error:" >&2; cat "$work/err" >&2; exit 1; }
if grep -q "mismatch for isolinux_" "$work/err"; then
	echo "FAIL: the right isolinux sha256 was reported as a mismatch:" >&2
	cat "$work/err" >&2
	exit 1
fi
if [ -n "$(ls -A "$work/syslinux" 2>/dev/null)" ]; then
	echo "FAIL: files extracted despite the mismatch: $(find "$work/syslinux")" >&2
	exit 1
fi
echo "ok: fetch-syslinux.sh refuses a wrong sha256: $(tr '\n' ' ' <"$work/err")"

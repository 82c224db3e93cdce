#!/bin/sh
# test/fuzz/run.sh must fail when a fuzzer finds a real crasher (it only forgives the engine's
# own deadline error, which writes no input). A throwaway copy of testdata/crasher is fuzzed.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp -r "$here/testdata/crasher" "$work/"
cd "$work/crasher"
if "$here/run.sh" 60s .:FuzzCrash >"$work/out" 2>&1; then
	cat "$work/out"
	echo "selftest: run.sh passed a target with a real crasher"
	exit 1
fi
if ! find testdata/fuzz/FuzzCrash -type f | grep -q .; then
	cat "$work/out"
	echo "selftest: run.sh failed, but no crasher input was written"
	exit 1
fi
echo "selftest: run.sh fails on a real crasher (input written to testdata/fuzz/FuzzCrash)"

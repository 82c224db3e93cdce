#!/bin/sh
# Runs Go fuzz targets, each for FUZZTIME, and fails only on a real finding.
#
# Go 1.26's fuzzing coordinator can end a duration-bounded run with "context deadline
# exceeded" and no failing input when the machine is loaded (golang/go#75804, fixed in Go
# 1.27): the -fuzztime deadline escapes the check meant to treat it as a normal stop. A real
# crasher always writes its input to testdata/fuzz/<Target>/. So a failed run that wrote no
# new input and printed that error is the engine's, and is retried once; a run that wrote an
# input, or failed any other way, fails this script.
#
# Usage: test/fuzz/run.sh FUZZTIME pkg:Target...
set -u
fuzztime=$1
shift
status=0
for t in "$@"; do
	pkg=${t%%:*}
	fn=${t##*:}
	dir=$pkg/testdata/fuzz/$fn
	attempt=1
	while :; do
		before=$(find "$dir" -type f 2>/dev/null | sort)
		echo "fuzz $pkg $fn ($fuzztime)"
		out=$(go test -run '^$' -fuzz "^$fn\$" -fuzztime "$fuzztime" "$pkg" 2>&1)
		rc=$?
		printf '%s\n' "$out"
		[ "$rc" -eq 0 ] && break
		after=$(find "$dir" -type f 2>/dev/null | sort)
		if [ "$before" = "$after" ] && printf '%s\n' "$out" | grep -q '^    context deadline exceeded$'; then
			if [ "$attempt" -lt 2 ]; then
				echo "fuzz $fn: the engine's own deadline (golang/go#75804), no input written: retrying once"
				attempt=$((attempt + 1))
				continue
			fi
			echo "fuzz $fn: the engine's deadline again and still no failing input: not a finding"
			break
		fi
		echo "fuzz $fn: FAILED (see the input under $dir, if any)"
		status=1
		break
	done
done
exit $status

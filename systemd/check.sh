#!/bin/sh
# check.sh [UNIT]: check a systemd unit with `systemd-analyze verify` and
# `systemd-analyze security --offline=true`; print the exposure score and fail when verify
# reports anything (even warnings, which it does not count as errors) or when the score is
# above MAX_EXPOSURE (default 2.0; bootstrapd.service scores 1.5 with systemd 252).
#
# Works without systemd as PID 1 and without bootstrapd installed: verify runs against a
# throw-away root holding the host's stock units, stubs for /usr/bin/bootstrapd and /bin/kill, so
# it checks exactly this file and not whatever may be installed on the machine.
set -eu

unit="${1:-$(dirname "$0")/bootstrapd.service}"
max="${MAX_EXPOSURE:-2.0}"
name=$(basename "$unit")

command -v systemd-analyze >/dev/null || { echo "check.sh: systemd-analyze missing (apt-get install systemd)" >&2; exit 1; }
[ -d /usr/lib/systemd/system ] || { echo "check.sh: /usr/lib/systemd/system missing" >&2; exit 1; }

root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root/usr/lib/systemd" "$root/usr/bin" "$root/etc/systemd/system"
cp -a /usr/lib/systemd/system "$root/usr/lib/systemd/"
ln -s usr/bin "$root/bin"
for stub in bootstrapd kill; do
	printf '#!/bin/sh\nexit 0\n' >"$root/usr/bin/$stub"
	chmod 0755 "$root/usr/bin/$stub"
done
cp "$unit" "$root/usr/lib/systemd/system/$name"

# --man=no: Documentation=man:bootstrapd(1) is installed by the .deb, not by this checkout.
if ! out=$(SYSTEMD_LOG_LEVEL=info systemd-analyze verify --man=no --root="$root" "$name" 2>&1) || [ -n "$out" ]; then
	echo "check.sh: systemd-analyze verify $unit:" >&2
	echo "$out" >&2
	exit 1
fi
echo "check.sh: systemd-analyze verify $unit: ok"

report=$(systemd-analyze security --offline=true "$unit" 2>&1) || { echo "$report" >&2; exit 1; }
score=$(echo "$report" | sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p')
[ -n "$score" ] || { echo "$report" >&2; echo "check.sh: no exposure score in the report" >&2; exit 1; }
# The findings that still count against the unit, for the log.
echo "$report" | grep '✗' || true
echo "check.sh: systemd-analyze security exposure $score (max $max)"
if awk -v s="$score" -v m="$max" 'BEGIN { exit !(s > m) }'; then
	echo "check.sh: exposure $score is above $max" >&2
	exit 1
fi

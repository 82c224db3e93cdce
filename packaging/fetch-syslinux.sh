#!/bin/sh
# fetch-syslinux.sh DEST: fetch Debian bookworm's isolinux and syslinux-common packages at the
# pinned version through apt, using a private sources list and state directory (the system's
# apt configuration is never read or written, no root needed), check their sha256, and extract
# the files the /iso/ and /usb/ media need:
#   DEST/isolinux/isolinux.bin, DEST/isolinux/isohdpfx.bin   (paths.isolinux)
#   DEST/bios/ldlinux.c32                                     (paths.syslinux_bios)
# `make run` points the daemon at these two directories (var/appliance.yaml), so an ordinary
# user gets working media without installing a package. If either .deb has the wrong sha256,
# nothing is extracted.
set -eu

SUITE="${SYSLINUX_SUITE:-bookworm}"
VERSION="${SYSLINUX_VERSION:-3:6.04~git20190206.bf6db5b4+dfsg1-3}"
ISOLINUX_SHA256="${ISOLINUX_SHA256:-cb14af88adc2c3844976cd2de61571d2af94d2fb65c277fe4acf3dc8a5d25aae}"
SYSLINUX_COMMON_SHA256="${SYSLINUX_COMMON_SHA256:-f7e4ead7fdfe5cb6117d8d2485d75e53570a8cf680c81a432f92c1774f878875}"
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
KEYRING="${DEBIAN_KEYRING:-/usr/share/keyrings/debian-archive-keyring.gpg}"
# Files as DEST-relative-path:path-inside-the-package.
FILES="isolinux/isolinux.bin:usr/lib/ISOLINUX/isolinux.bin
isolinux/isohdpfx.bin:usr/lib/ISOLINUX/isohdpfx.bin
bios/ldlinux.c32:usr/lib/syslinux/modules/bios/ldlinux.c32"

dest="${1:?usage: fetch-syslinux.sh DEST}"
stamp="$VERSION $ISOLINUX_SHA256 $SYSLINUX_COMMON_SHA256"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Already there and complete: nothing to do (`make run` calls this every time).
missing=0
for pair in $FILES; do [ -s "$dest/${pair%%:*}" ] || missing=1; done
if [ "$missing" = 0 ] && [ -f "$dest/VERSION" ] && [ "$(cat "$dest/VERSION")" = "$stamp" ]; then
	echo "fetch-syslinux: $dest already holds isolinux and syslinux-common $VERSION"
	exit 0
fi

mkdir -p "$work/debs"
# shellcheck source-path=SCRIPTDIR source=private-apt.sh
. "$(dirname "$0")/private-apt.sh"
private_apt_update "$work" "$SUITE" || exit 1
# shellcheck disable=SC2086
(cd "$work/debs" && apt-get $apt_opts -q download "isolinux=$VERSION" "syslinux-common=$VERSION") \
	>"$work/download.log" 2>&1 || {
	cat "$work/download.log" >&2
	echo "fetch-syslinux: apt could not download isolinux=$VERSION syslinux-common=$VERSION from $SUITE" >&2
	exit 1
}

# Check both packages before extracting anything.
bad=0
for pair in "isolinux:$ISOLINUX_SHA256" "syslinux-common:$SYSLINUX_COMMON_SHA256"; do
	pkg=${pair%%:*}
	want=${pair#*:}
	deb=$(ls "$work/debs/${pkg}"_*.deb)
	got=$(sha256sum "$deb" | cut -d' ' -f1)
	if [ "$got" != "$want" ]; then
		echo "fetch-syslinux: sha256 mismatch for $(basename "$deb"): got $got, want $want" >&2
		bad=1
	fi
done
[ "$bad" = 0 ] || { echo "fetch-syslinux: nothing extracted into $dest" >&2; exit 1; }

for deb in "$work"/debs/*.deb; do dpkg-deb -x "$deb" "$work/root"; done
for pair in $FILES; do
	src="$work/root/${pair#*:}"
	[ -s "$src" ] || { echo "fetch-syslinux: ${pair#*:} missing from the packages" >&2; exit 1; }
done
for pair in $FILES; do
	f=${pair%%:*}
	mkdir -p "$dest/$(dirname "$f")"
	# Write beside the final name and rename: a reader never sees half a file.
	cp "$work/root/${pair#*:}" "$dest/$f.tmp"
	mv -f "$dest/$f.tmp" "$dest/$f"
done
echo "$stamp" >"$dest/.VERSION.tmp" && mv -f "$dest/.VERSION.tmp" "$dest/VERSION"
echo "fetch-syslinux: isolinux and syslinux-common $VERSION ($SUITE, sha256 checked) extracted into $dest"

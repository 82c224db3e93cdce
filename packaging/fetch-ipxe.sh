#!/bin/sh
# fetch-ipxe.sh DEST: fetch Debian trixie's ipxe package at the pinned version through apt,
# using a private sources list and state directory (the system's apt configuration is never
# read or written), check its sha256, and extract the iPXE binaries bootstrapd serves into DEST.
#
# Why not the system package: Debian bookworm ships a 2019 iPXE without ipxe-amd64.efi,
# ipxe-arm64.efi or HTTPS. The pinned trixie build has all five files in /usr/lib/ipxe.
set -eu

VERSION="${IPXE_VERSION:-1.21.1+git20250501.dad20602+dfsg-1}"
SHA256="${IPXE_SHA256:-eeaca79dbde0fb86c102bf1d362c6f6a67ed0ddab38b3dd12e1b332339f5dd99}"
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
KEYRING="${DEBIAN_KEYRING:-/usr/share/keyrings/debian-archive-keyring.gpg}"
FILES="ipxe-amd64.efi ipxe-arm64.efi snponly.efi undionly.kpxe ipxe.lkrn"

dest="${1:?usage: fetch-ipxe.sh DEST}"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Already there and complete: nothing to do (CI and developers call this repeatedly).
missing=0
for f in $FILES; do [ -s "$dest/$f" ] || missing=1; done
keep="${IPXE_KEEP_DEB:-}"
if [ -n "$keep" ] && ! ls "$keep"/ipxe_*.deb >/dev/null 2>&1; then missing=1; fi
if [ "$missing" = 0 ] && [ -f "$dest/VERSION" ] && [ "$(cat "$dest/VERSION")" = "$VERSION" ]; then
	echo "fetch-ipxe: $dest already holds ipxe $VERSION"
	exit 0
fi

# shellcheck source-path=SCRIPTDIR source=private-apt.sh
. "$(dirname "$0")/private-apt.sh"
private_apt_update "$work" trixie || exit 1
# shellcheck disable=SC2086
(cd "$work" && apt-get $apt_opts -q download "ipxe=$VERSION") >"$work/download.log" 2>&1 ||
	{ cat "$work/download.log" >&2; echo "fetch-ipxe: apt could not download ipxe=$VERSION" >&2; exit 1; }

deb=$(ls "$work"/ipxe_*.deb)
got=$(sha256sum "$deb" | cut -d' ' -f1)
if [ "$got" != "$SHA256" ]; then
	echo "fetch-ipxe: sha256 mismatch for $(basename "$deb"): got $got, want $SHA256" >&2
	exit 1
fi

if [ -n "$keep" ]; then
	mkdir -p "$keep"
	cp "$deb" "$keep/.$(basename "$deb").tmp" && mv -f "$keep/.$(basename "$deb").tmp" "$keep/$(basename "$deb")"
fi

dpkg-deb -x "$deb" "$work/root"
mkdir -p "$dest"
for f in $FILES; do
	src="$work/root/usr/lib/ipxe/$f"
	[ -s "$src" ] || { echo "fetch-ipxe: $f missing from $(basename "$deb")" >&2; exit 1; }
	# Write beside the final name and rename: a reader never sees half a binary.
	cp "$src" "$dest/.$f.tmp"
	sync "$dest/.$f.tmp" 2>/dev/null || true
	mv -f "$dest/.$f.tmp" "$dest/$f"
done
echo "$VERSION" >"$dest/.VERSION.tmp" && mv -f "$dest/.VERSION.tmp" "$dest/VERSION"
echo "fetch-ipxe: ipxe $VERSION (sha256 $got) extracted into $dest"

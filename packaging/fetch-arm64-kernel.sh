#!/bin/sh
# fetch-arm64-kernel.sh DEST: fetch Debian bookworm's arm64 cloud kernel package at the pinned
# version through apt, using a private sources list and state directory for arm64 (the
# system's apt configuration is never read or written), check its sha256, and extract the
# kernel into DEST/vmlinuz. The e2e suite's arm64 nodes boot it as net/test-arm64.efi.
#
# Why this package: Debian's arm64 vmlinuz is an EFI-stub Image that iPXE arm64 boots as it
# is, and the cloud flavour is the smallest (a 21 MB .deb; its PL011 serial console,
# ttyAMA0, is built in, so the kernel prints its command line on qemu's virt machine).
set -eu

PACKAGE="${ARM64_KERNEL_PACKAGE:-linux-image-6.1.0-50-cloud-arm64}"
VERSION="${ARM64_KERNEL_VERSION:-6.1.176-1}"
SHA256="${ARM64_KERNEL_SHA256:-9d41a53f5d687ae1a33cf546d0ed8be955f72e5f9e97b2b4e45e41dff3353b97}"
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
KEYRING="${DEBIAN_KEYRING:-/usr/share/keyrings/debian-archive-keyring.gpg}"

dest="${1:?usage: fetch-arm64-kernel.sh DEST}"
pin="$PACKAGE=$VERSION"
# Already there: nothing to do (CI and developers call this repeatedly).
if [ -s "$dest/vmlinuz" ] && [ -f "$dest/VERSION" ] && [ "$(cat "$dest/VERSION")" = "$pin" ]; then
	echo "fetch-arm64-kernel: $dest already holds $pin"
	exit 0
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# shellcheck source-path=SCRIPTDIR source=private-apt.sh
. "$(dirname "$0")/private-apt.sh"
private_apt_update "$work" bookworm arm64 || exit 1
# shellcheck disable=SC2086
(cd "$work" && apt-get $apt_opts -q download "$pin") >"$work/download.log" 2>&1 ||
	{ cat "$work/download.log" >&2; echo "fetch-arm64-kernel: apt could not download $pin" >&2; exit 1; }

deb=$(ls "$work"/linux-image-*.deb)
got=$(sha256sum "$deb" | cut -d' ' -f1)
if [ "$got" != "$SHA256" ]; then
	echo "fetch-arm64-kernel: sha256 mismatch for $(basename "$deb"): got $got, want $SHA256" >&2
	exit 1
fi

dpkg-deb -x "$deb" "$work/root"
set -- "$work"/root/boot/vmlinuz-*
[ -s "$1" ] || { echo "fetch-arm64-kernel: no boot/vmlinuz-* in $(basename "$deb")" >&2; exit 1; }
mkdir -p "$dest"
# Write beside the final name and rename: a reader never sees half a kernel.
cp "$1" "$dest/.vmlinuz.tmp"
sync "$dest/.vmlinuz.tmp" 2>/dev/null || true
mv -f "$dest/.vmlinuz.tmp" "$dest/vmlinuz"
echo "$pin" >"$dest/.VERSION.tmp" && mv -f "$dest/.VERSION.tmp" "$dest/VERSION"
echo "fetch-arm64-kernel: $pin (sha256 $got) extracted into $dest/vmlinuz ($(basename "$1"))"

#!/bin/sh
# build-deb.sh VERSION ARCH OUTDIR: build OUTDIR/bootstrapd_<debversion>_<ARCH>.deb with
# dpkg-deb (no debhelper, no Debian source tree) and print its path.
#
# VERSION  the release, as given to `-X main.version` ("v0.2.0", "0.2.0", or a
#          `git describe` string such as "0.2.0-3-gabc1234"). The package version is
#          derived from it: leading "v" dropped, "-" turned into "+" (so a later commit sorts
#          after its tag), "0.0.0~" put in front when it does not start with "N." (a bare
#          commit hash, "dev"), and the Debian revision "-${DEB_REVISION:-1}" appended:
#          0.2.0 -> 0.2.0-1, v0.2.0-3-gabc1234 -> 0.2.0+3+gabc1234-1, dev -> 0.0.0~dev-1.
# ARCH     amd64 or arm64 (the Debian and the Go names agree for both).
# OUTDIR   where the .deb goes (created if missing).
#
# Environment:
#   BOOTSTRAPD_BIN     package this prebuilt binary instead of building ./cmd/bootstrapd
#                      (packaging tests only: it must be for ARCH).
#   IPXE_EMBED_DIR     holds ipxe-amd64-script.efi, ipxe-arm64-script.efi, snponly-script.efi (`make embed`),
#                      default var/ipxe-embed; when they are not there they are built into a
#                      temporary directory with packaging/fetch-ipxe.sh and
#                      packaging/ipxe-embed/build.sh (network, clang and lld needed).
#   DEB_REVISION       Debian revision, default 1.
#   DEB_MAINTAINER     Maintainer field, default from the top of packaging/deb/changelog.
#   SOURCE_DATE_EPOCH  timestamp of every file and of a generated changelog entry; default:
#                      the HEAD commit's time, so two builds of a commit are byte-identical.
#
# Package layout: /usr/bin/bootstrapd, /etc/bootstrapd/appliance.yaml (conffile),
# /usr/lib/systemd/system/bootstrapd.service, /usr/lib/bootstrapd/ipxe-embed/ (the EFI
# binaries the /uefi/ media endpoints patch; the same files in both architectures' packages,
# they run on the booting node), man page, copyright, changelog.Debian.gz and the licenses
# of the Go modules compiled into the binary (go-modules.txt.gz).
set -eu
umask 022

version="${1:?usage: build-deb.sh VERSION ARCH OUTDIR}"
arch="${2:?usage: build-deb.sh VERSION ARCH OUTDIR}"
outdir="${3:?usage: build-deb.sh VERSION ARCH OUTDIR}"

case "$arch" in
amd64 | arm64) ;;
*) echo "build-deb: unsupported ARCH $arch (amd64, arm64)" >&2; exit 2 ;;
esac

top=$(cd "$(dirname "$0")/.." && pwd)
deb="$top/packaging/deb"

# Debian version from VERSION (see the header). Only characters Debian allows in an
# upstream version survive; anything else becomes "+".
upstream=$(printf '%s' "$version" | sed -e 's/^v\([0-9]\)/\1/' -e 's/-/+/g' -e 's/[^A-Za-z0-9.+~]/+/g')
case "$upstream" in
[0-9]*.*) ;;
*) upstream="0.0.0~$upstream" ;;
esac
debversion="$upstream-${DEB_REVISION:-1}"

if [ -z "${SOURCE_DATE_EPOCH:-}" ]; then
	SOURCE_DATE_EPOCH=$(git -C "$top" log -1 --format=%ct 2>/dev/null || date +%s)
fi
export SOURCE_DATE_EPOCH

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
root="$work/root"
mkdir -p "$root/DEBIAN" "$root/usr/bin" "$root/etc/bootstrapd" "$root/usr/lib/systemd/system" \
	"$root/usr/lib/bootstrapd/ipxe-embed" \
	"$root/usr/share/doc/bootstrapd" "$root/usr/share/man/man1" "$root/usr/share/lintian/overrides"

# The binary. Static (CGO_ENABLED=0) so one build runs on every Debian release.
bin="$root/usr/bin/bootstrapd"
if [ -n "${BOOTSTRAPD_BIN:-}" ]; then
	cp "$BOOTSTRAPD_BIN" "$bin"
else
	# The Makefile's GOTAGS: gin's MessagePack codec and gRPC's request tracing left out.
	(cd "$top" && CGO_ENABLED=0 GOOS=linux GOARCH="$arch" go build -trimpath -tags "${GOTAGS:-nomsgpack,grpcnotrace}" \
		-ldflags "-s -w -X main.version=$version" -o "$bin" ./cmd/bootstrapd)
fi
chmod 0755 "$bin"
goarch=$(go version -m "$bin" 2>/dev/null | sed -n 's/^[[:space:]]*build[[:space:]]*GOARCH=//p')
if [ -n "$goarch" ] && [ "$goarch" != "$arch" ]; then
	echo "build-deb: $bin is built for $goarch, not $arch" >&2
	exit 1
fi

# Script-carrying EFI binaries for /uefi/, /uefi-generic, /uefi-provision (paths.ipxe_embed).
embed="${IPXE_EMBED_DIR:-$top/var/ipxe-embed}"
embed_files="ipxe-amd64-script.efi ipxe-arm64-script.efi snponly-script.efi"
for f in $embed_files; do
	if [ ! -s "$embed/$f" ]; then
		echo "build-deb: $embed/$f missing: building the iPXE embed binaries" >&2
		sh "$top/packaging/fetch-ipxe.sh" "$work/ipxe" >&2
		sh "$top/packaging/ipxe-embed/build.sh" "$work/ipxe" "$work/ipxe-embed" >&2
		embed="$work/ipxe-embed"
		break
	fi
done
for f in $embed_files; do
	install -m 0644 "$embed/$f" "$root/usr/lib/bootstrapd/ipxe-embed/$f"
done

install -m 0644 "$deb/appliance.yaml" "$root/etc/bootstrapd/appliance.yaml"
install -m 0644 "$top/systemd/bootstrapd.service" "$root/usr/lib/systemd/system/bootstrapd.service"
install -m 0644 "$deb/copyright" "$root/usr/share/doc/bootstrapd/copyright"
install -m 0644 "$deb/lintian-overrides" "$root/usr/share/lintian/overrides/bootstrapd"
gzip -9n <"$deb/bootstrapd.1" >"$root/usr/share/man/man1/bootstrapd.1.gz"
for script in postinst prerm postrm; do
	install -m 0755 "$deb/$script" "$root/DEBIAN/$script"
done
echo /etc/bootstrapd/appliance.yaml >"$root/DEBIAN/conffiles"

# Maintainer: the one who signed the newest changelog entry, unless overridden.
maintainer="${DEB_MAINTAINER:-$(sed -n 's/^ -- \(.*>\)  .*/\1/p' "$deb/changelog" | head -n 1)}"

# changelog.Debian: the maintained history, plus a generated entry on top when this build's
# version is not the newest one there (dpkg and lintian expect the package version on top).
top_version=$(sed -n '1s/^bootstrapd (\([^)]*\)).*/\1/p' "$deb/changelog")
if [ "$top_version" != "$debversion" ]; then
	commit=$(git -C "$top" rev-parse --short HEAD 2>/dev/null || echo unknown)
	{
		echo "bootstrapd ($debversion) unstable; urgency=medium"
		echo
		echo "  * Build of bootstrapd $version (git $commit)."
		echo
		echo " -- $maintainer  $(LC_ALL=C date -u -R -d "@$SOURCE_DATE_EPOCH")"
		echo
		cat "$deb/changelog"
	} >"$work/changelog"
else
	cp "$deb/changelog" "$work/changelog"
fi
gzip -9n <"$work/changelog" >"$root/usr/share/doc/bootstrapd/changelog.Debian.gz"

# The Go toolchain and every module linked into the binary, with the license each ships
# (read from the module cache the build just used). Apache-2.0, BSD and MIT all ask that
# their notice travel with binaries.
modcache=$(go env GOMODCACHE 2>/dev/null || true)
goroot=$(go env GOROOT 2>/dev/null || true)
{
	echo "Go toolchain and modules compiled into /usr/bin/bootstrapd, with their licenses."
	echo "Generated by packaging/build-deb.sh from \`go version -m /usr/bin/bootstrapd\`."
	go version -m "$bin" 2>/dev/null | awk '$1 == "dep" || $1 == "=>" { print $2, $3 }' |
		while read -r mod ver; do
			# Module cache paths escape upper case letters as "!" + lower case.
			esc=$(printf '%s' "$mod" | LC_ALL=C sed 's/\([A-Z]\)/!\1/g' | LC_ALL=C tr '[:upper:]' '[:lower:]')
			lic=$(find "$modcache/$esc@$ver" -maxdepth 1 -type f \( -iname 'licen[cs]e*' -o -iname 'copying*' \) \
				2>/dev/null | LC_ALL=C sort | head -n 1)
			echo
			echo "================================================================"
			echo "$mod $ver"
			echo "================================================================"
			if [ -n "$lic" ]; then cat "$lic"; else echo "(license file not found in the module cache at build time)"; fi
		done
	toolchain=$(go version -m "$bin" 2>/dev/null | head -n 1 | awk '{ print $2 }')
	echo
	echo "================================================================"
	echo "Go standard library ${toolchain:-unknown}"
	echo "================================================================"
	if [ -f "$goroot/LICENSE" ]; then cat "$goroot/LICENSE"; else echo "(BSD-3-Clause: https://go.dev/LICENSE)"; fi
} >"$work/go-modules.txt"
gzip -9n <"$work/go-modules.txt" >"$root/usr/share/doc/bootstrapd/go-modules.txt.gz"

# Installed-Size in KiB, as dpkg-gencontrol counts it: each file rounded up to 1 KiB.
installed_size=$(cd "$root" && find . -path ./DEBIAN -prune -o \( -type f -o -type l \) -print0 |
	xargs -0 stat -c %s | awk '{ s += int(($1 + 1023) / 1024) } END { print s + 0 }')
sed -e "s/@VERSION@/$debversion/" -e "s/@ARCH@/$arch/" -e "s/@INSTALLED_SIZE@/$installed_size/" \
	-e "s/@MAINTAINER@/$maintainer/" "$deb/control.in" >"$root/DEBIAN/control"

(cd "$root" && find . -path ./DEBIAN -prune -o -type f -print | sed 's|^\./||' | LC_ALL=C sort |
	xargs md5sum) >"$root/DEBIAN/md5sums"
chmod 0644 "$root/DEBIAN/control" "$root/DEBIAN/conffiles" "$root/DEBIAN/md5sums"

find "$root" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +

mkdir -p "$outdir"
out="$outdir/bootstrapd_${debversion}_${arch}.deb"
dpkg-deb --root-owner-group -Zxz --build "$root" "$out" >/dev/null
echo "$out"

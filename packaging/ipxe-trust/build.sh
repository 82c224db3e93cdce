#!/bin/sh
# build.sh OUT_DIR: build the iPXE binaries the boot media use for an https:// public_url
# (ipxe-amd64.efi, ipxe-arm64.efi, ipxe.lkrn) from the iPXE commit Debian packaged, with
# Debian's options, trusting the ISRG roots (Let's Encrypt) from Debian's ca-certificates and
# iPXE's own root CA. Stock iPXE trusts only iPXE's root and reaches every other CA through
# cross-signed certificates it downloads from ca.ipxe.org at boot; these binaries need no
# outside service to check a Let's Encrypt certificate.
#
# Not part of `make run`: the Debian binaries serve everything else, and media fall back to
# them when OUT_DIR is empty. The build takes minutes (three iPXE platforms), so it is cached:
# OUT_DIR/KEY is the sha256 of every input (source pin, this script, config/*.h, the trusted
# certificates, the targets, the compiler), and a build whose key matches is skipped.
#
# Environment:
#   IPXE_SRC           the pinned source: the tarball ipxe-dad20602.tar.xz (sha256-checked) or
#                      a git checkout at the pinned commit. Unset: cloned from upstream into
#                      ${XDG_CACHE_HOME:-$HOME/.cache}/bootstrapd/ipxe (needs git and network).
#   IPXE_TARGETS       any of "amd64 arm64 lkrn" (default: all three).
#   IPXE_TRUST_EXTRA   more CA certificates (PEM files, space-separated) to trust, for tests
#                      with a private CA. Never set it for binaries that leave the test.
#   IPXE_COMPARE       a directory with Debian's ipxe-amd64.efi: after the build, the
#                      commands and protocols of ours must be Debian's plus syslog.
# Needs: build-essential, liblzma-dev, mtools, openssl, xz-utils; gcc-aarch64-linux-gnu for arm64.
set -eu

out="${1:?usage: build.sh OUT_DIR}"
here=$(cd "$(dirname "$0")" && pwd)
COMMIT=dad20602609438e72f2fe8d9dd49b9a92b8490fa
TARBALL_SHA256=b23b3f3d28f78b3b2f272d01aeb0b11219e052bdf60a85510bfb753599acc1bd
UPSTREAM="${IPXE_UPSTREAM:-https://github.com/ipxe/ipxe.git}"
CA_DIR="${CA_DIR:-/usr/share/ca-certificates/mozilla}"
targets="${IPXE_TARGETS:-amd64 arm64 lkrn}"
# iPXE's root CA, as crypto/rootcert.c names it (sha256 of the certificate): the build keeps
# trusting it, so iPXE's cross-signed certificates still work for other public CAs.
IPXE_ROOT_FP=9faf717b7f8ca2f93c256c79f8ac5591895d66d1ff3bee6397a70d29c65eed1a

die() { echo "ipxe-trust: $*" >&2; exit 1; }

for t in $targets; do
	case "$t" in amd64 | arm64 | lkrn) ;; *) die "IPXE_TARGETS: unknown target $t (amd64, arm64, lkrn)" ;; esac
done
command -v openssl >/dev/null 2>&1 || die "openssl is needed (apt install openssl)"
case " $targets " in *" arm64 "*)
	command -v aarch64-linux-gnu-gcc >/dev/null 2>&1 || die "arm64 needs aarch64-linux-gnu-gcc (apt install gcc-aarch64-linux-gnu)" ;;
esac

# The trusted roots: Debian's ISRG Root X1 and X2, then the test's extras.
certs="$CA_DIR/ISRG_Root_X1.crt $CA_DIR/ISRG_Root_X2.crt ${IPXE_TRUST_EXTRA:-}"
fps="$IPXE_ROOT_FP"
for c in $certs; do
	[ -s "$c" ] || die "$c is missing (apt install ca-certificates)"
	fp=$(openssl x509 -in "$c" -noout -fingerprint -sha256 | sed 's/.*=//; s/://g' | tr 'A-F' 'a-f')
	[ ${#fp} = 64 ] || die "$c: not a PEM certificate"
	fps="$fps $fp"
done

key=$({
	echo "$COMMIT $targets $fps"
	cat "$0" "$here"/config/*.h
	gcc --version | head -1
	case " $targets " in *" arm64 "*) aarch64-linux-gnu-gcc --version | head -1 ;; esac
} | sha256sum | cut -d' ' -f1)
if [ -f "$out/KEY" ] && [ "$(cat "$out/KEY")" = "$key" ]; then
	echo "ipxe-trust: $out is up to date ($key)"
	exit 0
fi

# The build tree is kept between runs (IPXE_BUILD_CACHE): a build that differs only in what
# it trusts recompiles one file, and the three platforms share the extracted source.
cache="${IPXE_BUILD_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/bootstrapd/ipxe-build}"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
src="${IPXE_SRC:-}"
if [ -z "$src" ]; then
	src="${XDG_CACHE_HOME:-$HOME/.cache}/bootstrapd/ipxe"
	if [ ! -d "$src/.git" ]; then
		command -v git >/dev/null 2>&1 || die "git is needed to fetch iPXE (or set IPXE_SRC)"
		git clone -q --filter=blob:none --no-checkout "$UPSTREAM" "$src" || die "git clone $UPSTREAM failed"
	fi
	git -C "$src" checkout -q "$COMMIT" 2>/dev/null || { git -C "$src" fetch -q origin && git -C "$src" checkout -q "$COMMIT"; } ||
		die "commit $COMMIT not found in $UPSTREAM"
fi
tree="$cache/ipxe-$COMMIT"
if [ ! -f "$tree/.complete" ]; then
	rm -rf "$tree"
	mkdir -p "$tree"
	if [ -f "$src" ]; then
		got=$(sha256sum "$src" | cut -d' ' -f1)
		[ "$got" = "$TARBALL_SHA256" ] || die "$src: sha256 $got, want $TARBALL_SHA256"
		tar -C "$tree" --strip-components=1 -xJf "$src"
	else
		[ "$(git -C "$src" rev-parse HEAD)" = "$COMMIT" ] || die "$src is not at commit $COMMIT"
		git -C "$src" archive "$COMMIT" | tar -C "$tree" -x
	fi
	touch "$tree/.complete"
fi
[ -f "$tree/src/Makefile" ] || die "no iPXE source in $src"
# Copied only when changed: a fresh mtime on a config header would recompile every object.
for h in "$here"/config/*.h; do
	cmp -s "$h" "$tree/src/config/local/${h##*/}" || cp "$h" "$tree/src/config/local/"
done

# TRUST= takes certificate files; iPXE's own root is known here by its fingerprint only (its
# certificate is on ca.ipxe.org), so the fingerprints go in as TRUST= would put them.
trusted=""
for fp in $fps; do
	trusted="$trusted$(echo "$fp" | sed 's/../0x&, /g')"
done
jobs="${JOBS:-$(nproc)}"
mkdir -p "$out"
for t in $targets; do
	case "$t" in
	amd64) goal=bin-x86_64-efi/ipxe.efi name=ipxe-amd64.efi cross="" ;;
	arm64) goal=bin-arm64-efi/ipxe.efi name=ipxe-arm64.efi cross=aarch64-linux-gnu- ;;
	lkrn) goal=bin/ipxe.lkrn name=ipxe.lkrn cross="" ;;
	esac
	echo "ipxe-trust: building $goal"
	start=$(date +%s)
	# The trusted fingerprints reach rootcert.o through CFLAGS only, which make does not
	# track: rebuild that one object every time.
	rm -f "$tree/src/${goal%/*}/rootcert.o"
	make -s -C "$tree/src" -j"$jobs" CROSS="$cross" NO_WERROR=1 \
		CFLAGS_rootcert="-DTRUSTED=\"$trusted\"" "$goal" >"$work/$t.log" 2>&1 ||
		{ tail -30 "$work/$t.log" >&2; die "$goal failed"; }
	echo "ipxe-trust: $goal built in $(($(date +%s) - start)) s"
	cp "$tree/src/$goal" "$out/.$name.tmp"
	sync "$out/.$name.tmp" 2>/dev/null || true
	mv -f "$out/.$name.tmp" "$out/$name"
done

if [ -n "${IPXE_COMPARE:-}" ] && [ -s "$out/ipxe-amd64.efi" ]; then
	"$here/compare.sh" "$IPXE_COMPARE/ipxe-amd64.efi" "$out/ipxe-amd64.efi"
fi
# What the binaries trust, for people and for the media builder's log.
for fp in $fps; do echo "$fp"; done >"$out/.TRUST.tmp" && mv -f "$out/.TRUST.tmp" "$out/TRUST"
echo "$key" >"$out/.KEY.tmp" && mv -f "$out/.KEY.tmp" "$out/KEY"
echo "ipxe-trust: $targets built into $out"

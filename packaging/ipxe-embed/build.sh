#!/bin/sh
# build.sh IPXE_DIR OUT_DIR: build the script-carrying EFI binaries bootstrapd's /uefi/ and
# /uefi-generic, /uefi-provision endpoints patch per request (ipxe/media).
#
# OUT_DIR/ipxe-amd64-script.efi and OUT_DIR/ipxe-arm64-script.efi are stub.c (a small EFI
# application, see its header) with the stock iPXE binary from IPXE_DIR (the pinned Debian
# build that packaging/fetch-ipxe.sh extracts) linked in, and an empty 4 KiB script slot.
# OUT_DIR/snponly-script.efi is the same stub around Debian's snponly.efi (x86_64 only:
# iPXE driving the NIC through the firmware's own network driver), for /snponly/.
#
# Why not iPXE built with EMBED=: that needs the iPXE source, and the Debian mirrors this
# project can reach serve binary packages only (`apt-get source ipxe` gets 404). The stub
# uses iPXE's documented EFI command-line script instead (src/interface/efi/efi_cmdline.c,
# iPXE >= 1.21.1+git2023), so the shipped iPXE itself is byte-for-byte Debian's.
#
# One compiler for both architectures: clang targets PE/COFF directly and lld links EFI
# applications, so no cross gcc, no gnu-efi and no objcopy step. -Brepro (no timestamp)
# makes the output reproducible; a stamp file skips the build when nothing changed.
# Needs: clang lld (Debian packages; installed here when missing and running as root).
set -eu

ipxe_dir="${1:?usage: build.sh IPXE_DIR OUT_DIR}"
out="${2:?usage: build.sh IPXE_DIR OUT_DIR}"
here=$(cd "$(dirname "$0")" && pwd)

need=""
command -v clang >/dev/null 2>&1 || need="$need clang"
command -v ld.lld >/dev/null 2>&1 || need="$need lld"
if [ -n "$need" ]; then
	if [ "$(id -u)" = 0 ]; then
		# shellcheck disable=SC2086 # $need is a list of package names
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $need >/dev/null
	else
		echo "ipxe-embed: install$need (Debian packages) first" >&2
		exit 1
	fi
fi

for f in ipxe-amd64.efi ipxe-arm64.efi snponly.efi; do
	[ -s "$ipxe_dir/$f" ] || { echo "ipxe-embed: $ipxe_dir/$f missing (run packaging/fetch-ipxe.sh $ipxe_dir)" >&2; exit 1; }
done

stamp=$( (cat "$here/stub.c" "$here/build.sh" "$ipxe_dir/ipxe-amd64.efi" "$ipxe_dir/ipxe-arm64.efi" "$ipxe_dir/snponly.efi"; clang --version) | sha256sum | cut -d' ' -f1)
if [ -f "$out/STAMP" ] && [ "$(cat "$out/STAMP")" = "$stamp" ] &&
	[ -s "$out/ipxe-amd64-script.efi" ] && [ -s "$out/ipxe-arm64-script.efi" ] && [ -s "$out/snponly-script.efi" ]; then
	echo "ipxe-embed: $out is up to date"
	exit 0
fi

mkdir -p "$out"
# target:iPXE binary:stub name
for build in x86_64:ipxe-amd64:ipxe-amd64-script aarch64:ipxe-arm64:ipxe-arm64-script x86_64:snponly:snponly-script; do
	target=${build%%:*}
	rest=${build#*:}
	src=${rest%%:*}
	name=${rest#*:}
	# x86_64 EFI code must not use the red zone (firmware interrupts write below rsp).
	redzone=-mno-red-zone
	[ "$target" = x86_64 ] || redzone=-Wno-unused-command-line-argument
	snponly=-USNPONLY
	[ "$src" != snponly ] || snponly=-DSNPONLY
	# shellcheck disable=SC2016
	clang --target="$target-unknown-windows" -std=c11 -O2 -Wall -Werror \
		-ffreestanding -fshort-wchar -fno-stack-protector -fno-builtin -nostdlib \
		"$redzone" "$snponly" \
		-DIPXE_EFI="\"$ipxe_dir/$src.efi\"" \
		-fuse-ld=lld -Wl,-entry:efi_main -Wl,-subsystem:efi_application -Wl,-Brepro \
		-o "$out/.$name.efi.tmp" "$here/stub.c"
	mv -f "$out/.$name.efi.tmp" "$out/$name.efi"
done
rm -f "$out"/*.lib
echo "$stamp" >"$out/STAMP"
echo "ipxe-embed: built $out/ipxe-amd64-script.efi $out/ipxe-arm64-script.efi $out/snponly-script.efi"

#!/bin/sh
# xorriso-mtools.sh KIND OUT IPXE_DIR ISOLINUX_DIR SYSLINUX_BIOS_DIR SCRIPT_FILE
# The external-tool way to build the same media as ipxe/media, for the benchmark beside the
# Go builders (BenchmarkExternal): mtools for the FAT16 ESP, xorriso for the hybrid ISO.
# KIND: iso (= usb: same hybrid layout) or uefimg (FAT16 ESP image with mtools; the GPT is
# left out, which only flatters the external tools).
set -eu
kind=$1 out=$2 ipxe=$3 isolinux=$4 bios=$5 script=$6
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

esp="$work/efi.img"
truncate -s 5M "$esp"
mformat -i "$esp" -T 10240 -h 64 -s 32 -c 2 -v IPXE ::
mmd -i "$esp" ::/EFI ::/EFI/BOOT
mcopy -i "$esp" "$ipxe/ipxe-amd64.efi" ::/EFI/BOOT/BOOTX64.EFI
mcopy -i "$esp" "$ipxe/ipxe-arm64.efi" ::/EFI/BOOT/BOOTAA64.EFI
mcopy -i "$esp" "$script" ::/autoexec.ipxe

case "$kind" in
uefimg)
	mv "$esp" "$out"
	;;
iso | usb)
	root="$work/root"
	mkdir -p "$root/isolinux"
	cp "$isolinux/isolinux.bin" "$bios/ldlinux.c32" "$root/isolinux/"
	printf 'DEFAULT ipxe\nPROMPT 0\nTIMEOUT 0\nLABEL ipxe\n  KERNEL /ipxe.lkrn\n  APPEND initrd=/autoexec.ipxe\n' >"$root/isolinux/isolinux.cfg"
	cp "$ipxe/ipxe.lkrn" "$root/"
	cp "$script" "$root/autoexec.ipxe"
	mv "$esp" "$root/efi.img"
	xorriso -as mkisofs -quiet -R -V BOOTSTRAPD_IPXE -o "$out" \
		-isohybrid-mbr "$isolinux/isohdpfx.bin" \
		-b isolinux/isolinux.bin -c isolinux/boot.cat -no-emul-boot -boot-load-size 4 -boot-info-table \
		-eltorito-alt-boot -e efi.img -no-emul-boot -isohybrid-gpt-basdat "$root" 2>/dev/null
	;;
*)
	echo "unknown kind $kind" >&2
	exit 2
	;;
esac

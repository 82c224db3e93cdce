// Package media builds the boot media remote nodes download: a hybrid ISO, a USB stick
// image, a GPT UEFI disk image, one .efi file and one .lkrn file, each carrying an iPXE
// script (the one ipxe renders for /ipxe/…), in pure Go, without running a process.
//
// How: New builds every layout once, as a template with an empty 4 KiB script slot
// (MaxScriptLen), from stock files: Debian's iPXE binaries, isolinux, ldlinux.c32, and the
// EFI script stub of packaging/ipxe-embed. Build copies a template and writes the script
// into its slot(s), fixing the sizes that describe it (ISO directory record, FAT directory
// entry and cluster chain, stub length word, Linux boot header), so every structure stays
// valid (fsck.fat and xorriso find nothing to say). No temporary file survives New, and no
// process runs per request.
//
// Layouts:
//   - KindISO, KindUSB: ISO9660 with Rock Ridge (no Joliet: it would move the boot
//     record), El Torito BIOS entry isolinux.bin with a boot-info table (isolinux.cfg boots
//     /ipxe.lkrn with initrd=/autoexec.ipxe: ipxe.lkrn runs an initrd that starts with
//     #!ipxe), El Torito EFI entry efi.img (FAT16: EFI/BOOT/BOOTX64.EFI, BOOTAA64.EFI,
//     /autoexec.ipxe, which EFI iPXE runs from the volume it was loaded from), and an
//     isohybrid MBR (syslinux's isohdpfx.bin, partition 1 the whole image, partition 2 the
//     EFI image) so the bytes also boot when written to a stick. The USB image is this
//     same layout: Debian ships syslinux's FAT installer payload (ldlinux.sys, its boot
//     sector) only inside the syslinux program, so a syslinux-on-FAT stick would need an
//     external process.
//   - KindUEFIImg: GPT, one FAT16 EFI System Partition at 1 MiB with the same three files.
//     FAT16, not FAT32: OVMF takes the FAT type from the cluster count, and a FAT32 of
//     fewer than 65,525 clusters does not boot.
//   - KindUEFI: the EFI stub (packaging/ipxe-embed/stub.c) with Debian's iPXE linked in; the
//     stub starts that iPXE with the script as its load options, which iPXE runs as a
//     script (efi_cmdline.c). An empty script gives the generic iPXE (normal autoboot).
//   - KindSNPOnly: the same stub around Debian's snponly.efi (x86_64 only), which uses the
//     firmware's own network driver (SNP) instead of iPXE's, for NICs iPXE cannot drive.
//   - KindKRN: Debian's ipxe.lkrn with the script appended and the Linux boot header's
//     ramdisk_image/ramdisk_size pointing at it (loaded high at 1 MiB by qemu -kernel,
//     SYSLINUX, GRUB linux16); iPXE takes it as its initrd and runs it. A bootloader given
//     its own initrd overrides it. An empty script leaves the header as Debian's.
//
// Why not iPXE built with EMBED= a placeholder: it needs the iPXE source, which the
// Debian mirrors reachable here do not serve (binary packages only), and Debian's
// ipxe.lkrn is LZMA-compressed (its payload cannot be patched). Both mechanisms above are
// documented iPXE behaviour and keep Debian's iPXE byte for byte. Consequence: the media
// trust what Debian's iPXE trusts (the iPXE root CA, with cross-signed certificates
// fetched from http://ca.ipxe.org/auto/ for public HTTPS); a TRUST= build is not possible
// without the source.
//
// Equal (kind, arch, script) give equal bytes across restarts (fixed timestamps, GUIDs
// and disk signature) and a strong ETag that hashes the kind, the architecture, the
// template (so every input file) and the script. Finished media are cached by that hash
// in an LRU bounded by Config.CacheBytes. A Medium does not copy its template: it is the
// shared, immutable template plus the spans the build patched (at most about 9.4 KB per
// build); the templates take about 19 MiB in all (ISO and USB 5.5 MiB each, UEFI image
// 7 MiB, .efi 1 MiB per architecture, .lkrn 0.35 MiB).
//
// Metrics (registered on Config.Registerer, every label pre-created):
//   - bootstrapd_media_builds_total{kind,result}: builds and refusals, not cache hits;
//     result is ok, too_long, bad_script, error (a bug: slots overlapping) or canceled.
//   - bootstrapd_media_build_duration_seconds{kind}: time of each uncached build.
//   - bootstrapd_media_cache_hits_total{kind}.
//
// It owns the media templates and their cache. It must not render a script (ipxe does) or
// serve HTTP (httpd does), and never runs a process per request.
package media

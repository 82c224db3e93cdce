#!/bin/sh
# compare.sh DEBIAN_EFI OUR_EFI: the trusted build must have Debian's options, plus the syslog
# console. EFI binaries are plain PE files, so the names of iPXE's optional commands and
# protocols can be read off them with strings(1): each must be in both binaries or in
# neither, and "syslog" (CONSOLE_SYSLOG) in ours.
set -eu
debian="${1:?usage: compare.sh DEBIAN_EFI OUR_EFI}"
ours="${2:?usage: compare.sh DEBIAN_EFI OUR_EFI}"
# One word per optional feature of config/general.h, console.h and the EFI defaults.
WORDS="nslookup time sha1sum vcreate startpxe pxebs reboot poweroff imgtrust imgdecrypt pciscan
 params nstat ping console colour ipstat profstat ntp certstat imgmem usbscan fdt https ftp nfs
 ipv6 lldp gzip"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
strings -n 3 "$debian" >"$work/debian"
strings -n 3 "$ours" >"$work/ours"
fail=0
for w in $WORDS; do
	d=no o=no
	grep -qx -- "$w" "$work/debian" && d=yes
	grep -qx -- "$w" "$work/ours" && o=yes
	if [ "$d" != "$o" ]; then
		echo "ipxe-trust: $w: Debian's build $d, ours $o" >&2
		fail=1
	fi
done
grep -qx syslog "$work/ours" || { echo "ipxe-trust: ours has no syslog console" >&2; fail=1; }
[ "$fail" = 0 ] || exit 1
echo "ipxe-trust: options match Debian's build (plus the syslog console)"

#!/bin/sh
# run-config.sh SRC DEST SYSLINUX_DIR: write DEST, a copy of the configuration SRC (the
# repository's appliance.yaml) with paths.isolinux and paths.syslinux_bios pointing at the
# files packaging/fetch-syslinux.sh put in SYSLINUX_DIR, and nothing else changed. `make run`
# serves with DEST, so it needs no isolinux package and writes nothing into SRC.
set -eu

src="${1:?usage: run-config.sh SRC DEST SYSLINUX_DIR}"
dest="${2:?usage: run-config.sh SRC DEST SYSLINUX_DIR}"
dir="${3:?usage: run-config.sh SRC DEST SYSLINUX_DIR}"
case "$dir" in
/* | ./* | ../*) ;;
*) dir="./$dir" ;;
esac

# Each key must appear exactly once, as `make run` expects appliance.yaml to spell it.
for key in isolinux syslinux_bios; do
	n=$(grep -c "^  $key:" "$src" || true)
	[ "$n" = 1 ] || { echo "run-config: expected one '  $key:' line (paths.$key) in $src, found $n" >&2; exit 1; }
done
mkdir -p "$(dirname "$dest")"
sed -e "s|^\\(  isolinux:\\).*|\\1 \"$dir/isolinux\"|" \
	-e "s|^\\(  syslinux_bios:\\).*|\\1 \"$dir/bios\"|" "$src" >"$dest.tmp"
mv -f "$dest.tmp" "$dest"
echo "run-config: $dest is $src with paths.isolinux=$dir/isolinux, paths.syslinux_bios=$dir/bios"

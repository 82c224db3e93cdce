package media

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"time"

	"github.com/diskfs/go-diskfs/filesystem/iso9660"
)

const isoSector = 2048

// isoFixedTime stamps every ISO date: equal inputs give equal bytes across restarts.
var isoFixedTime = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

// isolinuxCfg boots ipxe.lkrn with the script as its initrd; ipxe.lkrn runs an initrd
// that starts with #!ipxe and drops the initrd= argument from its command line.
const isolinuxCfg = "DEFAULT ipxe\nPROMPT 0\nTIMEOUT 0\nLABEL ipxe\n  KERNEL /ipxe.lkrn\n  APPEND initrd=/autoexec.ipxe\n"

type isoInputs struct {
	isolinux, isohdpfx, ldlinux, lkrn []byte
	efiImg                            []byte // FAT16 image for the El Torito EFI entry
	slot                              []byte // placeholder autoexec.ipxe
}

// buildISO makes the hybrid ISO: ISO9660 with Rock Ridge (no Joliet: it moves the boot
// record), El Torito BIOS entry isolinux.bin with a boot-info table, El Torito EFI entry
// efi.img, and an isohybrid MBR so the same bytes boot from a disk or stick. go-diskfs's
// ISO writer stages files in a workspace directory; it is removed before returning.
func buildISO(in isoInputs) ([]byte, error) {
	ws, err := os.MkdirTemp("", "bootstrapd-iso-")
	if err != nil {
		return nil, fmt.Errorf("iso workspace: %w", err)
	}
	defer os.RemoveAll(ws)

	files := []struct {
		p    string
		data []byte
	}{
		{"/isolinux/isolinux.bin", in.isolinux},
		{"/isolinux/ldlinux.c32", in.ldlinux},
		{"/isolinux/isolinux.cfg", []byte(isolinuxCfg)},
		{"/ipxe.lkrn", in.lkrn},
		{"/autoexec.ipxe", in.slot},
		{"/efi.img", in.efiImg},
	}
	var total int64 = 1 << 20
	for _, f := range files {
		total += (int64(len(f.data)) + 2*isoSector) &^ (isoSector - 1)
	}
	st := newMemStorage(total)
	fs, err := iso9660.Create(st, total, 0, isoSector, ws)
	if err != nil {
		return nil, fmt.Errorf("create iso9660: %w", err)
	}
	for _, f := range files {
		if err := fs.Mkdir(path.Dir(f.p)); err != nil {
			return nil, fmt.Errorf("mkdir %q: %w", path.Dir(f.p), err)
		}
		w, err := fs.OpenFile(f.p, os.O_CREATE|os.O_RDWR)
		if err != nil {
			return nil, fmt.Errorf("create %q: %w", f.p, err)
		}
		if _, err := w.Write(f.data); err != nil {
			return nil, fmt.Errorf("write %q: %w", f.p, err)
		}
		if err := w.Close(); err != nil {
			return nil, fmt.Errorf("close %q: %w", f.p, err)
		}
	}
	if err := filepath.WalkDir(ws, func(p string, _ os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Chtimes(p, isoFixedTime, isoFixedTime)
	}); err != nil {
		return nil, fmt.Errorf("iso workspace times: %w", err)
	}
	bios := &iso9660.ElToritoEntry{
		Platform:  iso9660.BIOS,
		Emulation: iso9660.NoEmulation,
		BootFile:  "/isolinux/isolinux.bin",
		BootTable: true,
	}
	bios.SetLoadSize(4)
	err = fs.Finalize(iso9660.FinalizeOptions{
		RockRidge:        true,
		VolumeIdentifier: "BOOTSTRAPD_IPXE",
		ElTorito: &iso9660.ElTorito{
			BootCatalog: "/isolinux/boot.cat",
			Entries: []*iso9660.ElToritoEntry{bios, {
				Platform:  iso9660.EFI,
				Emulation: iso9660.NoEmulation,
				BootFile:  "/efi.img",
			}},
		},
	})
	if err != nil {
		return nil, fmt.Errorf("finalize iso9660: %w", err)
	}
	img := st.buf
	blocks := int64(binary.LittleEndian.Uint32(img[16*isoSector+80:]))
	if blocks*isoSector > int64(len(img)) || blocks < 18 {
		return nil, fmt.Errorf("iso9660 volume of %d blocks does not fit %d bytes", blocks, len(img))
	}
	img = img[:blocks*isoSector]
	if err := normalizeISO(img); err != nil {
		return nil, fmt.Errorf("normalize iso9660: %w", err)
	}
	if err := isohybrid(img, in.isohdpfx, len(in.efiImg)); err != nil {
		return nil, err
	}
	return img, nil
}

// elToritoInfo is what the boot catalogue says: the BIOS (default) entry's image LBA, and the EFI
// section entry's LBA and 512-byte sector count (0 when absent).
type elToritoInfo struct {
	catalogLBA        uint32
	biosLBA, biosSecs uint32
	efiLBA, efiSecs   uint32
	efiPlatform       byte
}

func readElTorito(img []byte) (elToritoInfo, error) {
	var info elToritoInfo
	brvd := 17 * isoSector
	if len(img) < 18*isoSector || img[brvd] != 0 || !bytes.Equal(img[brvd+1:brvd+6], []byte("CD001")) ||
		!bytes.HasPrefix(img[brvd+7:], []byte("EL TORITO SPECIFICATION")) {
		return info, errors.New("no El Torito boot record at sector 17")
	}
	info.catalogLBA = binary.LittleEndian.Uint32(img[brvd+0x47:])
	c := int(info.catalogLBA) * isoSector
	if c+128 > len(img) {
		return info, errors.New("boot catalogue outside the image")
	}
	cat := img[c : c+isoSector]
	if cat[0] != 1 || cat[0x1e] != 0x55 || cat[0x1f] != 0xAA {
		return info, errors.New("bad boot catalogue validation entry")
	}
	var sum uint16
	for i := 0; i < 32; i += 2 {
		sum += binary.LittleEndian.Uint16(cat[i:])
	}
	if sum != 0 {
		return info, errors.New("bad boot catalogue checksum")
	}
	if cat[32] != 0x88 {
		return info, errors.New("default boot entry not bootable")
	}
	info.biosSecs = uint32(binary.LittleEndian.Uint16(cat[32+6:]))
	info.biosLBA = binary.LittleEndian.Uint32(cat[32+8:])
	for off := 64; off+64 <= len(cat); off += 64 {
		h := cat[off]
		if h != 0x90 && h != 0x91 {
			break
		}
		e := cat[off+32:]
		if e[0] == 0x88 && cat[off+1] == 0xEF {
			info.efiPlatform = 0xEF
			info.efiSecs = uint32(binary.LittleEndian.Uint16(e[6:]))
			info.efiLBA = binary.LittleEndian.Uint32(e[8:])
		}
		if h == 0x91 {
			break
		}
	}
	return info, nil
}

// isohybrid writes the MBR that makes the ISO boot from a disk, as syslinux's isohybrid
// does: isohdpfx.bin's 432 bytes of code, then isolinux.bin's LBA in 512-byte sectors at
// 432 (the code loads it from there), a fixed disk signature, and two partitions: 1 covers
// the whole image (type 0x17, active), 2 is the El Torito EFI image (type 0xEF) so UEFI
// firmware finds EFI/BOOT/BOOTX64.EFI when the ISO is a disk.
func isohybrid(img, isohdpfx []byte, efiSize int) error {
	if len(isohdpfx) < 432 {
		return fmt.Errorf("isohdpfx.bin is %d bytes, want at least 432", len(isohdpfx))
	}
	et, err := readElTorito(img)
	if err != nil {
		return fmt.Errorf("isohybrid: %w", err)
	}
	mbr := img[:512]
	for i := range mbr {
		mbr[i] = 0
	}
	copy(mbr, isohdpfx[:432])
	le := binary.LittleEndian
	le.PutUint32(mbr[432:], et.biosLBA*4)
	le.PutUint32(mbr[440:], 0x6270_7364) // disk signature "dspb": fixed, not random
	total := uint32(len(img) / 512)
	writePart(mbr[446:], 0x80, 0x17, 0, total)
	if et.efiLBA != 0 {
		writePart(mbr[462:], 0, 0xEF, et.efiLBA*4, uint32((efiSize+511)/512))
	}
	mbr[510], mbr[511] = 0x55, 0xAA
	return nil
}

// writePart fills one MBR partition entry; CHS uses isohybrid's 64 heads, 32 sectors.
func writePart(e []byte, boot, typ byte, start, count uint32) {
	e[0] = boot
	copy(e[1:4], chs(start))
	e[4] = typ
	copy(e[5:8], chs(start+count-1))
	binary.LittleEndian.PutUint32(e[8:], start)
	binary.LittleEndian.PutUint32(e[12:], count)
}

func chs(lba uint32) []byte {
	const heads, sectors = 64, 32
	c := lba / (heads * sectors)
	h := (lba / sectors) % heads
	s := lba%sectors + 1
	if c > 1023 {
		c, h, s = 1023, heads-1, sectors
	}
	return []byte{byte(h), byte(s) | byte((c>>2)&0xC0), byte(c)}
}

// isoRecord is one directory record found by isoWalk, in place in the image.
type isoRecord struct {
	path string
	rec  []byte
}

func (r isoRecord) extent() int { return int(binary.LittleEndian.Uint32(r.rec[2:])) }
func (r isoRecord) size() int   { return int(binary.LittleEndian.Uint32(r.rec[10:])) }
func (r isoRecord) isDir() bool { return r.rec[25]&2 != 0 }

// systemUse returns the SUSP area of a record (Rock Ridge entries live there).
func (r isoRecord) systemUse() []byte {
	n := int(r.rec[32])
	off := 33 + n
	if n%2 == 0 {
		off++
	}
	if off > len(r.rec) {
		return nil
	}
	return r.rec[off:]
}

// name returns the Rock Ridge NM name when there is one, else the ISO name without ";1".
func (r isoRecord) name() string {
	su := r.systemUse()
	for len(su) >= 4 && int(su[2]) >= 4 && int(su[2]) <= len(su) {
		if su[0] == 'N' && su[1] == 'M' && su[2] > 5 {
			return string(su[5:su[2]])
		}
		su = su[su[2]:]
	}
	n := string(r.rec[33 : 33+int(r.rec[32])])
	if i := len(n) - 2; i > 0 && n[i:] == ";1" {
		n = n[:i]
	}
	return n
}

// isoWalk visits every directory record below the root (including "." and ".."), with a
// path built from Rock Ridge names. Records are slices of img: fn may edit them.
func isoWalk(img []byte, fn func(isoRecord) error) error {
	pvd := 16 * isoSector
	if len(img) < 17*isoSector || img[pvd] != 1 || !bytes.Equal(img[pvd+1:pvd+6], []byte("CD001")) {
		return errors.New("no primary volume descriptor")
	}
	root := isoRecord{path: "/", rec: img[pvd+156 : pvd+156+34]}
	if err := fn(root); err != nil {
		return err
	}
	seen := map[int]bool{}
	var rec func(dir isoRecord, depth int) error
	rec = func(dir isoRecord, depth int) error {
		if depth > 8 || seen[dir.extent()] {
			return errors.New("iso9660 directory loop or too deep")
		}
		seen[dir.extent()] = true
		start, end := dir.extent()*isoSector, dir.extent()*isoSector+dir.size()
		if start < 0 || end > len(img) || end < start {
			return fmt.Errorf("directory %q extent outside the image", dir.path)
		}
		for off := start; off < end; {
			l := int(img[off])
			if l == 0 {
				off = (off/isoSector + 1) * isoSector
				continue
			}
			if l < 34 || off+l > end {
				return fmt.Errorf("bad directory record in %q", dir.path)
			}
			r := isoRecord{rec: img[off : off+l]}
			nameLen := int(r.rec[32])
			if 33+nameLen > l {
				return fmt.Errorf("bad name length in %q", dir.path)
			}
			dot := nameLen == 1 && (r.rec[33] == 0 || r.rec[33] == 1)
			if dot {
				r.path = path.Join(dir.path, []string{".", ".."}[r.rec[33]])
			} else {
				r.path = path.Join(dir.path, r.name())
			}
			if err := fn(r); err != nil {
				return err
			}
			if r.isDir() && !dot {
				if err := rec(r, depth+1); err != nil {
					return err
				}
			}
			off += l
		}
		return nil
	}
	return rec(root, 0)
}

// normalizeISO replaces what go-diskfs takes from the clock and the build host (volume
// times, record times, Rock Ridge PX owner and mode, TF times) with fixed values.
func normalizeISO(img []byte) error {
	pvd := img[16*isoSector : 17*isoSector]
	stamp := []byte(isoFixedTime.Format("20060102150405") + "00\x00")
	for _, off := range []int{813, 830, 864} {
		copy(pvd[off:off+17], stamp)
	}
	copy(pvd[847:847+17], "0000000000000000\x00") // expiration: not specified
	short := []byte{byte(isoFixedTime.Year() - 1900), byte(isoFixedTime.Month()), byte(isoFixedTime.Day()), 0, 0, 0, 0}
	return isoWalk(img, func(r isoRecord) error {
		copy(r.rec[18:25], short)
		return suspEach(img, r.systemUse(), func(e []byte) {
			l := len(e)
			switch string(e[:2]) {
			case "PX":
				if l >= 36 {
					mode := uint32(0o100444)
					if r.isDir() {
						mode = 0o40555
					}
					putBoth32(e[4:], mode)
					putBoth32(e[20:], 0) // uid
					putBoth32(e[28:], 0) // gid
				}
			case "TF":
				width := 7
				if e[4]&0x80 != 0 {
					width = 17
				}
				for p := 5; p+width <= l; p += width {
					if width == 7 {
						copy(e[p:p+7], short)
					} else {
						copy(e[p:p+17], stamp)
					}
				}
			}
		})
	})
}

// suspEach calls fn for each SUSP entry of a system use area, following CE continuation
// areas (at most a few: go-diskfs puts the ER entry of the root there).
func suspEach(img, su []byte, fn func(e []byte)) error {
	for hops := 0; len(su) >= 4; {
		l := int(su[2])
		if l < 4 || l > len(su) {
			return nil
		}
		e := su[:l]
		su = su[l:]
		if string(e[:2]) == "ST" {
			return nil
		}
		if string(e[:2]) == "CE" && l >= 28 {
			if hops++; hops > 4 {
				return errors.New("too many SUSP continuation areas")
			}
			blk := int(binary.LittleEndian.Uint32(e[4:]))
			off := int(binary.LittleEndian.Uint32(e[12:]))
			n := int(binary.LittleEndian.Uint32(e[20:]))
			start := blk*isoSector + off
			if blk <= 0 || n < 0 || start < 0 || start+n > len(img) {
				return errors.New("SUSP continuation outside the image")
			}
			su = img[start : start+n]
			continue
		}
		fn(e)
	}
	return nil
}

func putBoth32(b []byte, v uint32) {
	binary.LittleEndian.PutUint32(b, v)
	binary.BigEndian.PutUint32(b[4:], v)
}

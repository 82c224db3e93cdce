package media

import (
	"bytes"
	"debug/pe"
	"encoding/binary"
	"fmt"
)

// MaxScriptLen is the longest script a medium carries: the size of the script slot in
// every template. Zero-OS boot scripts are well under 1 KiB; 4 KiB leaves room for long
// kernel arguments and per-NIC loops while keeping the FAT slot one small chain.
const MaxScriptLen = 4096

// slotMarker starts the placeholder in the ISO and FAT templates, so New can find the
// bytes it will overwrite; it must occur nowhere else in an image.
const slotMarker = "#!ipxe\n#BOOTSTRAPD-SCRIPT-SLOT-V1 c9e2f07a\n"

// efiSlotMarker is the 32-byte marker of the slot in packaging/ipxe-embed/stub.c.
const efiSlotMarker = "BOOTSTRAPD-IPXE-SCRIPT-SLOT-V1!\x00"

func placeholder() []byte {
	b := make([]byte, MaxScriptLen)
	copy(b, slotMarker)
	return b
}

// patcher records, in p, the bytes that put one script into one place of a template.
// Patchers of one template never touch the same bytes.
type patcher interface {
	patch(p *patchSet, script []byte)
}

// isoSlot is /autoexec.ipxe in the ISO: its 4 KiB extent and its directory record, whose
// data length (both-endian) is set to the script length.
type isoSlot struct{ data, rec int }

func (s isoSlot) patch(p *patchSet, script []byte) {
	copy(p.bytes(s.data, MaxScriptLen), script)
	putBoth32(p.bytes(s.rec+10, 8), uint32(len(script)))
}

// fatSlot is /autoexec.ipxe in a FAT16 image at base: its clusters, its directory entry
// and the FAT copies. The chain is cut to the clusters the script needs and the rest
// freed, so fsck.fat finds no excess clusters.
type fatSlot struct {
	base, entry, clusterSize int
	fats                     []int
	clusters                 []int
	dataOffs                 []int
}

func (s fatSlot) patch(p *patchSet, script []byte) {
	rest := script
	for _, off := range s.dataOffs {
		n := copy(p.bytes(s.base+off, s.clusterSize), rest)
		rest = rest[n:]
	}
	used := max((len(script)+s.clusterSize-1)/s.clusterSize, 1)
	for _, f := range s.fats {
		for i, c := range s.clusters {
			var v uint16
			switch {
			case i < used-1:
				v = uint16(s.clusters[i+1])
			case i == used-1:
				v = 0xFFFF
			}
			binary.LittleEndian.PutUint16(p.bytes(s.base+f+2*c, 2), v)
		}
	}
	binary.LittleEndian.PutUint32(p.bytes(s.base+s.entry+28, 4), uint32(len(script)))
}

// findFATSlot locates the placeholder file in a FAT16 image built by buildFAT16.
func findFATSlot(img []byte, base int) (fatSlot, error) {
	v, err := parseFAT16(img)
	if err != nil {
		return fatSlot{}, err
	}
	es, err := v.dirEntries(0)
	if err != nil {
		return fatSlot{}, err
	}
	for _, e := range es {
		first := int(binary.LittleEndian.Uint16(e[26:]))
		if e[11]&0x18 != 0 || first < 2 || binary.LittleEndian.Uint32(e[28:]) != MaxScriptLen {
			continue
		}
		cs, err := v.chain(first)
		if err != nil {
			return fatSlot{}, err
		}
		if len(cs)*v.clusterSize < MaxScriptLen || !bytes.HasPrefix(img[v.clusterOff(first):], []byte(slotMarker)) {
			continue
		}
		s := fatSlot{base: base, clusterSize: v.clusterSize, fats: v.fats, clusters: cs}
		s.entry = int(uintptrOf(img, e))
		for _, c := range cs {
			s.dataOffs = append(s.dataOffs, v.clusterOff(c))
		}
		return s, nil
	}
	return fatSlot{}, fmt.Errorf("script slot not found in the FAT image")
}

// uintptrOf returns the offset of sub within img (sub must be a subslice of img).
func uintptrOf(img, sub []byte) int {
	return cap(img) - cap(sub)
}

// findISOSlot locates /autoexec.ipxe in an ISO built by buildISO.
func findISOSlot(img []byte) (isoSlot, error) {
	var s isoSlot
	found := false
	err := isoWalk(img, func(r isoRecord) error {
		if r.path != "/autoexec.ipxe" {
			return nil
		}
		off := r.extent() * isoSector
		if r.size() != MaxScriptLen || off+MaxScriptLen > len(img) || !bytes.HasPrefix(img[off:], []byte(slotMarker)) {
			return fmt.Errorf("/autoexec.ipxe is not the script slot")
		}
		s = isoSlot{data: off, rec: uintptrOf(img, r.rec)}
		found = true
		return nil
	})
	if err != nil {
		return s, err
	}
	if !found {
		return s, fmt.Errorf("/autoexec.ipxe not found in the ISO")
	}
	return s, nil
}

// efiSlot is the slot of the EFI stub: marker, uint32 length, MaxScriptLen bytes.
type efiSlot struct{ off int }

func (s efiSlot) patch(p *patchSet, script []byte) {
	binary.LittleEndian.PutUint32(p.bytes(s.off+32, 4), uint32(len(script)))
	copy(p.bytes(s.off+36, MaxScriptLen), script)
}

// peMachine is the PE machine type of the iPXE EFI build of each architecture.
var peMachine = map[Arch]uint16{
	ArchAMD64: pe.IMAGE_FILE_MACHINE_AMD64,
	ArchARM64: pe.IMAGE_FILE_MACHINE_ARM64,
}

// findEFISlotFor finds the slot of the stub that New installs for arch. The machine check
// catches a stub built for the other architecture under this one's name, which firmware
// would refuse to start only on the node, long after the medium was built.
func findEFISlotFor(img []byte, arch Arch) (efiSlot, error) {
	a, err := ParseArch(string(arch))
	if err != nil {
		return efiSlot{}, err
	}
	m, err := peImageMachine(img)
	if err != nil {
		return efiSlot{}, err
	}
	if want := peMachine[a]; m != want {
		return efiSlot{}, fmt.Errorf("PE machine %s, want %s", machineName(m), machineName(want))
	}
	return findSlotMarker(img)
}

func peImageMachine(img []byte) (uint16, error) {
	f, err := pe.NewFile(bytes.NewReader(img))
	if err != nil {
		return 0, fmt.Errorf("not a PE file: %w", err)
	}
	// debug/pe also reads COFF object files, which have no optional header; an EFI
	// application always has one.
	if f.OptionalHeader == nil {
		return 0, fmt.Errorf("not a PE image: no optional header")
	}
	return f.Machine, nil
}

func machineName(m uint16) string {
	for a, pm := range peMachine {
		if pm == m {
			return fmt.Sprintf("%#04x (%s)", m, a)
		}
	}
	return fmt.Sprintf("%#04x", m)
}

func findSlotMarker(img []byte) (efiSlot, error) {
	i := bytes.Index(img, []byte(efiSlotMarker))
	if i < 0 || bytes.Contains(img[i+1:], []byte(efiSlotMarker)) {
		return efiSlot{}, fmt.Errorf("want exactly one script slot marker")
	}
	if i+36+MaxScriptLen > len(img) {
		return efiSlot{}, fmt.Errorf("script slot truncated")
	}
	return efiSlot{off: i}, nil
}

// lkrnSlot appends the script to a stock ipxe.lkrn and points the Linux boot header's
// ramdisk fields at it. A bzImage's protected-mode part is loaded at 1 MiB by every
// loader of this non-relocatable kernel (qemu -kernel, SYSLINUX, GRUB linux16), and a
// loader given no initrd leaves ramdisk_image/ramdisk_size as found in the file. iPXE's
// lkrn prefix hands that "initrd" to its runtime, which registers it as an image and
// executes it because it starts with #!ipxe. A loader given an initrd overrides ours.
type lkrnSlot struct{ data, setup int }

const (
	bzRamdiskImage = 0x218
	bzRamdiskSize  = 0x21c
	bzSyssize      = 0x1f4
	bzLoadHigh     = 0x100000
)

func (s lkrnSlot) patch(p *patchSet, script []byte) {
	copy(p.bytes(s.data, MaxScriptLen), script)
	addr := uint32(0)
	if len(script) > 0 {
		addr = bzLoadHigh + uint32(s.data-s.setup)
	}
	binary.LittleEndian.PutUint32(p.bytes(bzRamdiskImage, 4), addr)
	binary.LittleEndian.PutUint32(p.bytes(bzRamdiskSize, 4), uint32(len(script)))
}

func setupSize(img []byte) int {
	n := int(img[0x1f1])
	if n == 0 {
		n = 4
	}
	return (n + 1) * 512
}

// lkrnTemplate checks a stock ipxe.lkrn and appends the empty slot to it.
func lkrnTemplate(lkrn []byte) ([]byte, lkrnSlot, error) {
	if len(lkrn) < 0x240 || string(lkrn[0x202:0x206]) != "HdrS" || lkrn[0x1fe] != 0x55 || lkrn[0x1ff] != 0xAA {
		return nil, lkrnSlot{}, fmt.Errorf("not a Linux bzImage")
	}
	le := binary.LittleEndian
	if ver := le.Uint16(lkrn[0x206:]); ver < 0x0200 {
		return nil, lkrnSlot{}, fmt.Errorf("boot protocol %#x too old", ver)
	}
	if lkrn[0x211]&1 == 0 {
		return nil, lkrnSlot{}, fmt.Errorf("not loaded high (zImage)")
	}
	if le.Uint32(lkrn[bzRamdiskImage:]) != 0 || le.Uint32(lkrn[bzRamdiskSize:]) != 0 {
		return nil, lkrnSlot{}, fmt.Errorf("ramdisk fields already set")
	}
	if setupSize(lkrn) >= len(lkrn) {
		return nil, lkrnSlot{}, fmt.Errorf("setup larger than the file")
	}
	img := make([]byte, len(lkrn)+MaxScriptLen)
	copy(img, lkrn)
	s := lkrnSlot{data: len(lkrn), setup: setupSize(lkrn)}
	le.PutUint32(img[bzSyssize:], uint32((len(img)-setupSize(img)+15)/16))
	return img, s, nil
}

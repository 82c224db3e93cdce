package media

import (
	"bytes"
	"debug/pe"
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// inputSet is one set of input files for New: synthetic (always available, fast) or the
// real Debian ones (when installed, as on CI).
type inputSet struct {
	name  string
	cfg   Config
	files map[string][]byte // base name -> contents, for comparisons
}

// pattern returns n deterministic non-zero bytes, different per seed.
func pattern(seed byte, n int) []byte {
	b := make([]byte, n)
	x := uint32(seed)*2654435761 + 1
	for i := range b {
		x = x*1103515245 + 12345
		b[i] = byte(x>>16) | 1
	}
	return b
}

// fakePE is an EFI application for machine as far as debug/pe reads one: DOS stub, PE
// signature, a file header without sections or symbols and a PE32+ optional header.
func fakePE(seed byte, n int, machine uint16, slot bool) []byte {
	le := binary.LittleEndian
	b := pattern(seed, n)
	b[0], b[1] = 'M', 'Z'
	le.PutUint32(b[0x3c:], 0x80)
	copy(b[0x80:], "PE\x00\x00")
	fh, oh := b[0x84:0x84+20], b[0x84+20:0x84+20+240]
	clear(fh)
	le.PutUint16(fh[0:], machine)
	le.PutUint16(fh[16:], uint16(len(oh)))
	le.PutUint16(fh[18:], 0x22) // executable, large address aware
	clear(oh)
	le.PutUint16(oh[0:], 0x20b) // PE32+
	le.PutUint16(oh[68:], 10)   // EFI application
	le.PutUint32(oh[108:], 16)  // data directories
	if slot {
		off := n / 2
		copy(b[off:], efiSlotMarker)
		clear(b[off+32 : off+36+MaxScriptLen])
	}
	return b
}

func fakeLKRN(n int) []byte {
	b := pattern(7, n)
	b[0x1f1] = 5
	b[0x1fe], b[0x1ff] = 0x55, 0xAA
	copy(b[0x202:], "HdrS")
	binary.LittleEndian.PutUint16(b[0x206:], 0x207)
	b[0x211] = 1
	clear(b[0x218:0x220])
	return b
}

func writeFiles(t testing.TB, dir string, files map[string][]byte) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func syntheticInputs(t testing.TB) inputSet {
	t.Helper()
	root := t.TempDir()
	s := inputSet{name: "synthetic", files: map[string][]byte{
		"ipxe-amd64.efi":        fakePE(1, 300<<10, pe.IMAGE_FILE_MACHINE_AMD64, false),
		"ipxe-arm64.efi":        fakePE(2, 310<<10, pe.IMAGE_FILE_MACHINE_ARM64, false),
		"ipxe.lkrn":             fakeLKRN(120 << 10),
		"isolinux.bin":          pattern(3, 24<<10),
		"isohdpfx.bin":          pattern(4, 432),
		"ldlinux.c32":           pattern(5, 60<<10),
		"ipxe-amd64-script.efi": fakePE(6, 200<<10, pe.IMAGE_FILE_MACHINE_AMD64, true),
		"ipxe-arm64-script.efi": fakePE(8, 210<<10, pe.IMAGE_FILE_MACHINE_ARM64, true),
		"snponly-script.efi":    fakePE(9, 90<<10, pe.IMAGE_FILE_MACHINE_AMD64, true),
	}}
	s.cfg = Config{
		IPXEDir:         filepath.Join(root, "ipxe"),
		IsolinuxDir:     filepath.Join(root, "isolinux"),
		SyslinuxBIOSDir: filepath.Join(root, "bios"),
		EmbedDir:        filepath.Join(root, "embed"),
		CacheBytes:      DefaultCacheBytes,
	}
	pick := func(names ...string) map[string][]byte {
		m := map[string][]byte{}
		for _, n := range names {
			m[n] = s.files[n]
		}
		return m
	}
	writeFiles(t, s.cfg.IPXEDir, pick("ipxe-amd64.efi", "ipxe-arm64.efi", "ipxe.lkrn"))
	writeFiles(t, s.cfg.IsolinuxDir, pick("isolinux.bin", "isohdpfx.bin"))
	writeFiles(t, s.cfg.SyslinuxBIOSDir, pick("ldlinux.c32"))
	writeFiles(t, s.cfg.EmbedDir, pick("ipxe-amd64-script.efi", "ipxe-arm64-script.efi", "snponly-script.efi"))
	return s
}

// debianInputs uses the installed syslinux files and the repository's var/ipxe (or
// BOOTSTRAPD_IPXE_DIR); ok is false when any is missing. The EFI stubs come from
// var/ipxe-embed (or BOOTSTRAPD_IPXE_EMBED_DIR) when built there, else synthetic ones stand
// in (packaging/ipxe-embed/build.sh needs clang; TestQemuBoot builds the real ones).
func debianInputs(t testing.TB) (inputSet, bool) {
	t.Helper()
	root, _ := filepath.Abs("../..")
	ipxeDir := os.Getenv("BOOTSTRAPD_IPXE_DIR")
	if ipxeDir == "" {
		ipxeDir = filepath.Join(root, "var/ipxe")
	}
	embedDir := os.Getenv("BOOTSTRAPD_IPXE_EMBED_DIR")
	if embedDir == "" {
		embedDir = filepath.Join(root, "var/ipxe-embed")
	}
	s := inputSet{name: "debian", files: map[string][]byte{}, cfg: Config{IPXEDir: ipxeDir, EmbedDir: embedDir,
		IsolinuxDir: DefaultIsolinuxDir, SyslinuxBIOSDir: DefaultSyslinuxBIOS, CacheBytes: DefaultCacheBytes}}
	read := func(dir string, names ...string) bool {
		for _, n := range names {
			b, err := os.ReadFile(filepath.Join(dir, n))
			if err != nil {
				return false
			}
			s.files[n] = b
		}
		return true
	}
	if !read(ipxeDir, "ipxe-amd64.efi", "ipxe-arm64.efi", "ipxe.lkrn") ||
		!read(DefaultIsolinuxDir, "isolinux.bin", "isohdpfx.bin") || !read(DefaultSyslinuxBIOS, "ldlinux.c32") {
		return s, false
	}
	if !read(embedDir, "ipxe-amd64-script.efi", "ipxe-arm64-script.efi", "snponly-script.efi") {
		t.Logf("no EFI stubs in %s: synthetic ones stand in", embedDir)
		s.cfg.EmbedDir = filepath.Join(t.TempDir(), "embed")
		stubs := map[string][]byte{"ipxe-amd64-script.efi": fakePE(6, 200<<10, pe.IMAGE_FILE_MACHINE_AMD64, true), "ipxe-arm64-script.efi": fakePE(8, 210<<10, pe.IMAGE_FILE_MACHINE_ARM64, true),
			"snponly-script.efi": fakePE(9, 90<<10, pe.IMAGE_FILE_MACHINE_AMD64, true)}
		writeFiles(t, s.cfg.EmbedDir, stubs)
		for n, b := range stubs {
			s.files[n] = b
		}
	}
	return s, true
}

// isoFiles maps every file path of an ISO to its contents.
func isoFiles(t testing.TB, img []byte) (map[string][]byte, map[string]isoRecord) {
	t.Helper()
	files, recs := map[string][]byte{}, map[string]isoRecord{}
	err := isoWalk(img, func(r isoRecord) error {
		if r.isDir() {
			return nil
		}
		off := r.extent() * isoSector
		if off+r.size() > len(img) {
			return fmt.Errorf("%s outside the image", r.path)
		}
		files[r.path] = img[off : off+r.size()]
		recs[r.path] = r
		return nil
	})
	if err != nil {
		t.Fatalf("walk iso: %v", err)
	}
	return files, recs
}

// fatFiles maps every file of a FAT16 image (by long name where there is one) to its
// contents, checking each chain covers the size exactly.
func fatFiles(t testing.TB, img []byte) map[string][]byte {
	t.Helper()
	v, err := parseFAT16(img)
	if err != nil {
		t.Fatalf("parse FAT16: %v", err)
	}
	out := map[string][]byte{}
	var rec func(dir string, cluster int)
	rec = func(dir string, cluster int) {
		var raw []byte
		if cluster == 0 {
			raw = v.img[v.rootOff : v.rootOff+v.rootEntries*32]
		} else {
			cs, err := v.chain(cluster)
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range cs {
				raw = append(raw, v.img[v.clusterOff(c):v.clusterOff(c)+v.clusterSize]...)
			}
		}
		lfn := ""
		for i := 0; i+32 <= len(raw) && raw[i] != 0; i += 32 {
			e := raw[i : i+32]
			if e[0] == 0xE5 {
				continue
			}
			if e[11] == 0x0F {
				var part []rune
				for _, o := range []int{1, 3, 5, 7, 9, 14, 16, 18, 20, 22, 24, 28, 30} {
					c := binary.LittleEndian.Uint16(e[o:])
					if c == 0 || c == 0xFFFF {
						break
					}
					part = append(part, rune(c))
				}
				lfn = string(part) + lfn
				continue
			}
			name := shortName(e)
			if lfn != "" {
				name, lfn = lfn, ""
			}
			if e[11]&0x08 != 0 || name == "." || name == ".." {
				continue
			}
			p := filepath.Join(dir, name)
			first := int(binary.LittleEndian.Uint16(e[26:]))
			if e[11]&0x10 != 0 {
				rec(p, first)
				continue
			}
			size := int(binary.LittleEndian.Uint32(e[28:]))
			cs, err := v.chain(first)
			if err != nil {
				t.Fatalf("%s: %v", p, err)
			}
			if want := (size + v.clusterSize - 1) / v.clusterSize; len(cs) != want {
				t.Errorf("%s: %d clusters for %d bytes, want %d", p, len(cs), size, want)
			}
			var data []byte
			for _, c := range cs {
				data = append(data, v.img[v.clusterOff(c):v.clusterOff(c)+v.clusterSize]...)
			}
			out[p] = data[:min(size, len(data))]
		}
	}
	rec("/", 0)
	return out
}

// needTool finds an external checker; CI (CI=true) must have it, elsewhere the check is
// skipped with a note.
func needTool(t *testing.T, name, pkg string) bool {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s missing (Debian package %s)", name, pkg)
		}
		t.Logf("skipping the %s check: not installed (Debian package %s)", name, pkg)
		return false
	}
	return true
}

// fsckFAT runs fsck.fat -n on a FAT image and fails on any complaint.
func fsckFAT(t *testing.T, img []byte) {
	t.Helper()
	if !needTool(t, "fsck.fat", "dosfstools") {
		return
	}
	p := filepath.Join(t.TempDir(), "fat.img")
	if err := os.WriteFile(p, img, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("fsck.fat", "-n", p).CombinedOutput()
	if err != nil || strings.Count(strings.TrimSpace(string(out)), "\n") != 1 {
		t.Errorf("fsck.fat -n: %v\n%s", err, out)
	}
}

// xorrisoReport returns xorriso's El Torito and system area report of an ISO.
func xorrisoReport(t *testing.T, img []byte) (string, bool) {
	t.Helper()
	if !needTool(t, "xorriso", "xorriso") {
		return "", false
	}
	p := filepath.Join(t.TempDir(), "m.iso")
	if err := os.WriteFile(p, img, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("xorriso", "-indev", p, "-report_el_torito", "plain", "-report_system_area", "plain").CombinedOutput()
	if err != nil {
		t.Fatalf("xorriso: %v\n%s", err, out)
	}
	return string(out), true
}

func sum32(b []byte) uint32 {
	var s uint32
	for i := 0; i+4 <= len(b); i += 4 {
		s += binary.LittleEndian.Uint32(b[i:])
	}
	return s
}

func zero(b []byte) bool { return len(bytes.Trim(b, "\x00")) == 0 }

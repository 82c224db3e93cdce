package media

import (
	"bytes"
	"context"
	"debug/pe"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/diskfs/go-diskfs/partition/gpt"
	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

const testScript = "#!ipxe\nifconf --configurator dhcp net0 || dhcp\nkernel http://10.0.2.2:8080/kernel/net/test.efi version=v3 farmer_id=42\nboot\n"

func inputSets(t *testing.T) []inputSet {
	sets := []inputSet{syntheticInputs(t)}
	if d, ok := debianInputs(t); ok {
		sets = append(sets, d)
	} else if os.Getenv("CI") != "" {
		t.Fatal("CI: the Debian inputs (packages isolinux, syslinux-common; make ipxe for var/ipxe) are missing")
	} else {
		t.Log("Debian inputs not all present: checking synthetic inputs only")
	}
	return sets
}

func TestBuildStructure(t *testing.T) {
	long := "#!ipxe\n" + strings.Repeat("echo 0123456789abcdef0123456789abcdef\n", 200)
	scripts := map[string]string{
		"short":   testScript,
		"max":     long[:MaxScriptLen-1] + "\n",
		"2-clust": "#!ipxe\n" + strings.Repeat("#", 1500) + "\n",
	}
	for _, in := range inputSets(t) {
		b, err := New(in.cfg)
		if err != nil {
			t.Fatalf("%s: New: %v", in.name, err)
		}
		for sname, script := range scripts {
			for _, kind := range Kinds() {
				t.Run(in.name+"/"+sname+"/"+string(kind), func(t *testing.T) {
					m, err := b.Build(context.Background(), kind, []byte(script), Options{})
					if err != nil {
						t.Fatal(err)
					}
					if m.Size() != int64(len(m.Bytes())) || !regexp.MustCompile(`^"[0-9a-f]{32}"$`).MatchString(m.ETag) {
						t.Errorf("size %d / etag %s", m.Size(), m.ETag)
					}
					checkReaders(t, m)
					switch kind {
					case KindISO, KindUSB:
						checkISO(t, in, m.Bytes(), script)
					case KindUEFIImg:
						checkUEFIImg(t, in, m.Bytes(), script)
					case KindUEFI:
						checkEFI(t, ArchAMD64, in.files["ipxe-amd64-script.efi"], m.Bytes(), script)
					case KindSNPOnly:
						checkEFI(t, ArchAMD64, in.files["snponly-script.efi"], m.Bytes(), script)
					case KindKRN:
						checkKRN(t, in.files["ipxe.lkrn"], m.Bytes(), script)
					}
				})
			}
		}
	}
}

// checkReaders: Reader, WriteTo and ReadAt windows (across span edges) all give Bytes.
func checkReaders(t *testing.T, m *Medium) {
	want := m.Bytes()
	got, err := io.ReadAll(m.Reader())
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("Reader: %v, equal %v", err, bytes.Equal(got, want))
	}
	var buf bytes.Buffer
	if n, err := m.WriteTo(&buf); err != nil || n != m.Size() || !bytes.Equal(buf.Bytes(), want) {
		t.Fatalf("WriteTo: %d, %v", n, err)
	}
	for _, s := range m.spans {
		for _, w := range [][2]int64{{s.off - 3, 5}, {s.off + int64(len(s.data)) - 2, 7}, {s.off - 100, int64(len(s.data)) + 200}} {
			off, n := max(w[0], 0), w[1]
			p := make([]byte, n)
			k, err := m.ReadAt(p, off)
			end := min(off+n, m.Size())
			if int64(k) != end-off || (err != nil && err != io.EOF) || !bytes.Equal(p[:k], want[off:end]) {
				t.Fatalf("ReadAt(%d, %d) = %d, %v: wrong bytes", off, n, k, err)
			}
		}
	}
}

func checkISO(t *testing.T, in inputSet, img []byte, script string) {
	if len(img)%isoSector != 0 {
		t.Errorf("size %d not a multiple of 2048", len(img))
	}
	files, recs := isoFiles(t, img)
	want := map[string][]byte{
		"/isolinux/isolinux.bin": in.files["isolinux.bin"],
		"/isolinux/ldlinux.c32":  in.files["ldlinux.c32"],
		"/isolinux/isolinux.cfg": []byte(isolinuxCfg),
		"/ipxe.lkrn":             in.files["ipxe.lkrn"],
		"/autoexec.ipxe":         []byte(script),
	}
	for p, w := range want {
		got, ok := files[p]
		if !ok {
			t.Errorf("ISO lacks %s", p)
			continue
		}
		if p == "/isolinux/isolinux.bin" {
			// The boot-info table (bytes 8-63) is written into the image copy.
			got = append(append(append([]byte{}, got[:8]...), w[8:64]...), got[64:]...)
		}
		if !bytes.Equal(got, w) {
			t.Errorf("ISO %s differs from its input (%d vs %d bytes)", p, len(got), len(w))
		}
	}
	if _, ok := files["/isolinux/boot.cat"]; !ok {
		t.Error("ISO lacks the boot catalogue /isolinux/boot.cat")
	}
	slot := recs["/autoexec.ipxe"].extent() * isoSector
	if !zero(img[slot+len(script) : slot+MaxScriptLen]) {
		t.Error("ISO script slot not zero-padded")
	}

	et, err := readElTorito(img)
	if err != nil {
		t.Fatal(err)
	}
	bootLBA := recs["/isolinux/isolinux.bin"].extent()
	if int(et.biosLBA) != bootLBA || et.biosSecs != 4 {
		t.Errorf("El Torito BIOS entry LBA %d secs %d, want %d and 4", et.biosLBA, et.biosSecs, bootLBA)
	}
	efi := recs["/efi.img"]
	if et.efiPlatform != 0xEF || int(et.efiLBA) != efi.extent() || int(et.efiSecs) != efi.size()/512 {
		t.Errorf("El Torito EFI entry %+v, want LBA %d secs %d", et, efi.extent(), efi.size()/512)
	}
	// Boot-info table: PVD LBA, boot file LBA, length, checksum of the file from byte 64.
	bf := files["/isolinux/isolinux.bin"]
	le := binary.LittleEndian
	if le.Uint32(bf[8:]) != 16 || int(le.Uint32(bf[12:])) != bootLBA || int(le.Uint32(bf[16:])) != len(bf) ||
		le.Uint32(bf[20:]) != sum32(bf[64:]) {
		t.Errorf("boot-info table %x, want pvd 16, lba %d, len %d, sum %#x", bf[8:24], bootLBA, len(bf), sum32(bf[64:]))
	}
	// isohybrid MBR.
	if img[510] != 0x55 || img[511] != 0xAA || !bytes.Equal(img[:432], in.files["isohdpfx.bin"][:432]) ||
		int(le.Uint32(img[432:])) != bootLBA*4 {
		t.Error("isohybrid MBR: bad signature, code or boot file LBA")
	}
	type part struct {
		Boot, Type   byte
		Start, Count uint32
	}
	var parts []part
	for i := 0; i < 4; i++ {
		e := img[446+16*i:]
		parts = append(parts, part{e[0], e[4], le.Uint32(e[8:]), le.Uint32(e[12:])})
	}
	wantParts := []part{{0x80, 0x17, 0, uint32(len(img) / 512)}, {0, 0xEF, uint32(efi.extent() * 4), uint32(efi.size() / 512)}, {}, {}}
	if d := cmp.Diff(wantParts, parts); d != "" {
		t.Errorf("MBR partitions (-want +got):\n%s", d)
	}
	checkESP(t, in, files["/efi.img"], script)

	if rep, ok := xorrisoReport(t, img); ok {
		for _, w := range []string{
			"El Torito boot img :   1  BIOS  y   none  0x0000  0x00      4",
			"El Torito boot img :   2  UEFI  y   none",
			"El Torito img path :   1  /isolinux/isolinux.bin",
			"El Torito img path :   2  /efi.img",
			"El Torito img opts :   1  boot-info-table",
			"MBR partition      :   2   0x00  0xef",
		} {
			if !strings.Contains(rep, w) {
				t.Errorf("xorriso report lacks %q:\n%s", w, rep)
			}
		}
	}
}

func checkESP(t *testing.T, in inputSet, esp []byte, script string) {
	got := fatFiles(t, esp)
	want := map[string][]byte{
		"/autoexec.ipxe":         []byte(script),
		"/EFI/BOOT/BOOTX64.EFI":  in.files["ipxe-amd64.efi"],
		"/EFI/BOOT/BOOTAA64.EFI": in.files["ipxe-arm64.efi"],
	}
	if d := cmp.Diff(keys(want), keys(got)); d != "" {
		t.Errorf("ESP files (-want +got):\n%s", d)
	}
	for p, w := range want {
		if !bytes.Equal(got[p], w) {
			t.Errorf("ESP %s differs from its input", p)
		}
	}
	fsckFAT(t, esp)
}

func keys(m map[string][]byte) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sortStrings(out)
	return out
}

func checkUEFIImg(t *testing.T, in inputSet, img []byte, script string) {
	st := &memStorage{buf: img}
	tbl, err := gpt.Read(st, 512, 512)
	if err != nil {
		t.Fatalf("read GPT: %v", err)
	}
	if len(tbl.Partitions) != 1 {
		t.Fatalf("%d GPT partitions, want 1", len(tbl.Partitions))
	}
	p := tbl.Partitions[0]
	if p.Type != gpt.EFISystemPartition || p.Start != uefimgStartLBA || !strings.EqualFold(tbl.GUID, uefimgDiskGUID) {
		t.Errorf("GPT partition %+v disk %s", p, tbl.GUID)
	}
	if img[450] != 0xEE || img[510] != 0x55 || img[511] != 0xAA {
		t.Error("no protective MBR")
	}
	checkESP(t, in, img[p.Start*512:(p.End+1)*512], script)
}

func checkEFI(t *testing.T, arch Arch, stub, out []byte, script string) {
	s, err := findEFISlotFor(out, arch)
	if err != nil {
		t.Fatal(err)
	}
	if n := binary.LittleEndian.Uint32(out[s.off+32:]); int(n) != len(script) {
		t.Errorf("slot length %d, want %d", n, len(script))
	}
	text := out[s.off+36 : s.off+36+MaxScriptLen]
	if !bytes.Equal(text[:len(script)], []byte(script)) || !zero(text[len(script):]) {
		t.Error("slot text is not the script followed by zeros")
	}
	if len(out) != len(stub) || !bytes.Equal(out[:s.off+32], stub[:s.off+32]) || !bytes.Equal(out[s.off+36+MaxScriptLen:], stub[s.off+36+MaxScriptLen:]) {
		t.Error("bytes outside the slot changed")
	}
}

func checkKRN(t *testing.T, lkrn, out []byte, script string) {
	le := binary.LittleEndian
	if len(out) != len(lkrn)+MaxScriptLen {
		t.Fatalf("size %d, want %d", len(out), len(lkrn)+MaxScriptLen)
	}
	for _, r := range [][2]int{{0, bzSyssize}, {bzSyssize + 4, bzRamdiskImage}, {bzRamdiskSize + 4, len(lkrn)}} {
		if !bytes.Equal(out[r[0]:r[1]], lkrn[r[0]:r[1]]) {
			t.Errorf("bytes %#x-%#x changed", r[0], r[1])
		}
	}
	setup := setupSize(lkrn)
	wantAddr := uint32(0)
	if script != "" {
		wantAddr = uint32(bzLoadHigh + len(lkrn) - setup)
	}
	if a, n := le.Uint32(out[bzRamdiskImage:]), le.Uint32(out[bzRamdiskSize:]); a != wantAddr || int(n) != len(script) {
		t.Errorf("ramdisk %#x+%d, want %#x+%d", a, n, wantAddr, len(script))
	}
	if got := int(le.Uint32(out[bzSyssize:])) * 16; got < len(out)-setup || got >= len(out)-setup+16 {
		t.Errorf("syssize %d bytes for %d", got, len(out)-setup)
	}
	tail := out[len(lkrn):]
	if !bytes.Equal(tail[:len(script)], []byte(script)) || !zero(tail[len(script):]) {
		t.Error("appended slot is not the script followed by zeros")
	}
}

func TestGenericBinaries(t *testing.T) {
	in := syntheticInputs(t)
	b, err := New(in.cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		kind Kind
		arch Arch
		stub string
	}{{KindUEFI, ArchAMD64, "ipxe-amd64-script.efi"}, {KindUEFI, ArchARM64, "ipxe-arm64-script.efi"}, {KindSNPOnly, "", "snponly-script.efi"}, {KindKRN, "", ""}} {
		m, err := b.Build(context.Background(), tc.kind, nil, Options{Arch: tc.arch})
		if err != nil {
			t.Fatal(err)
		}
		if tc.kind == KindKRN {
			checkKRN(t, in.files["ipxe.lkrn"], m.Bytes(), "")
		} else {
			checkEFI(t, tc.arch, in.files[tc.stub], m.Bytes(), "")
			if !bytes.Equal(m.Bytes(), in.files[tc.stub]) {
				t.Error("generic .efi differs from the built stub")
			}
		}
	}
}

func TestScriptRefused(t *testing.T) {
	in := syntheticInputs(t)
	reg := prometheus.NewPedanticRegistry()
	in.cfg.Registerer = reg
	b, err := New(in.cfg)
	if err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct {
		kind   Kind
		script string
		opts   Options
		want   error
	}{
		"too long":      {KindISO, "#!ipxe\n" + strings.Repeat("x", MaxScriptLen), Options{}, ErrScriptTooLong},
		"too long efi":  {KindUEFI, "#!ipxe\n" + strings.Repeat("x", MaxScriptLen), Options{}, ErrScriptTooLong},
		"no magic":      {KindUSB, "echo hi\n", Options{}, ErrBadScript},
		"nul":           {KindKRN, "#!ipxe\necho \x00\n", Options{}, ErrBadScript},
		"utf8":          {KindUEFIImg, "#!ipxe\necho é\n", Options{}, ErrBadScript},
		"empty iso":     {KindISO, "", Options{}, ErrBadScript},
		"unknown kind":  {Kind("floppy"), testScript, Options{}, ErrUnknownKind},
		"unknown arch":  {KindUEFI, testScript, Options{Arch: "riscv64"}, ErrUnknownArch},
		"max is fine":   {KindISO, "#!ipxe\n" + strings.Repeat("#", MaxScriptLen-7), Options{}, nil},
		"empty krn ok":  {KindKRN, "", Options{}, nil},
		"aarch64 alias": {KindUEFI, testScript, Options{Arch: "aarch64"}, nil},
		"snponly arm64": {KindSNPOnly, testScript, Options{Arch: "arm64"}, ErrUnknownArch},
		"snponly amd64": {KindSNPOnly, testScript, Options{Arch: "x86_64"}, nil},
	} {
		t.Run(name, func(t *testing.T) {
			m, err := b.Build(context.Background(), tc.kind, []byte(tc.script), tc.opts)
			if !errors.Is(err, tc.want) {
				t.Fatalf("err %v, want %v", err, tc.want)
			}
			if (m == nil) != (tc.want != nil) {
				t.Fatalf("medium %v with err %v", m != nil, err)
			}
		})
	}
	if got := testutil.ToFloat64(b.m.builds.WithLabelValues("iso", resultTooLong)); got != 1 {
		t.Errorf("too_long count %v, want 1", got)
	}
	if got := testutil.ToFloat64(b.m.builds.WithLabelValues("krn", resultBad)); got != 1 {
		t.Errorf("bad_script count for krn %v, want 1", got)
	}
	if n, err := testutil.GatherAndCount(reg, "bootstrapd_media_builds_total", "bootstrapd_media_cache_hits_total", "bootstrapd_media_build_duration_seconds"); err != nil || n != 6*5+6+6 {
		t.Errorf("gathered %d series (%v), want every label pre-created", n, err)
	}
}

func TestNoUEFIWithoutEmbedDir(t *testing.T) {
	in := syntheticInputs(t)
	in.cfg.EmbedDir = ""
	b, err := New(in.cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Build(context.Background(), KindUEFI, []byte(testScript), Options{}); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("err %v, want ErrUnavailable", err)
	}
}

func TestMissingFile(t *testing.T) {
	for _, tc := range []struct {
		dir  func(Config) string
		file string
		key  string
	}{
		{func(c Config) string { return c.IPXEDir }, "ipxe-amd64.efi", "paths.ipxe"},
		{func(c Config) string { return c.IPXEDir }, "ipxe.lkrn", "paths.ipxe"},
		{func(c Config) string { return c.IsolinuxDir }, "isolinux.bin", "paths.isolinux"},
		{func(c Config) string { return c.IsolinuxDir }, "isohdpfx.bin", "paths.isolinux"},
		{func(c Config) string { return c.SyslinuxBIOSDir }, "ldlinux.c32", "paths.syslinux_bios"},
		{func(c Config) string { return c.EmbedDir }, "ipxe-arm64-script.efi", "paths.ipxe_embed"},
	} {
		t.Run(tc.file, func(t *testing.T) {
			in := syntheticInputs(t)
			p := filepath.Join(tc.dir(in.cfg), tc.file)
			if err := os.Remove(p); err != nil {
				t.Fatal(err)
			}
			_, err := New(in.cfg)
			var mf *MissingFileError
			if !errors.As(err, &mf) || mf.Key != tc.key || mf.Path != p || !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("err %v, want a MissingFileError for %s (%s)", err, p, tc.key)
			}
			if !strings.Contains(err.Error(), tc.key) || !strings.Contains(err.Error(), p) {
				t.Errorf("message %q names neither key nor path", err)
			}
		})
	}
}

// TestDeterministic builds with two Builders made a second apart: equal bytes and ETags,
// so neither the clock nor randomness leaks into a medium.
func TestDeterministic(t *testing.T) {
	in := syntheticInputs(t)
	b1, err := New(in.cfg)
	if err != nil {
		t.Fatal(err)
	}
	sleepPastSecond()
	b2, err := New(in.cfg)
	if err != nil {
		t.Fatal(err)
	}
	etags := map[string]Kind{}
	for _, k := range Kinds() {
		m1, err1 := b1.Build(context.Background(), k, []byte(testScript), Options{})
		m2, err2 := b2.Build(context.Background(), k, []byte(testScript), Options{})
		if err1 != nil || err2 != nil {
			t.Fatal(err1, err2)
		}
		if !bytes.Equal(m1.Bytes(), m2.Bytes()) || m1.ETag != m2.ETag {
			t.Errorf("%s: two builds differ", k)
		}
		if other, dup := etags[m1.ETag]; dup {
			t.Errorf("%s and %s share ETag %s", k, other, m1.ETag)
		}
		etags[m1.ETag] = k
		m3, _ := b1.Build(context.Background(), k, []byte(testScript+"\n"), Options{})
		if m3.ETag == m1.ETag {
			t.Errorf("%s: different scripts, same ETag", k)
		}
	}
}

func TestCache(t *testing.T) {
	in := syntheticInputs(t)
	b, err := New(in.cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	m1, _ := b.Build(ctx, KindISO, []byte(testScript), Options{})
	m2, _ := b.Build(ctx, KindISO, []byte(testScript), Options{})
	if m1 != m2 || testutil.ToFloat64(b.m.hits.WithLabelValues("iso")) != 1 || testutil.ToFloat64(b.m.builds.WithLabelValues("iso", resultOK)) != 1 {
		t.Fatal("repeat was not a cache hit")
	}
	// A bound smaller than two ISOs keeps only the most recent.
	in.cfg.CacheBytes = m1.memSize()*2 - 1
	b, _ = New(in.cfg)
	a, _ := b.Build(ctx, KindISO, []byte(testScript), Options{})
	_, _ = b.Build(ctx, KindISO, []byte(testScript+"#\n"), Options{})
	if a2, _ := b.Build(ctx, KindISO, []byte(testScript), Options{}); a2 == a {
		t.Error("evicted medium came back from the cache")
	}
	if b.cache.used > b.cache.max {
		t.Errorf("cache holds %d bytes over its %d bound", b.cache.used, b.cache.max)
	}
	// Negative: no cache.
	in.cfg.CacheBytes = -1
	b, _ = New(in.cfg)
	x, _ := b.Build(ctx, KindKRN, []byte(testScript), Options{})
	if y, _ := b.Build(ctx, KindKRN, []byte(testScript), Options{}); x == y {
		t.Error("cache disabled, yet the same medium came back")
	}
	ctx2, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := b.Build(ctx2, KindKRN, []byte(testScript), Options{}); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled context: %v", err)
	}
}

// FuzzScript: any script is refused or carried byte for byte, and the images stay valid.
func FuzzScript(f *testing.F) {
	for _, s := range []string{testScript, "#!ipxe\n", "#!ipxe" + strings.Repeat("\n", 5000), "", "\x00", "#!ipxe\r\nshell\t\n"} {
		f.Add([]byte(s))
	}
	in := syntheticInputs(f)
	in.cfg.CacheBytes = -1
	b, err := New(in.cfg)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, script []byte) {
		for _, k := range []Kind{KindUEFIImg, KindUEFI, KindKRN} {
			m, err := b.Build(context.Background(), k, script, Options{})
			if err != nil {
				if CheckScript(script) == nil && len(script) > 0 {
					t.Fatalf("%s refused a valid script: %v", k, err)
				}
				continue
			}
			switch k {
			case KindUEFIImg:
				got := fatFiles(t, m.Bytes()[uefimgStartLBA*512:])
				if !bytes.Equal(got["/autoexec.ipxe"], script) {
					t.Fatalf("uefimg carries %q, want %q", got["/autoexec.ipxe"], script)
				}
			case KindUEFI:
				checkEFI(t, ArchAMD64, in.files["ipxe-amd64-script.efi"], m.Bytes(), string(script))
			case KindKRN:
				checkKRN(t, in.files["ipxe.lkrn"], m.Bytes(), string(script))
			}
		}
	})
}

// FuzzParsers: the image readers used on built media never panic on arbitrary bytes.
func FuzzParsers(f *testing.F) {
	in := syntheticInputs(f)
	b, err := New(in.cfg)
	if err != nil {
		f.Fatal(err)
	}
	iso := b.templates[KindISO][""].img
	f.Add(iso[:18*isoSector])
	f.Add(b.templates[KindUEFIImg][""].img[uefimgStartLBA*512 : uefimgStartLBA*512+8192])
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		img := make([]byte, max(len(data), 20*isoSector))
		copy(img, data)
		_, _ = readElTorito(img)
		_ = isoWalk(img, func(isoRecord) error { return nil })
		_ = normalizeISO(img)
		if v, err := parseFAT16(data); err == nil {
			_ = v.walk(func(string, []byte) error { return nil })
			_ = v.freeLost()
		}
		_, _ = findEFISlotFor(data, ArchAMD64)
		_, _, _ = lkrnTemplate(data)
	})
}

// TestConcurrentBuild: many goroutines building and reading the same and different media
// (run under -race by make unit).
func TestConcurrentBuild(t *testing.T) {
	in := syntheticInputs(t)
	in.cfg.CacheBytes = 64 << 10 // small: evictions happen while others read
	b, err := New(in.cfg)
	if err != nil {
		t.Fatal(err)
	}
	want := map[Kind][]byte{}
	for _, k := range Kinds() {
		m, err := b.Build(context.Background(), k, []byte(testScript), Options{})
		if err != nil {
			t.Fatal(err)
		}
		want[k] = m.Bytes()
	}
	errs := make(chan error, 40)
	for i := range 40 {
		go func() {
			k := Kinds()[i%len(Kinds())]
			script := []byte(testScript)
			if i%2 == 1 {
				script = append(script, []byte(strings.Repeat("#", i)+"\n")...)
			}
			m, err := b.Build(context.Background(), k, script, Options{})
			if err == nil && i%2 == 0 {
				if got, _ := io.ReadAll(m.Reader()); !bytes.Equal(got, want[k]) {
					err = errors.New(string(k) + ": concurrent build differs")
				}
			}
			errs <- err
		}()
	}
	for range 40 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}

// Stubs built before snponly-script.efi existed: /snponly/ is unavailable, the rest works.
func TestSNPOnlyStubMissing(t *testing.T) {
	in := syntheticInputs(t)
	if err := os.Remove(filepath.Join(in.cfg.EmbedDir, "snponly-script.efi")); err != nil {
		t.Fatal(err)
	}
	b, err := New(in.cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Build(context.Background(), KindSNPOnly, []byte(testScript), Options{}); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("snponly without its stub: %v, want ErrUnavailable", err)
	}
	if _, err := b.Build(context.Background(), KindUEFI, []byte(testScript), Options{}); err != nil {
		t.Fatalf("uefi without the snponly stub: %v", err)
	}
	// A stub for the wrong machine is still an error that stops New.
	writeFiles(t, in.cfg.EmbedDir, map[string][]byte{"snponly-script.efi": fakePE(9, 90<<10, pe.IMAGE_FILE_MACHINE_ARM64, true)})
	if _, err := New(in.cfg); err == nil || !strings.Contains(err.Error(), "snponly-script.efi") {
		t.Fatalf("arm64 snponly stub: %v", err)
	}
}

package media

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"

	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/threefoldtech/bootstrapd/ipxe"
)

// Kind is a medium's layout.
type Kind string

const (
	KindISO     Kind = "iso"    // hybrid ISO: CD or disk, BIOS (isolinux) and UEFI (El Torito EFI)
	KindUSB     Kind = "usb"    // disk image for a stick: the hybrid layout, BIOS and UEFI
	KindUEFIImg Kind = "uefimg" // GPT disk image with one FAT16 EFI System Partition
	KindUEFI    Kind = "uefi"   // one .efi file (iPXE behind the script stub)
	KindKRN     Kind = "krn"    // one ipxe.lkrn carrying the script as its built-in initrd
	// KindSNPOnly is one .efi file like KindUEFI, around Debian's snponly.efi: iPXE that
	// drives the NIC through the firmware's own network driver (SNP), for NICs iPXE's
	// drivers do not run. x86_64 only: Debian builds no arm64 snponly.efi.
	KindSNPOnly Kind = "snponly"
)

// Kinds lists every kind, in a fixed order.
func Kinds() []Kind { return []Kind{KindISO, KindUSB, KindUEFIImg, KindUEFI, KindKRN, KindSNPOnly} }

// ParseKind maps a URL segment ("iso", "usb", "uefimg", "uefi", "krn", "snponly") to a Kind.
func ParseKind(s string) (Kind, error) {
	for _, k := range Kinds() {
		if string(k) == s {
			return k, nil
		}
	}
	return "", fmt.Errorf("%w: %q", ErrUnknownKind, s)
}

// Ext is the file name extension of a medium of this kind, with the dot.
func (k Kind) Ext() string {
	switch k {
	case KindISO:
		return ".iso"
	case KindUEFI, KindSNPOnly:
		return ".efi"
	case KindKRN:
		return ".lkrn"
	default:
		return ".img"
	}
}

// Arch selects the iPXE build of KindUEFI; the other kinds ignore it (they carry both EFI
// architectures where they carry EFI at all).
type Arch string

const (
	ArchAMD64 Arch = "amd64"
	ArchARM64 Arch = "arm64"
)

// ParseArch maps "", "amd64" (also "x86_64") and "arm64" (also "aarch64") to an Arch.
func ParseArch(s string) (Arch, error) {
	switch s {
	case "", "amd64", "x86_64":
		return ArchAMD64, nil
	case "arm64", "aarch64":
		return ArchARM64, nil
	}
	return "", fmt.Errorf("%w: %q", ErrUnknownArch, s)
}

// Options are per-request choices besides kind and script.
type Options struct {
	Arch Arch // KindUEFI only; "" = amd64
}

// Debian locations of the syslinux files, the defaults of Config.
const (
	DefaultIsolinuxDir  = "/usr/lib/ISOLINUX"              // package isolinux
	DefaultSyslinuxBIOS = "/usr/lib/syslinux/modules/bios" // package syslinux-common
	DefaultCacheBytes   = 64 << 20
	embedEFIAmd64       = "ipxe-amd64-script.efi"
	embedEFIArm64       = "ipxe-arm64-script.efi"
	embedSNPOnly        = "snponly-script.efi"
	isolinuxBin         = "isolinux.bin"
	isohdpfxBin         = "isohdpfx.bin"
	ldlinuxC32          = "ldlinux.c32"
)

// Config is what New needs. Every directory is read once, in New.
type Config struct {
	// IPXEDir holds the stock iPXE binaries (config paths.ipxe; packaging/fetch-ipxe.sh):
	// ipxe-amd64.efi, ipxe-arm64.efi, ipxe.lkrn. Required.
	IPXEDir string
	// IsolinuxDir holds isolinux.bin and isohdpfx.bin (paths.isolinux); required.
	// DefaultIsolinuxDir is where Debian installs them.
	IsolinuxDir string
	// SyslinuxBIOSDir holds ldlinux.c32 (paths.syslinux_bios); required.
	// DefaultSyslinuxBIOS is where Debian installs it.
	SyslinuxBIOSDir string
	// TrustDir holds packaging/ipxe-trust/build.sh's output (iPXE trusting the ISRG roots,
	// for an https:// base URL); each of ipxe-amd64.efi, ipxe-arm64.efi and ipxe.lkrn found
	// there replaces IPXEDir's. "" or missing files: IPXEDir's are used.
	TrustDir string
	// EmbedDir holds packaging/ipxe-embed/build.sh's output, ipxe-amd64-script.efi,
	// ipxe-arm64-script.efi and snponly-script.efi (paths.ipxe_embed). "" = KindUEFI and
	// KindSNPOnly answer ErrUnavailable; a missing snponly-script.efi (stubs built before
	// it existed) only KindSNPOnly.
	EmbedDir string
	// CacheBytes bounds the cache of finished media (media.cache_bytes); 0 or negative =
	// no cache. bootstrapd's default is DefaultCacheBytes.
	CacheBytes int64
	// Logger: nil = discard.
	Logger *slog.Logger
	// Registerer: nil = metrics are kept but not registered.
	Registerer prometheus.Registerer
}

// Medium is a finished medium, immutable and safe for concurrent readers: read it with
// ReadAt, Reader (for http.ServeContent), WriteTo or Bytes. It shares the template's bytes
// and holds only its patched spans.
type Medium struct {
	Kind Kind
	Arch Arch // KindUEFI only
	// ETag is a strong entity tag, quoted as HTTP wants it: a hash of the kind, the
	// architecture, the template (so the binaries and syslinux files) and the script.
	ETag  string
	key   [32]byte
	base  []byte
	spans []span
}

type template struct {
	kind    Kind
	arch    Arch
	img     []byte
	hash    [32]byte
	slots   []patcher
	scripts bool // false: an empty script is allowed (no script: iPXE's normal autoboot)
}

// Builder builds media from templates made in New. It is safe for concurrent use.
type Builder struct {
	log       *slog.Logger
	m         *metrics
	cache     *cache
	templates map[Kind]map[Arch]*template
}

// New reads every input file, builds one template per kind (and per architecture for
// KindUEFI) with an empty script slot, and checks each. It fails with a *MissingFileError
// naming the file and the config key when an input is missing.
func New(cfg Config) (*Builder, error) {
	if cfg.IPXEDir == "" {
		return nil, errors.New("media: Config.IPXEDir (paths.ipxe) is required")
	}
	if cfg.IsolinuxDir == "" || cfg.SyslinuxBIOSDir == "" {
		return nil, errors.New("media: Config.IsolinuxDir and SyslinuxBIOSDir (paths.isolinux, paths.syslinux_bios) are required")
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, fmt.Errorf("media: metrics: %w", err)
	}
	read := func(key, dir, name, pkg string) ([]byte, error) {
		p := filepath.Join(dir, name)
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, &MissingFileError{Key: key, Path: p, Package: pkg, Err: err}
		}
		if len(b) == 0 {
			return nil, &MissingFileError{Key: key, Path: p, Package: pkg, Err: errors.New("empty file")}
		}
		return b, nil
	}
	const ipxePkg = "packaging/fetch-ipxe.sh (Debian trixie ipxe)"
	// readIPXE prefers the trusted build's binary when there is one.
	readIPXE := func(name string) ([]byte, error) {
		if cfg.TrustDir != "" {
			if b, err := read("paths.ipxe_trust", cfg.TrustDir, name, "packaging/ipxe-trust/build.sh"); err == nil {
				log.Info("media use the trusted iPXE build", "file", filepath.Join(cfg.TrustDir, name))
				return b, nil
			}
		}
		return read("paths.ipxe", cfg.IPXEDir, name, ipxePkg)
	}
	efiX64, err := readIPXE(ipxe.FileEFIx64)
	if err != nil {
		return nil, err
	}
	efiArm, err := readIPXE(ipxe.FileEFIArm64)
	if err != nil {
		return nil, err
	}
	lkrn, err := readIPXE(ipxe.FileLKRN)
	if err != nil {
		return nil, err
	}
	isolinux, err := read("paths.isolinux", cfg.IsolinuxDir, isolinuxBin, "Debian package isolinux")
	if err != nil {
		return nil, err
	}
	isohdpfx, err := read("paths.isolinux", cfg.IsolinuxDir, isohdpfxBin, "Debian package isolinux")
	if err != nil {
		return nil, err
	}
	ldlinux, err := read("paths.syslinux_bios", cfg.SyslinuxBIOSDir, ldlinuxC32, "Debian package syslinux-common")
	if err != nil {
		return nil, err
	}

	b := &Builder{log: log, m: m, cache: newCache(cfg.CacheBytes), templates: map[Kind]map[Arch]*template{}}
	add := func(t *template) {
		t.hash = sha256.Sum256(t.img)
		if b.templates[t.kind] == nil {
			b.templates[t.kind] = map[Arch]*template{}
		}
		b.templates[t.kind][t.arch] = t
	}
	start := time.Now()

	// The ESP, alone (uefimg) and as the El Torito EFI image (iso, usb).
	esp, err := buildFAT16([]fatFile{
		{path: "/autoexec.ipxe", data: placeholder()},
		{path: "/EFI/BOOT/BOOTX64.EFI", data: efiX64},
		{path: "/EFI/BOOT/BOOTAA64.EFI", data: efiArm},
	}, "IPXE")
	if err != nil {
		return nil, fmt.Errorf("media: EFI system partition: %w", err)
	}
	if _, err := findFATSlot(esp, 0); err != nil {
		return nil, fmt.Errorf("media: EFI system partition: %w", err)
	}

	iso, err := buildISO(isoInputs{isolinux: isolinux, isohdpfx: isohdpfx, ldlinux: ldlinux, lkrn: lkrn, efiImg: esp, slot: placeholder()})
	if err != nil {
		return nil, fmt.Errorf("media: iso: %w", err)
	}
	isoSlots, err := isoPatchers(iso)
	if err != nil {
		return nil, fmt.Errorf("media: iso: %w", err)
	}
	add(&template{kind: KindISO, img: iso, slots: isoSlots, scripts: true})
	// The USB image is the same hybrid layout: syslinux's FAT installer (ldlinux.sys and
	// its boot sector) is not shipped as files by Debian, while the isohybrid MBR boots
	// BIOS and the partition-2 ESP boots UEFI from a stick.
	add(&template{kind: KindUSB, img: iso, slots: isoSlots, scripts: true})

	uefimg, espOff, err := buildUEFIImg(esp)
	if err != nil {
		return nil, fmt.Errorf("media: uefimg: %w", err)
	}
	us, err := findFATSlot(uefimg[espOff:], espOff)
	if err != nil {
		return nil, fmt.Errorf("media: uefimg: %w", err)
	}
	add(&template{kind: KindUEFIImg, img: uefimg, slots: []patcher{us}, scripts: true})

	kimg, ks, err := lkrnTemplate(lkrn)
	if err != nil {
		return nil, &MissingFileError{Key: "paths.ipxe", Path: filepath.Join(cfg.IPXEDir, ipxe.FileLKRN), Package: ipxePkg, Err: err}
	}
	add(&template{kind: KindKRN, img: kimg, slots: []patcher{ks}})

	if cfg.EmbedDir != "" {
		for _, e := range []struct {
			kind Kind
			arch Arch
			name string
		}{{KindUEFI, ArchAMD64, embedEFIAmd64}, {KindUEFI, ArchARM64, embedEFIArm64}, {KindSNPOnly, "", embedSNPOnly}} {
			img, err := read("paths.ipxe_embed", cfg.EmbedDir, e.name, "packaging/ipxe-embed/build.sh")
			if e.kind == KindSNPOnly && errors.Is(err, fs.ErrNotExist) {
				// Stubs built before /snponly/ existed: the other media keep working.
				log.Warn("no snponly stub in paths.ipxe_embed: /snponly/ answers 503 (run make embed)", "dir", cfg.EmbedDir)
				continue
			}
			if err != nil {
				return nil, err
			}
			// snponly.efi exists for x86_64 only: its stub must be an amd64 PE.
			s, err := findEFISlotFor(img, cmp.Or(e.arch, ArchAMD64))
			if err != nil {
				return nil, &MissingFileError{Key: "paths.ipxe_embed", Path: filepath.Join(cfg.EmbedDir, e.name), Package: "packaging/ipxe-embed/build.sh", Err: err}
			}
			add(&template{kind: e.kind, arch: e.arch, img: img, slots: []patcher{s}})
		}
	}
	log.Info("media templates ready", "took", time.Since(start), "iso_bytes", len(iso), "uefimg_bytes", len(uefimg),
		"krn_bytes", len(kimg), "uefi", cfg.EmbedDir != "")
	return b, nil
}

func isoPatchers(iso []byte) ([]patcher, error) {
	s, err := findISOSlot(iso)
	if err != nil {
		return nil, err
	}
	et, err := readElTorito(iso)
	if err != nil {
		return nil, err
	}
	off := int(et.efiLBA) * isoSector
	if et.efiLBA == 0 || off >= len(iso) {
		return nil, errors.New("no El Torito EFI image")
	}
	fs, err := findFATSlot(iso[off:], off)
	if err != nil {
		return nil, fmt.Errorf("the El Torito EFI image: %w", err)
	}
	return []patcher{s, fs}, nil
}

// CheckScript reports whether script can go into a medium: at most MaxScriptLen bytes
// (ErrScriptTooLong), starting with "#!ipxe", printable ASCII, tab, CR and LF only
// (ErrBadScript).
func CheckScript(script []byte) error {
	if len(script) > MaxScriptLen {
		return fmt.Errorf("%w: %d bytes, at most %d", ErrScriptTooLong, len(script), MaxScriptLen)
	}
	if !bytes.HasPrefix(script, []byte("#!ipxe")) {
		return fmt.Errorf("%w: does not start with #!ipxe", ErrBadScript)
	}
	for i, c := range script {
		if (c < 0x20 || c > 0x7e) && c != '\n' && c != '\r' && c != '\t' {
			return fmt.Errorf("%w: byte %#02x at %d", ErrBadScript, c, i)
		}
	}
	return nil
}

// Build returns the medium of kind carrying script. An empty script is allowed for
// KindUEFI, KindSNPOnly and KindKRN only: that is the generic iPXE, which autoboots from
// the LAN. KindSNPOnly refuses any Arch but amd64 (ErrUnknownArch).
// Equal arguments give equal bytes; repeats come from the cache.
func (b *Builder) Build(ctx context.Context, kind Kind, script []byte, opts Options) (*Medium, error) {
	if _, err := ParseKind(string(kind)); err != nil {
		return nil, err
	}
	arch := Arch("")
	if kind == KindSNPOnly {
		if a, err := ParseArch(string(opts.Arch)); err != nil || a != ArchAMD64 {
			return nil, fmt.Errorf("%w: %q: snponly.efi exists for amd64 only", ErrUnknownArch, opts.Arch)
		}
	}
	if kind == KindUEFI {
		var err error
		if arch, err = ParseArch(string(opts.Arch)); err != nil {
			return nil, err
		}
	}
	t := b.templates[kind][arch]
	if t == nil {
		return nil, fmt.Errorf("%w: %s (set paths.ipxe_embed)", ErrUnavailable, kind)
	}
	if len(script) > 0 || t.scripts {
		if err := CheckScript(script); err != nil {
			r := resultBad
			if errors.Is(err, ErrScriptTooLong) {
				r = resultTooLong
			}
			b.m.builds.WithLabelValues(string(kind), r).Inc()
			return nil, err
		}
	}
	key := mediumKey(t, script)
	if m := b.cache.get(key); m != nil {
		b.m.hits.WithLabelValues(string(kind)).Inc()
		return m, nil
	}
	if err := ctx.Err(); err != nil {
		b.m.builds.WithLabelValues(string(kind), resultCanceled).Inc()
		return nil, err
	}
	start := time.Now()
	var ps patchSet
	for _, s := range t.slots {
		s.patch(&ps, script)
	}
	spans, err := ps.seal(int64(len(t.img)))
	if err != nil {
		// A template whose slots overlap is a bug in New; never serve it.
		b.m.builds.WithLabelValues(string(kind), resultError).Inc()
		return nil, fmt.Errorf("media: %s: %w", kind, err)
	}
	m := &Medium{Kind: kind, Arch: arch, key: key, ETag: `"` + hex.EncodeToString(key[:16]) + `"`, base: t.img, spans: spans}
	b.m.duration.WithLabelValues(string(kind)).Observe(time.Since(start).Seconds())
	b.m.builds.WithLabelValues(string(kind), resultOK).Inc()
	b.cache.put(m)
	return m, nil
}

// mediumKey hashes what determines a medium's bytes: the template (kind, arch and every
// input file, through the template's own hash) and the script, length-prefixed.
func mediumKey(t *template, script []byte) [32]byte {
	h := sha256.New()
	h.Write([]byte("bootstrapd-media-v1\x00"))
	h.Write([]byte(t.kind))
	h.Write([]byte{0})
	h.Write([]byte(t.arch))
	h.Write([]byte{0})
	h.Write(t.hash[:])
	var n [8]byte
	binary.LittleEndian.PutUint64(n[:], uint64(len(script)))
	h.Write(n[:])
	h.Write(script)
	var k [32]byte
	h.Sum(k[:0])
	return k
}

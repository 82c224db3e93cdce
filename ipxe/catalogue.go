package ipxe

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"

	"github.com/insomniacslk/dhcp/iana"
)

// Names of the stock iPXE binaries, as Debian's ipxe package installs them in /usr/lib/ipxe.
const (
	FileBIOS     = "undionly.kpxe"  // BIOS PXE: chainloads through the NIC's UNDI stack
	FileEFIx64   = "ipxe-amd64.efi" // UEFI x86_64, all drivers
	FileEFIArm64 = "ipxe-arm64.efi" // UEFI arm64, all drivers
	FileSNPOnly  = "snponly.efi"    // UEFI x86_64 using only the firmware's SNP driver
	FileLKRN     = "ipxe.lkrn"      // Linux-kernel-format iPXE for media (isolinux, -kernel)
)

// requiredFiles lists every binary the catalogue requires.
var requiredFiles = []string{FileBIOS, FileEFIx64, FileEFIArm64, FileSNPOnly, FileLKRN}

// ErrNoBinary means no iPXE binary exists for a firmware architecture.
var ErrNoBinary = errors.New("no iPXE binary for this architecture")

// Catalogue maps firmware architectures to iPXE binaries in one directory. It is read-only and
// safe for concurrent use. It implements fs.FS over exactly its own files, so a TFTP or HTTP
// server handed the catalogue can never serve anything else.
type Catalogue struct {
	dir string
}

// OpenCatalogue checks that dir holds every required binary and returns its catalogue. The
// error names the first missing file and how to get it.
func OpenCatalogue(dir string) (*Catalogue, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("ipxe catalogue %q: %w", dir, err)
	}
	for _, name := range requiredFiles {
		st, err := os.Stat(filepath.Join(abs, name))
		if err != nil {
			return nil, fmt.Errorf("ipxe catalogue: %s missing in %s (run packaging/fetch-ipxe.sh %s, or install Debian's ipxe >= 1.21.1+git20250501 and set paths.ipxe: /usr/lib/ipxe): %w", name, abs, dir, err)
		}
		if !st.Mode().IsRegular() || st.Size() == 0 {
			return nil, fmt.Errorf("ipxe catalogue: %s in %s is not a non-empty regular file", name, abs)
		}
	}
	return &Catalogue{dir: abs}, nil
}

// Dir is the catalogue's absolute directory.
func (c *Catalogue) Dir() string { return c.dir }

// Files lists the catalogue's file names.
func (c *Catalogue) Files() []string { return slices.Clone(requiredFiles) }

// BootFile names the binary a firmware of the given architecture (DHCP option 93, RFC 4578)
// must load. HTTP Boot architectures map to the same EFI binaries as their PXE twins.
func (c *Catalogue) BootFile(arch iana.Arch) (string, error) {
	switch arch {
	case iana.INTEL_X86PC, iana.INTEL_X86PC_HTTP:
		return FileBIOS, nil
	case iana.EFI_X86_64, iana.EFI_BC, iana.EFI_X86_64_HTTP, iana.EFI_BC_HTTP:
		// Arch 9 ("EFI BC") is what many x86_64 firmwares really send, per RFC 4578 errata.
		return FileEFIx64, nil
	case iana.EFI_ARM64, iana.EFI_ARM64_HTTP:
		return FileEFIArm64, nil
	}
	return "", fmt.Errorf("%w: %s (%d)", ErrNoBinary, arch, uint16(arch))
}

// Open implements fs.FS over the catalogue's files only: any other name, a path with a
// directory part, or an invalid path is fs.ErrNotExist or fs.ErrInvalid.
func (c *Catalogue) Open(name string) (fs.File, error) {
	if !fs.ValidPath(name) {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrInvalid}
	}
	if !slices.Contains(requiredFiles, name) {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
	}
	f, err := os.Open(filepath.Join(c.dir, name))
	if err != nil {
		return nil, err
	}
	return f, nil
}

// IsHTTPBoot reports whether arch is a UEFI HTTP Boot client (RFC 4578 registry, 15-20 and
// the U-Boot/RISC-V HTTP variants), which takes a URL rather than a TFTP file name.
func IsHTTPBoot(arch iana.Arch) bool {
	switch arch {
	case iana.EFI_X86_HTTP, iana.EFI_X86_64_HTTP, iana.EFI_BC_HTTP, iana.EFI_ARM32_HTTP,
		iana.EFI_ARM64_HTTP, iana.INTEL_X86PC_HTTP, iana.UBOOT_ARM32_HTTP, iana.UBOOT_ARM64_HTTP:
		return true
	}
	return false
}

// The choices of EFI binary for x86_64 UEFI firmware (dhcp.efi_binary, a node record's
// efi_binary): iPXE with its own NIC drivers, or snponly.efi, which drives the NIC through
// the firmware's SNP driver, for NICs iPXE's drivers do not run.
const (
	EFIBinaryIPXE    = "ipxe"
	EFIBinarySNPOnly = "snponly"
)

// ValidateEFIBinary accepts "", EFIBinaryIPXE and EFIBinarySNPOnly ("" defers to the
// global choice).
func ValidateEFIBinary(s string) error {
	switch s {
	case "", EFIBinaryIPXE, EFIBinarySNPOnly:
		return nil
	}
	return fmt.Errorf("%w: efi binary %q: want %q or %q", ErrUnsafe, s, EFIBinaryIPXE, EFIBinarySNPOnly)
}

// EFIBootFile is the binary an x86_64 UEFI firmware loads for choice ("" counts as
// EFIBinaryIPXE): the catalogue's FileEFIx64 or FileSNPOnly.
func EFIBootFile(choice string) string {
	if choice == EFIBinarySNPOnly {
		return FileSNPOnly
	}
	return FileEFIx64
}

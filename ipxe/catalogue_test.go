package ipxe

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/insomniacslk/dhcp/iana"
)

func fakeCatalogueDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for _, name := range requiredFiles {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("binary "+name), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestCatalogueBootFile(t *testing.T) {
	c, err := OpenCatalogue(fakeCatalogueDir(t))
	if err != nil {
		t.Fatal(err)
	}
	tests := map[iana.Arch]string{
		iana.INTEL_X86PC:     FileBIOS,
		iana.EFI_X86_64:      FileEFIx64,
		iana.EFI_BC:          FileEFIx64,
		iana.EFI_X86_64_HTTP: FileEFIx64,
		iana.EFI_ARM64:       FileEFIArm64,
		iana.EFI_ARM64_HTTP:  FileEFIArm64,
	}
	for arch, want := range tests {
		if got, err := c.BootFile(arch); err != nil || got != want {
			t.Errorf("BootFile(%v) = %q, %v; want %q", arch, got, err, want)
		}
	}
	for _, arch := range []iana.Arch{iana.EFI_IA32, iana.EFI_ITANIUM, iana.EFI_RISCV64, 0xffff} {
		if got, err := c.BootFile(arch); !errors.Is(err, ErrNoBinary) {
			t.Errorf("BootFile(%v) = %q, %v; want ErrNoBinary", arch, got, err)
		}
	}
}

func TestCatalogueFS(t *testing.T) {
	dir := fakeCatalogueDir(t)
	if err := os.WriteFile(filepath.Join(dir, "secret"), []byte("no"), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := OpenCatalogue(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range requiredFiles {
		if _, err := fs.Stat(c, name); err != nil {
			t.Errorf("Stat(%q): %v", name, err)
		}
	}
	for _, name := range []string{"secret", "../" + FileBIOS, "/" + FileBIOS, "./" + FileBIOS, FileBIOS + "\x00", ""} {
		if f, err := c.Open(name); err == nil {
			f.Close()
			t.Errorf("Open(%q) succeeded", name)
		}
	}
	f, err := c.Open(FileLKRN)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b, _ := io.ReadAll(f)
	if string(b) != "binary "+FileLKRN {
		t.Fatalf("read %q", b)
	}
}

func TestOpenCatalogueMissingFile(t *testing.T) {
	dir := fakeCatalogueDir(t)
	os.Remove(filepath.Join(dir, FileEFIArm64))
	_, err := OpenCatalogue(dir)
	if err == nil || !strings.Contains(err.Error(), FileEFIArm64) || !strings.Contains(err.Error(), "fetch-ipxe.sh") {
		t.Fatalf("OpenCatalogue with a missing file: %v", err)
	}
}

package media

import (
	"bytes"
	"context"
	"debug/pe"
	"path/filepath"
	"testing"
)

// With TrustDir, media carry the trusted build's binaries where it has them and the stock
// ones elsewhere; without it, always the stock ones.
func TestTrustDirReplacesStockBinaries(t *testing.T) {
	in := syntheticInputs(t)
	trustedEFI := fakePE(42, 300<<10, pe.IMAGE_FILE_MACHINE_AMD64, false)
	trust := filepath.Join(t.TempDir(), "trust")
	writeFiles(t, trust, map[string][]byte{"ipxe-amd64.efi": trustedEFI}) // no lkrn, no arm64
	stock := in.files["ipxe-amd64.efi"]
	tests := map[string]struct {
		trustDir      string
		want, notWant []byte
	}{
		"stock":   {"", stock, trustedEFI},
		"trusted": {trust, trustedEFI, stock},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			cfg := in.cfg
			cfg.TrustDir = tc.trustDir
			b, err := New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			m, err := b.Build(context.Background(), KindUEFIImg, []byte("#!ipxe\necho hi\n"), Options{})
			if err != nil {
				t.Fatal(err)
			}
			// The ESP holds the whole binary: a stretch of its middle is found in the image.
			if img := m.Bytes(); !bytes.Contains(img, tc.want[64<<10:72<<10]) || bytes.Contains(img, tc.notWant[64<<10:72<<10]) {
				t.Error("the image does not carry the expected ipxe-amd64.efi")
			}
			k, err := b.Build(context.Background(), KindKRN, []byte("#!ipxe\necho hi\n"), Options{})
			if err != nil {
				t.Fatal(err)
			}
			if lkrn := in.files["ipxe.lkrn"]; !bytes.Equal(k.Bytes()[0x300:0x1000], lkrn[0x300:0x1000]) {
				t.Error("the .lkrn is not the stock one though the trusted build has none")
			}
		})
	}
}

package tftpd

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/threefoldtech/bootstrapd/ipxe"
)

// TestCatalogue serves the real iPXE binaries through *ipxe.Catalogue, as bootstrapd does,
// when BOOTSTRAPD_IPXE_DIR names a directory filled by packaging/fetch-ipxe.sh.
func TestCatalogue(t *testing.T) {
	dir := os.Getenv("BOOTSTRAPD_IPXE_DIR")
	if dir == "" {
		t.Skip("BOOTSTRAPD_IPXE_DIR not set (packaging/fetch-ipxe.sh DIR fills one)")
	}
	cat, err := ipxe.OpenCatalogue(dir)
	if err != nil {
		t.Fatal(err)
	}
	ts := startServer(t, Config{Files: cat})
	for _, name := range cat.Files() {
		t.Run(name, func(t *testing.T) {
			want, err := os.ReadFile(filepath.Join(dir, name))
			if err != nil {
				t.Fatal(err)
			}
			c := newRawClient(t, ts.Addr())
			data, oack, err := c.get(name, "tsize", "0", "blksize", "1468")
			if err != nil || !bytes.Equal(data, want) {
				t.Fatalf("got %d bytes, %v; want the %d bytes of %s", len(data), err, len(want), name)
			}
			if oack["tsize"] != strconv.Itoa(len(want)) || oack["blksize"] != "1468" {
				t.Errorf("OACK = %v, want tsize %d and blksize 1468", oack, len(want))
			}
			if tr := ts.next(t); tr.Err != nil {
				t.Errorf("transfer: %v", tr.Err)
			}
			if got := ts.transfers(name, resultOK); got != 1 {
				t.Errorf("transfers{file=%q,result=ok} = %v, want 1: the catalogue names the file label", name, got)
			}
		})
	}
	// The catalogue is the only gate left if parsePath let a name through: ask it directly.
	for _, name := range []string{"VERSION", "../ipxetest/undionly.kpxe"} {
		c := newRawClient(t, ts.Addr())
		if _, _, err := c.get(name); err == nil {
			t.Errorf("%s: served", name)
		}
		ts.next(t)
	}
}

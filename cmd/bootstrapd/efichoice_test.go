package main

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/threefoldtech/bootstrapd/ipxe"
	"github.com/threefoldtech/bootstrapd/store"
)

// The ProxyDHCP's per-MAC choice reads the real store: the record's efi_binary, else the
// global key.
func TestEFIChoice(t *testing.T) {
	db, err := store.Open(filepath.Join(t.TempDir(), "bootstrapd.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	for _, n := range []store.Node{
		{MAC: "52:54:00:00:00:01", Network: "test", Farm: 1, EFIBinary: ipxe.EFIBinarySNPOnly},
		{MAC: "52:54:00:00:00:02", Network: "test", Farm: 1, EFIBinary: ipxe.EFIBinaryIPXE},
		{MAC: "52:54:00:00:00:03", Network: "test", Farm: 1},
	} {
		if _, err := db.CreateNode(n); err != nil {
			t.Fatal(err)
		}
	}
	tests := map[string]struct {
		global, mac, want string
	}{
		"record snponly, global ipxe":   {"ipxe", "52:54:00:00:00:01", "snponly"},
		"record ipxe, global snponly":   {"snponly", "52:54:00:00:00:02", "ipxe"},
		"record without choice":         {"snponly", "52:54:00:00:00:03", "snponly"},
		"no record":                     {"ipxe", "52:54:00:00:00:09", "ipxe"},
		"no record, global snponly":     {"snponly", "52:54:00:00:00:09", "snponly"},
		"not a MAC gets the global one": {"ipxe", "zz", "ipxe"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := efiChoice(db, tc.global)(tc.mac); got != tc.want {
				t.Fatalf("efiChoice(%s) = %q, want %q", tc.mac, got, tc.want)
			}
		})
	}
}

func TestNodeEFIBinaryCLI(t *testing.T) {
	d := startDaemon(t)
	if out, err := d.cli(t, "node", "add", "--mac", "52:54:00:00:00:0e", "--network", "test", "--farm", "3", "--efi-binary", "snponly"); err != nil || !strings.Contains(out, "efi:      snponly") {
		t.Fatalf("node add --efi-binary: %v\n%s", err, out)
	}
	if out, err := d.cli(t, "node", "set", "--mac", "52:54:00:00:00:0e", "--efi-binary", "snp"); err == nil || !strings.Contains(out+err.Error(), "efi binary") {
		t.Fatalf("node set --efi-binary snp: %v\n%s", err, out)
	}
	if out, err := d.cli(t, "node", "export"); err != nil || !strings.Contains(out, "52:54:00:00:00:0e,test,3,,,snponly") {
		t.Fatalf("export after a refused set: %v\n%s", err, out)
	}
	if out, err := d.cli(t, "node", "set", "--mac", "52:54:00:00:00:0e", "--efi-binary", ""); err != nil || !strings.Contains(out, "efi:      dhcp.efi_binary") {
		t.Fatalf("node set --efi-binary '': %v\n%s", err, out)
	}
}

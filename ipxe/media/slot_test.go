package media

import (
	"bytes"
	"debug/pe"
	"encoding/binary"
	"errors"
	"strings"
	"testing"

	"github.com/threefoldtech/bootstrapd/ipxe"
)

func TestFindEFISlotFor(t *testing.T) {
	amd64 := fakePE(6, 64<<10, pe.IMAGE_FILE_MACHINE_AMD64, true)
	arm64 := fakePE(8, 64<<10, pe.IMAGE_FILE_MACHINE_ARM64, true)
	i386 := fakePE(9, 64<<10, pe.IMAGE_FILE_MACHINE_I386, true)
	edit := func(b []byte, f func([]byte)) []byte { b = bytes.Clone(b); f(b); return b }
	slotAt := bytes.Index(amd64, []byte(efiSlotMarker))

	for _, tc := range []struct {
		name    string
		img     []byte
		arch    Arch
		wantErr string // empty: the slot is found
	}{
		{"amd64 stub for amd64", amd64, ArchAMD64, ""},
		{"arm64 stub for arm64", arm64, ArchARM64, ""},
		{"amd64 stub by the default name", amd64, "", ""},
		{"arm64 stub for amd64", arm64, ArchAMD64, "PE machine 0xaa64 (arm64), want 0x8664 (amd64)"},
		{"amd64 stub for arm64", amd64, ArchARM64, "PE machine 0x8664 (amd64), want 0xaa64 (arm64)"},
		{"i386 stub for amd64", i386, ArchAMD64, "PE machine 0x014c, want 0x8664 (amd64)"},
		{"unknown architecture", amd64, "riscv64", "unknown architecture"},
		{"empty file", nil, ArchAMD64, "not a PE file"},
		{"no PE signature", edit(amd64, func(b []byte) { b[0x81] = 'X' }), ArchAMD64, "not a PE file"},
		{"machine debug/pe does not know", edit(amd64, func(b []byte) {
			binary.LittleEndian.PutUint16(b[0x84:], 0x9999)
		}), ArchAMD64, "not a PE file"},
		{"object file without an optional header", edit(amd64, func(b []byte) {
			binary.LittleEndian.PutUint16(b[0x84+16:], 0)
		}), ArchAMD64, "not a PE image"},
		{"no slot marker", edit(amd64, func(b []byte) { b[slotAt] ^= 0xff }), ArchAMD64, "exactly one script slot marker"},
		{"two slot markers", append(bytes.Clone(amd64), efiSlotMarker...), ArchAMD64, "exactly one script slot marker"},
		{"slot cut short", amd64[:slotAt+36+MaxScriptLen-1], ArchAMD64, "script slot truncated"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := findEFISlotFor(tc.img, tc.arch)
			if tc.wantErr == "" {
				if err != nil || s.off != slotAt {
					t.Fatalf("slot at %d, %v; want %d", s.off, err, slotAt)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
			}
		})
	}
	if _, err := findEFISlotFor(amd64, "sparc"); !errors.Is(err, ErrUnknownArch) {
		t.Errorf("unknown architecture: %v, want ErrUnknownArch", err)
	}
}

// A boot script with long values still fits a medium, whichever kernels it chooses between:
// a 32-character network, both default kernels behind a long base URL (or a node's own
// kernel of MaxKernelLen characters) and 256 characters of args (half of MaxArgsLen). The args appear twice (echo
// and imgfetch), so MaxArgsLen of them does not fit: such a medium is refused with
// ErrScriptTooLong, as it was before scripts chose a kernel by architecture.
func TestLongestScriptFits(t *testing.T) {
	s, err := ipxe.NewScripts(ipxe.ScriptConfig{ArgsSuffix: "nomodeset panic=7200", NTPServer: "pool.ntp.org"})
	if err != nil {
		t.Fatal(err)
	}
	network := strings.Repeat("n", 32)
	base := "https://bootstrap." + strings.Repeat("f", 40) + ".example.org:8443"
	args := strings.Repeat("a", ipxe.MaxArgsLen/2)
	for name, b := range map[string]ipxe.Boot{
		"both defaults": {KernelURL: base + "/kernel/net/" + network + ".efi", KernelURLArm64: base + "/kernel/net/" + network + "-arm64.efi"},
		"arm64 only":    {KernelURLArm64: base + "/kernel/net/" + network + "-arm64.efi"},
		"x86 only":      {KernelURL: base + "/kernel/net/" + network + ".efi"},
		"own kernel":    {KernelURL: base + "/kernel/" + strings.Repeat("k", ipxe.MaxKernelLen), KernelURLArm64: base + "/kernel/" + strings.Repeat("k", ipxe.MaxKernelLen)},
	} {
		b.Network, b.NetworkName, b.Farm, b.Args = network, "production network (v3)", 1<<64-1, args
		script, err := s.Render(b)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if err := CheckScript(script); err != nil {
			t.Errorf("%s: %v", name, err)
		}
		t.Logf("%s: %d of %d bytes", name, len(script), MaxScriptLen)
	}
}

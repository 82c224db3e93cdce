package ipxe

import (
	"fmt"
	"path"
	"strings"
)

// Kernel architectures a network has a default kernel for, named as iPXE's ${buildarch}
// names them. A boot script picks between them with ${buildarch} (see docs/FIRMWARE.md):
// the iPXE that runs the script can only be built for the CPU it runs on, while the
// architecture the ProxyDHCP saw is unknown to /ipxe/ URLs and boot media.
const (
	// ArchX86 is the default: x86-64 kernels, booted by iPXE builds whose ${buildarch} is
	// x86_64 (EFI) or i386 (BIOS undionly.kpxe and ipxe.lkrn are 32-bit builds that boot a
	// 64-bit kernel).
	ArchX86 = "x86_64"
	// ArchARM64 is arm64 (aarch64): EFI-stub Image kernels, booted by ipxe-arm64.efi.
	ArchARM64 = "arm64"
)

// Arches lists the kernel architectures, the default first.
var Arches = []string{ArchX86, ArchARM64}

// ParseArch turns an architecture as an operator writes it into ArchX86 or ArchARM64: ""
// (the default), x86_64, amd64, arm64 or aarch64.
func ParseArch(s string) (string, error) {
	switch strings.ToLower(s) {
	case "", "x86_64", "amd64", "x86-64":
		return ArchX86, nil
	case "arm64", "aarch64":
		return ArchARM64, nil
	}
	return "", fmt.Errorf("%w: architecture %q (one of x86_64, arm64)", ErrUnsafe, s)
}

// DefaultKernel names the link of network's default kernel for arch (from ParseArch):
// net/<network>.efi for x86_64, net/<network>-arm64.efi for arm64.
func DefaultKernel(network, arch string) string {
	if arch == ArchARM64 {
		return path.Join("net", network+"-arm64.efi")
	}
	return path.Join("net", network+".efi")
}

// CheckNetworkNames refuses a set of network names in which one network's arm64 default
// (net/<n>-arm64.efi) is another network's x86-64 default (net/<n>-arm64 network).
func CheckNetworkNames(networks map[string]string) error {
	for n := range networks {
		if _, ok := networks[n+"-arm64"]; ok {
			return fmt.Errorf("networks %q and %q: net/%s-arm64.efi would be both the arm64 kernel of %s and the kernel of %s-arm64; rename one",
				n, n+"-arm64", n, n, n)
		}
	}
	return nil
}

// Package e2e boots real firmware under qemu against the real bootstrapd binary on a LAN
// built from network namespaces, the way a farm LAN looks: an ordinary DHCP server
// (dnsmasq, leases and router adverts only, no PXE options) on a bridge, bootstrapd on a
// second host of that LAN as ProxyDHCP, TFTP and HTTP server, and a VM behind a tap.
//
// The cases of TestLANBoot:
//
//	uefi-pxe            OVMF's own PXE client (NIC ROM off): TFTP <mac>/ipxe-amd64.efi
//	uefi-httpboot       OVMF with TFTP (UDP 69) and UDP 4011 dropped by nftables in the
//	                    appliance's namespace for this case only: PXE fails, OVMF's HTTP
//	                    Boot option sends HTTPClient:Arch:00016 and fetches
//	                    /boot/<mac>/ipxe-amd64.efi over HTTP (about 2 minutes under TCG,
//	                    most of it PXE timeouts)
//	bios-old-ipxe-rom   SeaBIOS with qemu's 2019 iPXE ROM (no HTTPS): TFTP
//	                    <mac>/undionly.kpxe first
//	arm64-uefi-pxe      AAVMF (arm64 UEFI) on qemu-system-aarch64's virt machine, NIC ROM
//	                    off: DHCP arch 0x0b, TFTP <mac>/ipxe-arm64.efi, and the script's
//	                    ${buildarch} picks the network's arm64 kernel, net/test-arm64.efi
//	                    (the x86 cases must get net/test.efi beside it); console ttyAMA0
//	unregistered-waits  as bios-old-ipxe-rom without a node record: the waiting message,
//	                    then the boot once the record is added, without a power cycle
//	metrics             the counters those boots moved, and promtool's check
//
// Each then runs iPXE to /provision/<mac> and the kernel. A boot passes only when the VM's
// serial console shows the Linux kernel's command line ("Command line:" on x86, "Kernel
// command line:" on arm64) with the node record's network, farm, console and a random token: the strongest proof that the right kernel started with the
// right arguments; the console lines and the boot timeline stages must also come in order.
//
// The tests need root, qemu-system-x86, qemu-system-arm, ovmf, qemu-efi-aarch64, ipxe-qemu,
// dnsmasq-base, iproute2, nftables, a Debian kernel (linux-image-amd64) and an arm64 one
// (make arm64-kernel), and take minutes under TCG, so they run only when asked:
//
//	sudo BOOTSTRAPD_E2E=1 go test -v -count=1 -timeout 30m ./test/e2e/
//
// Without BOOTSTRAPD_E2E=1 they skip; with it, a missing prerequisite is a failure.
// Optional environment:
//
//	BOOTSTRAPD_BIN       a built bootstrapd (default: go build ./cmd/bootstrapd)
//	BOOTSTRAPD_IPXE_DIR  the iPXE binaries (default: var/ipxe of the repository when
//	                     complete, else packaging/fetch-ipxe.sh into the user cache)
//	BOOTSTRAPD_E2E_KERNEL the kernel to boot (default: the newest /boot/vmlinuz-*)
//	BOOTSTRAPD_E2E_KERNEL_ARM64 the arm64 kernel (default: var/arm64-kernel/vmlinuz of the
//	                     repository, else packaging/fetch-arm64-kernel.sh into the user cache)
//	BOOTSTRAPD_E2E_OUT   keep every log (serial consoles, bootstrapd, dnsmasq) in this
//	                     directory instead of a temporary one
package e2e

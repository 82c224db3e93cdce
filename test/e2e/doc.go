// Package e2e boots real firmware under qemu against the real bootstrapd binary on a LAN
// built from network namespaces, the way a farm LAN looks: an ordinary DHCP server
// (dnsmasq, leases and router adverts only, no PXE options) on a bridge, bootstrapd on a
// second host of that LAN as ProxyDHCP, TFTP and HTTP server, and a VM behind a tap.
//
// A boot passes only when the VM's serial console shows the Linux kernel's "Command line:"
// with the node record's network, farm and a random token: the strongest proof that the
// right kernel started with the right arguments.
//
// The tests need root, qemu-system-x86, ovmf, ipxe-qemu, dnsmasq-base, iproute2 and a
// Debian kernel (linux-image-amd64), and take minutes under TCG, so they run only when
// asked:
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
//	BOOTSTRAPD_E2E_OUT   keep every log (serial consoles, bootstrapd, dnsmasq) in this
//	                     directory instead of a temporary one
package e2e

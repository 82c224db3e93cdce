package e2e

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

const runCommand = "sudo BOOTSTRAPD_E2E=1 go test -v -count=1 -timeout 30m ./test/e2e/"

// env is what the tests found on this machine.
type env struct {
	root     string // repository root (holds go.mod)
	ip       string
	qemu     string
	dnsmasq  string
	nft      string
	ovmfCode string
	ovmfVars string
	kernel   string
	// The arm64 node: qemu-system-aarch64, AAVMF (EDK2 for arm64) and a Debian arm64 kernel,
	// which prepare may fetch.
	qemuArm     string
	aavmfCode   string
	aavmfVars   string
	kernelArm64 string
	ipxeDir     string // may be filled by prepare, after the cheap checks
	bin         string // bootstrapd; may be built by prepare
}

// requireE2E skips unless BOOTSTRAPD_E2E=1. When it is set, every missing prerequisite is
// listed in one failure: CI must not pass by skipping.
func requireE2E(t *testing.T) *env {
	t.Helper()
	if os.Getenv("BOOTSTRAPD_E2E") != "1" {
		t.Skipf("end-to-end LAN boot test skipped: it needs root, qemu and minutes; run it with\n\t%s", runCommand)
	}
	e := &env{}
	var missing []string
	miss := func(format string, args ...any) { missing = append(missing, fmt.Sprintf(format, args...)) }

	if os.Geteuid() != 0 {
		miss("root: network namespaces, taps and ports 67/69 need it (%s)", runCommand)
	}
	root, err := repoRoot()
	if err != nil {
		miss("repository root: %v", err)
	}
	e.root = root
	for _, b := range []struct {
		dst       *string
		name, pkg string
	}{
		{&e.ip, "ip", "iproute2"},
		{&e.qemu, "qemu-system-x86_64", "qemu-system-x86"},
		{&e.dnsmasq, "dnsmasq", "dnsmasq-base"},
		{&e.nft, "nft", "nftables"},
		{&e.qemuArm, "qemu-system-aarch64", "qemu-system-arm"},
	} {
		p, err := lookPath(b.name)
		if err != nil {
			miss("%s not found (apt-get install %s)", b.name, b.pkg)
		}
		*b.dst = p
	}

	// Debian's ovmf: the 4M pair in bookworm and later, the 2M pair before.
	for _, pair := range [][2]string{
		{"/usr/share/OVMF/OVMF_CODE_4M.fd", "/usr/share/OVMF/OVMF_VARS_4M.fd"},
		{"/usr/share/OVMF/OVMF_CODE.fd", "/usr/share/OVMF/OVMF_VARS.fd"},
	} {
		if isFile(pair[0]) && isFile(pair[1]) {
			e.ovmfCode, e.ovmfVars = pair[0], pair[1]
			break
		}
	}
	if e.ovmfCode == "" {
		miss("OVMF firmware /usr/share/OVMF/OVMF_CODE_4M.fd and OVMF_VARS_4M.fd (apt-get install ovmf)")
	}
	// Debian's qemu-efi-aarch64: AAVMF code and a template of its variable store.
	e.aavmfCode, e.aavmfVars = "/usr/share/AAVMF/AAVMF_CODE.fd", "/usr/share/AAVMF/AAVMF_VARS.fd"
	if !isFile(e.aavmfCode) || !isFile(e.aavmfVars) {
		miss("AAVMF firmware %s and %s (apt-get install qemu-efi-aarch64)", e.aavmfCode, e.aavmfVars)
	}
	e.kernelArm64 = os.Getenv("BOOTSTRAPD_E2E_KERNEL_ARM64")
	if e.kernelArm64 != "" && !isFile(e.kernelArm64) {
		miss("BOOTSTRAPD_E2E_KERNEL_ARM64=%s is not a file", e.kernelArm64)
	}
	// qemu's default virtio-net option ROM: the old iPXE that case "bios" depends on.
	if !isFile("/usr/lib/ipxe/qemu/efi-virtio.rom") && !isFile("/usr/share/qemu/efi-virtio.rom") {
		miss("qemu NIC option ROM efi-virtio.rom (apt-get install ipxe-qemu)")
	}

	e.kernel = os.Getenv("BOOTSTRAPD_E2E_KERNEL")
	if e.kernel == "" {
		ks, _ := filepath.Glob("/boot/vmlinuz-*")
		// Glob sorts; the last is the newest in Debian's naming, good enough for a test.
		if len(ks) > 0 {
			e.kernel = ks[len(ks)-1]
		}
	}
	if e.kernel == "" || !isFile(e.kernel) {
		miss("a Linux kernel: /boot/vmlinuz-* (apt-get install linux-image-amd64) or BOOTSTRAPD_E2E_KERNEL")
	}

	e.bin = os.Getenv("BOOTSTRAPD_BIN")
	if e.bin != "" && !isFile(e.bin) {
		miss("BOOTSTRAPD_BIN=%s is not a file", e.bin)
	}
	if e.bin == "" {
		if _, err := lookPath("go"); err != nil {
			miss("go: needed to build bootstrapd (or set BOOTSTRAPD_BIN)")
		}
	}
	e.ipxeDir = os.Getenv("BOOTSTRAPD_IPXE_DIR")
	if e.ipxeDir != "" {
		if err := ipxeComplete(e.ipxeDir); err != nil {
			miss("BOOTSTRAPD_IPXE_DIR: %v", err)
		}
	}

	if len(missing) > 0 {
		t.Fatalf("BOOTSTRAPD_E2E=1 but prerequisites are missing:\n\t%s\nCI installs: apt-get install qemu-system-x86 qemu-system-arm qemu-efi-aarch64 ovmf ipxe-qemu dnsmasq-base iproute2 nftables linux-image-amd64",
			strings.Join(missing, "\n\t"))
	}
	return e
}

// prepare builds bootstrapd and finds the iPXE binaries: the slow prerequisites, after the
// cheap checks so a missing package is reported at once.
func (e *env) prepare(t *testing.T, tmp string) {
	t.Helper()
	if e.bin == "" {
		e.bin = filepath.Join(tmp, "bootstrapd")
		goBin, _ := lookPath("go")
		cmd := exec.Command(goBin, "build", "-o", e.bin, "./cmd/bootstrapd")
		cmd.Dir = e.root
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go build ./cmd/bootstrapd: %v\n%s", err, out)
		}
	}
	e.prepareArm64Kernel(t, tmp)
	if e.ipxeDir != "" {
		return
	}
	if d := filepath.Join(e.root, "var", "ipxe"); ipxeComplete(d) == nil {
		e.ipxeDir = d
		return
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = tmp
	}
	d := filepath.Join(cache, "bootstrapd-e2e", "ipxe")
	cmd := exec.Command("sh", filepath.Join(e.root, "packaging", "fetch-ipxe.sh"), d)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("no iPXE binaries (BOOTSTRAPD_IPXE_DIR unset, %s incomplete) and packaging/fetch-ipxe.sh %s failed: %v\n%s",
			filepath.Join(e.root, "var", "ipxe"), d, err, out)
	}
	if err := ipxeComplete(d); err != nil {
		t.Fatalf("packaging/fetch-ipxe.sh %s: %v", d, err)
	}
	e.ipxeDir = d
}

// prepareArm64Kernel finds the arm64 node's kernel: BOOTSTRAPD_E2E_KERNEL_ARM64, else
// var/arm64-kernel/vmlinuz of the repository (make arm64-kernel), else
// packaging/fetch-arm64-kernel.sh into the user cache.
func (e *env) prepareArm64Kernel(t *testing.T, tmp string) {
	t.Helper()
	if e.kernelArm64 != "" {
		return
	}
	if k := filepath.Join(e.root, "var", "arm64-kernel", "vmlinuz"); isFile(k) {
		e.kernelArm64 = k
		return
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = tmp
	}
	d := filepath.Join(cache, "bootstrapd-e2e", "arm64-kernel")
	cmd := exec.Command("sh", filepath.Join(e.root, "packaging", "fetch-arm64-kernel.sh"), d)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("no arm64 kernel (BOOTSTRAPD_E2E_KERNEL_ARM64 unset, no var/arm64-kernel/vmlinuz) and packaging/fetch-arm64-kernel.sh %s failed: %v\n%s", d, err, out)
	}
	e.kernelArm64 = filepath.Join(d, "vmlinuz")
}

// ipxeFiles are the binaries bootstrapd's catalogue requires.
var ipxeFiles = []string{"undionly.kpxe", "ipxe-amd64.efi", "ipxe-arm64.efi", "snponly.efi", "ipxe.lkrn"}

func ipxeComplete(dir string) error {
	var missing []string
	for _, f := range ipxeFiles {
		if !isFile(filepath.Join(dir, f)) {
			missing = append(missing, f)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("%s lacks %s (make ipxe)", dir, strings.Join(missing, ", "))
	}
	return nil
}

// lookPath also searches the sbin directories, which sudo's and CI's PATH may lack.
func lookPath(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, d := range []string{"/usr/sbin", "/sbin", "/usr/local/sbin", "/usr/local/go/bin"} {
		if p := filepath.Join(d, name); isExecutable(p) {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s: %w", name, exec.ErrNotFound)
}

func isFile(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular()
}

func isExecutable(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular() && st.Mode().Perm()&0o111 != 0
}

// repoRoot walks up from the test's directory to go.mod.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if isFile(filepath.Join(dir, "go.mod")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = parent
	}
}

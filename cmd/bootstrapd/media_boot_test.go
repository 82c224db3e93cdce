package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestMediaBoot downloads every medium from the running daemon, exactly as a remote operator
// would, and boots it in qemu (TCG; user-mode networking, where the guest reaches the host's
// loopback at 10.0.2.2). A case passes only when the real Debian kernel, fetched from the
// daemon by the script inside the medium, prints a command line with the network, the farm
// id and a token that exists only in that request's URL (or, for -provision, in the node
// record). The arm64 case boots /uefi/…?arch=arm64 from a FAT disk on AAVMF (qemu's arm64
// virt machine): the script must fetch the network's arm64 kernel, net/test-arm64.efi, and
// the boot timeline must show it requested and sent for the VM's MAC. Run with
//
//	BOOTSTRAPD_MEDIA_QEMU=1 BOOTSTRAPD_KERNEL_ARM64=var/arm64-kernel/vmlinuz \
//	    go test -v -count=1 -timeout 30m -run TestMediaBoot ./cmd/bootstrapd/
//
// Needs qemu-system-x86, qemu-system-arm, ovmf, qemu-efi-aarch64, linux-image-amd64,
// isolinux, syslinux-common, make ipxe, make embed and make arm64-kernel (the Makefile's
// media-boot target sets BOOTSTRAPD_KERNEL_ARM64).
func TestMediaBoot(t *testing.T) {
	if os.Getenv("BOOTSTRAPD_MEDIA_QEMU") == "" {
		t.Skip("qemu media boots: set BOOTSTRAPD_MEDIA_QEMU=1 (make media-boot)")
	}
	ipxeDir := realIPXEDir(t)
	embedDir, _ := filepath.Abs("../../var/ipxe-embed")
	if _, err := os.Stat(filepath.Join(embedDir, "ipxe-amd64-script.efi")); err != nil {
		t.Fatalf("no script-carrying EFI binaries in %s: run make embed", embedDir)
	}
	kernels, _ := filepath.Glob("/boot/vmlinuz-*")
	if len(kernels) == 0 {
		t.Fatal("no /boot/vmlinuz-* (Debian package linux-image-amd64)")
	}
	ovmf := "/usr/share/ovmf/OVMF.fd"
	for _, f := range []string{ovmf, "/usr/lib/ISOLINUX/isolinux.bin"} {
		if _, err := os.Stat(f); err != nil {
			t.Fatalf("%v (Debian packages ovmf, isolinux)", err)
		}
	}
	qemu, err := exec.LookPath("qemu-system-x86_64")
	if err != nil {
		t.Fatal("no qemu-system-x86_64 (Debian package qemu-system-x86)")
	}
	qemuArm, err := exec.LookPath("qemu-system-aarch64")
	if err != nil {
		t.Fatal("no qemu-system-aarch64 (Debian package qemu-system-arm)")
	}
	if _, err := os.Stat("/usr/share/AAVMF/AAVMF_CODE.fd"); err != nil {
		t.Fatalf("%v (Debian package qemu-efi-aarch64)", err)
	}
	kernelArm64 := os.Getenv("BOOTSTRAPD_KERNEL_ARM64")
	if kernelArm64 == "" {
		kernelArm64, _ = filepath.Abs("../../var/arm64-kernel/vmlinuz")
	}
	if _, err := os.Stat(kernelArm64); err != nil {
		t.Fatalf("no arm64 kernel: %v (make arm64-kernel, or set BOOTSTRAPD_KERNEL_ARM64)", err)
	}
	port := freePort(t, "tcp")
	d := startDaemon(t, daemonOpts{publicURL: fmt.Sprintf("http://10.0.2.2:%d", port), httpPort: port,
		ipxeDir: ipxeDir, embedDir: embedDir, kernel: kernels[len(kernels)-1], kernelArm64: kernelArm64})

	// qemu's user network gives the guest this MAC unless told otherwise; the -provision
	// media ask /provision/<it>.
	const guestMAC = "52:54:00:12:34:56"
	provToken := token(t)
	if out, err := d.cli(t, "node", "add", "--mac", guestMAC, "--network", "test", "--farm", "42", "--args", "console=ttyS0 token="+provToken); err != nil {
		t.Fatalf("node add: %v\n%s", err, out)
	}

	cases := []struct {
		name, endpoint string
		uefi           bool
		attach         string // cd, disk, kernel, esp (the .efi as EFI/BOOT/BOOTX64.EFI on a FAT disk)
		// arm64: the medium is asked for with ?arch=arm64 and boots on AAVMF, from
		// EFI/BOOT/BOOTAA64.EFI.
		arm64 bool
	}{
		{"iso-cd-seabios", "iso", false, "cd", false},
		{"iso-cd-ovmf", "iso", true, "cd", false},
		{"iso-disk-seabios", "iso", false, "disk", false},
		{"usb-seabios", "usb", false, "disk", false},
		{"usb-ovmf", "usb", true, "disk", false},
		{"uefimg-ovmf", "uefimg", true, "disk", false},
		{"uefi-ovmf", "uefi", true, "esp", false},
		// snponly.efi drives the NIC through OVMF's own virtio-net driver (SNP).
		{"snponly-ovmf", "snponly", true, "esp", false},
		{"krn-seabios", "krn", false, "kernel", false},
		{"krn-provision-seabios", "krn-provision", false, "kernel", false},
		{"uefi-provision-ovmf", "uefi-provision", true, "esp", false},
		{"uefi-arm64-aavmf", "uefi", true, "esp", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tok := provToken
			path := "/" + tc.endpoint
			mac, console, boot := guestMAC, "ttyS0", "BOOTX64.EFI"
			if tc.arm64 {
				// A MAC of its own, with a record only so its timeline can be read back.
				mac, console, boot = "52:54:00:a6:40:"+tok[:2], "ttyAMA0", "BOOTAA64.EFI"
				if out, err := d.cli(t, "node", "add", "--mac", mac, "--network", "test", "--farm", "7"); err != nil {
					t.Fatalf("node add: %v\n%s", err, out)
				}
			}
			if !strings.HasSuffix(tc.endpoint, "-provision") {
				tok = token(t)
				path += "/test/42/" + url.PathEscape("console="+console+" token="+tok)
			}
			if tc.arm64 {
				path += "?arch=arm64"
			}
			dir := t.TempDir()
			medium := filepath.Join(dir, "medium")
			if err := os.WriteFile(medium, fetch(t, d.base+path), 0o644); err != nil {
				t.Fatal(err)
			}
			if tc.attach == "esp" {
				// The .efi on a FAT file system, as an operator copies it to a stick.
				if err := os.MkdirAll(filepath.Join(dir, "esp/EFI/BOOT"), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.Rename(medium, filepath.Join(dir, "esp/EFI/BOOT", boot)); err != nil {
					t.Fatal(err)
				}
			}
			serial := filepath.Join(dir, "serial.log")
			args := []string{"-accel", "tcg", "-m", "768", "-smp", "1", "-nodefaults", "-display", "none",
				"-monitor", "none", "-no-reboot", "-serial", "file:" + serial,
				"-netdev", "user,id=n0", "-device", "virtio-net-pci,netdev=n0,mac=" + mac + ",romfile="}
			bin, limit := qemu, 5*time.Minute
			switch {
			case tc.arm64:
				// Slower under TCG than x86.
				bin, limit = qemuArm, 8*time.Minute
				args = append(args, aavmfArgs(t, dir)...)
			case tc.uefi:
				args = append(args, "-bios", ovmf)
			}
			switch tc.attach {
			case "cd":
				args = append(args, "-drive", "if=none,id=m,format=raw,media=cdrom,readonly=on,file="+medium, "-device", "ide-cd,drive=m,bootindex=0")
			case "disk":
				args = append(args, "-drive", "if=none,id=m,format=raw,file="+medium, "-device", "ide-hd,drive=m,bootindex=0")
			case "esp":
				// virt has no IDE: the arm64 machine gets the FAT disk on virtio.
				disk := "ide-hd,drive=m,bootindex=0"
				if tc.arm64 {
					disk = "virtio-blk-pci,drive=m,bootindex=0"
				}
				args = append(args, "-drive", "if=none,id=m,format=raw,file=fat:rw:"+filepath.Join(dir, "esp"), "-device", disk)
			case "kernel":
				args = append(args, "-kernel", medium)
			}
			start := time.Now()
			line, err := qemuUntil(t, bin, args, serial, "token="+tok, limit)
			if err != nil {
				log, _ := os.ReadFile(serial)
				if len(log) > 3000 {
					log = log[len(log)-3000:]
				}
				t.Fatalf("%v\nserial console (tail):\n%s", err, log)
			}
			for _, want := range []string{"runmode=test", "farmer_id=42", "token=" + tok} {
				if !slices.Contains(strings.Fields(line), want) {
					t.Errorf("kernel command line %q lacks %q", line, want)
				}
			}
			if tc.arm64 {
				checkArm64Boot(t, d, mac, serial)
			}
			t.Logf("%s: GET %s, kernel command line after %.1fs: %s", tc.name, path, time.Since(start).Seconds(), line)
		})
	}

	// An arm64 node of a network without an arm64 kernel (dev: net/dev.efi only) is told so on
	// its console, with the command that fixes it, and fetches no kernel.
	t.Run("uefi-arm64-no-kernel-aavmf", func(t *testing.T) {
		if err := os.Symlink("../zos.efi", filepath.Join(d.dir, "kernels", "net", "dev.efi")); err != nil {
			t.Fatal(err)
		}
		const mac = "52:54:00:a6:41:01"
		if out, err := d.cli(t, "node", "add", "--mac", mac, "--network", "dev", "--farm", "7"); err != nil {
			t.Fatalf("node add: %v\n%s", err, out)
		}
		dir := t.TempDir()
		if err := os.MkdirAll(filepath.Join(dir, "esp/EFI/BOOT"), 0o755); err != nil {
			t.Fatal(err)
		}
		path := "/uefi/dev/42/console=ttyAMA0?arch=arm64"
		if err := os.WriteFile(filepath.Join(dir, "esp/EFI/BOOT/BOOTAA64.EFI"), fetch(t, d.base+path), 0o644); err != nil {
			t.Fatal(err)
		}
		serial := filepath.Join(dir, "serial.log")
		args := append([]string{"-accel", "tcg", "-m", "768", "-smp", "1", "-nodefaults", "-display", "none",
			"-monitor", "none", "-no-reboot", "-serial", "file:" + serial,
			"-netdev", "user,id=n0", "-device", "virtio-net-pci,netdev=n0,mac=" + mac + ",romfile=",
			"-drive", "if=none,id=m,format=raw,file=fat:rw:" + filepath.Join(dir, "esp"), "-device", "virtio-blk-pci,drive=m,bootindex=0"},
			aavmfArgs(t, dir)...)
		msg := regexp.MustCompile(`No kernel for arm64 nodes on network dev\S*, set it with:\s+>> bootstrapd kernel default --network dev --arch arm64 --name KERNEL`)
		start := time.Now()
		got, err := qemuUntilFound(t, qemuArm, args, serial, 8*time.Minute, "the console showed "+msg.String(), func(log []byte) string {
			return string(msg.Find(ansiRE.ReplaceAll(log, nil)))
		})
		if err != nil {
			log, _ := os.ReadFile(serial)
			t.Fatalf("%v\nserial console (tail):\n%s", err, log[max(0, len(log)-3000):])
		}
		log, _ := os.ReadFile(serial)
		if cmdlineRE.Match(log) || bytes.Contains(log, []byte("net/dev.efi")) {
			t.Errorf("the arm64 node was offered or booted the x86-64 kernel:\n%s", log)
		}
		out, err := d.cli(t, "node", "show", "--mac", mac, "--json")
		if err != nil || strings.Contains(out, "kernel_requested") {
			t.Errorf("the arm64 node asked for a kernel: %v\n%s", err, out)
		}
		t.Logf("GET %s on AAVMF, after %.1fs: %q", path, time.Since(start).Seconds(), got)
	})
}

// aavmfArgs are the qemu arguments of an arm64 UEFI machine: qemu's virt machine with AAVMF
// as pflash (its code read-only, a copy of its variable store in dir), its console on the
// PL011 UART.
func aavmfArgs(t *testing.T, dir string) []string {
	t.Helper()
	const aavmfCode, aavmfVars = "/usr/share/AAVMF/AAVMF_CODE.fd", "/usr/share/AAVMF/AAVMF_VARS.fd"
	vars := filepath.Join(dir, "AAVMF_VARS.fd")
	b, err := os.ReadFile(aavmfVars)
	if err != nil {
		t.Fatalf("%v (Debian package qemu-efi-aarch64)", err)
	}
	if err := os.WriteFile(vars, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return []string{"-machine", "virt", "-cpu", "cortex-a57",
		"-drive", "if=pflash,format=raw,unit=0,readonly=on,file=" + aavmfCode,
		"-drive", "if=pflash,format=raw,unit=1,file=" + vars}
}

// ansiRE matches the escape sequences iPXE colours its console with.
var ansiRE = regexp.MustCompile(`\x1b\[[0-9;=]*[A-Za-z]`)

// checkArm64Boot checks that the arm64 medium's script chose the network's arm64 kernel: the
// console names it, and the daemon's timeline for mac holds its request and its whole
// transfer, in that order (the medium carries the script: no DHCP, TFTP or script stage).
func checkArm64Boot(t *testing.T, d *daemon, mac, serial string) {
	t.Helper()
	log, _ := os.ReadFile(serial)
	if !regexp.MustCompile(`Kernel\.+: http://10\.0\.2\.2:\d+/kernel/net/test-arm64\.efi\s`).Match(log) {
		t.Errorf("the console does not show the arm64 kernel net/test-arm64.efi chosen")
	}
	want := []string{"kernel_requested net/test-arm64.efi", "kernel_sent net/test-arm64.efi"}
	var got []string
	// The timeline is written behind (events.flush_interval): read it for a few seconds.
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(500 * time.Millisecond) {
		out, err := d.cli(t, "node", "show", "--mac", mac, "--json")
		if err != nil {
			t.Fatalf("node show: %v\n%s", err, out)
		}
		var n struct {
			Events []struct{ Stage, Detail string } `json:"events"`
		}
		if err := json.Unmarshal([]byte(out), &n); err != nil {
			t.Fatalf("node show --json: %v\n%s", err, out)
		}
		got = got[:0]
		i := 0
		for _, e := range n.Events {
			got = append(got, e.Stage+" "+e.Detail)
			if i < len(want) && strings.HasPrefix(e.Stage+" "+e.Detail, want[i]) {
				i++
			}
		}
		if i == len(want) {
			t.Logf("timeline of %s: %q", mac, got)
			return
		}
	}
	t.Errorf("timeline of %s is %q, want %q in order", mac, got, want)
}

func token(t *testing.T) string {
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

var cmdlineRE = regexp.MustCompile(`(?:Kernel command line|Command line): [^\r\n]*`)

// qemuUntil runs qemu until the serial log shows a kernel command line containing want, then
// stops it; qemu never outlives the call.
func qemuUntil(t *testing.T, qemu string, args []string, serial, want string, limit time.Duration) (string, error) {
	t.Helper()
	return qemuUntilFound(t, qemu, args, serial, limit, "the kernel printed "+strconv.Quote(want), func(log []byte) string {
		for _, l := range cmdlineRE.FindAll(log, -1) {
			if bytes.Contains(l, []byte(want)) {
				return string(l)
			}
		}
		return ""
	})
}

// qemuUntilFound runs qemu until found returns a non-empty string for the serial log, then
// stops it; qemu never outlives the call. what says what found waits for, in errors.
func qemuUntilFound(t *testing.T, qemu string, args []string, serial string, limit time.Duration, what string, found func(log []byte) string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	cmd := exec.CommandContext(ctx, qemu, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		return "", err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	look := func() string {
		log, _ := os.ReadFile(serial)
		return found(log)
	}
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case err := <-done:
			if l := look(); l != "" {
				return l, nil
			}
			return "", fmt.Errorf("qemu exited (%v) before %s: %s", err, what, stderr.String())
		case <-tick.C:
			if l := look(); l != "" {
				cancel()
				<-done
				return l, nil
			}
		case <-ctx.Done():
			<-done
			return "", fmt.Errorf("not within %v: %s", limit, what)
		}
	}
}

package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestMediaBoot downloads every medium from the running daemon, exactly as a remote operator
// would, and boots it in qemu (TCG; user-mode networking, where the guest reaches the host's
// loopback at 10.0.2.2). A case passes only when the real Debian kernel, fetched from the
// daemon by the script inside the medium, prints a command line with the network, the farm
// id and a token that exists only in that request's URL (or, for -provision, in the node
// record). Run with
//
//	BOOTSTRAPD_MEDIA_QEMU=1 go test -v -count=1 -timeout 30m -run TestMediaBoot ./cmd/bootstrapd/
//
// Needs qemu-system-x86, ovmf, linux-image-amd64, isolinux, syslinux-common, make ipxe and
// make embed.
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
	port := freePort(t, "tcp")
	d := startDaemon(t, daemonOpts{publicURL: fmt.Sprintf("http://10.0.2.2:%d", port), httpPort: port,
		ipxeDir: ipxeDir, embedDir: embedDir, kernel: kernels[len(kernels)-1]})

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
	}{
		{"iso-cd-seabios", "iso", false, "cd"},
		{"iso-cd-ovmf", "iso", true, "cd"},
		{"iso-disk-seabios", "iso", false, "disk"},
		{"usb-seabios", "usb", false, "disk"},
		{"usb-ovmf", "usb", true, "disk"},
		{"uefimg-ovmf", "uefimg", true, "disk"},
		{"uefi-ovmf", "uefi", true, "esp"},
		{"krn-seabios", "krn", false, "kernel"},
		{"krn-provision-seabios", "krn-provision", false, "kernel"},
		{"uefi-provision-ovmf", "uefi-provision", true, "esp"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tok := provToken
			path := "/" + tc.endpoint
			if !strings.HasSuffix(tc.endpoint, "-provision") {
				tok = token(t)
				path += "/test/42/" + url.PathEscape("console=ttyS0 token="+tok)
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
				if err := os.Rename(medium, filepath.Join(dir, "esp/EFI/BOOT/BOOTX64.EFI")); err != nil {
					t.Fatal(err)
				}
			}
			serial := filepath.Join(dir, "serial.log")
			args := []string{"-accel", "tcg", "-m", "768", "-smp", "1", "-nodefaults", "-display", "none",
				"-monitor", "none", "-no-reboot", "-serial", "file:" + serial,
				"-netdev", "user,id=n0", "-device", "virtio-net-pci,netdev=n0,mac=" + guestMAC + ",romfile="}
			if tc.uefi {
				args = append(args, "-bios", ovmf)
			}
			switch tc.attach {
			case "cd":
				args = append(args, "-drive", "if=none,id=m,format=raw,media=cdrom,readonly=on,file="+medium, "-device", "ide-cd,drive=m,bootindex=0")
			case "disk":
				args = append(args, "-drive", "if=none,id=m,format=raw,file="+medium, "-device", "ide-hd,drive=m,bootindex=0")
			case "esp":
				args = append(args, "-drive", "if=none,id=m,format=raw,file=fat:rw:"+filepath.Join(dir, "esp"), "-device", "ide-hd,drive=m,bootindex=0")
			case "kernel":
				args = append(args, "-kernel", medium)
			}
			start := time.Now()
			line, err := qemuUntil(t, qemu, args, serial, "token="+tok, 5*time.Minute)
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
			t.Logf("%s: GET %s, kernel command line after %.1fs: %s", tc.name, path, time.Since(start).Seconds(), line)
		})
	}
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
	found := func() string {
		log, _ := os.ReadFile(serial)
		for _, l := range cmdlineRE.FindAll(log, -1) {
			if bytes.Contains(l, []byte(want)) {
				return string(l)
			}
		}
		return ""
	}
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case err := <-done:
			if l := found(); l != "" {
				return l, nil
			}
			return "", fmt.Errorf("qemu exited (%v) before the kernel printed %q: %s", err, want, stderr.String())
		case <-tick.C:
			if l := found(); l != "" {
				cancel()
				<-done
				return l, nil
			}
		case <-ctx.Done():
			<-done
			return "", fmt.Errorf("no kernel command line with %q within %v", want, limit)
		}
	}
}

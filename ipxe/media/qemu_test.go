package media

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestQemuBoot boots every medium in qemu (TCG, user-mode network: the guest reaches the
// host at 10.0.2.2) and passes only when the real Debian kernel, fetched over HTTP by the
// script inside the medium, prints a command line with the network, farm id and the
// token made for that run. Slow (about 10-60 s per case); run with
//
//	BOOTSTRAPD_MEDIA_QEMU=1 go test -v -count=1 -timeout 30m -run TestQemuBoot ./ipxe/media/
//
// Needs qemu-system-x86, ovmf, linux-image-amd64, isolinux, syslinux-common, clang and lld
// (packaging/ipxe-embed/build.sh), and the iPXE binaries (BOOTSTRAPD_IPXE_DIR, else the
// repository's var/ipxe, fetched by packaging/fetch-ipxe.sh when missing).
func TestQemuBoot(t *testing.T) {
	if os.Getenv("BOOTSTRAPD_MEDIA_QEMU") == "" {
		t.Skip("qemu boot tests: set BOOTSTRAPD_MEDIA_QEMU=1")
	}
	ipxeDir, embedDir := realInputs(t)
	kernels, _ := filepath.Glob("/boot/vmlinuz-*")
	if len(kernels) == 0 {
		t.Fatal("no /boot/vmlinuz-* (Debian package linux-image-amd64)")
	}
	ovmf := firstFile("/usr/share/ovmf/OVMF.fd", "/usr/share/qemu/OVMF.fd")
	if ovmf == "" {
		t.Fatal("no OVMF.fd (Debian package ovmf)")
	}
	if _, err := exec.LookPath("qemu-system-x86_64"); err != nil {
		t.Fatal("no qemu-system-x86_64 (Debian package qemu-system-x86)")
	}

	// The kernel server, on every address so the guest reaches it through 10.0.2.2.
	ln, err := net.Listen("tcp", "0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}
	var fetches atomic.Int64
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/kernel.efi" {
			http.NotFound(w, r)
			return
		}
		fetches.Add(1)
		http.ServeFile(w, r, kernels[0])
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	port := ln.Addr().(*net.TCPAddr).Port

	b, err := New(Config{IPXEDir: ipxeDir, EmbedDir: embedDir})
	if err != nil {
		t.Fatal(err)
	}

	cases := []struct {
		name   string
		kind   Kind
		uefi   bool
		attach string // cd, disk, kernel, esp (a GPT disk whose ESP holds the .efi as BOOTX64.EFI)
	}{
		{"iso-cd-seabios", KindISO, false, "cd"},
		{"iso-cd-ovmf", KindISO, true, "cd"},
		{"iso-disk-seabios", KindISO, false, "disk"},
		{"usb-seabios", KindUSB, false, "disk"},
		{"usb-ovmf", KindUSB, true, "disk"},
		{"uefimg-ovmf", KindUEFIImg, true, "disk"},
		{"uefi-ovmf", KindUEFI, true, "esp"},
		{"krn-seabios", KindKRN, false, "kernel"},
	}
	booted := 0
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			booted++
			token := randomToken(t)
			script := fmt.Sprintf("#!ipxe\nifconf --configurator dhcp net0 || dhcp\n"+
				"kernel http://10.0.2.2:%d/kernel.efi version=v3 runmode=test farmer_id=42 console=ttyS0 token=%s\nboot\n", port, token)
			m, err := b.Build(context.Background(), tc.kind, []byte(script), Options{})
			if err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			medium := filepath.Join(dir, "medium"+tc.kind.Ext())
			data := m.Bytes()
			if tc.attach == "esp" {
				esp, err := buildFAT16([]fatFile{{path: "/EFI/BOOT/BOOTX64.EFI", data: m.Bytes()}}, "UEFI")
				if err != nil {
					t.Fatal(err)
				}
				if data, _, err = buildUEFIImg(esp); err != nil {
					t.Fatal(err)
				}
			}
			if err := os.WriteFile(medium, data, 0o644); err != nil {
				t.Fatal(err)
			}
			serial := filepath.Join(dir, "serial.log")
			args := []string{"-accel", "tcg", "-m", "768", "-smp", "1", "-nodefaults", "-display", "none",
				"-monitor", "none", "-no-reboot", "-serial", "file:" + serial,
				"-netdev", "user,id=n0", "-device", "virtio-net-pci,netdev=n0,romfile="}
			if tc.uefi {
				args = append(args, "-bios", ovmf)
			}
			switch tc.attach {
			case "cd":
				args = append(args, "-drive", "if=none,id=m,format=raw,media=cdrom,readonly=on,file="+medium,
					"-device", "ide-cd,drive=m,bootindex=0")
			case "disk", "esp":
				args = append(args, "-drive", "if=none,id=m,format=raw,file="+medium,
					"-device", "ide-hd,drive=m,bootindex=0")
			case "kernel":
				args = append(args, "-kernel", medium)
			}
			start := time.Now()
			line, err := bootUntil(t, args, serial, "token="+token, 4*time.Minute)
			if err != nil {
				log, _ := os.ReadFile(serial)
				t.Fatalf("%v\nserial console (last 3000 bytes):\n%s", err, tail(log, 3000))
			}
			for _, want := range []string{"version=v3", "farmer_id=42", "runmode=test", "token=" + token} {
				if !strings.Contains(line, want) {
					t.Errorf("kernel command line %q lacks %q", line, want)
				}
			}
			t.Logf("%s: kernel booted in %.1fs: %s", tc.name, time.Since(start).Seconds(), line)
		})
	}
	if fetches.Load() < int64(booted) {
		t.Errorf("kernel fetched %d times for %d boots", fetches.Load(), booted)
	}
}

var cmdlineRE = regexp.MustCompile(`(?:Kernel command line|Command line): [^\r\n]*`)

// bootUntil runs qemu until the serial log shows a kernel command line containing want,
// then stops it. The qemu process never outlives the call.
func bootUntil(t *testing.T, args []string, serial, want string, limit time.Duration) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	cmd := exec.CommandContext(ctx, "qemu-system-x86_64", args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		return "", err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	check := func() string {
		log, _ := os.ReadFile(serial)
		for _, l := range cmdlineRE.FindAll(log, -1) {
			if bytes.Contains(l, []byte(want)) {
				return string(l)
			}
		}
		return ""
	}
	for {
		select {
		case err := <-done:
			if l := check(); l != "" {
				return l, nil
			}
			return "", fmt.Errorf("qemu exited (%v) before the kernel printed %q; stderr: %s", err, want, stderr.String())
		case <-tick.C:
			if l := check(); l != "" {
				cancel()
				<-done
				return l, nil
			}
		case <-ctx.Done():
			<-done
			return "", fmt.Errorf("no kernel command line with %q after %v", want, limit)
		}
	}
}

func randomToken(t *testing.T) string {
	b := make([]byte, 12)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

func firstFile(paths ...string) string {
	for _, p := range paths {
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			return p
		}
	}
	return ""
}

// realInputs returns the stock iPXE directory and the ipxe-embed output, fetching and
// building them when missing.
func realInputs(t *testing.T) (ipxeDir, embedDir string) {
	t.Helper()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	ipxeDir = os.Getenv("BOOTSTRAPD_IPXE_DIR")
	if ipxeDir == "" {
		ipxeDir = filepath.Join(root, "var/ipxe")
	}
	if firstFile(filepath.Join(ipxeDir, "ipxe.lkrn")) == "" {
		out, err := exec.Command(filepath.Join(root, "packaging/fetch-ipxe.sh"), ipxeDir).CombinedOutput()
		if err != nil {
			t.Fatalf("packaging/fetch-ipxe.sh %s: %v\n%s", ipxeDir, err, out)
		}
	}
	embedDir = os.Getenv("BOOTSTRAPD_IPXE_EMBED_DIR")
	if embedDir == "" {
		embedDir = filepath.Join(root, "var/ipxe-embed")
	}
	out, err := exec.Command(filepath.Join(root, "packaging/ipxe-embed/build.sh"), ipxeDir, embedDir).CombinedOutput()
	if err != nil {
		t.Fatalf("packaging/ipxe-embed/build.sh: %v\n%s", err, out)
	}
	return ipxeDir, embedDir
}

package main

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestMain lets the test binary serve as qemu's per-connection forwarder (see
// TestTrustedHTTPSBoot): with BOOTSTRAPD_TEST_RELAY set it copies stdin and stdout to and
// from that TCP address and exits, instead of running tests.
func TestMain(m *testing.M) {
	if addr := os.Getenv("BOOTSTRAPD_TEST_RELAY"); addr != "" {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			os.Exit(1)
		}
		go func() { io.Copy(c, os.Stdin); c.(*net.TCPConn).CloseWrite() }()
		io.Copy(os.Stdout, c)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// issueFromTestCA writes a certificate for ip signed by packaging/ipxe-trust/testdata's CA,
// the one the test build of iPXE trusts, and its key. RSA, which every iPXE can check.
func issueFromTestCA(t *testing.T, dir string, ip net.IP) (certFile, keyFile string) {
	t.Helper()
	pair, err := tls.LoadX509KeyPair("../../packaging/ipxe-trust/testdata/ca.pem", "../../packaging/ipxe-trust/testdata/ca.key")
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: ip.String()},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour), IPAddresses: []net.IP{ip},
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, pair.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	chain := append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Raw})...)
	if err := os.WriteFile(certFile, chain, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

// TestTrustedHTTPSBoot proves the trusted iPXE build: an ISO for an https:// public_url,
// booted by OVMF, fetches its kernel over HTTPS from the daemon's own TLS listener, whose
// certificate a private CA signed, and the real kernel prints the request's command line.
// qemu's network is restricted (restrict=on): the guest reaches nothing but that one
// listener (guestfwd), so neither ca.ipxe.org nor anything else helps it. The same ISO with
// Debian's stock iPXE, which does not trust that CA, must fail. A third boot, with the
// network open, shows iPXE's console lines arriving over syslog on the node's timeline. Run
// with `sudo make trust-boot` (it builds the test variant of the trusted iPXE first).
func TestTrustedHTTPSBoot(t *testing.T) {
	if os.Getenv("BOOTSTRAPD_TRUST_QEMU") == "" {
		t.Skip("trusted iPXE boot: set BOOTSTRAPD_TRUST_QEMU=1 (make trust-boot)")
	}
	trustDir := os.Getenv("BOOTSTRAPD_IPXE_TRUST_TEST")
	if _, err := os.Stat(filepath.Join(trustDir, "ipxe-amd64.efi")); err != nil {
		t.Fatalf("no test build of the trusted iPXE: %v (make trust-boot builds it)", err)
	}
	ipxeDir := realIPXEDir(t)
	kernels, _ := filepath.Glob("/boot/vmlinuz-*")
	qemu, err := exec.LookPath("qemu-system-x86_64")
	if len(kernels) == 0 || err != nil {
		t.Fatal("needs /boot/vmlinuz-* and qemu-system-x86_64 (linux-image-amd64, qemu-system-x86)")
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	// The guest knows the appliance as https://10.0.2.100; guestfwd hands each of its
	// connections there to a relay (this binary) into the TLS listener on loopback.
	guestIP := net.IPv4(10, 0, 2, 100)
	certFile, keyFile := issueFromTestCA(t, t.TempDir(), guestIP)
	tlsPort := freePort(t, "tcp")
	public := "https://" + guestIP.String()
	d := startDaemon(t, daemonOpts{publicURL: public, ipxeDir: ipxeDir, trustDir: trustDir, kernel: kernels[len(kernels)-1],
		httpYAML: fmt.Sprintf("tls_listen: '127.0.0.1:%d', tls_cert: %q, tls_key: %q", tlsPort, certFile, keyFile)})
	stock := startDaemon(t, daemonOpts{publicURL: public, ipxeDir: ipxeDir})
	t.Setenv("BOOTSTRAPD_TEST_RELAY", fmt.Sprintf("127.0.0.1:%d", tlsPort))

	bootNet := func(t *testing.T, iso, netOpts string, until func([]byte) string, what string) (string, []byte, error) {
		dir := t.TempDir()
		medium, serial := filepath.Join(dir, "ipxe.iso"), filepath.Join(dir, "serial.log")
		if err := os.WriteFile(medium, fetch(t, iso), 0o644); err != nil {
			t.Fatal(err)
		}
		args := []string{"-accel", "tcg", "-m", "768", "-smp", "1", "-nodefaults", "-display", "none",
			"-monitor", "none", "-no-reboot", "-serial", "file:" + serial, "-bios", "/usr/share/ovmf/OVMF.fd",
			"-netdev", "user,id=n0," + netOpts + "guestfwd=tcp:" + guestIP.String() + ":443-cmd:" + self,
			"-device", "virtio-net-pci,netdev=n0,romfile=",
			"-drive", "if=none,id=m,format=raw,media=cdrom,readonly=on,file=" + medium, "-device", "ide-cd,drive=m,bootindex=0"}
		line, err := qemuUntilFound(t, qemu, args, serial, 8*time.Minute, what, until)
		log, _ := os.ReadFile(serial)
		return line, log, err
	}
	boot := func(t *testing.T, iso string, until func([]byte) string, what string) (string, []byte, error) {
		return bootNet(t, iso, "restrict=on,", until, what)
	}

	t.Run("trusted-iso-ovmf", func(t *testing.T) {
		tok := token(t)
		start := time.Now()
		line, log, err := boot(t, d.base+"/iso/test/42/console=ttyS0%20token="+tok, func(log []byte) string {
			for _, l := range cmdlineRE.FindAll(log, -1) {
				if bytes.Contains(l, []byte("token="+tok)) {
					return string(l)
				}
			}
			return ""
		}, "the kernel printed token="+tok)
		if err != nil {
			t.Fatalf("%v\nserial console (tail):\n%s\ndaemon:\n%s", err, tail(log), d.log)
		}
		for _, want := range []string{"runmode=test", "farmer_id=42", "token=" + tok} {
			if !slices.Contains(strings.Fields(line), want) {
				t.Errorf("kernel command line %q lacks %q", line, want)
			}
		}
		t.Logf("kernel over HTTPS after %.1fs: %s", time.Since(start).Seconds(), line)
	})
	// iPXE's console reaches the node's timeline over syslog (the trusted build has the
	// syslog console): the network is not restricted here, so the guest's UDP to 10.0.2.2:514
	// reaches the daemon's receiver on the host's loopback.
	t.Run("trusted-iso-ovmf-syslog", func(t *testing.T) {
		port := freePort(t, "tcp")
		ld := startDaemon(t, daemonOpts{publicURL: public, ipxeDir: ipxeDir, trustDir: trustDir, kernel: kernels[len(kernels)-1],
			httpYAML:  fmt.Sprintf("tls_listen: '127.0.0.1:%d', tls_cert: %q, tls_key: %q", port, certFile, keyFile),
			extraYAML: "syslog: {listen: '127.0.0.1:514', address: '10.0.2.2'}\n"})
		t.Setenv("BOOTSTRAPD_TEST_RELAY", fmt.Sprintf("127.0.0.1:%d", port))
		const mac = "52:54:00:12:34:56" // qemu's default for the guest
		if out, err := ld.cli(t, "node", "add", "--mac", mac, "--network", "test", "--farm", "42"); err != nil {
			t.Fatalf("node add: %v\n%s", err, out)
		}
		tok := token(t)
		if _, log, err := bootNet(t, ld.base+"/iso/test/42/console=ttyS0%20token="+tok, "", func(log []byte) string {
			if bytes.Contains(log, []byte("Command line:")) && bytes.Contains(log, []byte("token="+tok)) {
				return "booted"
			}
			return ""
		}, "the kernel printed token="+tok); err != nil {
			t.Fatalf("%v\n%s", err, tail(log))
		}
		deadline := time.Now().Add(10 * time.Second)
		for {
			out, _ := ld.cli(t, "node", "show", "--mac", mac)
			// Lines iPXE prints after the kernel request (which taught the receiver the
			// node's address): the download's "ok" and the script's own message.
			if regexpMatch(`ipxe_log\s+Zero-OS is downloaded and ready, starting up`, out) && regexpMatch(`ipxe_log\s+https://10\.0\.2\.100/kernel/net/test\.efi\.\.\. ok`, out) {
				t.Logf("iPXE's lines on the timeline:\n%s", out)
				break
			}
			if time.Now().After(deadline) {
				_, _, m := get(t, ld.base+"/metrics")
				t.Fatalf("no ipxe_log event:\n%s\n%s", out, grepLines(m, "ipxe_log_lines"))
			}
			time.Sleep(100 * time.Millisecond)
		}
	})
	t.Run("stock-iso-ovmf-refused", func(t *testing.T) {
		tok := token(t)
		_, log, err := boot(t, stock.base+"/iso/test/42/console=ttyS0%20token="+tok, func(log []byte) string {
			// The script's own message once its three downloads failed.
			if bytes.Contains(log, []byte("could not be downloaded")) {
				return "could not be downloaded"
			}
			return ""
		}, "stock iPXE gave up on the download")
		if err != nil {
			t.Fatalf("%v\nserial console (tail):\n%s", err, tail(log))
		}
		// The script echoes its parameters; only the kernel's own "Command line:" proves a boot.
		for _, l := range cmdlineRE.FindAll(log, -1) {
			if bytes.Contains(l, []byte("token="+tok)) {
				t.Errorf("stock iPXE booted the kernel over HTTPS from an untrusted CA:\n%s", tail(log))
			}
		}
		// iPXE's EACCES for a certificate chain it cannot trust.
		if !bytes.Contains(log, []byte("Permission denied (https://ipxe.org/0216eb8f)")) {
			t.Errorf("stock iPXE did not refuse the certificate:\n%s", tail(log))
		}
	})
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

func tail(b []byte) []byte {
	if len(b) > 3000 {
		return b[len(b)-3000:]
	}
	return b
}

package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

func get(t *testing.T, url string, hdr ...string) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b strings.Builder
	if _, err := io.Copy(&b, resp.Body); err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, b.String()
}

// TestServeLoopback is the foundation's proof against the real serve path on loopback, with
// records made by the real CLI over the admin socket.
func TestServeLoopback(t *testing.T) {
	d := startDaemon(t)
	const mac = "52:54:00:00:10:01"
	if out, err := d.cli(t, "node", "add", "--mac", strings.ToUpper(mac), "--network", "test", "--farm", "4242",
		"--args", "console=ttyS0 zos-debug", "--kernel", "zos.efi"); err != nil {
		t.Fatalf("node add: %v\n%s", err, out)
	}
	// Every field of the record reaches the kernel line.
	if code, _, body := get(t, d.base+"/provision/52-54-00-00-10-01"); code != 200 ||
		!strings.Contains(body, "set kernel "+d.base+"/kernel/zos.efi\n") ||
		!strings.Contains(body, "${kernel}?mac=${net${netidx}/mac:hexhyp} nomodeset panic=7200 version=v3 runmode=test farmer_id=4242 console=ttyS0 zos-debug") {
		t.Fatalf("known MAC: %d\n%s", code, body)
	}
	if code, _, body := get(t, d.base+"/provision/52:54:00:00:10:02"); code != 200 || !strings.Contains(body, "MAC 52:54:00:00:10:02) has no boot record") {
		t.Fatalf("unknown MAC without default_node: %d\n%s", code, body)
	}
	for path, wants := range map[string][]string{
		"/ipxe/test":                         {"/kernel/net/test.efi\n", "${kernel}?mac=${net${netidx}/mac:hexhyp} nomodeset panic=7200 version=v3 runmode=test"},
		"/ipxe/test/7":                       {"panic=7200 version=v3 runmode=test farmer_id=7"},
		"/ipxe/test/7/console=ttyS0":         {"farmer_id=7 console=ttyS0"},
		"/ipxe/test/7/console=ttyS0/zos.efi": {"set kernel " + d.base + "/kernel/zos.efi\n", "${kernel}?mac=${net${netidx}/mac:hexhyp} nomodeset panic=7200 version=v3 runmode=test farmer_id=7 console=ttyS0"},
		"/ipxe/test/7/root=___dev___ram0":    {"farmer_id=7 root=/dev/ram0"},
	} {
		code, _, body := get(t, d.base+path)
		for _, want := range wants {
			if code != 200 || !strings.Contains(body, want) {
				t.Errorf("GET %s = %d, want 200 with %q:\n%s", path, code, want, body)
			}
		}
	}
	for path, want := range map[string]int{
		"/ipxe/mainnet/1":                  404,
		"/ipxe/prod/1":                     404, // no net/prod.efi
		"/ipxe/test/1/a;reboot":            400,
		"/ipxe/test/1/a%0Areboot":          400,
		"/ipxe/test/1/$%7Bnet0/ip%7D":      400,
		"/ipxe/test/x":                     400,
		"/provision/not-a-mac":             400,
		"/kernel/net/escape.efi":           404,
		"/kernel/..%2F..%2Fappliance.yaml": 400,
	} {
		if code, _, body := get(t, d.base+path); code != want {
			t.Errorf("GET %s = %d %q, want %d", path, code, body, want)
		}
	}
	// A symlink out of paths.kernels is never followed.
	if err := os.Symlink("../../appliance.yaml", filepath.Join(d.dir, "kernels", "net", "escape.efi")); err != nil {
		t.Fatal(err)
	}
	if code, _, body := get(t, d.base+"/kernel/net/escape.efi"); code != 404 || strings.Contains(body, "listen") {
		t.Errorf("escaping symlink: %d %q", code, body)
	}
	code, hdr, body := get(t, d.base+"/kernel/net/test.efi", "Range", "bytes=3-8")
	if code != 206 || body != "kernel" || hdr.Get("ETag") == "" {
		t.Errorf("Range: %d %q %v", code, body, hdr)
	}
	if code, _, _ := get(t, d.base+"/kernel/net/test.efi", "If-None-Match", hdr.Get("ETag")); code != 304 {
		t.Errorf("If-None-Match: %d", code)
	}

	// Records survive a restart; default_node then boots unknown MACs.
	d.stop()
	d2 := startDaemon(t, daemonOpts{dir: d.dir, extraYAML: "default_node: {network: test, farm: 9, args: \"d=1\"}\n"})
	if out, err := d2.cli(t, "node", "show", "--mac", mac); err != nil || !strings.Contains(out, "farm:     4242") {
		t.Fatalf("record after restart: %v\n%s", err, out)
	}
	if code, _, body := get(t, d2.base+"/provision/52:54:00:00:10:02"); code != 200 || !strings.Contains(body, "runmode=test farmer_id=9 d=1") {
		t.Fatalf("unknown MAC with default_node: %d\n%s", code, body)
	}
}

// The CLI reaches the admin API over HTTP with a bearer token too; without the right one the
// daemon refuses, and the CLI says so.
func TestNodeCLIOverHTTPWithToken(t *testing.T) {
	tokenFile := filepath.Join(t.TempDir(), "admin.token")
	if err := os.WriteFile(tokenFile, []byte("0123456789abcdef0123456789abcdef\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	d := startDaemon(t, daemonOpts{tokenFile: tokenFile})
	remote := func(token string, args ...string) (string, error) {
		tf := tokenFile
		if token != "" {
			tf = filepath.Join(t.TempDir(), "other.token")
			if err := os.WriteFile(tf, []byte(token), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		var out bytes.Buffer
		err := run(context.Background(), append(append([]string{"node"}, args...), "--server", d.base, "--token-file", tf), &out, &out)
		return out.String(), err
	}
	if out, err := remote("", "add", "--mac", "52:54:00:00:20:01", "--network", "test", "--farm", "5"); err != nil {
		t.Fatalf("add over HTTP: %v\n%s", err, out)
	}
	if out, err := remote("", "list", "--json"); err != nil || !strings.Contains(out, "52:54:00:00:20:01") {
		t.Fatalf("list over HTTP: %v\n%s", err, out)
	}
	if out, err := remote("wrong-token-wrong-token", "list"); err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("a wrong token: %v\n%s", err, out)
	}
}

// Kernels managed with the CLI: upload, make it a network's default, and the boot follows.
func TestKernelCLI(t *testing.T) {
	d := startDaemon(t)
	src := filepath.Join(t.TempDir(), "zos-v3.5.efi")
	payload := "MZ" + strings.Repeat("new kernel ", 10000)
	if err := os.WriteFile(src, []byte(payload), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := d.cli(t, "kernel", "upload", src); err != nil || !strings.Contains(out, "uploaded zos-v3.5.efi") {
		t.Fatalf("upload: %v\n%s", err, out)
	}
	if out, err := d.cli(t, "kernel", "default", "--network", "prod", "--name", "zos-v3.5.efi"); err != nil || !strings.Contains(out, "prod boots zos-v3.5.efi") {
		t.Fatalf("default: %v\n%s", err, out)
	}
	if code, _, body := get(t, d.base+"/ipxe/prod/1"); code != 200 || !strings.Contains(body, "/kernel/net/prod.efi\n") || !strings.Contains(body, "${kernel}?mac=${net${netidx}/mac:hexhyp} nomodeset panic=7200 version=v3 runmode=prod") {
		t.Fatalf("/ipxe/prod/1 after default: %d\n%s", code, body)
	}
	if code, _, body := get(t, d.base+"/kernel/net/prod.efi"); code != 200 || body != payload {
		t.Fatalf("kernel bytes: %d, %d bytes", code, len(body))
	}
	out, err := d.cli(t, "kernel", "list")
	if err != nil || !strings.Contains(out, "zos-v3.5.efi") || !regexpMatch(`prod\s+zos-v3.5.efi\s+\(none: net/prod-arm64.efi is missing\)`, out) {
		t.Fatalf("list: %v\n%s", err, out)
	}
	// The arm64 default: its own link, shown beside the x86-64 one, and the script picks it
	// for arm64 iPXE.
	if out, err := d.cli(t, "kernel", "default", "--network", "prod", "--arch", "sparc", "--name", "zos-v3.5.efi"); err == nil || !strings.Contains(err.Error(), "--arch") {
		t.Fatalf("default --arch sparc: %v\n%s", err, out)
	}
	if out, err := d.cli(t, "kernel", "default", "--network", "prod", "--arch", "arm64", "--name", "zos-v3.5.efi"); err != nil || !strings.Contains(out, "prod boots zos-v3.5.efi on arm64") {
		t.Fatalf("default --arch arm64: %v\n%s", err, out)
	}
	if code, _, body := get(t, d.base+"/ipxe/prod/1"); code != 200 || !strings.Contains(body, "iseq ${buildarch} arm64 && set kernel "+d.base+"/kernel/net/prod-arm64.efi || set kernel "+d.base+"/kernel/net/prod.efi\n") {
		t.Fatalf("/ipxe/prod/1 after the arm64 default: %d\n%s", code, body)
	}
	if out, err := d.cli(t, "kernel", "list"); err != nil || !regexpMatch(`prod\s+zos-v3.5.efi\s+zos-v3.5.efi\n`, out) {
		t.Fatalf("list with the arm64 default: %v\n%s", err, out)
	}
	if out, err := d.cli(t, "kernel", "rm", "--name", "zos-v3.5.efi"); err == nil || !strings.Contains(err.Error(), "network prod (arm64)") {
		t.Fatalf("rm of an arm64 default: %v\n%s", err, out)
	}
	if err := os.Remove(filepath.Join(d.dir, "kernels", "net", "prod-arm64.efi")); err != nil {
		t.Fatal(err)
	}
	if out, err := d.cli(t, "kernel", "rm", "--name", "zos-v3.5.efi"); err == nil || !strings.Contains(err.Error(), "network prod") {
		t.Fatalf("rm of a default: %v\n%s", err, out)
	}
	if out, err := d.cli(t, "kernel", "upload", "--name", "../escape.efi", src); err == nil || !strings.Contains(err.Error(), "kernel name") {
		t.Fatalf("upload under an unsafe name succeeded:\n%s", out)
	}
}

func regexpMatch(re, s string) bool { return regexp.MustCompile(re).MatchString(s) }

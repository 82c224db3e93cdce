package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// realIPXEDir finds the pinned iPXE binaries (make ipxe): media need real ones.
func realIPXEDir(t *testing.T) string {
	t.Helper()
	for _, d := range []string{os.Getenv("BOOTSTRAPD_IPXE_DIR"), "../../var/ipxe"} {
		if d == "" {
			continue
		}
		if _, err := os.Stat(filepath.Join(d, "ipxe.lkrn")); err == nil {
			abs, err := filepath.Abs(d)
			if err != nil {
				t.Fatal(err)
			}
			return abs
		}
	}
	if os.Getenv("BOOTSTRAPD_REQUIRE_TOOLS") != "" {
		t.Fatal("no iPXE binaries: run make ipxe or set BOOTSTRAPD_IPXE_DIR")
	}
	t.Skip("no iPXE binaries (make ipxe)")
	return ""
}

func fetch(t *testing.T, url string) []byte {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d %v %.200s", url, resp.StatusCode, err, b)
	}
	return b
}

// The offline `bootstrapd media` command and the HTTP endpoints share one code path: with the
// same public_url they produce the same bytes, and the script inside is /ipxe/'s.
func TestMediaCommandMatchesEndpoint(t *testing.T) {
	d := startDaemon(t, daemonOpts{publicURL: "http://boot.example.org:8080", ipxeDir: realIPXEDir(t)})
	script := fetch(t, d.base+"/ipxe/test/42/console=ttyS0")
	if !bytes.Contains(script, []byte("set kernel http://boot.example.org:8080/kernel/net/test.efi\n")) ||
		!bytes.Contains(script, []byte("${kernel}?mac=${net${netidx}/mac:hexhyp} nomodeset panic=7200 version=v3 runmode=test farmer_id=42 console=ttyS0")) {
		t.Fatalf("script does not use public_url:\n%s", script)
	}
	for _, tc := range []struct{ kind, path string }{
		{"iso", "/iso/test/42/console=ttyS0"},
		{"usb", "/usb/test/42/console=ttyS0"},
		{"uefimg", "/uefimg/test/42/console=ttyS0"},
		{"krn", "/krn/test/42/console=ttyS0"},
		{"krn-provision", "/krn-provision"},
	} {
		t.Run(tc.kind, func(t *testing.T) {
			served := fetch(t, d.base+tc.path)
			out := filepath.Join(t.TempDir(), "medium")
			args := []string{"media", tc.kind, "--config", d.cfgFile, "-o", out}
			if tc.kind != "krn-provision" {
				args = append(args, "--network", "test", "--farm", "42", "--args", "console=ttyS0")
				if !bytes.Contains(served, script) {
					t.Errorf("%s does not carry the /ipxe/ script", tc.path)
				}
			}
			var stdout, stderr bytes.Buffer
			if err := run(context.Background(), args, &stdout, &stderr); err != nil {
				t.Fatalf("bootstrapd %v: %v\n%s", args, err, stderr.String())
			}
			built, err := os.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(built, served) {
				t.Fatalf("offline %s (%d bytes) differs from GET %s (%d bytes)", tc.kind, len(built), tc.path, len(served))
			}
		})
	}
	// The builds and the repeats show in the scrape (each kind was fetched once above, and
	// the offline command built in its own process-local builder).
	fetch(t, d.base+"/iso/test/42/console=ttyS0")
	scrape := string(fetch(t, d.base+"/metrics"))
	for _, want := range []string{
		`bootstrapd_media_builds_total{kind="iso",result="ok"} 1`,
		`bootstrapd_media_cache_hits_total{kind="iso"} 1`,
		`bootstrapd_media_build_duration_seconds_count{kind="uefimg"} 1`,
	} {
		if !strings.Contains(scrape, want) {
			t.Errorf("scrape lacks %s", want)
		}
	}

	// Bad arguments build nothing.
	out := filepath.Join(t.TempDir(), "never")
	for _, args := range [][]string{
		{"media", "iso", "--config", d.cfgFile, "-o", out, "--network", "mainnet"},
		{"media", "iso", "--config", d.cfgFile, "-o", out, "--network", "test", "--args", "a;reboot"},
		{"media", "iso", "--config", d.cfgFile, "-o", out, "--network", "test", "--kernel", "../../etc/passwd"},
		{"media", "floppy", "--config", d.cfgFile, "-o", out, "--network", "test"},
	} {
		if err := run(context.Background(), args, io.Discard, io.Discard); err == nil {
			t.Errorf("%v succeeded", args)
		}
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Fatalf("a refused build left %s", out)
	}
}

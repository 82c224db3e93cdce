package main

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// bzImage is a file with a Linux bzImage header ("HdrS" at 0x202) and random bytes.
func bzImage(t *testing.T, path string) string {
	t.Helper()
	b := make([]byte, 256<<10)
	rand.Read(b)
	copy(b[0x202:], "HdrS")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// Kernel mirroring against a second bootstrapd on loopback as the upstream: kernels.upstream
// pulls at start, `kernel pull` repeats are conditional (304), an upstream change is pulled
// with the previous kernel kept, and failed pulls (404, not a kernel, wrong sha256) leave
// the current kernel alone.
func TestKernelPullFromAnotherBootstrapd(t *testing.T) {
	up := startDaemon(t)
	k1 := filepath.Join(t.TempDir(), "zos-1.efi")
	sha1 := bzImage(t, k1)
	for _, args := range [][]string{{"kernel", "upload", k1}, {"kernel", "default", "--network", "test", "--name", "zos-1.efi"}} {
		if out, err := up.cli(t, args...); err != nil {
			t.Fatalf("upstream %v: %v\n%s", args, err, out)
		}
	}
	src := up.base + "/kernel/net/test.efi"
	d := startDaemon(t, daemonOpts{extraYAML: fmt.Sprintf("kernels: {upstream: {test: %q}, refresh: 1h}\n", src)})
	link := filepath.Join(d.dir, "kernels", "net", "test.efi")
	name1 := "test-" + sha1[:12] + ".efi"
	deadline := time.Now().Add(10 * time.Second)
	for {
		if target, _ := os.Readlink(link); target == "../"+name1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("kernels.upstream was not pulled at start:\n%s", d.log)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if code, _, body := get(t, d.base+"/kernel/net/test.efi"); code != 200 || len(body) != 256<<10 {
		t.Fatalf("pulled kernel served: %d, %d bytes", code, len(body))
	}

	k2 := filepath.Join(t.TempDir(), "zos-2.efi")
	sha2 := bzImage(t, k2)
	name2 := "test-" + sha2[:12] + ".efi"
	steps := []struct {
		name   string
		setup  [][]string // upstream CLI commands first
		args   []string
		errHas string // "" : success, output must contain out
		out    string
		boots  string
	}{
		{"repeat: 304", nil, []string{"--network", "test", src}, "", "test: unchanged, boots " + name1, name1},
		{"upstream changed", [][]string{{"kernel", "upload", k2}, {"kernel", "default", "--network", "test", "--name", "zos-2.efi"}},
			[]string{"--network", "test", src}, "", "test boots " + name2 + " (262144 bytes, sha256 " + sha2 + "); previous: " + name1, name2},
		{"404", nil, []string{"--network", "test", up.base + "/kernel/nope.efi"}, "upstream answered 404", "", name2},
		{"not a kernel", nil, []string{"--network", "test", up.base + "/healthz"}, "not a kernel image", "", name2},
		{"wrong sha256", nil, []string{"--network", "test", "--sha256", sha2, up.base + "/kernel/zos-1.efi"}, "sha256 mismatch", "", name2},
		{"right sha256", nil, []string{"--network", "test", "--sha256", sha1, up.base + "/kernel/zos-1.efi"}, "", "test boots " + name1, name1},
		{"unknown network", nil, []string{"--network", "mainnet", src}, "unknown network", "", name1},
		{"bad URL", nil, []string{"--network", "test", "file:///etc/passwd"}, "http:// or https://", "", name1},
	}
	for _, s := range steps {
		for _, args := range s.setup {
			if out, err := up.cli(t, args...); err != nil {
				t.Fatalf("%s: upstream %v: %v\n%s", s.name, args, err, out)
			}
		}
		out, err := d.cli(t, append([]string{"kernel", "pull"}, s.args...)...)
		if s.errHas == "" && (err != nil || !strings.Contains(out, s.out)) {
			t.Fatalf("%s: %v\n%s\nwant %q", s.name, err, out, s.out)
		}
		if s.errHas != "" && (err == nil || !strings.Contains(err.Error(), s.errHas)) {
			t.Fatalf("%s: err %v, want %q\n%s", s.name, err, s.errHas, out)
		}
		if target, _ := os.Readlink(link); target != "../"+s.boots {
			t.Fatalf("%s: net/test.efi -> %q, want %s", s.name, target, s.boots)
		}
	}
	for _, n := range []string{name1, name2, "zos.efi"} {
		if _, err := os.Stat(filepath.Join(d.dir, "kernels", n)); err != nil {
			t.Errorf("%s is gone: %v", n, err)
		}
	}
	out, err := d.cli(t, "kernel", "pulls")
	if err != nil || strings.Count(out, " test ") != 7 || !strings.Contains(out, "upstream answered 404") {
		t.Errorf("kernel pulls (want 7 rows: the start and the 6 pulls of test): %v\n%s", err, out)
	}
	_, _, metrics := get(t, d.base+"/metrics")
	for _, want := range []string{
		`bootstrapd_kernel_pulls_total{network="test",result="updated"} 3`,
		`bootstrapd_kernel_pulls_total{network="test",result="unchanged"} 1`,
		`bootstrapd_kernel_pulls_total{network="test",result="error"} 3`,
		`bootstrapd_kernel_pulls_total{network="prod",result="error"} 0`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	// The history route answers HEAD and needs the admin token like the rest of the API.
	req, _ := http.NewRequest(http.MethodHead, d.base+"/api/v1/kernels/pulls", nil)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("HEAD /api/v1/kernels/pulls without a token: %v %v", resp, err)
	}
}

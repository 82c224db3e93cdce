package httpd

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/threefoldtech/bootstrapd/store"
	"github.com/threefoldtech/bootstrapd/store/kernels"
	"github.com/threefoldtech/bootstrapd/store/timeline"
)

func TestKernelAdmin(t *testing.T) {
	f := newFixture(t, nil)
	c := unixClient(f.socket)
	api := "http://x/api/v1"
	payload := "MZ new kernel " + strings.Repeat("x", 100000)
	sum := sha256.Sum256([]byte(payload))
	digest := hex.EncodeToString(sum[:])

	// A wrong checksum stores nothing, not even a temporary file.
	code, body := do(t, c, "PUT", api+"/kernels/zos-v4.efi", payload, "X-Checksum-Sha256", strings.Repeat("0", 64))
	if code != 400 || !strings.Contains(body, "nothing stored") {
		t.Fatalf("bad checksum: %d %s", code, body)
	}
	entries, _ := os.ReadDir(f.kernels)
	for _, e := range entries {
		if e.Name() == "zos-v4.efi" || strings.HasPrefix(e.Name(), ".upload-") {
			t.Fatalf("left behind after a refused upload: %s", e.Name())
		}
	}
	for _, bad := range []string{"..%2Fescape.efi", ".hidden", "net%2Fprod.efi"} {
		// %2F is decoded before routing: those names do not even match the route (404).
		if code, body := do(t, c, "PUT", api+"/kernels/"+bad, payload); code != 400 && code != 404 {
			t.Fatalf("upload as %s: %d %s", bad, code, body)
		}
	}
	code, body = do(t, c, "PUT", api+"/kernels/zos-v4.efi", payload, "X-Checksum-Sha256", digest)
	if code != 201 || !strings.Contains(body, digest) {
		t.Fatalf("upload: %d %s", code, body)
	}
	if b, _ := os.ReadFile(filepath.Join(f.kernels, "zos-v4.efi")); string(b) != payload {
		t.Fatal("uploaded bytes differ")
	}

	code, body = do(t, c, "PUT", api+"/networks/test/kernel", `{"kernel":"zos-v4.efi"}`)
	if code != 200 || !strings.Contains(body, `"kernel":"zos-v4.efi"`) {
		t.Fatalf("set default: %d %s", code, body)
	}
	if target, _ := os.Readlink(filepath.Join(f.kernels, "net", "test.efi")); target != "../zos-v4.efi" {
		t.Fatalf("net/test.efi -> %q", target)
	}
	if code, _, got := get(t, f.base+"/kernel/net/test.efi"); code != 200 || got != payload {
		t.Fatalf("kernel after switch: %d", code)
	}
	for in, want := range map[string]int{`{"kernel":"nope.efi"}`: 400, `{"kernel":"../x"}`: 400, `nope`: 400} {
		if code, _ := do(t, c, "PUT", api+"/networks/test/kernel", in); code != want {
			t.Errorf("set default %s: %d, want %d", in, code, want)
		}
	}
	if code, _ := do(t, c, "PUT", api+"/networks/mainnet/kernel", `{"kernel":"zos-v4.efi"}`); code != 400 {
		t.Errorf("unknown network: %d", code)
	}

	// The arm64 default is its own link, and the scripts send arm64 iPXE to it.
	for in, want := range map[string]string{`{"kernel":"zos-v4.efi","arch":"riscv64"}`: "architecture", `{"kernel":"nope.efi","arch":"arm64"}`: "not found"} {
		if code, body := do(t, c, "PUT", api+"/networks/test/kernel", in); code != 400 || !strings.Contains(body, want) {
			t.Errorf("set default %s: %d %s, want 400 naming %q", in, code, body, want)
		}
	}
	if _, err := os.Lstat(filepath.Join(f.kernels, "net", "test-arm64.efi")); err == nil {
		t.Fatal("a refused arm64 default made a link")
	}
	if code, _, body := get(t, f.base+"/ipxe/test/1"); code != 200 || !strings.Contains(body, "iseq ${buildarch} arm64 && goto no_kernel ||") {
		t.Fatalf("script without an arm64 kernel: %d\n%s", code, body)
	}
	code, body = do(t, c, "PUT", api+"/networks/test/kernel", `{"kernel":"zos-v3.efi","arch":"arm64"}`)
	if code != 200 || !strings.Contains(body, `"kernel":"zos-v4.efi","kernel_arm64":"zos-v3.efi"`) {
		t.Fatalf("set arm64 default: %d %s", code, body)
	}
	if target, _ := os.Readlink(filepath.Join(f.kernels, "net", "test-arm64.efi")); target != "../zos-v3.efi" {
		t.Fatalf("net/test-arm64.efi -> %q", target)
	}
	if code, _, body := get(t, f.base+"/ipxe/test/1"); code != 200 ||
		!strings.Contains(body, "iseq ${buildarch} arm64 && set kernel "+f.base+"/kernel/net/test-arm64.efi || set kernel "+f.base+"/kernel/net/test.efi\n") {
		t.Fatalf("script with both kernels: %d\n%s", code, body)
	}
	if code, body := do(t, c, "DELETE", api+"/kernels/zos-v3.efi", ""); code != 409 || !strings.Contains(body, "network test (arm64)") {
		t.Fatalf("delete the arm64 default: %d %s", code, body)
	}
	if err := os.Remove(filepath.Join(f.kernels, "net", "test-arm64.efi")); err != nil {
		t.Fatal(err)
	}

	code, body = do(t, c, "GET", api+"/kernels", "")
	var list kernels.KernelList
	if err := json.Unmarshal([]byte(body), &list); err != nil || code != 200 {
		t.Fatalf("list: %d %s", code, body)
	}
	if len(list.Kernels) != 2 || list.Networks["test"] != "zos-v4.efi" || list.Networks["prod"] != "" ||
		list.NetworksArm64["test"] != "" || len(list.NetworksArm64) != len(list.Networks) {
		t.Fatalf("list: %+v", list)
	}
	for _, k := range list.Kernels {
		if k.Name == "zos-v4.efi" && (k.SHA256 != digest || k.Size != int64(len(payload))) {
			t.Fatalf("listed %+v", k)
		}
	}

	// In use by a network: refused. Unused: deleted.
	if code, body := do(t, c, "DELETE", api+"/kernels/zos-v4.efi", ""); code != 409 || !strings.Contains(body, "network test") {
		t.Fatalf("delete in use: %d %s", code, body)
	}
	_, err := f.db.CreateNode(store.Node{MAC: "52:54:00:00:00:01", Network: "test", Farm: 1, Kernel: "zos-v3.efi"})
	must(t, err)
	if code, body := do(t, c, "DELETE", api+"/kernels/zos-v3.efi", ""); code != 409 || !strings.Contains(body, "node 52:54:00:00:00:01") {
		t.Fatalf("delete used by a node: %d %s", code, body)
	}
	must(t, f.db.DeleteNode("52:54:00:00:00:01"))
	if code, body := do(t, c, "DELETE", api+"/kernels/zos-v3.efi", ""); code != 204 {
		t.Fatalf("delete: %d %s", code, body)
	}
	if code, _ := do(t, c, "DELETE", api+"/kernels/zos-v3.efi", ""); code != 400 {
		t.Fatalf("delete twice: %d", code)
	}
	// Public network list, no token needed.
	code, _, body = get(t, f.base+"/api/v1/networks")
	if code != 200 || !strings.Contains(body, `{"name":"test","display":"testing (v3)","kernel":"zos-v4.efi","kernel_arm64":""}`) {
		t.Fatalf("networks: %d %s", code, body)
	}
}

func TestBootState(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	ev := func(stage string, ago time.Duration) store.Event {
		return store.Event{Stage: stage, Time: now.Add(-ago)}
	}
	tests := map[string]struct {
		evs   []store.Event
		last  string
		stuck bool
	}{
		"none":             {nil, "", false},
		"booted long ago":  {[]store.Event{ev(string(timeline.ScriptServed), time.Hour), ev(string(timeline.KernelSent), time.Hour)}, string(timeline.KernelSent), false},
		"stopped at tftp":  {[]store.Event{ev("offer_binary", 20*time.Minute), ev("tftp_sent", 20*time.Minute)}, "tftp_sent", true},
		"moving":           {[]store.Event{ev("offer_binary", time.Minute), ev("tftp_sent", 30*time.Second)}, "tftp_sent", false},
		"kernel requested": {[]store.Event{ev("kernel_requested", 11*time.Minute)}, "kernel_requested", true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			last, stuck := bootState(tc.evs, now, 10*time.Minute)
			if last.Stage != tc.last || stuck != tc.stuck {
				t.Fatalf("bootState = %q, %v; want %q, %v", last.Stage, stuck, tc.last, tc.stuck)
			}
		})
	}
}

func TestWebPage(t *testing.T) {
	f := newFixture(t, nil)
	code, hdr, body := get(t, f.base+"/")
	if code != 200 || !strings.Contains(hdr.Get("Content-Type"), "text/html") || !strings.Contains(body, "bootstrapd") {
		t.Fatalf("GET /: %d %s %q", code, hdr.Get("Content-Type"), body)
	}
}

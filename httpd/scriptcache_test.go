package httpd

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/threefoldtech/bootstrapd/ipxe"
	"github.com/threefoldtech/bootstrapd/store"
)

func TestScriptCacheEntries(t *testing.T) {
	t0 := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	k := scriptKey{base: "http://10.0.0.2:8080", display: "testing", req: ipxe.BootRequest{Network: "test", Farm: 42}}
	other := k
	other.req.Farm = 43
	for _, tc := range []struct {
		name string
		at   time.Time
		key  scriptKey
		hit  bool
	}{
		{"same key at once", t0, k, true},
		{"same key just before the TTL", t0.Add(scriptTTL - time.Nanosecond), k, true},
		{"same key at the TTL", t0.Add(scriptTTL), k, false},
		{"clock stepped back", t0.Add(-time.Second), k, false},
		{"another farm", t0, other, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newScriptCache()
			c.put(k, []byte("#!ipxe\n"), t0)
			got, ok := c.get(tc.key, tc.at)
			if ok != tc.hit || (ok && string(got) != "#!ipxe\n") {
				t.Fatalf("get = %q, %v; want hit %v", got, ok, tc.hit)
			}
		})
	}
}

// Keys come from URLs: however many an attacker makes, the cache stays under its bound.
func TestScriptCacheBound(t *testing.T) {
	c := newScriptCache()
	script := make([]byte, 4000)
	now := time.Now()
	for i := range 10_000 {
		c.put(scriptKey{req: ipxe.BootRequest{Network: "test", Farm: uint64(i), Args: strings.Repeat("a", 1000)}}, script, now)
		if c.bytes > scriptCacheBytes {
			t.Fatalf("after %d entries the cache holds %d bytes, over %d", i+1, c.bytes, scriptCacheBytes)
		}
	}
	// Replacing an entry counts it once.
	c.clear()
	k := scriptKey{req: ipxe.BootRequest{Network: "test"}}
	for range 100 {
		c.put(k, script, now)
	}
	if want := len(script) + len("test"); c.bytes != want || len(c.m) != 1 {
		t.Fatalf("one entry put 100 times: %d bytes in %d entries, want %d in 1", c.bytes, len(c.m), want)
	}
}

// A cached script follows the kernels and the configuration: a kernel removed by hand shows
// within the TTL, a reload or a kernel change through the admin API at once.
func TestScriptCacheFollowsChanges(t *testing.T) {
	f := newFixture(t, nil)
	url := f.base + "/ipxe/test/42"
	link := filepath.Join(f.kernels, "net", "test.efi")
	if code, _, body := get(t, url); code != 200 || !strings.Contains(body, "/kernel/net/test.efi") {
		t.Fatalf("first script: %d %q", code, body)
	}

	// Removed by hand: the cached script still names it until the TTL is over, then 404.
	must(t, os.Remove(link))
	if code, _, _ := get(t, url); code != 200 {
		t.Fatalf("right after the kernel was removed by hand: %d, want the cached 200", code)
	}
	deadline := time.Now().Add(scriptTTL + 2*time.Second)
	for {
		code, _, _ := get(t, url)
		if code == http.StatusNotFound {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("still %d %v after the kernel went, want 404 within %v", code, scriptTTL+2*time.Second, scriptTTL)
		}
		time.Sleep(50 * time.Millisecond)
	}

	// Back, cached again; then removed by hand and any kernel change through the admin API:
	// the next request sees the directory as it is.
	must(t, os.Symlink("../zos-v3.efi", link))
	if code, _, _ := get(t, url); code != 200 {
		t.Fatalf("kernel back: %d", code)
	}
	must(t, os.Remove(link))
	req, err := http.NewRequest(http.MethodPut, f.base+"/api/v1/kernels/zos-new.efi", strings.NewReader("MZ new"))
	must(t, err)
	req.Header.Set("Authorization", "Bearer 0123456789abcdef0123")
	resp, err := http.DefaultClient.Do(req)
	must(t, err)
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		t.Fatalf("upload: %d", resp.StatusCode)
	}
	if code, _, _ := get(t, url); code != http.StatusNotFound {
		t.Fatalf("after an upload through the API: %d, want 404 (the cache emptied)", code)
	}

	// A reload that drops the network: 404 at once.
	must(t, os.Symlink("../zos-v3.efi", link))
	if code, _, _ := get(t, url); code != 200 {
		t.Fatalf("kernel back again: %d", code)
	}
	f.srv.Reload(map[string]string{"prod": "production"}, DefaultNode{})
	if code, _, _ := get(t, url); code != http.StatusNotFound {
		t.Fatalf("after a reload without the network: %d, want 404", code)
	}
}

// /provision/<mac> serves the record's script from the cache, and the record's kind: two
// MACs with the same record share it, a wait is never cached.
func TestProvisionCachedKinds(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.Timeline = nil })
	for _, mac := range []string{"52:54:00:00:00:01", "52:54:00:00:00:02"} {
		_, err := f.db.CreateNode(store.Node{MAC: mac, Network: "test", Farm: 42})
		must(t, err)
	}
	a := scriptFor(t, f, "52:54:00:00:00:01")
	b := scriptFor(t, f, "52:54:00:00:00:02")
	if a != b || !strings.Contains(a, "/kernel/net/test.efi") {
		t.Fatalf("two MACs with the same record got different scripts or no kernel:\n%s\n---\n%s", a, b)
	}
	w1 := scriptFor(t, f, "52:54:00:00:00:03")
	w2 := scriptFor(t, f, "52:54:00:00:00:04")
	if !strings.Contains(w1, "52:54:00:00:00:03") || !strings.Contains(w2, "52:54:00:00:00:04") {
		t.Fatalf("wait scripts must each name their own MAC:\n%s\n---\n%s", w1, w2)
	}
}

func scriptFor(t *testing.T, f *fixture, mac string) string {
	t.Helper()
	code, _, body := get(t, f.base+"/provision/"+mac)
	if code != 200 {
		t.Fatalf("/provision/%s: %d %s", mac, code, body)
	}
	return body
}

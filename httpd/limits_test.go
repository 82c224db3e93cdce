package httpd

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// Every GET route answers HEAD with the GET's status and no body.
func TestHeadOnEveryGetRoute(t *testing.T) {
	f := newFixture(t, nil)
	gets := 0
	for _, r := range f.srv.engine.Routes() {
		if r.Method != http.MethodGet {
			continue
		}
		gets++
		path := strings.NewReplacer(":network", "test", "*rest", "1", ":mac", "52:54:00:00:00:01",
			"*name", "zos-v3.efi", ":file", "undionly.kpxe", "*file", "index.html").Replace(r.Path)
		req, err := http.NewRequest(http.MethodGet, f.base+path, nil)
		must(t, err)
		if strings.HasPrefix(path, "/api/v1/") && path != "/api/v1/networks" {
			req.Header.Set("Authorization", "Bearer 0123456789abcdef0123")
		}
		getResp, err := http.DefaultClient.Do(req)
		must(t, err)
		io.Copy(io.Discard, getResp.Body)
		getResp.Body.Close()

		req.Method = http.MethodHead
		resp, err := http.DefaultClient.Do(req)
		must(t, err)
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != getResp.StatusCode || len(body) != 0 {
			t.Errorf("HEAD %s: %d with %d body bytes; GET answered %d", path, resp.StatusCode, len(body), getResp.StatusCode)
		}
	}
	if gets < 20 {
		t.Fatalf("only %d GET routes seen: the route walk is broken", gets)
	}
}

func TestTrailingSlashRoutes(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.Media = nil; c.MediaErr = errors.New("not in this test") })
	tests := map[string]int{
		"/krn-generic/":                  http.StatusServiceUnavailable, // routed; media off here
		"/uefi-generic/":                 http.StatusServiceUnavailable,
		"/krn-provision/":                http.StatusServiceUnavailable,
		"/uefi-provision/":               http.StatusServiceUnavailable,
		"/ipxe/test/":                    http.StatusOK,
		"/ipxe/test/12/":                 http.StatusOK,
		"/kernel/zos-v3.efi":             http.StatusOK,
		"/provision/52:54:00:00:00:01/":  http.StatusOK,
		"/ipxe/":                         http.StatusBadRequest, // says the network is missing
		"/no-such-endpoint/":             http.StatusNotFound,
		"/provision/not-a-mac/":          http.StatusBadRequest,
		"/kernel/net/prod.efi":           http.StatusNotFound, // symlink out of the directory
		"/kernel/net/missing.efi":        http.StatusNotFound,
		"/ipxe/prod":                     http.StatusNotFound, // its kernel escapes: treated as absent
		"/provision/52-54-00-00-00-02/x": http.StatusNotFound,
	}
	for path, want := range tests {
		t.Run(path, func(t *testing.T) {
			code, _, body := get(t, f.base+path)
			if code != want {
				t.Errorf("GET %s = %d %q, want %d", path, code, body, want)
			}
			if strings.Contains(body, f.kernels) || strings.Contains(body, filepath.Dir(f.kernels)) {
				t.Errorf("GET %s: body names a local path: %q", path, body)
			}
		})
	}
}

// arch= is recorded only when it is one of iPXE's architecture names.
func TestProvisionArchIsChecked(t *testing.T) {
	f := newFixture(t, nil)
	tests := map[string]string{
		"x86_64":                 "x86_64",
		"ARM64":                  "arm64",
		"amd64":                  "x86_64",
		"x86_64-efi":             "x86_64-efi",
		"arm64-pcbios":           "arm64-pcbios",
		"x86_64-windows":         "",
		"sparc":                  "",
		strings.Repeat("x", 900): "",
		"\x1b[31mred":            "",
		"x86_64\tforged":         "",
	}
	i := 0
	for arch, want := range tests {
		i++
		mac := fmt.Sprintf("52:54:00:00:01:%02x", i)
		code, _, _ := get(t, f.base+"/provision/"+mac+"?arch="+urlQuery(arch))
		if code != http.StatusOK {
			t.Fatalf("provision: %d", code)
		}
		sn, err := f.db.GetSeen(mac)
		must(t, err)
		if sn.Arch != want {
			t.Errorf("arch=%q stored as %q, want %q", arch, sn.Arch, want)
		}
	}
}

func urlQuery(s string) string {
	return strings.NewReplacer("%", "%25", "&", "%26", "#", "%23", "\t", "%09", "\x1b", "%1B", " ", "%20").Replace(s)
}

// X-Forwarded-* count only from a trusted proxy; from one, they set the scripts' base URL.
func TestForwardedHeaders(t *testing.T) {
	tests := map[string]struct {
		trusted []netip.Prefix
		proto   string
		host    string
		want    string // kernel URL prefix in the script
	}{
		"untrusted peer":      {nil, "https", "boot.example.org", "http://127.0.0.1:"},
		"trusted proxy":       {[]netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}, "https", "boot.example.org", "https://boot.example.org/kernel/"},
		"trusted, other net":  {[]netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}, "https", "boot.example.org", "http://127.0.0.1:"},
		"trusted, bad host":   {[]netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}, "https", "x/${evil}", "http://127.0.0.1:"},
		"trusted, bad proto":  {[]netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}, "gopher", "boot.example.org", "http://127.0.0.1:"},
		"trusted, with port":  {[]netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}, "http", "boot.example.org:8443", "http://boot.example.org:8443/kernel/"},
		"trusted, user info":  {[]netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}, "https", "a@boot.example.org", "http://127.0.0.1:"},
		"trusted, no headers": {[]netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}, "", "", "http://127.0.0.1:"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			f := newFixture(t, func(c *Config) { c.TrustedProxies = tc.trusted })
			code, _, body := get(t, f.base+"/ipxe/test/7", "X-Forwarded-Proto", tc.proto, "X-Forwarded-Host", tc.host,
				"X-Forwarded-For", "203.0.113.9")
			if code != http.StatusOK {
				t.Fatalf("status %d: %s", code, body)
			}
			if !strings.Contains(body, tc.want) {
				t.Errorf("script does not use %q:\n%s", tc.want, body)
			}
		})
	}
}

// The logged and recorded client address comes from X-Forwarded-For only via a trusted proxy.
func TestClientIPFromTrustedProxyOnly(t *testing.T) {
	for name, tc := range map[string]struct {
		trusted []netip.Prefix
		want    string
	}{
		"untrusted": {nil, "127.0.0.1"},
		"trusted":   {[]netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}, "203.0.113.9"},
	} {
		t.Run(name, func(t *testing.T) {
			f := newFixture(t, func(c *Config) { c.TrustedProxies = tc.trusted })
			mac := "52:54:00:00:02:01"
			get(t, f.base+"/provision/"+mac, "X-Forwarded-For", "203.0.113.9")
			sn, err := f.db.GetSeen(mac)
			must(t, err)
			if sn.IP != tc.want {
				t.Errorf("recorded IP %q, want %q", sn.IP, tc.want)
			}
		})
	}
}

// At the connection cap, the longest-idle connection is closed to make room, and new
// requests are still answered.
func TestConnectionCapEvictsIdle(t *testing.T) {
	const max = 16
	f := newFixture(t, func(c *Config) { c.MaxConnections = max })
	var idle []net.Conn
	for range max {
		c, err := net.Dial("tcp", f.srv.Addr().String())
		must(t, err)
		idle = append(idle, c)
	}
	t.Cleanup(func() {
		for _, c := range idle {
			c.Close()
		}
	})
	time.Sleep(100 * time.Millisecond) // let the server accept them all
	for i := range 2 * max {
		code, _, body := get(t, f.base+"/kernel/zos-v3.efi", "Connection", "close")
		if code != http.StatusOK || body != "MZ kernel bytes 0123456789" {
			t.Fatalf("request %d at the cap: %d %q", i, code, body)
		}
	}
	if n := testutil.ToFloat64(f.srv.metrics.connsEvicted); n < 1 {
		t.Errorf("evictions = %v, want at least 1", n)
	}
	// The oldest idle connection made room: the server closed it, a read ends. The newest
	// one is still open (a read times out).
	idle[0].SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, err := idle[0].Read(make([]byte, 1)); err == nil || os.IsTimeout(err) {
		t.Errorf("the oldest idle connection is still open (%v)", err)
	}
	idle[max-1].SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	if _, err := idle[max-1].Read(make([]byte, 1)); !os.IsTimeout(err) {
		t.Errorf("the newest idle connection was closed (%v)", err)
	}
}

// When every connection has a request in flight, a new one is closed at once and counted.
func TestConnectionCapRefusesWhenAllBusy(t *testing.T) {
	const max = 16
	f := newFixture(t, func(c *Config) { c.MaxConnections = max })
	must(t, os.WriteFile(filepath.Join(f.kernels, "big.efi"), make([]byte, 64<<20), 0o644))
	// Busy: each asked for a large kernel and reads none of it, so its response is in flight.
	var busy []net.Conn
	for range max {
		c, err := net.Dial("tcp", f.srv.Addr().String())
		must(t, err)
		fmt.Fprint(c, "GET /kernel/big.efi HTTP/1.1\r\nHost: x\r\n\r\n")
		busy = append(busy, c)
	}
	t.Cleanup(func() {
		for _, c := range busy {
			c.Close()
		}
	})
	time.Sleep(300 * time.Millisecond)
	c, err := net.Dial("tcp", f.srv.Addr().String())
	must(t, err)
	defer c.Close()
	fmt.Fprint(c, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
	c.SetReadDeadline(time.Now().Add(3 * time.Second))
	if n, err := c.Read(make([]byte, 64)); err == nil {
		t.Errorf("a connection over the cap was answered (%d bytes)", n)
	}
	if testutil.ToFloat64(f.srv.metrics.connsRefused) < 1 {
		t.Error("refusal not counted in bootstrapd_http_connections_refused_total")
	}
	if testutil.ToFloat64(f.srv.metrics.connsEvicted) != 0 {
		t.Error("a busy connection was evicted")
	}
}

// A client that connects and sends nothing is closed after read_header_timeout; one that
// stops reading a kernel is cut off after write_timeout; oversized headers get 431. Each
// is counted.
func TestConnectionTimeouts(t *testing.T) {
	f := newFixture(t, func(c *Config) {
		c.ReadHeaderTimeout = 300 * time.Millisecond
		c.IdleTimeout = 300 * time.Millisecond
		c.WriteTimeout = 300 * time.Millisecond
		c.MaxHeaderBytes = 1024
	})
	// Silent client.
	c, err := net.Dial("tcp", f.srv.Addr().String())
	must(t, err)
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(3 * time.Second))
	start := time.Now()
	if _, err := c.Read(make([]byte, 1)); err == nil || time.Since(start) > 2*time.Second {
		t.Errorf("silent connection: read returned %v after %v, want a close after ~300ms", err, time.Since(start))
	}

	// Oversized header block (net/http allows 4 KiB over MaxHeaderBytes). The server answers
	// 431 and closes while the client may still be sending, so the client can see a reset
	// instead of the answer: the counter is what this checks.
	big431, err := net.Dial("tcp", f.srv.Addr().String())
	must(t, err)
	fmt.Fprintf(big431, "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: %s\r\n\r\n", strings.Repeat("a", 8<<10))
	big431.SetReadDeadline(time.Now().Add(3 * time.Second))
	io.Copy(io.Discard, big431)
	big431.Close()

	// A reader that stops: a large kernel, never read past the first bytes.
	big := make([]byte, 64<<20)
	must(t, os.WriteFile(filepath.Join(f.kernels, "big.efi"), big, 0o644))
	slow, err := net.Dial("tcp", f.srv.Addr().String())
	must(t, err)
	defer slow.Close()
	fmt.Fprint(slow, "GET /kernel/big.efi HTTP/1.1\r\nHost: x\r\n\r\n")
	br := bufio.NewReader(slow)
	if _, err := br.ReadString('\n'); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for testutil.ToFloat64(f.srv.metrics.connsClosed.WithLabelValues("write_timeout")) == 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	for _, r := range []string{"read_timeout", "write_timeout", "header_too_large"} {
		if testutil.ToFloat64(f.srv.metrics.connsClosed.WithLabelValues(r)) == 0 {
			t.Errorf("bootstrapd_http_connections_closed_total{reason=%q} not counted", r)
		}
	}
}

// A kernel keeps flowing to a slow reader for longer than write_timeout, as long as each
// write makes progress.
func TestSlowReaderGetsWholeKernel(t *testing.T) {
	// The kernel wakes a blocked writer only when a third of the socket's send buffer (a few
	// MB on loopback) is free, so a write waits for the reader to drain that much: at the rate
	// below, about half a second.
	const timeout = time.Second
	const size = 8 << 20
	f := newFixture(t, func(c *Config) { c.WriteTimeout = timeout })
	must(t, os.WriteFile(filepath.Join(f.kernels, "mid.efi"), make([]byte, size), 0o644))
	resp, err := http.Get(f.base + "/kernel/mid.efi")
	must(t, err)
	defer resp.Body.Close()
	var n int64
	buf := make([]byte, 128<<10)
	start := time.Now()
	for {
		k, err := resp.Body.Read(buf)
		n += int64(k)
		if err == io.EOF {
			break
		}
		must(t, err)
		time.Sleep(50 * time.Millisecond) // at most 2.6 MB/s: 8 MiB takes about 3 s
	}
	if n != size {
		t.Fatalf("got %d bytes, want %d", n, size)
	}
	if took := time.Since(start); took < 2*timeout {
		t.Fatalf("the transfer took %v, not longer than write_timeout %v: this test proves nothing", took, timeout)
	}
}

package httpd

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/threefoldtech/bootstrapd/ipxe"
	"github.com/threefoldtech/bootstrapd/store"
	kernelfiles "github.com/threefoldtech/bootstrapd/store/kernels"
	"github.com/threefoldtech/bootstrapd/store/timeline"
)

var testNetworks = map[string]string{"prod": "production (v3)", "test": "testing (v3)"}

type fixture struct {
	srv     *Server
	base    string // http://127.0.0.1:port
	socket  string
	db      *store.DB
	kernels string
	reg     *prometheus.Registry
	stages  chan timeline.Event
}

func newFixture(t testing.TB, mutate func(*Config)) *fixture {
	t.Helper()
	dir := t.TempDir()
	kernels := filepath.Join(dir, "kernels")
	must(t, os.MkdirAll(filepath.Join(kernels, "net"), 0o755))
	must(t, os.WriteFile(filepath.Join(kernels, "zos-v3.efi"), []byte("MZ kernel bytes 0123456789"), 0o644))
	must(t, os.Symlink("../zos-v3.efi", filepath.Join(kernels, "net", "test.efi")))
	must(t, os.WriteFile(filepath.Join(dir, "outside"), []byte("secret"), 0o644))
	must(t, os.Symlink("../../outside", filepath.Join(kernels, "net", "prod.efi"))) // escapes: never served

	bins := filepath.Join(dir, "ipxe")
	must(t, os.MkdirAll(bins, 0o755))
	for _, n := range []string{ipxe.FileBIOS, ipxe.FileEFIx64, ipxe.FileEFIArm64, ipxe.FileSNPOnly, ipxe.FileLKRN} {
		must(t, os.WriteFile(filepath.Join(bins, n), []byte("bin "+n), 0o644))
	}
	cat, err := ipxe.OpenCatalogue(bins)
	must(t, err)
	scripts, err := ipxe.NewScripts(ipxe.ScriptConfig{BaseArgs: "nomodeset panic=7200", RetrySeconds: 5})
	must(t, err)
	db, err := store.Open(filepath.Join(dir, "db", "bootstrapd.db"), store.Options{})
	must(t, err)
	t.Cleanup(func() { db.Close() })

	rec, err := timeline.NewRecorder(db, slog.New(slog.DiscardHandler), nil)
	must(t, err)
	kdir, err := kernelfiles.Open(kernels)
	must(t, err)
	t.Cleanup(func() { kdir.Close() })
	f := &fixture{db: db, kernels: kernels, reg: prometheus.NewRegistry(), stages: make(chan timeline.Event, 100),
		socket: filepath.Join(dir, "admin.sock")}
	cfg := Config{
		Addr: "127.0.0.1:0", Networks: testNetworks, Kernels: kdir, Binaries: cat,
		Scripts: scripts, Nodes: db, AdminSocket: f.socket, AdminToken: "0123456789abcdef0123",
		Registerer: f.reg, Gatherer: f.reg, Timeline: func(e timeline.Event) { rec.Record(e); f.stages <- e },
	}
	if mutate != nil {
		mutate(&cfg)
	}
	f.srv, err = New(cfg)
	must(t, err)
	f.base = "http://" + f.srv.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- f.srv.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return f
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func get(t *testing.T, url string, hdr ...string) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	must(t, err)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	must(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	must(t, err)
	return resp.StatusCode, resp.Header, string(b)
}

func TestIPXEEndpoint(t *testing.T) {
	f := newFixture(t, nil)
	tests := map[string]struct {
		path     string
		code     int
		contains []string
	}{
		"network only":    {"/ipxe/test", 200, []string{"#!ipxe", "set kernel BASE/kernel/net/test.efi\n", "imgfetch --name zos ${kernel}?mac=${net${netidx}/mac:hexhyp} nomodeset panic=7200 version=v3 runmode=test"}},
		"farm":            {"/ipxe/test/42", 200, []string{"nomodeset panic=7200 version=v3 runmode=test farmer_id=42"}},
		"extra":           {"/ipxe/test/42/console=ttyS0%20zos-debug", 200, []string{"farmer_id=42 console=ttyS0 zos-debug\n"}},
		"slash in extra":  {"/ipxe/test/42/root=___dev___sda", 200, []string{"farmer_id=42 root=/dev/sda\n"}},
		"kernel override": {"/ipxe/test/42/x=1/zos-v3.efi", 200, []string{"set kernel BASE/kernel/zos-v3.efi\n", "${kernel}?mac=${net${netidx}/mac:hexhyp} nomodeset panic=7200 version=v3"}},
		"trailing slash":  {"/ipxe/test/42/", 200, []string{"farmer_id=42"}},
		"unknown network": {"/ipxe/mainnet/1", 404, []string{`unknown network: "mainnet"`, "prod, test"}},
		"no kernel":       {"/ipxe/prod/1", 404, []string{"kernel file not found: net/prod.efi"}},
		"missing kernel":  {"/ipxe/test/1/x/nope.efi", 404, []string{"nope.efi"}},
		"bad farm":        {"/ipxe/test/abc", 400, []string{"farm id"}},
		"zero farm":       {"/ipxe/test/0", 400, []string{"positive integer"}},
		"semicolon":       {"/ipxe/test/1/a;reboot", 400, []string{"interpreted by iPXE"}},
		"expansion":       {"/ipxe/test/1/x=$%7Bnet0/ip%7D", 400, []string{"unsafe"}},
		"newline":         {"/ipxe/test/1/a%0Areboot", 400, []string{"printable ASCII"}},
		"traversal":       {"/ipxe/test/1/x/..%2F..%2Fetc%2Fpasswd", 400, []string{"unsafe"}},
		"upper network":   {"/ipxe/TEST", 400, []string{"network"}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			code, hdr, body := get(t, f.base+tc.path)
			if code != tc.code {
				t.Fatalf("GET %s = %d %q, want %d", tc.path, code, body, tc.code)
			}
			if !strings.HasPrefix(hdr.Get("Content-Type"), "text/plain") {
				t.Errorf("Content-Type %q", hdr.Get("Content-Type"))
			}
			for _, want := range tc.contains {
				want = strings.ReplaceAll(want, "BASE", f.base)
				if !strings.Contains(body, want) {
					t.Errorf("GET %s: body lacks %q:\n%s", tc.path, want, body)
				}
			}
		})
	}
}

func TestProvision(t *testing.T) {
	const mac = "52:54:00:12:34:56"
	t.Run("unknown waits", func(t *testing.T) {
		f := newFixture(t, nil)
		code, _, body := get(t, f.base+"/provision/52-54-00-12-34-56?arch=x86_64")
		if code != 200 || !strings.Contains(body, "MAC "+mac+") has no boot record") ||
			!strings.Contains(body, "sleep 5") || !strings.Contains(body, "chain --replace --autofree "+f.base+"/provision/"+mac) {
			t.Fatalf("unknown MAC: %d\n%s", code, body)
		}
		seen, err := f.db.GetSeen(mac)
		if err != nil || seen.Count != 1 || seen.Arch != "x86_64" || seen.IP != "127.0.0.1" {
			t.Fatalf("seen = %+v, %v", seen, err)
		}
		if st := <-f.stages; st.MAC != mac || st.Stage != timeline.ScriptServed || st.Detail != "wait" {
			t.Fatalf("stage %+v", st)
		}
		if v := testutil.ToFloat64(f.srv.metrics.scripts.WithLabelValues("wait")); v != 1 {
			t.Fatalf("wait scripts counted %v", v)
		}
	})
	t.Run("record", func(t *testing.T) {
		f := newFixture(t, nil)
		_, err := f.db.CreateNode(store.Node{MAC: mac, Network: "test", Farm: 42, Args: "console=ttyS0"})
		must(t, err)
		code, _, body := get(t, f.base+"/provision/"+strings.ToUpper(mac))
		if code != 200 || !strings.Contains(body, "/kernel/net/test.efi\n") ||
			!strings.Contains(body, "${kernel}?mac=${net${netidx}/mac:hexhyp} nomodeset panic=7200 version=v3 runmode=test farmer_id=42 console=ttyS0") {
			t.Fatalf("record: %d\n%s", code, body)
		}
	})
	t.Run("default node", func(t *testing.T) {
		f := newFixture(t, func(c *Config) { c.Default = DefaultNode{Network: "test", Farm: 7, Args: "d=1"} })
		code, _, body := get(t, f.base+"/provision/"+mac)
		if code != 200 || !strings.Contains(body, "runmode=test farmer_id=7 d=1") {
			t.Fatalf("default: %d\n%s", code, body)
		}
	})
	t.Run("record whose kernel vanished waits, never 500", func(t *testing.T) {
		f := newFixture(t, nil)
		_, err := f.db.CreateNode(store.Node{MAC: mac, Network: "test", Farm: 42, Kernel: "zos-v3.efi"})
		must(t, err)
		must(t, os.Remove(filepath.Join(f.kernels, "zos-v3.efi")))
		code, _, body := get(t, f.base+"/provision/"+mac)
		if code != 200 || !strings.Contains(body, "has no boot record") && !strings.Contains(body, "chain --replace") {
			t.Fatalf("vanished kernel: %d\n%s", code, body)
		}
	})
	t.Run("bad MAC", func(t *testing.T) {
		f := newFixture(t, nil)
		if code, _, body := get(t, f.base+"/provision/not-a-mac"); code != 400 || !strings.Contains(body, "MAC") {
			t.Fatalf("bad MAC: %d %q", code, body)
		}
	})
}

func TestKernel(t *testing.T) {
	f := newFixture(t, nil)
	// A boot script names its node: only that download is a boot stage.
	code, hdr, body := get(t, f.base+"/kernel/net/test.efi?mac=52-54-00-12-34-56")
	if code != 200 || body != "MZ kernel bytes 0123456789" || hdr.Get("ETag") == "" || hdr.Get("Accept-Ranges") != "bytes" {
		t.Fatalf("GET kernel: %d %v %q", code, hdr, body)
	}
	if code, _, body := get(t, f.base+"/kernel/net/test.efi", "Range", "bytes=3-8"); code != 206 || body != "kernel" {
		t.Fatalf("Range: %d %q", code, body)
	}
	if code, _, _ := get(t, f.base+"/kernel/zos-v3.efi", "If-None-Match", hdr.Get("ETag")); code != 304 {
		t.Fatalf("If-None-Match: %d", code)
	}
	for path, want := range map[string]int{
		"/kernel/net/prod.efi":          404, // symlink out of the kernels dir
		"/kernel/../outside":            400,
		"/kernel/net/..%2F..%2Foutside": 400,
		"/kernel/net":                   404, // a directory
		"/kernel/nope.efi":              404,
	} {
		if code, _, body := get(t, f.base+path); code != want || strings.Contains(body, "secret") {
			t.Errorf("GET %s = %d %q, want %d", path, code, body, want)
		}
	}
	var names []string
	for len(f.stages) > 0 {
		st := <-f.stages
		names = append(names, st.MAC+" "+string(st.Stage))
	}
	if strings.Join(names, ",") != "52:54:00:12:34:56 kernel_requested,52:54:00:12:34:56 kernel_sent" {
		t.Fatalf("stages %v", names)
	}
}

func TestBinariesForHTTPBoot(t *testing.T) {
	f := newFixture(t, nil)
	if code, _, body := get(t, f.base+"/boot/ipxe-amd64.efi"); code != 200 || body != "bin ipxe-amd64.efi" {
		t.Fatalf("GET /boot/ipxe-amd64.efi = %d %q", code, body)
	}
	if code, _, _ := get(t, f.base+"/boot/bootstrapd.db"); code != 404 {
		t.Fatalf("non-catalogue file: %d", code)
	}
}

// unixClient talks HTTP over the admin socket.
func unixClient(socket string) *http.Client {
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socket)
		},
	}}
}

func do(t *testing.T, c *http.Client, method, url, body string, hdr ...string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	must(t, err)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := c.Do(req)
	must(t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestAdminAuth(t *testing.T) {
	f := newFixture(t, nil)
	st, err := os.Stat(f.socket)
	must(t, err)
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("admin socket mode %v, want 0600", st.Mode().Perm())
	}
	sock := unixClient(f.socket)
	if code, body := do(t, sock, "GET", "http://x/api/v1/nodes", ""); code != 200 || body != "[]" {
		t.Fatalf("socket: %d %q", code, body)
	}
	tcp := http.DefaultClient
	for _, hdr := range [][]string{nil, {"Authorization", "Bearer wrong"}, {"Authorization", "0123456789abcdef0123"}} {
		if code, _ := do(t, tcp, "GET", f.base+"/api/v1/nodes", "", hdr...); code != 401 {
			t.Fatalf("TCP with %v: %d, want 401", hdr, code)
		}
	}
	if v := testutil.ToFloat64(f.srv.metrics.unauthorized); v != 3 {
		t.Fatalf("unauthorized counted %v, want 3", v)
	}
	if code, _ := do(t, tcp, "GET", f.base+"/api/v1/nodes", "", "Authorization", "Bearer 0123456789abcdef0123"); code != 200 {
		t.Fatalf("TCP with token: %d", code)
	}
}

func TestAdminNodes(t *testing.T) {
	f := newFixture(t, nil)
	c := unixClient(f.socket)
	api := "http://x/api/v1"
	steps := []struct {
		method, path, body string
		code               int
		contains           string
	}{
		{"POST", "/nodes", `{"mac":"52-54-00-00-00-01","network":"test","farm":42,"args":"console=ttyS0"}`, 201, `"mac":"52:54:00:00:00:01"`},
		{"POST", "/nodes", `{"mac":"52:54:00:00:00:01","network":"test","farm":1}`, 409, "already exists"},
		{"POST", "/nodes", `{"mac":"52:54:00:00:00:02","network":"nope","farm":1}`, 400, "unknown network"},
		{"POST", "/nodes", `{"mac":"52:54:00:00:00:02","network":"test","farm":1,"args":"a;reboot"}`, 400, "interpreted by iPXE"},
		{"POST", "/nodes", `{"mac":"52:54:00:00:00:02","network":"test","farm":1,"args":"a\nb"}`, 400, "printable"},
		{"POST", "/nodes", `{"mac":"52:54:00:00:00:02","network":"test","farm":1,"kernel":"../x"}`, 400, "kernel"},
		{"POST", "/nodes", `{"mac":"52:54:00:00:00:02","network":"test","farm":1,"kernel":"missing.efi"}`, 400, "not found"},
		{"POST", "/nodes", `{"mac":"52:54:00:00:00:02","network":"test"}`, 400, "farm"},
		{"POST", "/nodes", `{"mac":"zz","network":"test","farm":1}`, 400, "MAC"},
		{"POST", "/nodes", `not json`, 400, "bad request"},
		{"PATCH", "/nodes/52:54:00:00:00:01", `{"farm":7}`, 200, `"farm":7`},
		{"PATCH", "/nodes/52:54:00:00:00:01", `{"network":"nope"}`, 400, "unknown network"},
		{"GET", "/nodes/52:54:00:00:00:01", ``, 200, `"network":"test"`},
		{"PATCH", "/nodes/52:54:00:00:00:09", `{"farm":7}`, 404, "not found"},
		{"GET", "/nodes", ``, 200, `"farm":7`},
		{"DELETE", "/nodes/52:54:00:00:00:01", ``, 204, ``},
		{"GET", "/nodes/52:54:00:00:00:01", ``, 404, "not found"},
	}
	for i, s := range steps {
		code, body := do(t, c, s.method, api+s.path, s.body, "Content-Type", "application/json")
		if code != s.code || !strings.Contains(body, s.contains) {
			t.Fatalf("step %d %s %s %s = %d %q; want %d containing %q", i, s.method, s.path, s.body, code, body, s.code, s.contains)
		}
	}
}

func TestAdminImportExport(t *testing.T) {
	f := newFixture(t, nil)
	c := unixClient(f.socket)
	_, err := f.db.CreateNode(store.Node{MAC: "52:54:00:00:00:01", Network: "prod", Farm: 1})
	must(t, err)
	bad := "client,branch,zerotier,kargs\n52:54:00:00:00:02,test,5,\nnot-a-mac,test,5,\n52:54:00:00:00:03,test,x,\n52:54:00:00:00:02,test,6,a;b\n52:54:00:00:00:04,test,6,,,snp\n"
	code, body := do(t, c, "POST", "http://x/api/v1/import", bad)
	var res ImportResult
	must(t, json.Unmarshal([]byte(body), &res))
	if code != 400 || len(res.Errors) != 4 || res.Errors[0].Line != 3 || res.Errors[1].Line != 4 || res.Errors[2].Line != 5 ||
		res.Errors[3].Line != 6 || !strings.Contains(res.Errors[3].Err, "efi binary") {
		t.Fatalf("bad import: %d %s", code, body)
	}
	if nodes, _ := f.db.ListNodes(); len(nodes) != 1 {
		t.Fatalf("a refused import changed the store: %+v", nodes)
	}
	good := "client,branch,zerotier,kargs\n52:54:00:00:00:01,test,9,console=ttyS0\n52-54-00-00-00-02,test,5,,,snponly\n"
	code, body = do(t, c, "POST", "http://x/api/v1/import", good)
	if code != 200 || !strings.Contains(body, `"created":1,"updated":1`) {
		t.Fatalf("good import: %d %s", code, body)
	}
	code, body = do(t, c, "GET", "http://x/api/v1/export", "")
	want := "client,branch,zerotier,kargs,kernel,efi_binary\n52:54:00:00:00:01,test,9,console=ttyS0,,\n52:54:00:00:00:02,test,5,,,snponly\n"
	if code != 200 || body != want {
		t.Fatalf("export: %d\n%s\nwant\n%s", code, body, want)
	}
	// The export imports back unchanged.
	if code, body := do(t, c, "POST", "http://x/api/v1/import", body); code != 200 || !strings.Contains(body, `"updated":2`) {
		t.Fatalf("re-import: %d %s", code, body)
	}
	big := strings.Repeat("52:54:00:00:00:01,test,9,"+strings.Repeat("a", 100)+"\n", 50000)
	if code, _ := do(t, c, "POST", "http://x/api/v1/import", big); code != http.StatusRequestEntityTooLarge {
		t.Fatalf("oversized import: %d", code)
	}
}

func TestMetricsScrape(t *testing.T) {
	f := newFixture(t, nil)
	get(t, f.base+"/ipxe/test/1")
	get(t, f.base+"/provision/52:54:00:00:00:01")
	get(t, f.base+"/provision/52:54:00:00:00:02")
	_, _, body := get(t, f.base+"/metrics")
	for _, want := range []string{
		`bootstrapd_http_requests_total{code="200",route="/ipxe/:network/*rest"} 1`,
		`bootstrapd_http_requests_total{code="200",route="/provision/:mac"} 2`,
		`bootstrapd_scripts_served_total{kind="wait"} 2`,
		`bootstrapd_scripts_served_total{kind="boot"} 1`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if strings.Contains(body, "52:54:00") {
		t.Errorf("/metrics has a MAC in a label")
	}
	fmt.Fprint(io.Discard, body)
}

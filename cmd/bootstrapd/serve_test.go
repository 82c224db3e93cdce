package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pin/tftp/v3"

	"github.com/threefoldtech/bootstrapd/httpd"
	"github.com/threefoldtech/bootstrapd/ipxe"
	"github.com/threefoldtech/bootstrapd/store"
)

func freePort(t *testing.T, network string) int {
	t.Helper()
	if network == "udp" {
		c, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return c.LocalAddr().(*net.UDPAddr).Port
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

type daemon struct {
	cfgFile, base, tftp, dir string
	log                      *syncBuffer
	stop                     func() // ends serve and waits for it; idempotent
}

// syncBuffer is the daemon's log: serve's goroutines write it while the test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// daemonOpts vary startDaemon's configuration.
type daemonOpts struct {
	publicURL string
	ipxeDir   string // real iPXE binaries; "": fake ones (media then stay off)
	embedDir  string // make embed's output; "": none (/uefi/ answers 503)
	kernel    string // a real kernel to boot as net/test.efi; "": a few fake bytes
	// kernelArm64 is a real arm64 kernel to boot as net/test-arm64.efi; "": none.
	kernelArm64 string
	// trustDir is paths.ipxe_trust (the trusted iPXE build media use for https://); "": none.
	trustDir  string
	httpPort  int    // 0: a free one
	dir       string // reuse a previous daemon's directory (its database); "": a new one
	extraYAML string // more configuration keys (not http, tftp, dhcp, paths, admin, boot)
	tokenFile string // admin.token_file
	httpYAML  string // more http keys, e.g. "tls_listen: ..., tls_cert: ..."
	hup       chan os.Signal
}

// startDaemon runs the real serve path in-process, on loopback ports, without DHCP.
func startDaemon(t *testing.T, opts ...daemonOpts) *daemon {
	t.Helper()
	var o daemonOpts
	if len(opts) > 0 {
		o = opts[0]
	}
	dir := o.dir
	if dir == "" {
		dir = t.TempDir()
	}
	for _, d := range []string{"kernels/net", "ipxe"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range []string{ipxe.FileBIOS, ipxe.FileEFIx64, ipxe.FileEFIArm64, ipxe.FileSNPOnly, ipxe.FileLKRN} {
		if err := os.WriteFile(filepath.Join(dir, "ipxe", n), bytes.Repeat([]byte(n), 1000), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	kernel := []byte("MZ kernel")
	if o.kernel != "" {
		var err error
		if kernel, err = os.ReadFile(o.kernel); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "kernels", "zos.efi"), kernel, 0o644); err != nil {
		t.Fatal(err)
	}
	os.Remove(filepath.Join(dir, "kernels", "net", "test.efi"))
	if err := os.Symlink("../zos.efi", filepath.Join(dir, "kernels", "net", "test.efi")); err != nil {
		t.Fatal(err)
	}
	if o.kernelArm64 != "" {
		k, err := os.ReadFile(o.kernelArm64)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "kernels", "zos-arm64.efi"), k, 0o644); err != nil {
			t.Fatal(err)
		}
		os.Remove(filepath.Join(dir, "kernels", "net", "test-arm64.efi"))
		if err := os.Symlink("../zos-arm64.efi", filepath.Join(dir, "kernels", "net", "test-arm64.efi")); err != nil {
			t.Fatal(err)
		}
	}
	httpPort, tftpPort := o.httpPort, freePort(t, "udp")
	if httpPort == 0 {
		httpPort = freePort(t, "tcp")
	}
	d := &daemon{
		cfgFile: filepath.Join(dir, "appliance.yaml"),
		base:    fmt.Sprintf("http://127.0.0.1:%d", httpPort),
		tftp:    fmt.Sprintf("127.0.0.1:%d", tftpPort),
		dir:     dir,
		log:     &syncBuffer{},
	}
	ipxeDir := filepath.Join(dir, "ipxe")
	if o.ipxeDir != "" {
		ipxeDir = o.ipxeDir
	}
	embedDir := filepath.Join(dir, "embed")
	if o.embedDir != "" {
		embedDir = o.embedDir
	}
	yaml := fmt.Sprintf(`http: {listen: "127.0.0.1:%d", public_url: %q, `+o.httpYAML+`}
tftp: {listen: "127.0.0.1:%d"}
dhcp: {enabled: false}
paths: {data: %[4]s/data, kernels: %[4]s/kernels, ipxe: %[5]s, ipxe_embed: %[6]s, ipxe_trust: %[8]q}
admin: {socket: %[4]s/admin.sock, token_file: %[7]q}
boot: {ntp: ""}
`, httpPort, o.publicURL, tftpPort, dir, ipxeDir, embedDir, o.tokenFile, o.trustDir) + o.extraYAML
	if err := os.WriteFile(d.cfgFile, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := loadConfig(d.cfgFile)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serve(ctx, cfg, d.cfgFile, slog.New(slog.NewTextHandler(d.log, nil)), o.hup) }()
	var once sync.Once
	d.stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("serve: %v", err)
				}
			case <-time.After(15 * time.Second):
				t.Error("serve did not stop within 15 s of its context ending")
			}
			if _, err := os.Stat(filepath.Join(dir, "admin.sock")); !os.IsNotExist(err) {
				t.Errorf("admin socket left behind: %v", err)
			}
		})
	}
	t.Cleanup(d.stop)
	for i := 0; ; i++ {
		if resp, err := http.Get(d.base + "/healthz"); err == nil {
			resp.Body.Close()
			break
		}
		if i == 100 {
			t.Fatalf("daemon did not start:\n%s", d.log)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return d
}

func (d *daemon) cli(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out, errb bytes.Buffer
	args = append([]string{args[0], args[1], "--config", d.cfgFile}, args[2:]...)
	err := run(context.Background(), args, &out, &errb)
	return out.String() + errb.String(), err
}

func TestNodeCLIAgainstDaemon(t *testing.T) {
	d := startDaemon(t)
	const mac = "52:54:00:12:34:56"
	if out, err := d.cli(t, "node", "add", "--mac", "52-54-00-12-34-56", "--network", "test", "--farm", "42", "--args", "console=ttyS0 e2e=1"); err != nil {
		t.Fatalf("node add: %v\n%s", err, out)
	}
	for _, bad := range [][]string{
		{"node", "add", "--mac", mac, "--network", "test", "--farm", "1"},                                  // exists
		{"node", "add", "--mac", "52:54:00:12:34:57", "--network", "test", "--farm", "1", "--args", "a;b"}, // unsafe
		{"node", "add", "--mac", "52:54:00:12:34:57", "--network", "mainnet", "--farm", "1"},               // unknown network
		{"node", "add", "--mac", "52:54:00:12:34:57", "--network", "test"},                                 // no farm
		{"node", "set", "--mac", mac},                // nothing to set
		{"node", "rm", "--mac", "52:54:00:00:00:99"}, // unknown
	} {
		if out, err := d.cli(t, bad...); err == nil {
			t.Errorf("%v succeeded:\n%s", bad, out)
		}
	}
	if out, err := d.cli(t, "node", "set", "--mac", mac, "--farm", "43"); err != nil || !strings.Contains(out, "farm:     43") {
		t.Fatalf("node set: %v\n%s", err, out)
	}
	out, err := d.cli(t, "node", "show", "--json", "--mac", strings.ToUpper(mac))
	if err != nil {
		t.Fatalf("node show: %v\n%s", err, out)
	}
	var shown store.Node
	if err := json.Unmarshal([]byte(out), &shown); err != nil || shown.Farm != 43 || shown.Args != "console=ttyS0 e2e=1" {
		t.Fatalf("node show --json: %v %+v\n%s", err, shown, out)
	}

	// The record boots: its script, then the kernel, and the timeline records both.
	resp, err := http.Get(d.base + "/provision/" + mac)
	if err != nil {
		t.Fatal(err)
	}
	script, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(script), "runmode=test farmer_id=43 console=ttyS0 e2e=1") {
		t.Fatalf("script:\n%s", script)
	}

	// import: a file with bad rows imports nothing and names every bad line.
	csv := filepath.Join(d.dir, "nodes.csv")
	os.WriteFile(csv, []byte("client,branch,zerotier,kargs\n52:54:00:00:00:01,prod,1,\nbad,prod,1,\n52:54:00:00:00:02,nope,1,\n"), 0o644)
	out, err = d.cli(t, "node", "import", csv)
	if err == nil || !strings.Contains(err.Error(), "line 3") || !strings.Contains(err.Error(), "line 4") || strings.Contains(err.Error(), "line 2:") {
		t.Fatalf("bad import: %v\n%s", err, out)
	}
	if out, _ := d.cli(t, "node", "list", "--json"); strings.Contains(out, "52:54:00:00:00:01") {
		t.Fatalf("a refused import left a record:\n%s", out)
	}
	os.WriteFile(csv, []byte("client,branch,zerotier,kargs\n52:54:00:00:00:01,prod,1,\n52-54-00-00-00-02,test,2,console=ttyS0\n"), 0o644)
	if out, err := d.cli(t, "node", "import", csv); err != nil || !strings.Contains(out, "imported 2 new and 0 updated") {
		t.Fatalf("import: %v\n%s", err, out)
	}
	out, err = d.cli(t, "node", "export")
	if err != nil || !strings.Contains(out, "52:54:00:00:00:02,test,2,console=ttyS0,") || !strings.Contains(out, mac+",test,43,console=ttyS0 e2e=1,") {
		t.Fatalf("export: %v\n%s", err, out)
	}
	if out, err := d.cli(t, "node", "rm", "--mac", "52:54:00:00:00:01"); err != nil {
		t.Fatalf("rm: %v\n%s", err, out)
	}
	out, _ = d.cli(t, "node", "list")
	if strings.Contains(out, "52:54:00:00:00:01") || !strings.Contains(out, mac) {
		t.Fatalf("list after rm:\n%s", out)
	}
}

// What the network left (discovered entries, events) goes with `node rm` and `node forget`.
func TestNodeForgetAndRm(t *testing.T) {
	d := startDaemon(t)
	const known, stranger = "52:54:00:aa:00:01", "52:54:00:aa:00:02"
	if out, err := d.cli(t, "node", "add", "--mac", known, "--network", "test", "--farm", "7"); err != nil {
		t.Fatalf("node add: %v\n%s", err, out)
	}
	for _, mac := range []string{known, stranger} {
		resp, err := http.Get(d.base + "/provision/" + mac + "?arch=arm64")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	out, err := d.cli(t, "node", "discovered")
	if err != nil || !strings.Contains(out, known) || !strings.Contains(out, stranger) || !strings.Contains(out, "arm64") {
		t.Fatalf("discovered: %v\n%s", err, out)
	}
	out, err = d.cli(t, "node", "show", "--mac", known)
	if err != nil || !strings.Contains(out, "script_served") {
		t.Fatalf("show: %v\n%s", err, out)
	}

	if out, err := d.cli(t, "node", "forget", "--mac", stranger); err != nil {
		t.Fatalf("forget: %v\n%s", err, out)
	}
	if out, err := d.cli(t, "node", "forget", "--mac", stranger); err == nil {
		t.Errorf("forget twice succeeded:\n%s", out)
	}
	if out, err := d.cli(t, "node", "rm", "--mac", known); err != nil {
		t.Fatalf("rm: %v\n%s", err, out)
	}
	out, err = d.cli(t, "node", "discovered")
	if err != nil || strings.Contains(out, known) || strings.Contains(out, stranger) {
		t.Fatalf("discovered after rm and forget: %v\n%s", err, out)
	}
}

// node list and node discovered take the admin API's filters, and print every matching row
// across pages.
func TestNodeListFilters(t *testing.T) {
	d := startDaemon(t)
	for _, n := range [][3]string{{"52:54:00:bb:00:01", "test", "7"}, {"52:54:00:bb:00:02", "test", "7"}, {"52:54:00:bb:00:03", "test", "1234"}} {
		if out, err := d.cli(t, "node", "add", "--mac", n[0], "--network", n[1], "--farm", n[2]); err != nil {
			t.Fatalf("node add: %v\n%s", err, out)
		}
	}
	for _, mac := range []string{"52:54:00:bb:00:01", "52:54:00:bb:00:09"} {
		resp, err := http.Get(d.base + "/provision/" + mac)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	tests := map[string]struct {
		args      []string
		want, not []string
	}{
		"farm":            {[]string{"list", "--search", "7"}, []string{"bb:00:01", "bb:00:02"}, []string{"bb:00:03"}},
		"MAC fragment":    {[]string{"list", "--search", "BB-00-03"}, []string{"bb:00:03"}, []string{"bb:00:01"}},
		"sorted, limited": {[]string{"list", "--sort", "farm", "--order", "desc", "--limit", "1"}, []string{"bb:00:03"}, []string{"bb:00:01", "bb:00:02"}},
		"unknown":         {[]string{"discovered", "--state", "unknown"}, []string{"bb:00:09", "script_served"}, []string{"bb:00:01"}},
		"known":           {[]string{"discovered", "--state", "known"}, []string{"bb:00:01"}, []string{"bb:00:09"}},
		"no filter":       {[]string{"list"}, []string{"bb:00:01", "bb:00:02", "bb:00:03"}, nil},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			out, err := d.cli(t, append([]string{"node"}, tc.args...)...)
			if err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("%q missing:\n%s", w, out)
				}
			}
			for _, n := range tc.not {
				if strings.Contains(out, n) {
					t.Errorf("%q listed:\n%s", n, out)
				}
			}
		})
	}
	if out, err := d.cli(t, "node", "list", "--state", "lost"); err == nil || !strings.Contains(err.Error()+out, "accepted: known, unknown, stuck, booted") {
		t.Errorf("bad state: %v\n%s", err, out)
	}
}

// Values that came from the network are printed escaped: a terminal escape or a tab never
// reaches the operator's terminal as such, and cannot forge a table row.
func TestPrinterEscapesNetworkValues(t *testing.T) {
	hostile := "x\x1b[2J\tforged\trow\n"
	ds := []httpd.Discovered{{Seen: store.Seen{MAC: "52:54:00:aa:00:02", Arch: hostile, IP: hostile}}}
	evs := []store.Event{{Stage: hostile, Detail: hostile, Appliance: hostile}}
	for name, print := range map[string]func(printer) error{
		"discovered": func(p printer) error { return p.discovered(ds) },
		"node show":  func(p printer) error { return p.node(store.Node{MAC: "52:54:00:aa:00:02", Args: hostile}, evs) },
		"node list":  func(p printer) error { return p.nodes([]store.Node{{MAC: "52:54:00:aa:00:02", Kernel: hostile}}) },
	} {
		var b bytes.Buffer
		if err := print(printer{w: &b}); err != nil {
			t.Fatal(err)
		}
		out := b.String()
		if strings.ContainsAny(out, "\x1b\t") {
			t.Errorf("%s: raw control characters printed:\n%q", name, out)
		}
		if !strings.Contains(out, `"x\x1b[2J\tforged\trow\n"`) {
			t.Errorf("%s: hostile value not shown quoted:\n%s", name, out)
		}
	}
	for in, want := range map[string]string{"EFI x86-64": "EFI x86-64", "a\tb": `"a\tb"`, "ünï": `"\u00fcn\u00ef"`, "": ""} {
		if got := term(in); got != want {
			t.Errorf("term(%q) = %s, want %s", in, got, want)
		}
	}
}

// TestMetricsMoveWithRealTraffic drives a TFTP read and HTTP requests through the running
// daemon and reads the counters back from its /metrics scrape; promtool checks the format.
func TestMetricsMoveWithRealTraffic(t *testing.T) {
	d := startDaemon(t)
	c, err := tftp.NewClient(d.tftp)
	if err != nil {
		t.Fatal(err)
	}
	wt, err := c.Receive(ipxe.FileBIOS, "octet")
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if _, err := wt.WriteTo(&buf); err != nil || buf.Len() != len(ipxe.FileBIOS)*1000 {
		t.Fatalf("TFTP read: %v, %d bytes", err, buf.Len())
	}
	if _, err := c.Receive("../appliance.yaml", "octet"); err == nil {
		t.Fatal("TFTP served a path outside the catalogue")
	}
	for _, p := range []string{"/ipxe/test/1", "/provision/52:54:00:aa:bb:cc", "/kernel/net/test.efi?mac=52-54-00-aa-bb-cc"} {
		resp, err := http.Get(d.base + p)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	var body []byte
	// The TFTP result is counted when the last ACK arrives, just after the client returns.
	for i := 0; i < 50; i++ {
		resp, err := http.Get(d.base + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		body, _ = io.ReadAll(resp.Body)
		resp.Body.Close()
		if bytes.Contains(body, []byte(`bootstrapd_tftp_transfers_total{file="undionly.kpxe",result="ok"} 1`)) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, want := range []string{
		`bootstrapd_tftp_transfers_total{file="undionly.kpxe",result="ok"} 1`,
		`bootstrapd_http_requests_total{code="200",route="/provision/:mac"} 1`,
		`bootstrapd_http_requests_total{code="200",route="/kernel/*name"} 1`,
		`bootstrapd_scripts_served_total{kind="wait"} 1`,
		`bootstrapd_boot_stages_total{stage="script_served"} 1`,
		`bootstrapd_boot_stages_total{stage="kernel_sent"} 1`,
		`bootstrapd_nodes_active 1`,
		`bootstrapd_nodes_known 0`,
		`bootstrapd_http_kernel_bytes_sent_total 9`,
	} {
		if !bytes.Contains(body, []byte(want)) {
			t.Errorf("scrape lacks %s", want)
		}
	}
	if t.Failed() {
		t.Logf("scrape:\n%s", body)
	}
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("BOOTSTRAPD_REQUIRE_TOOLS") != "" {
			t.Fatal("promtool not installed (Debian package prometheus)")
		}
		t.Skip("promtool not installed: metrics format not checked")
	}
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = bytes.NewReader(body)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("promtool check metrics: %v\n%s", err, out)
	}
}

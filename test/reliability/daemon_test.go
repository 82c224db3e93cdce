package reliability

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// soak is the long form (BOOTSTRAPD_SOAK=1); the short one runs in `go test ./...`.
var soak = os.Getenv("BOOTSTRAPD_SOAK") == "1"

// pick returns the short form's number, or the long form's under BOOTSTRAPD_SOAK=1.
func pick(short, long int) int {
	if soak {
		return long
	}
	return short
}

// bin is the daemon built by TestMain from this tree (or BOOTSTRAPD_BIN, a binary built
// elsewhere).
var bin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "bootstrapd-reliability-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "reliability:", err)
		os.Exit(1)
	}
	code := func() int {
		defer os.RemoveAll(dir)
		if bin = os.Getenv("BOOTSTRAPD_BIN"); bin != "" {
			return m.Run()
		}
		root, err := repoRoot()
		if err != nil {
			fmt.Fprintln(os.Stderr, "reliability:", err)
			return 1
		}
		bin = filepath.Join(dir, "bootstrapd")
		goTool := "go"
		if _, err := exec.LookPath(goTool); err != nil {
			goTool = "/usr/local/go/bin/go"
		}
		build := exec.Command(goTool, "build", "-o", bin, "./cmd/bootstrapd")
		build.Dir = root
		if out, err := build.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "reliability: go build ./cmd/bootstrapd: %v\n%s", err, out)
			return 1
		}
		return m.Run()
	}()
	os.Exit(code)
}

// repoRoot is the directory of go.mod above the working directory.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = parent
	}
}

// ipxeFiles are the catalogue's names; the daemon refuses to start without all of them.
var ipxeFiles = []string{"undionly.kpxe", "ipxe-amd64.efi", "ipxe-arm64.efi", "snponly.efi", "ipxe.lkrn"}

// daemon is one data directory and configuration, and the bootstrapd process currently
// running on them (restarts reuse both).
type daemon struct {
	t        *testing.T
	dir      string // config, logs, ipxe
	data     string // paths.data
	kernels  string // paths.kernels
	socket   string // admin.socket
	cfgPath  string
	cfg      map[string]map[string]string
	runs     int
	p        *proc
	httpAddr string
	tftpAddr string
	admin    *http.Client // over the admin socket; URLs use host "bootstrapd"
}

// proc is one run of the daemon, in its own process group.
type proc struct {
	cmd     *exec.Cmd
	logPath string
	started time.Time
	done    chan struct{}
	err     error // valid once done is closed
	exitAt  time.Time
}

// exitErr is how the process ended; nil while it runs.
func (p *proc) exitErr() error {
	if !p.exited() {
		return nil
	}
	return p.err
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// newDaemon lays out a data directory and writes a configuration: loopback ports chosen by
// the kernel, no ProxyDHCP, fake iPXE binaries unless BOOTSTRAPD_IPXE_DIR names real ones.
// overrides are "section.key" → YAML value. It does not start the daemon.
func newDaemon(t *testing.T, overrides map[string]string) *daemon {
	t.Helper()
	dir := t.TempDir()
	// A unix socket path is limited to 108 bytes; test names make t.TempDir long.
	sockDir, err := os.MkdirTemp("", "bsd-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(sockDir) })
	d := &daemon{
		t:       t,
		dir:     dir,
		data:    filepath.Join(dir, "data"),
		kernels: filepath.Join(dir, "kernels"),
		socket:  filepath.Join(sockDir, "admin.sock"),
		cfgPath: filepath.Join(dir, "appliance.yaml"),
	}
	ipxeDir := os.Getenv("BOOTSTRAPD_IPXE_DIR")
	if ipxeDir == "" {
		ipxeDir = filepath.Join(dir, "ipxe")
		mkdirs(t, ipxeDir)
		for _, n := range ipxeFiles {
			// 13 kB or more: a TFTP transfer takes many 512-byte blocks.
			writeFile(t, filepath.Join(ipxeDir, n), bytes.Repeat([]byte(n), 1000))
		}
	}
	mkdirs(t, d.data, filepath.Join(d.kernels, "net"))
	q := strconv.Quote
	d.cfg = map[string]map[string]string{
		"http":  {"listen": q("127.0.0.1:0"), "shutdown_grace": "2s"},
		"tftp":  {"listen": q("127.0.0.1:0")},
		"dhcp":  {"enabled": "false"},
		"paths": {"data": q(d.data), "kernels": q(d.kernels), "ipxe": q(ipxeDir), "ipxe_embed": q(filepath.Join(dir, "no-embed")), "isolinux": q(filepath.Join(dir, "no-isolinux")), "syslinux_bios": q(filepath.Join(dir, "no-syslinux"))},
		"admin": {"socket": q(d.socket)},
		"boot":  {"ntp": q("")},
		"log":   {"level": "info"},
	}
	for k, v := range overrides {
		sec, key, ok := strings.Cut(k, ".")
		if !ok {
			t.Fatalf("override %q: want section.key", k)
		}
		if d.cfg[sec] == nil {
			d.cfg[sec] = map[string]string{}
		}
		d.cfg[sec][key] = v
	}
	var b strings.Builder
	for _, sec := range slices.Sorted(maps.Keys(d.cfg)) {
		fmt.Fprintf(&b, "%s:\n", sec)
		for _, key := range slices.Sorted(maps.Keys(d.cfg[sec])) {
			fmt.Fprintf(&b, "  %s: %s\n", key, d.cfg[sec][key])
		}
	}
	writeFile(t, d.cfgPath, []byte(b.String()))
	d.admin = &http.Client{
		Timeout: 2 * time.Minute,
		Transport: &http.Transport{
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				var dl net.Dialer
				return dl.DialContext(ctx, "unix", d.socket)
			},
			MaxIdleConnsPerHost: 32,
		},
	}
	t.Cleanup(func() {
		if d.p != nil {
			d.stop()
		}
		d.admin.CloseIdleConnections()
		if t.Failed() {
			for i := 1; i <= d.runs; i++ {
				t.Logf("daemon log, run %d (last lines):\n%s", i, tail(d.logPath(i), 40))
			}
		}
	})
	return d
}

func mkdirs(t *testing.T, dirs ...string) {
	t.Helper()
	for _, d := range dirs {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
}

func writeFile(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func (d *daemon) logPath(run int) string {
	return filepath.Join(d.dir, fmt.Sprintf("daemon-%d.log", run))
}

// spawn starts the daemon and returns at once (no waiting for its listeners).
func (d *daemon) spawn() *proc {
	d.t.Helper()
	if d.p != nil && !d.p.exited() {
		d.t.Fatal("spawn: the daemon is still running")
	}
	d.runs++
	p := &proc{logPath: d.logPath(d.runs), done: make(chan struct{})}
	f, err := os.Create(p.logPath)
	if err != nil {
		d.t.Fatal(err)
	}
	p.cmd = exec.Command(bin, "serve", "--config", d.cfgPath)
	p.cmd.Stdout, p.cmd.Stderr = f, f
	// Its own process group, killed if this test binary dies.
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		f.Close()
		d.t.Fatalf("start %s: %v", bin, err)
	}
	p.started = time.Now()
	go func() {
		p.err = p.cmd.Wait()
		p.exitAt = time.Now()
		f.Close()
		close(p.done)
	}()
	d.p = p
	d.httpAddr, d.tftpAddr = "", ""
	return p
}

var (
	reHTTP = regexp.MustCompile(`msg=listening service=http addr=(\S+)`)
	reTFTP = regexp.MustCompile(`msg=listening service=tftp addr=(\S+)`)
)

// start runs the daemon and waits until it answers /healthz on the address it logged.
func (d *daemon) start() {
	d.t.Helper()
	d.spawn()
	d.waitReady(15 * time.Second)
}

// waitReady waits for the current run's listening lines and a 200 from /healthz.
func (d *daemon) waitReady(timeout time.Duration) {
	d.t.Helper()
	p := d.p
	deadline := time.Now().Add(timeout)
	for {
		if p.exited() {
			d.t.Fatalf("the daemon exited while starting (%v); its log:\n%s", p.err, tail(p.logPath, 30))
		}
		if time.Now().After(deadline) {
			d.t.Fatalf("the daemon did not get ready within %s; its log:\n%s", timeout, tail(p.logPath, 30))
		}
		log := readFile(p.logPath)
		if m := reHTTP.FindStringSubmatch(log); m != nil && d.httpAddr == "" {
			d.httpAddr = m[1]
		}
		if m := reTFTP.FindStringSubmatch(log); m != nil && d.tftpAddr == "" {
			d.tftpAddr = m[1]
		}
		if d.httpAddr != "" && d.tftpAddr != "" {
			if code, _, err := httpGet(http.DefaultClient, d.base()+"/healthz"); err == nil && code == 200 {
				if _, err := os.Stat(d.socket); err == nil {
					return
				}
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (d *daemon) base() string { return "http://" + d.httpAddr }

// signal sends sig to the daemon's process group.
func (d *daemon) signal(sig syscall.Signal) {
	d.t.Helper()
	if err := syscall.Kill(-d.p.cmd.Process.Pid, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
		d.t.Fatalf("kill %v: %v", sig, err)
	}
}

// waitExit waits up to timeout for the daemon to end; ok is false if it is still running.
func (d *daemon) waitExit(timeout time.Duration) bool {
	select {
	case <-d.p.done:
		return true
	case <-time.After(timeout):
		return false
	}
}

// stop ends the daemon: SIGTERM, then SIGKILL after 10 s. It fails the test if SIGKILL was
// needed. Only this daemon's process group is signalled.
func (d *daemon) stop() {
	d.t.Helper()
	if d.p == nil || d.p.exited() {
		return
	}
	d.signal(syscall.SIGTERM)
	if d.waitExit(10 * time.Second) {
		return
	}
	d.t.Errorf("the daemon ignored SIGTERM for 10 s; killed")
	d.kill()
}

// kill ends the daemon with SIGKILL and waits for it.
func (d *daemon) kill() {
	if d.p == nil || d.p.exited() {
		return
	}
	_ = syscall.Kill(-d.p.cmd.Process.Pid, syscall.SIGKILL)
	<-d.p.done
}

// logText is the current run's log so far.
func (d *daemon) logText() string { return readFile(d.p.logPath) }

func readFile(path string) string {
	b, _ := os.ReadFile(path)
	return string(b)
}

// tail is about the last n lines of the file at path.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// mem is the daemon's resident set now and at its peak, in KiB, from /proc.
type mem struct{ rssKB, hwmKB int }

func (m mem) String() string { return fmt.Sprintf("rss_kb=%d peak_rss_kb=%d", m.rssKB, m.hwmKB) }

func (d *daemon) mem() mem {
	var m mem
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", d.p.cmd.Process.Pid))
	if err != nil {
		return m
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, _ := strings.Cut(sc.Text(), ":")
		n, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
		switch k {
		case "VmRSS":
			m.rssKB = n
		case "VmHWM":
			m.hwmKB = n
		}
	}
	return m
}

// metric sums every sample of a metric family from /metrics; ok is false if it has none.
func (d *daemon) metric(name string) (float64, bool) {
	d.t.Helper()
	code, body, err := httpGet(http.DefaultClient, d.base()+"/metrics")
	if err != nil || code != 200 {
		d.t.Fatalf("GET /metrics: %d %v", code, err)
	}
	var sum float64
	found := false
	for _, line := range strings.Split(string(body), "\n") {
		if !strings.HasPrefix(line, name) {
			continue
		}
		rest := line[len(name):]
		if !strings.HasPrefix(rest, " ") && !strings.HasPrefix(rest, "{") {
			continue
		}
		f := strings.Fields(line)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err != nil {
			continue
		}
		sum += v
		found = true
	}
	return sum, found
}

// apiJSON does an admin API request over the socket and decodes a JSON answer into out (if
// not nil).
func (d *daemon) apiJSON(method, path string, body any, out any) int {
	d.t.Helper()
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			d.t.Fatal(err)
		}
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, "http://bootstrapd"+path, r)
	if err != nil {
		d.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := d.admin.Do(req)
	if err != nil {
		d.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		d.t.Fatalf("%s %s: %v", method, path, err)
	}
	if out != nil && resp.StatusCode/100 == 2 {
		if err := json.Unmarshal(b, out); err != nil {
			d.t.Fatalf("%s %s: %v\n%.500s", method, path, err, b)
		}
	}
	return resp.StatusCode
}

func httpGet(c *http.Client, url string) (int, []byte, error) {
	resp, err := c.Get(url)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// percentile of sorted durations, p in [0,1].
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(p * float64(len(sorted)-1))
	return sorted[i]
}

// lockedList collects values from many goroutines.
type lockedList[T any] struct {
	mu sync.Mutex
	v  []T
}

func (l *lockedList[T]) add(x T) {
	l.mu.Lock()
	l.v = append(l.v, x)
	l.mu.Unlock()
}

func (l *lockedList[T]) items() []T {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.v)
}

// mib formats a byte count.
func mib(n int64) string { return fmt.Sprintf("%.1fMiB", float64(n)/(1<<20)) }

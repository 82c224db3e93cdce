package e2e

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// nsPrefix names every namespace a run creates: nsPrefix<pid>-<random>-<role>. The pid lets
// a later run remove what a killed run (go test -timeout) could not.
const nsPrefix = "bsde2e-"

// lab is the test LAN:
//
//	netns <lan>: br0 (10.N.M.1/24, ULA ::1/64) ── dnsmasq (leases, RAs; no PXE)
//	             ├── vlan0 ══ veth ══ lan0 (10.N.M.2/24) in netns <srv>: bootstrapd serve
//	             └── tapK per VM, qemu running in <lan>
//
// bootstrapd sits on its own host of the LAN, as on a farm, so it and dnsmasq never share
// a socket namespace (both bind 0.0.0.0:67).
type lab struct {
	env      *env
	dir      string // config, kernels, data, VARS copies
	out      string // logs
	lanNS    string
	srvNS    string
	prefix   string // "10.N.M"
	ula      string // "fdxx:xxxx:xxxx::"
	config   string
	bsdLog   string
	dnsLog   string
	bsd      *proc
	dnsmasq  *proc
	taps     int
	httpBase string
}

func newLab(t *testing.T, e *env) *lab {
	t.Helper()
	removeStaleNamespaces(t, e.ip)

	tmp := t.TempDir()
	out := tmp
	if o := os.Getenv("BOOTSTRAPD_E2E_OUT"); o != "" {
		out = filepath.Join(o, time.Now().Format("20060102-150405"))
		if err := os.MkdirAll(out, 0o755); err != nil {
			t.Fatalf("BOOTSTRAPD_E2E_OUT: %v", err)
		}
		t.Logf("logs kept in %s", out)
	}
	e.prepare(t, tmp)

	rnd := randBytes(t, 5)
	id := fmt.Sprintf("%s%d-%s", nsPrefix, os.Getpid(), hex.EncodeToString(rnd[:2]))
	l := &lab{
		env:    e,
		dir:    tmp,
		out:    out,
		lanNS:  id + "-lan",
		srvNS:  id + "-srv",
		prefix: fmt.Sprintf("10.%d.%d", 64+int(rnd[2])%128, rnd[3]),
		ula:    fmt.Sprintf("fd%02x:%02x%02x:e2e::", rnd[4], rnd[0], rnd[1]),
		bsdLog: filepath.Join(out, "bootstrapd.log"),
		dnsLog: filepath.Join(out, "dnsmasq.log"),
	}
	l.httpBase = "http://" + l.prefix + ".2:8080"
	l.network(t)
	l.startDnsmasq(t)
	l.startBootstrapd(t)
	return l
}

// network builds the namespaces, the bridge and the veth pair. Deleting the namespaces
// (cleanup, registered first so it runs after every process is stopped) removes every
// interface with them.
func (l *lab) network(t *testing.T) {
	t.Helper()
	ip := l.env.ip
	for _, ns := range []string{l.lanNS, l.srvNS} {
		if _, err := run(ip, "netns", "add", ns); err != nil {
			t.Fatalf("create network namespace (needs root and a kernel with netns): %v", err)
		}
		t.Cleanup(func() {
			if out, err := run(ip, "netns", "pids", ns); err == nil && strings.TrimSpace(out) != "" {
				t.Errorf("processes still in netns %s at cleanup: %s", ns, strings.Join(strings.Fields(out), " "))
			}
			if _, err := run(ip, "netns", "del", ns); err != nil {
				t.Errorf("cleanup: %v", err)
			}
		})
	}
	lan := []string{ip, "-n", l.lanNS}
	srv := []string{ip, "-n", l.srvNS}
	cmds := [][]string{
		append(lan, "link", "set", "lo", "up"),
		append(srv, "link", "set", "lo", "up"),
		append(lan, "link", "add", "br0", "type", "bridge"),
		append(lan, "link", "add", "vlan0", "type", "veth", "peer", "name", "lan0", "netns", l.srvNS),
		append(lan, "link", "set", "vlan0", "master", "br0", "up"),
		append(lan, "addr", "add", l.prefix+".1/24", "dev", "br0"),
		append(lan, "addr", "add", l.ula+"1/64", "dev", "br0", "nodad"),
		append(lan, "link", "set", "br0", "up"),
		append(srv, "addr", "add", l.prefix+".2/24", "dev", "lan0"),
		append(srv, "link", "set", "lan0", "up"),
	}
	for _, c := range cmds {
		mustRun(t, c...)
	}
}

// startDnsmasq runs the LAN's ordinary DHCP server: leases and IPv6 router adverts (so
// iPXE does not wait for them), no DNS, no PXE options, nothing read from /etc.
func (l *lab) startDnsmasq(t *testing.T) {
	t.Helper()
	pid := filepath.Join(l.dir, "dnsmasq.pid")
	l.dnsmasq = start(t, "dnsmasq", l.dnsLog,
		l.env.ip, "netns", "exec", l.lanNS, l.env.dnsmasq,
		"--keep-in-foreground", "--conf-file=/dev/null", "--no-resolv", "--no-hosts", "--port=0",
		"--user=root", "--interface=br0", "--bind-interfaces", "--log-facility=-", "--log-dhcp",
		"--dhcp-authoritative", "--no-ping",
		"--dhcp-range="+l.prefix+".100,"+l.prefix+".199,255.255.255.0,10m",
		"--dhcp-range=::,constructor:br0,ra-only", "--enable-ra",
		"--dhcp-leasefile="+filepath.Join(l.dir, "dnsmasq.leases"), "--pid-file="+pid)
	waitUntil(t, 10*time.Second, "dnsmasq to start", l.dnsmasq, l.dnsLog, func() bool { return isFile(pid) })
}

// startBootstrapd writes the appliance configuration and runs `bootstrapd serve` on the
// LAN's second host.
func (l *lab) startBootstrapd(t *testing.T) {
	t.Helper()
	kernels := filepath.Join(l.dir, "kernels")
	installKernel(t, kernels, l.env.kernel, "zos-e2e.efi", "test.efi")
	// The network's arm64 default: arm64 nodes must get this one, x86 nodes the other.
	installKernel(t, kernels, l.env.kernelArm64, "zos-e2e-arm64.efi", "test-arm64.efi")
	l.config = filepath.Join(l.dir, "appliance.yaml")
	cfg := applianceConfig(l.dir, kernels, l.env.ipxeDir, filepath.Join(l.dir, "admin.sock"), "")
	if err := os.WriteFile(l.config, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	l.bsd = start(t, "bootstrapd", l.bsdLog, l.env.ip, "netns", "exec", l.srvNS, l.env.bin, "serve", "--config", l.config)
	dhcpUp := regexp.MustCompile(`msg=listening service=dhcp addr=\S+:67\b`)
	tftpUp := regexp.MustCompile(`msg=listening service=tftp`)
	waitUntil(t, 20*time.Second, "bootstrapd to listen on DHCP, TFTP and the admin socket", l.bsd, l.bsdLog, func() bool {
		b, _ := os.ReadFile(l.bsdLog)
		if !dhcpUp.Match(b) || !tftpUp.Match(b) {
			return false
		}
		_, err := l.node("list")
		return err == nil
	})
}

// installKernel copies the kernel file src into kernels as name and points net/link at it.
func installKernel(t *testing.T, kernels, src, name, link string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Join(kernels, "net"), 0o755); err != nil {
		t.Fatal(err)
	}
	k, err := os.ReadFile(src)
	if err != nil {
		t.Fatalf("kernel %s: %v", src, err)
	}
	if err := os.WriteFile(filepath.Join(kernels, name), k, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../"+name, filepath.Join(kernels, "net", link)); err != nil {
		t.Fatal(err)
	}
}

// applianceConfig is a lab appliance's configuration: every service on the LAN side of
// its namespace, the network test, its state under dir, then extra (YAML sections, such as
// a store).
func applianceConfig(dir, kernels, ipxeDir, socket, extra string) string {
	return fmt.Sprintf(`http:
  listen: ":8080"
tftp:
  listen: ":69"
dhcp:
  enabled: true
  interfaces: [lan0]
paths:
  data: %q
  kernels: %q
  ipxe: %q
networks:
  test: "testing (v3)"
admin:
  socket: %q
default_node:
  network: ""
boot:
  base_args: "nomodeset panic=7200"
  ntp: ""
  retry_seconds: 5
log:
  format: text
  level: debug
`, filepath.Join(dir, "data"), kernels, ipxeDir, socket) + extra
}

// waitUntil polls cond until it holds, p exits or d passes.
func waitUntil(t *testing.T, d time.Duration, what string, p *proc, logPath string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if p.exited() {
			t.Fatalf("%s exited (%v) while waiting for %s; its log:\n%s", p.name, p.err, what, tail(logPath, 40))
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s; %s log:\n%s", d, what, p.name, tail(logPath, 40))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// node runs `bootstrapd node ARGS...` against the daemon's admin socket. The socket is a
// path, reachable from the test's own namespace.
func (l *lab) node(args ...string) (string, error) {
	argv := append([]string{l.env.bin, "node", args[0], "--config", l.config}, args[1:]...)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, argv[0], argv[1:]...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("bootstrapd node %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// event mirrors one entry of `bootstrapd node show --json`'s events.
type event struct {
	Time   time.Time `json:"time"`
	Stage  string    `json:"stage"`
	Detail string    `json:"detail"`
}

func (l *lab) events(mac string) ([]event, error) {
	out, err := l.node("show", "--mac", mac, "--json")
	if err != nil {
		return nil, err
	}
	var n struct {
		Events []event `json:"events"`
	}
	if err := json.Unmarshal([]byte(out), &n); err != nil {
		return nil, fmt.Errorf("decode node show --json: %w: %s", err, out)
	}
	return n.Events, nil
}

// addTap creates a tap on the bridge for one VM.
func (l *lab) addTap(t *testing.T) string {
	t.Helper()
	l.taps++
	name := "tap" + strconv.Itoa(l.taps)
	mustRun(t, l.env.ip, "-n", l.lanNS, "tuntap", "add", "dev", name, "mode", "tap")
	mustRun(t, l.env.ip, "-n", l.lanNS, "link", "set", name, "master", "br0", "up")
	t.Cleanup(func() { _, _ = run(l.env.ip, "-n", l.lanNS, "link", "del", name) })
	return name
}

// dumpLogs reports the daemons' recent logs after a failure.
func (l *lab) dumpLogs(t *testing.T) {
	t.Helper()
	t.Logf("bootstrapd log (tail):\n%s", tail(l.bsdLog, 60))
	t.Logf("dnsmasq log (tail):\n%s", tail(l.dnsLog, 40))
}

// removeStaleNamespaces deletes namespaces left by runs whose process is gone (a test
// binary killed by -timeout cannot run its cleanups), after killing what still runs in them.
func removeStaleNamespaces(t *testing.T, ip string) {
	t.Helper()
	out, err := run(ip, "netns", "list")
	if err != nil {
		t.Fatalf("list network namespaces: %v", err)
	}
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || !strings.HasPrefix(f[0], nsPrefix) {
			continue
		}
		name := f[0]
		pidStr, _, _ := strings.Cut(strings.TrimPrefix(name, nsPrefix), "-")
		pid, err := strconv.Atoi(pidStr)
		if err != nil || pid == os.Getpid() {
			continue
		}
		if _, err := os.Stat("/proc/" + pidStr); err == nil {
			continue // a run still in progress
		}
		if pids, err := run(ip, "netns", "pids", name); err == nil {
			for _, p := range strings.Fields(pids) {
				if n, err := strconv.Atoi(p); err == nil {
					if proc, err := os.FindProcess(n); err == nil {
						_ = proc.Kill()
					}
				}
			}
		}
		time.Sleep(200 * time.Millisecond)
		if _, err := run(ip, "netns", "del", name); err != nil {
			t.Logf("stale namespace %s: %v", name, err)
		} else {
			t.Logf("removed namespace %s left by an earlier run", name)
		}
	}
}

func randBytes(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// pxeBlockTable is the nftables table blockPXE adds in the appliance's namespace.
const pxeBlockTable = "bsde2e_pxe_block"

// blockPXE drops TFTP (UDP 69) and PXE's boot server port (UDP 4011) in the appliance's
// namespace until the calling test ends, so a UEFI client's PXE option fails and its HTTP
// Boot option must start the boot. The ProxyDHCP on port 67 still answers.
func (l *lab) blockPXE(t *testing.T) {
	t.Helper()
	rules := filepath.Join(l.dir, pxeBlockTable+".nft")
	if err := os.WriteFile(rules, []byte(`table inet `+pxeBlockTable+` {
	chain input {
		type filter hook input priority filter; policy accept;
		udp dport { 69, 4011 } counter drop
	}
}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	ns := []string{l.env.ip, "netns", "exec", l.srvNS, l.env.nft}
	mustRun(t, append(ns, "-f", rules)...)
	t.Cleanup(func() {
		if out, err := run(append(ns, "list", "table", "inet", pxeBlockTable)...); err == nil {
			t.Logf("nftables in the appliance's namespace, before removal:\n%s", strings.TrimSpace(out))
		}
		if _, err := run(append(ns, "delete", "table", "inet", pxeBlockTable)...); err != nil {
			t.Errorf("remove the PXE block: %v", err)
		}
	})
}

package e2e

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// appliance is one bootstrapd of the two-appliance LAN, in its own namespace.
type appliance struct {
	name   string
	ns     string
	addr   string // its address on the LAN
	config string
	log    string
	p      *proc
}

// TestTwoAppliancesShareEtcd: two appliances on one LAN share their records through etcd,
// and both answer ProxyDHCP.
//
//	netns <lan>: br0 (P.1) ── dnsmasq, etcd (client URL http://P.1:2379)
//	             ├── veth ══ lan0 (P.2) in netns <srv>: appliance a
//	             ├── veth ══ lan0 (P.3) in netns <srvb>: appliance b
//	             └── tapK per VM
//
// Three records are added through a's CLI. Node 1 boots with both appliances answering;
// then a is killed and node 2 boots through b; then etcd is killed and node 3, known only
// from b's copy of the records, boots through b. Once etcd is back, node 3's timeline,
// held in b's memory, reaches etcd.
func TestTwoAppliancesShareEtcd(t *testing.T) {
	e := requireE2E(t)
	etcdBin, err := lookPath("etcd")
	if err != nil {
		t.Fatalf("etcd not found (apt-get install etcd-server; make deps installs it)")
	}
	removeStaleNamespaces(t, e.ip)
	tmp := t.TempDir()
	out := tmp
	if o := os.Getenv("BOOTSTRAPD_E2E_OUT"); o != "" {
		out = filepath.Join(o, time.Now().Format("20060102-150405")+"-etcd")
		if err := os.MkdirAll(out, 0o755); err != nil {
			t.Fatalf("BOOTSTRAPD_E2E_OUT: %v", err)
		}
	}
	e.prepare(t, tmp)
	rnd := randBytes(t, 5)
	id := fmt.Sprintf("%s%d-%s", nsPrefix, os.Getpid(), hex.EncodeToString(rnd[:2]))
	l := &lab{
		env: e, dir: tmp, out: out,
		lanNS: id + "-lan", srvNS: id + "-srv",
		prefix: fmt.Sprintf("10.%d.%d", 64+int(rnd[2])%128, rnd[3]),
		ula:    fmt.Sprintf("fd%02x:%02x%02x:e2e::", rnd[4], rnd[0], rnd[1]),
		bsdLog: filepath.Join(out, "bootstrapd-a.log"),
		dnsLog: filepath.Join(out, "dnsmasq.log"),
	}
	l.network(t)
	bNS := id + "-srvb"
	l.addHost(t, bNS, "vlanb", l.prefix+".3")
	l.startDnsmasq(t)

	// etcd on the LAN, where both appliances reach it.
	etcdURL := "http://" + l.prefix + ".1:2379"
	etcdLog := filepath.Join(out, "etcd.log")
	etcdArgs := []string{
		e.ip, "netns", "exec", l.lanNS, etcdBin,
		"--name", "e2e", "--data-dir", filepath.Join(tmp, "etcd"),
		"--listen-client-urls", etcdURL, "--advertise-client-urls", etcdURL,
		"--listen-peer-urls", "http://127.0.0.1:2380", "--initial-advertise-peer-urls", "http://127.0.0.1:2380",
		"--initial-cluster", "e2e=http://127.0.0.1:2380",
	}
	etcd := startEtcd(t, etcdArgs, etcdLog, 0)

	a := l.startAppliance(t, "a", l.srvNS, l.prefix+".2", etcdURL)
	b := l.startAppliance(t, "b", bNS, l.prefix+".3", etcdURL)
	l.config = a.config // lab.node talks to a

	type node struct {
		name, mac, token string
	}
	var nodes []node
	for _, n := range []string{"both-up", "a-killed", "etcd-stopped"} {
		nd := node{n, randomMAC(t), hex.EncodeToString(randBytes(t, 8))}
		if _, err := l.node("add", "--mac", nd.mac, "--network", "test", "--farm", "42", "--args", "console=ttyS0 e2e="+nd.token); err != nil {
			t.Fatal(err)
		}
		nodes = append(nodes, nd)
	}
	// b's copy holds the records a wrote.
	for _, nd := range nodes {
		waitFor(t, 10*time.Second, "record added on a in b's list", func() error {
			_, err := b.cli(l, "show", "--mac", nd.mac)
			return err
		})
	}

	boot := func(t *testing.T, nd node) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), bootBudget(t, 0))
		defer cancel()
		v := l.boot(t, nd.name, ovmf, nd.mac)
		t.Cleanup(func() {
			v.p.kill()
			if t.Failed() {
				t.Logf("serial console of %s (tail):\n%s", nd.name, v.consoleTail(60))
				t.Logf("appliance a log (tail):\n%s", tail(a.log, 40))
				t.Logf("appliance b log (tail):\n%s", tail(b.log, 40))
				t.Logf("etcd log (tail):\n%s", tail(etcdLog, 20))
			}
		})
		m, err := v.waitConsole(ctx, regexp.MustCompile(`Command line: ([^\n]*)\n`))
		if err != nil {
			t.Fatalf("the kernel did not print its command line: %v", err)
		}
		v.p.kill()
		t.Logf("%s: kernel command line %v after power-on: %s", nd.name, since(v.started), m[1])
		args := strings.Fields(m[1])
		for _, want := range []string{"runmode=test", "farmer_id=42", "e2e=" + nd.token} {
			if !slices.Contains(args, want) {
				t.Errorf("kernel command line %q lacks %q", m[1], want)
			}
		}
		// Which appliance answered each step: the script and the kernel come from the URL
		// of the offer the firmware took.
		c := v.console()
		for _, host := range []string{l.prefix + ".2", l.prefix + ".3"} {
			if strings.Contains(c, "http://"+host+":8080/provision/") {
				t.Logf("%s: the script came from %s", nd.name, host)
			}
		}
	}

	t.Run("both-up", func(t *testing.T) {
		boot(t, nodes[0])
		evs := b.timeline(t, l, nodes[0].mac, "kernel_sent")
		t.Logf("both-up: timeline read through b: %s", evs)
		// Both appliances answered the node's DHCP (each records its own offer), and the
		// node booted all the same: the firmware took one offer.
		for _, who := range []string{"@a", "@b"} {
			if !regexp.MustCompile(`offer_\w+` + who + `\b`).MatchString(evs) {
				t.Errorf("no offer by appliance %s in the timeline: both must answer ProxyDHCP: %s", who[1:], evs)
			}
		}
	})

	t.Run("a-killed", func(t *testing.T) {
		a.p.kill()
		boot(t, nodes[1])
		evs := b.timeline(t, l, nodes[1].mac, "kernel_sent")
		t.Logf("a-killed: timeline: %s", evs)
		if strings.Contains(evs, "@a") || !strings.Contains(evs, "script_served@b") {
			t.Errorf("with a killed, every event must be b's: %s", evs)
		}
	})

	t.Run("etcd-stopped", func(t *testing.T) {
		etcd.kill()
		waitFor(t, 20*time.Second, "b to log that etcd is unreachable", func() error {
			if bs, _ := os.ReadFile(b.log); !strings.Contains(string(bs), "etcd unreachable: boots go on from the last known copy") {
				return fmt.Errorf("no such line in b's log")
			}
			return nil
		})
		if out, err := b.cli(l, "add", "--mac", randomMAC(t), "--network", "test", "--farm", "1"); err == nil || !strings.Contains(out, "store unavailable") {
			t.Errorf("node add with etcd stopped: %v: %s; want it refused with \"store unavailable\"", err, out)
		}
		boot(t, nodes[2])
		// etcd back: the events b held in memory reach it, without a restart of b.
		etcd = startEtcd(t, etcdArgs, etcdLog, 1)
		evs := b.timeline(t, l, nodes[2].mac, "kernel_sent")
		t.Logf("etcd-stopped: timeline written once etcd was back: %s", evs)
	})
}

// addHost adds a LAN host: a namespace with lan0 at addr, its peer on the bridge.
func (l *lab) addHost(t *testing.T, ns, peer, addr string) {
	t.Helper()
	ip := l.env.ip
	if _, err := run(ip, "netns", "add", ns); err != nil {
		t.Fatalf("create network namespace: %v", err)
	}
	t.Cleanup(func() {
		if _, err := run(ip, "netns", "del", ns); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	for _, c := range [][]string{
		{ip, "-n", ns, "link", "set", "lo", "up"},
		{ip, "-n", l.lanNS, "link", "add", peer, "type", "veth", "peer", "name", "lan0", "netns", ns},
		{ip, "-n", l.lanNS, "link", "set", peer, "master", "br0", "up"},
		{ip, "-n", ns, "addr", "add", addr + "/24", "dev", "lan0"},
		{ip, "-n", ns, "link", "set", "lan0", "up"},
	} {
		mustRun(t, c...)
	}
}

// startEtcd runs etcd (again, on the same data, for n > 0) and waits until it serves.
func startEtcd(t *testing.T, argv []string, logPath string, n int) *proc {
	t.Helper()
	before := 0
	if b, err := os.ReadFile(logPath); err == nil {
		before = strings.Count(string(b), "ready to serve client requests")
	}
	p := start(t, fmt.Sprintf("etcd#%d", n), logPath, argv...)
	waitUntil(t, 30*time.Second, "etcd to serve", p, logPath, func() bool {
		b, _ := os.ReadFile(logPath)
		return strings.Count(string(b), "ready to serve client requests") > before
	})
	return p
}

// startAppliance writes an appliance's configuration (etcd store, its own data, kernels
// and socket) and runs it in ns.
func (l *lab) startAppliance(t *testing.T, name, ns, addr, etcdURL string) *appliance {
	t.Helper()
	dir := filepath.Join(l.dir, "appliance-"+name)
	kernels := filepath.Join(dir, "kernels")
	// Kernels stay local to each appliance: each has its copy.
	installKernel(t, kernels, l.env.kernel, "zos-e2e.efi", "test.efi")
	a := &appliance{name: name, ns: ns, addr: addr, config: filepath.Join(dir, "appliance.yaml"), log: filepath.Join(l.out, "bootstrapd-"+name+".log")}
	cfg := applianceConfig(dir, kernels, l.env.ipxeDir, filepath.Join(dir, "admin.sock"), fmt.Sprintf(`store:
  backend: etcd
  etcd:
    endpoints: [%q]
    prefix: /e2e/
    dial_timeout: 2s
    name: %q
`, etcdURL, name))
	if err := os.WriteFile(a.config, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	a.p = start(t, "bootstrapd "+name, a.log, l.env.ip, "netns", "exec", ns, l.env.bin, "serve", "--config", a.config)
	dhcpUp := regexp.MustCompile(`msg=listening service=dhcp addr=\S+:67\b`)
	waitUntil(t, 30*time.Second, "appliance "+name+" to listen", a.p, a.log, func() bool {
		b, _ := os.ReadFile(a.log)
		if !dhcpUp.Match(b) {
			return false
		}
		_, err := a.cli(l, "list")
		return err == nil
	})
	return a
}

// cli runs `bootstrapd node ARGS...` against the appliance's admin socket.
func (a *appliance) cli(l *lab, args ...string) (string, error) {
	argv := append([]string{l.env.bin, "node", args[0], "--config", a.config}, args[1:]...)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, argv[0], argv[1:]...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("bootstrapd node %s (appliance %s): %w: %s", strings.Join(args, " "), a.name, err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// timeline reads mac's events through the appliance until one has stage last, and returns
// them as "stage@appliance ..." (each event names the appliance that saw it).
func (a *appliance) timeline(t *testing.T, l *lab, mac, last string) string {
	t.Helper()
	var s string
	waitFor(t, 20*time.Second, "timeline of "+mac+" through "+a.name+" to reach "+last, func() error {
		out, err := a.cli(l, "show", "--mac", mac, "--json")
		if err != nil {
			return err
		}
		var n struct {
			Events []struct {
				Stage     string `json:"stage"`
				Appliance string `json:"appliance"`
			} `json:"events"`
		}
		if err := json.Unmarshal([]byte(out), &n); err != nil {
			return fmt.Errorf("decode: %w: %s", err, out)
		}
		var parts []string
		found := false
		for _, e := range n.Events {
			if e.Appliance == "" {
				return fmt.Errorf("event %s names no appliance", e.Stage)
			}
			parts = append(parts, e.Stage+"@"+e.Appliance)
			found = found || e.Stage == last
		}
		s = strings.Join(parts, " ")
		if !found {
			return fmt.Errorf("no %s yet: %s", last, s)
		}
		return nil
	})
	return s
}

// waitFor retries check every 250 ms until it passes or d has passed.
func waitFor(t *testing.T, d time.Duration, what string, check func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s: %v", d, what, err)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

package e2e

import (
	"cmp"
	"context"
	"encoding/hex"
	"fmt"
	"net"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// stageWant is a boot event the timeline must hold: its stage, and a substring of its
// detail.
type stageWant struct{ stage, detail string }

// TestLANBoot boots VMs from the test LAN and checks the kernel command line each one
// prints, and the boot timeline bootstrapd recorded for its MAC.
func TestLANBoot(t *testing.T) {
	e := requireE2E(t)
	l := newLab(t, e)

	tests := []struct {
		name string
		fw   firmware
		// register: the node record exists before power-on. Otherwise the node must show
		// the waiting message with its MAC, and boot once the record is added, without a
		// power cycle.
		register bool
		// oldROM: the VM boots from qemu's NIC ROM, which must be an iPXE without HTTPS
		// (Debian's ipxe-qemu 2019 build) for the case to test what it claims.
		oldROM bool
		// console: what the serial console must show before the kernel, in order; {mac}
		// stands for the VM's MAC, {machyp} for it with hyphens (the <mac>/ prefix of the
		// boot file the ProxyDHCP hands out).
		console []string
		stages  []stageWant
		// pxeBlocked: the appliance drops TFTP and PXE's port 4011 during the case, so
		// OVMF's PXE option fails and its HTTP Boot option must start the boot.
		pxeBlocked bool
		// budget: how long the boot may take, when more than bootBudget's default.
		budget time.Duration
		// kernelConsole: the serial console of the node's kernel (ttyS0 when empty), put in
		// the record's args.
		kernelConsole string
		// efiBinary: the record's efi_binary (node add --efi-binary); empty: not given.
		efiBinary string
	}{
		{
			name:     "uefi-pxe",
			fw:       ovmf,
			register: true,
			// OVMF's own PXE client, not an option ROM, starts the boot.
			console: []string{
				`Start PXE over IPv4`,
				`NBP filename is {machyp}/ipxe-amd64\.efi`,
				`Filename: http://\S+/provision/{mac}`,
				`Zero-OS Kernel Boot Loader`,
				// ${buildarch} x86_64: the network's x86-64 kernel, beside an arm64 one.
				`Kernel\.+: http://\S+/kernel/net/test\.efi\s`,
			},
			stages: []stageWant{
				{"offer_binary", "ipxe-amd64.efi"},
				{"tftp_sent", "ipxe-amd64.efi"},
				{"offer_script", "/provision/"},
				{"script_served", "node"},
				{"kernel_requested", "net/test.efi"},
				{"kernel_sent", "net/test.efi"},
			},
		},
		{
			// The record asks for snponly.efi (a NIC iPXE's drivers do not run): OVMF
			// loads it over PXE, and it drives the NIC through OVMF's own driver.
			name:      "uefi-pxe-snponly",
			fw:        ovmf,
			register:  true,
			efiBinary: "snponly",
			console: []string{
				`Start PXE over IPv4`,
				`NBP filename is {machyp}/snponly\.efi`,
				`Filename: http://\S+/provision/{mac}`,
				`Zero-OS Kernel Boot Loader`,
				`Kernel\.+: http://\S+/kernel/net/test\.efi\s`,
			},
			stages: []stageWant{
				{"offer_binary", "snponly.efi"},
				{"tftp_sent", "snponly.efi"},
				{"offer_script", "/provision/"},
				{"script_served", "node"},
				{"kernel_requested", "net/test.efi"},
				{"kernel_sent", "net/test.efi"},
			},
		},
		{
			name:       "uefi-httpboot",
			fw:         ovmf,
			register:   true,
			pxeBlocked: true,
			// OVMF's PXE (v4, then v6) times out before its HTTP Boot option runs: about
			// two minutes under TCG, more on a loaded machine.
			budget: 6 * time.Minute,
			console: []string{
				`Start PXE over IPv4`,
				`Start HTTP Boot over IPv4`,
				`URI: http://\S+/boot/{machyp}/ipxe-amd64\.efi`,
				`Filename: http://\S+/provision/{mac}`,
				`Zero-OS Kernel Boot Loader`,
				`Kernel\.+: http://\S+/kernel/net/test\.efi\s`,
			},
			stages: []stageWant{
				{"offer_httpboot", "/boot/{machyp}/ipxe-amd64.efi"},
				{"offer_script", "/provision/"},
				{"script_served", "node"},
				{"kernel_requested", "net/test.efi"},
				{"kernel_sent", "net/test.efi"},
			},
		},
		{
			name:     "bios-old-ipxe-rom",
			fw:       seabios,
			register: true,
			oldROM:   true,
			// qemu's 2019 ROM first, then the catalogue's iPXE it was handed over TFTP.
			console: []string{
				`iPXE \(PCI [0-9a-f:.]+\) starting execution`,
				`Filename: {machyp}/undionly\.kpxe`,
				`PXE->EB: !PXE`,
				`Features: [^\n]*HTTPS`,
				`Filename: http://\S+/provision/{mac}`,
				`Zero-OS Kernel Boot Loader`,
				// undionly.kpxe is an i386 build: it boots the x86-64 kernel.
				`Kernel\.+: http://\S+/kernel/net/test\.efi\s`,
			},
			stages: []stageWant{
				{"offer_binary", "undionly.kpxe"},
				{"tftp_sent", "undionly.kpxe"},
				{"offer_script", "/provision/"},
				{"script_served", "node"},
				{"kernel_requested", "net/test.efi"},
				{"kernel_sent", "net/test.efi"},
			},
		},
		{
			name:          "arm64-uefi-pxe",
			fw:            aavmf,
			register:      true,
			kernelConsole: "ttyAMA0",
			// AAVMF under TCG emulates a whole arm64 CPU: slower than OVMF.
			budget: 8 * time.Minute,
			// AAVMF's own PXE client (NIC ROM off) asks with arch 0x0b and gets the arm64
			// iPXE, whose ${buildarch} picks the network's arm64 kernel.
			console: []string{
				`Start PXE over IPv4`,
				`NBP filename is {machyp}/ipxe-arm64\.efi`,
				`Filename: http://\S+/provision/{mac}`,
				`Zero-OS Kernel Boot Loader`,
				`Kernel\.+: http://\S+/kernel/net/test-arm64\.efi\s`,
			},
			stages: []stageWant{
				{"offer_binary", "ipxe-arm64.efi"},
				{"tftp_sent", "ipxe-arm64.efi"},
				{"offer_script", "/provision/"},
				{"script_served", "node"},
				{"kernel_requested", "net/test-arm64.efi"},
				{"kernel_sent", "net/test-arm64.efi"},
			},
		},
		{
			name:     "unregistered-waits",
			fw:       seabios,
			register: false,
			oldROM:   true,
			console: []string{
				`Filename: {machyp}/undionly\.kpxe`,
				`Filename: http://\S+/provision/{mac}`,
				`MAC {mac}\) has no boot record yet`,
				`Asking again in 5 seconds`,
				`Zero-OS Kernel Boot Loader`,
			},
			stages: []stageWant{
				{"offer_binary", "undionly.kpxe"},
				{"tftp_sent", "undionly.kpxe"},
				{"offer_script", "/provision/"},
				{"script_served", "wait"},
				{"script_served", "node"},
				{"kernel_requested", "net/test.efi"},
				{"kernel_sent", "net/test.efi"},
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			mac := randomMAC(t)
			token := hex.EncodeToString(randBytes(t, 8))
			kcon := cmp.Or(tc.kernelConsole, "ttyS0")
			add := func() {
				t.Helper()
				args := []string{"add", "--mac", mac, "--network", "test", "--farm", "42", "--args", "console=" + kcon + " e2e=" + token}
				if tc.efiBinary != "" {
					args = append(args, "--efi-binary", tc.efiBinary)
				}
				out, err := l.node(args...)
				if err != nil {
					t.Fatal(err)
				}
				t.Logf("node add: %s", strings.Join(strings.Fields(out), " "))
			}
			if tc.register {
				add()
			}

			if tc.pxeBlocked {
				l.blockPXE(t)
			}
			ctx, cancel := context.WithTimeout(context.Background(), bootBudget(t, tc.budget))
			defer cancel()
			v := l.boot(t, tc.name, tc.fw, mac)
			fw := tc.fw.String()
			if tc.pxeBlocked {
				fw = "OVMF (UEFI HTTP Boot: the appliance drops TFTP and port 4011)"
			}
			t.Logf("%s: %s, MAC %s, token %s", tc.name, fw, mac, token)
			t.Cleanup(func() {
				v.p.kill()
				if t.Failed() {
					t.Logf("serial console of %s (tail, up to the kernel's command line):\n%s", tc.name, v.consoleTail(60))
					l.dumpLogs(t)
				}
			})

			if !tc.register {
				waiting := regexp.MustCompile(`MAC ` + regexp.QuoteMeta(mac) + `\) has no boot record yet`)
				if _, err := v.waitConsole(ctx, waiting); err != nil {
					t.Fatalf("no waiting message with the MAC: %v", err)
				}
				t.Logf("%s: waiting message with the MAC on the console after %v", tc.name, since(v.started))
				add()
			}

			m, err := v.waitConsole(ctx, cmdlineRE)
			if err != nil {
				t.Fatalf("the kernel did not print its command line: %v", err)
			}
			took := since(v.started)
			v.p.kill()
			t.Logf("%s: kernel command line on the console %v after power-on: %s", tc.name, took, m[1])

			args := strings.Fields(m[1])
			for _, want := range []string{"runmode=test", "farmer_id=42", "e2e=" + token, "console=" + kcon} {
				if !slices.Contains(args, want) {
					t.Errorf("kernel command line %q lacks %q", m[1], want)
				}
			}
			console := v.console()
			if tc.oldROM {
				checkOldROM(t, console)
			}
			checkConsoleOrder(t, console, tc.console, mac)
			l.checkTimeline(t, v, tc.stages)
		})
	}
	// After every boot: the counters real firmware moved, read back from the scrape.
	httpBoots := 0
	for _, tc := range tests {
		if tc.pxeBlocked {
			httpBoots++
		}
	}
	t.Run("metrics", func(t *testing.T) { l.checkMetrics(t, len(tests), httpBoots) })
}

// cmdlineRE is the command line the kernel prints: "Command line:" early on x86,
// "Kernel command line:" on arm64 (x86 prints both).
var cmdlineRE = regexp.MustCompile(`(?:Kernel command line|Command line): ([^\n]*)\n`)

// checkConsoleOrder checks that each pattern appears on the console after the previous.
func checkConsoleOrder(t *testing.T, console string, patterns []string, mac string) {
	t.Helper()
	rest := console
	for _, p := range patterns {
		p = strings.ReplaceAll(p, "{mac}", regexp.QuoteMeta(mac))
		p = strings.ReplaceAll(p, "{machyp}", regexp.QuoteMeta(strings.ReplaceAll(mac, ":", "-")))
		loc := regexp.MustCompile(p).FindStringIndex(rest)
		if loc == nil {
			t.Errorf("console does not show %q (after the previous expected lines)", p)
			return
		}
		rest = rest[loc[1]:]
	}
}

// checkOldROM checks the premise of the old-ROM cases: the first iPXE on the console (qemu's
// NIC ROM) lacks HTTPS, so bootstrapd must hand it undionly.kpxe over TFTP first.
func checkOldROM(t *testing.T, console string) {
	t.Helper()
	m := regexp.MustCompile(`Features: ([^\n]*)`).FindStringSubmatch(console)
	if m == nil {
		t.Errorf("console shows no iPXE feature line from qemu's NIC ROM")
		return
	}
	if slices.Contains(strings.Fields(m[1]), "HTTPS") {
		t.Errorf("qemu's NIC ROM is an iPXE with HTTPS (%q): this case needs an old ROM without it, as Debian bookworm's ipxe-qemu (1.0.0+git-20190125)", m[1])
	}
}

// checkTimeline checks that bootstrapd recorded want, in order, for the VM's MAC, and logs
// the timeline relative to power-on. The timeline is written asynchronously, so it is read
// again for a few seconds.
// {machyp} in a detail stands for the MAC with hyphens.
func (l *lab) checkTimeline(t *testing.T, v *vm, want []stageWant) {
	t.Helper()
	want = slices.Clone(want)
	for i := range want {
		want[i].detail = strings.ReplaceAll(want[i].detail, "{machyp}", strings.ReplaceAll(v.mac, ":", "-"))
	}
	var evs []event
	var err error
	var missing stageWant
	ok := false
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(500 * time.Millisecond) {
		evs, err = l.events(v.mac)
		if err == nil {
			missing, ok = subsequence(evs, want)
			if ok {
				break
			}
		}
		if time.Now().After(deadline) {
			break
		}
	}
	if err != nil {
		t.Errorf("timeline: %v", err)
		return
	}
	var sb strings.Builder
	for _, e := range evs {
		// Details quote client messages, which may hold control characters (a TFTP error's NUL).
		detail := strings.Map(func(r rune) rune {
			if r < 0x20 || r == 0x7f {
				return -1
			}
			return r
		}, e.Detail)
		fmt.Fprintf(&sb, "\n\t%+7.1fs  %-18s %s", e.Time.Sub(v.started).Seconds(), e.Stage, detail)
	}
	t.Logf("%s: bootstrapd timeline for %s (seconds after power-on):%s", v.name, v.mac, sb.String())
	if !ok {
		t.Errorf("timeline lacks stage %q with detail containing %q (in this order: %v)", missing.stage, missing.detail, want)
	}
}

// subsequence reports whether want appears in evs in order, and else the first missing one.
func subsequence(evs []event, want []stageWant) (stageWant, bool) {
	i := 0
	for _, e := range evs {
		if i < len(want) && e.Stage == want[i].stage && strings.Contains(e.Detail, want[i].detail) {
			i++
		}
	}
	if i < len(want) {
		return want[i], false
	}
	return stageWant{}, true
}

// bootBudget is how long one boot may take: d, or 5 minutes when d is zero (OVMF PXE
// under TCG takes well under one), less when the go test -timeout is nearer, so the test
// fails with its logs rather than panicking without cleanup.
func bootBudget(t *testing.T, d time.Duration) time.Duration {
	if d == 0 {
		d = 5 * time.Minute
	}
	if dl, ok := t.Deadline(); ok {
		if left := time.Until(dl) - 30*time.Second; left < d {
			d = max(left, 10*time.Second)
		}
	}
	return d
}

// randomMAC returns a locally administered unicast MAC in qemu's 52:54:00 range.
func randomMAC(t *testing.T) string {
	b := randBytes(t, 3)
	return net.HardwareAddr{0x52, 0x54, 0x00, b[0], b[1], b[2]}.String()
}

func since(t0 time.Time) time.Duration { return time.Since(t0).Round(100 * time.Millisecond) }

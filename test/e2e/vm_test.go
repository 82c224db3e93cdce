package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

type firmware int

const (
	// seabios is qemu's default BIOS with qemu's own NIC option ROM (Debian ipxe-qemu, a
	// 2019 iPXE without HTTPS).
	seabios firmware = iota
	// ovmf is UEFI with the NIC option ROM off, so OVMF's own PXE client starts the boot.
	ovmf
	// aavmf is arm64 UEFI (qemu-system-aarch64, virt machine) with the NIC option ROM off:
	// AAVMF's own PXE client starts the boot.
	aavmf
)

func (f firmware) String() string {
	switch f {
	case ovmf:
		return "OVMF (UEFI PXE)"
	case aavmf:
		return "AAVMF (arm64 UEFI PXE)"
	}
	return "SeaBIOS + qemu iPXE ROM"
}

// vm is one qemu under TCG, its console on a serial log file.
type vm struct {
	name    string
	mac     string
	serial  string
	qemuLog string
	p       *proc
	started time.Time
}

// boot starts a VM that boots from its NIC on the lab's bridge.
func (l *lab) boot(t *testing.T, name string, fw firmware, mac string) *vm {
	t.Helper()
	tap := l.addTap(t)
	v := &vm{
		name:    name,
		mac:     mac,
		serial:  filepath.Join(l.out, name+".serial.log"),
		qemuLog: filepath.Join(l.out, name+".qemu.log"),
	}
	nic := "virtio-net-pci,netdev=n0,mac=" + mac + ",bootindex=1"
	if fw == aavmf {
		return l.bootArm64(t, v, tap, nic)
	}
	argv := []string{
		l.env.ip, "netns", "exec", l.lanNS, l.env.qemu,
		// KVM fails on these machines ("emulation failure"); TCG is slow but works.
		"-accel", "tcg", "-smp", "1", "-m", "512",
		// graphics=off: SeaBIOS copies the VGA text console (and with it the NIC ROM's iPXE)
		// to the serial port, where the test reads it.
		"-machine", "pc,graphics=off",
		"-nodefaults", "-no-user-config", "-display", "none", "-monitor", "none",
		"-serial", "file:" + v.serial,
		"-netdev", "tap,id=n0,ifname=" + tap + ",script=no,downscript=no",
	}
	if fw == ovmf {
		vars := l.varsCopy(t, name, l.env.ovmfVars)
		// An empty romfile removes qemu's iPXE EFI ROM, which would answer instead of OVMF.
		nic += ",romfile="
		argv = append(argv,
			"-drive", "if=pflash,format=raw,unit=0,readonly=on,file="+l.env.ovmfCode,
			"-drive", "if=pflash,format=raw,unit=1,file="+vars)
	}
	argv = append(argv, "-device", nic)
	v.started = time.Now()
	v.p = start(t, "qemu "+name, v.qemuLog, argv...)
	t.Cleanup(v.p.kill)
	return v
}

// bootArm64 starts an arm64 VM: qemu's virt machine with AAVMF as pflash (code read-only, a
// copy of the variable store), its console on the PL011 UART (ttyAMA0).
func (l *lab) bootArm64(t *testing.T, v *vm, tap, nic string) *vm {
	t.Helper()
	vars := l.varsCopy(t, v.name, l.env.aavmfVars)
	argv := []string{
		l.env.ip, "netns", "exec", l.lanNS, l.env.qemuArm,
		"-accel", "tcg", "-machine", "virt", "-cpu", "cortex-a57", "-smp", "1", "-m", "1024",
		"-nodefaults", "-no-user-config", "-display", "none", "-monitor", "none",
		"-serial", "file:" + v.serial,
		"-drive", "if=pflash,format=raw,unit=0,readonly=on,file=" + l.env.aavmfCode,
		"-drive", "if=pflash,format=raw,unit=1,file=" + vars,
		"-netdev", "tap,id=n0,ifname=" + tap + ",script=no,downscript=no",
		// An empty romfile removes qemu's iPXE EFI ROM, which would answer instead of AAVMF.
		"-device", nic + ",romfile=",
	}
	v.started = time.Now()
	v.p = start(t, "qemu "+v.name, v.qemuLog, argv...)
	t.Cleanup(v.p.kill)
	return v
}

// varsCopy gives a VM its own copy of a UEFI variable store template, which the firmware
// writes to.
func (l *lab) varsCopy(t *testing.T, name, template string) string {
	t.Helper()
	vars := filepath.Join(l.dir, name+".VARS.fd")
	b, err := os.ReadFile(template)
	if err != nil {
		t.Fatalf("UEFI vars: %v", err)
	}
	if err := os.WriteFile(vars, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return vars
}

// console returns the serial log so far, without escape sequences.
func (v *vm) console() string {
	b, _ := os.ReadFile(v.serial)
	return cleanConsole(b)
}

// waitConsole polls the serial log until re matches, and returns the submatches.
func (v *vm) waitConsole(ctx context.Context, re *regexp.Regexp) ([]string, error) {
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		if m := re.FindStringSubmatch(v.console()); m != nil {
			return m, nil
		}
		if v.p.exited() {
			// One last look: qemu may have written the line and then stopped.
			if m := re.FindStringSubmatch(v.console()); m != nil {
				return m, nil
			}
			return nil, fmt.Errorf("qemu exited (%v) before the console showed %q; qemu log:\n%s", v.p.err, re, tail(v.qemuLog, 20))
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("the console did not show %q within %v", re, time.Since(v.started).Round(time.Second))
		case <-tick.C:
		}
	}
}

// consoleTail returns the last n non-empty console lines up to the kernel's command line:
// what comes after it is the kernel's own boot log, of no help in finding what failed.
func (v *vm) consoleTail(n int) string {
	c := v.console()
	if loc := cmdlineRE.FindStringIndex(c); loc != nil {
		i := loc[0]
		if j := strings.IndexByte(c[i:], '\n'); j >= 0 {
			c = c[:i+j]
		}
	}
	var keep []string
	for _, l := range strings.Split(c, "\n") {
		if strings.TrimSpace(l) != "" {
			keep = append(keep, l)
		}
	}
	if len(keep) > n {
		keep = keep[len(keep)-n:]
	}
	return strings.Join(keep, "\n")
}

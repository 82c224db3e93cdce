package ipxe

import (
	"bytes"
	"cmp"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

func testScripts(t testing.TB) *Scripts {
	t.Helper()
	s, err := NewScripts(ScriptConfig{BaseArgs: "nomodeset panic=7200", NTPServer: "pool.ntp.org", RetrySeconds: 30})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./ipxe -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s differs from the golden file; run go test ./ipxe -update and review the diff.\ngot:\n%s", name, got)
	}
}

func TestScriptsGolden(t *testing.T) {
	s := testScripts(t)
	boot, err := s.Render(Boot{Network: "test", NetworkName: "testing (v3)", Farm: 42,
		Args: "console=ttyS0 zos-debug", KernelURL: "http://10.0.0.1:8080/kernel/net/test.efi"})
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "boot.ipxe", boot)
	// Both default kernels: the script picks one by ${buildarch}.
	arches, err := s.Render(Boot{Network: "test", NetworkName: "testing (v3)", Farm: 42, Args: "console=ttyAMA0",
		KernelURL: "http://10.0.0.1:8080/kernel/net/test.efi", KernelURLArm64: "http://10.0.0.1:8080/kernel/net/test-arm64.efi"})
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "boot-arches.ipxe", arches)
	// Only an arm64 kernel: x86 iPXE is told how to set one.
	arm, err := s.Render(Boot{Network: "test", NetworkName: "testing (v3)", Farm: 42,
		KernelURLArm64: "http://10.0.0.1:8080/kernel/net/test-arm64.efi"})
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "boot-arm64-only.ipxe", arm)
	// A node's own kernel boots on any architecture: no choice in the script.
	own, err := s.Render(Boot{Network: "test", NetworkName: "testing (v3)", Farm: 42,
		KernelURL: "http://10.0.0.1:8080/kernel/zos-v3.efi", KernelURLArm64: "http://10.0.0.1:8080/kernel/zos-v3.efi"})
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "boot-own-kernel.ipxe", own)
	wait, err := s.Wait("52:54:00:aa:bb:cc", "http://10.0.0.1:8080/provision/52:54:00:aa:bb:cc")
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "wait.ipxe", wait)
	prov, err := s.Provision("https://boot.example.org/")
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "provision.ipxe", prov)
}

func TestCmdline(t *testing.T) {
	tests := map[string]struct {
		boot         Boot
		base, suffix string
		want         string
	}{
		"defaults":       {Boot{Network: "prod", Farm: 1}, "nomodeset panic=7200", "", "nomodeset panic=7200 version=v3 runmode=prod farmer_id=1"},
		"operator last":  {Boot{Network: "prod", Farm: 7, Args: "panic=0 console=ttyS0"}, "nomodeset panic=7200", "", "nomodeset panic=7200 version=v3 runmode=prod farmer_id=7 panic=0 console=ttyS0"},
		"extra":          {Boot{Network: "dev", Farm: 5550, Args: "console=ttyS0  x=1"}, "", "", "version=v3 runmode=dev farmer_id=5550 console=ttyS0 x=1"},
		"no farm":        {Boot{Network: "qa"}, "", "", "version=v3 runmode=qa"},
		"legacy suffix":  {Boot{Network: "qa", Farm: 2, Args: "panic=0"}, "nomodeset", "panic=7200", "nomodeset version=v3 runmode=qa farmer_id=2 panic=0 panic=7200"},
		"spaces in base": {Boot{Network: "test", Farm: 3}, "  nomodeset   quiet ", "", "nomodeset quiet version=v3 runmode=test farmer_id=3"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			s, err := NewScripts(ScriptConfig{BaseArgs: tc.base, ArgsSuffix: tc.suffix})
			if err != nil {
				t.Fatal(err)
			}
			if got := s.Cmdline(tc.boot); got != tc.want {
				t.Fatalf("Cmdline = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestRenderRefusesUnsafe(t *testing.T) {
	ok := Boot{Network: "test", NetworkName: "testing", Farm: 1, KernelURL: "http://10.0.0.1/kernel/net/test.efi"}
	tests := map[string]func(b *Boot){
		"newline in args":     func(b *Boot) { b.Args = "a\nchain http://evil/" },
		"settings expansion":  func(b *Boot) { b.Args = "x=${net0/ip}" },
		"or":                  func(b *Boot) { b.Args = "a || reboot" },
		"and":                 func(b *Boot) { b.Args = "a && reboot" },
		"semicolon":           func(b *Boot) { b.Args = "a; reboot" },
		"quote":               func(b *Boot) { b.Args = `a="b c"` },
		"network with space":  func(b *Boot) { b.Network = "te st" },
		"network upper":       func(b *Boot) { b.Network = "Test" },
		"display newline":     func(b *Boot) { b.NetworkName = "x\nreboot" },
		"url with space":      func(b *Boot) { b.KernelURL = "http://10.0.0.1/a b" },
		"url with expansion":  func(b *Boot) { b.KernelURL = "http://10.0.0.1/${x}" },
		"url not http":        func(b *Boot) { b.KernelURL = "tftp://10.0.0.1/k" },
		"url relative":        func(b *Boot) { b.KernelURL = "/kernel/x" },
		"args too long":       func(b *Boot) { b.Args = strings.Repeat("a", MaxArgsLen+1) },
		"non-ascii in args":   func(b *Boot) { b.Args = "é" },
		"control char":        func(b *Boot) { b.Args = "a\x1bb" },
		"hash comment":        func(b *Boot) { b.Args = "a #b" },
		"backslash escapes":   func(b *Boot) { b.Args = `a\nb` },
		"url with newline":    func(b *Boot) { b.KernelURL = "http://10.0.0.1/k\nreboot" },
		"url with semicolon":  func(b *Boot) { b.KernelURL = "http://10.0.0.1/k;reboot" },
		"arm64 url unsafe":    func(b *Boot) { b.KernelURLArm64 = "http://10.0.0.1/k\nreboot" },
		"arm64 url expansion": func(b *Boot) { b.KernelURLArm64 = "http://10.0.0.1/${x}" },
		"display with dollar": func(b *Boot) { b.NetworkName = "${x}" },
	}
	s := testScripts(t)
	if _, err := s.Render(ok); err != nil {
		t.Fatalf("baseline: %v", err)
	}
	for name, mutate := range tests {
		t.Run(name, func(t *testing.T) {
			b := ok
			mutate(&b)
			if out, err := s.Render(b); !errors.Is(err, ErrUnsafe) {
				t.Fatalf("Render = %q, %v; want ErrUnsafe", out, err)
			}
		})
	}
}

// FuzzRender: any args Render accepts end up as plain words on the imgfetch line: the script
// keeps the template's line count, and the args contribute no iPXE syntax.
func FuzzRender(f *testing.F) {
	for _, s := range []string{"console=ttyS0", "a b  c", "${x}", "a\nb", "a||b", "x;y", `"q"`, "", "zos-debug ssh-key=AAAA+/=="} {
		f.Add(s)
	}
	s := testScripts(f)
	base, err := s.Render(Boot{Network: "test", NetworkName: "t", Farm: 1, KernelURL: "http://h/k"})
	if err != nil {
		f.Fatal(err)
	}
	lines := bytes.Count(base, []byte("\n"))
	f.Fuzz(func(t *testing.T, args string) {
		out, err := s.Render(Boot{Network: "test", NetworkName: "t", Farm: 1, Args: args, KernelURL: "http://h/k"})
		if err != nil {
			if !errors.Is(err, ErrUnsafe) {
				t.Fatalf("unexpected error kind: %v", err)
			}
			return
		}
		if n := bytes.Count(out, []byte("\n")); n != lines {
			t.Fatalf("args %q changed the line count: %d, want %d", args, n, lines)
		}
		for _, bad := range []string{"${", "||", "&&", ";", "\r", "\"", "'", "\\", "#"} {
			if strings.Contains(args, bad) {
				t.Fatalf("args %q with %q were accepted", args, bad)
			}
		}
	})
}

func FuzzValidateKernel(f *testing.F) {
	for _, s := range []string{"net/prod.efi", "zos-v3.4.efi", "../etc/passwd", "/abs", "a//b", "a/./b", "a/..b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if ValidateKernel(s) != nil {
			return
		}
		if filepath.IsAbs(s) || filepath.Clean(s) != s || strings.HasPrefix(filepath.Clean(s), "..") {
			t.Fatalf("kernel %q accepted but it is not a clean relative path", s)
		}
		for _, part := range strings.Split(s, "/") {
			if strings.HasPrefix(part, ".") {
				t.Fatalf("kernel %q accepted with a dot component", s)
			}
		}
	})
}

func TestParseFarm(t *testing.T) {
	for in, want := range map[string]uint64{"1": 1, "42": 42, "18446744073709551615": 1<<64 - 1} {
		if got, err := ParseFarm(in); err != nil || got != want {
			t.Errorf("ParseFarm(%q) = %d, %v", in, got, err)
		}
	}
	for _, in := range []string{"0", "-1", "+1", "1.5", "", "0x10", "18446744073709551616", "1 "} {
		if _, err := ParseFarm(in); !errors.Is(err, ErrUnsafe) {
			t.Errorf("ParseFarm(%q) accepted", in)
		}
	}
}

// With a syslog server configured, the boot script sets iPXE's syslog first thing; without
// one it does not mention it (the golden scripts). Anything but an IPv4 address is refused.
func TestScriptSyslog(t *testing.T) {
	tests := map[string]struct {
		syslog, want, err string
	}{
		"off":       {"", "", ""},
		"ipv4":      {"10.0.0.2", "#!ipxe\n# iPXE copies its console to the appliance's syslog receiver from here on (builds with it).\nset syslog 10.0.0.2\nset esc:hex 1b\n", ""},
		"ipv6":      {"fd00::1", "", "not an IPv4 address"},
		"name":      {"boot.lan", "", "not an IPv4 address"},
		"injection": {"10.0.0.2\nreboot", "", "not an IPv4 address"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			s, err := NewScripts(ScriptConfig{Syslog: tc.syslog})
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("NewScripts: %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			b, err := s.Render(Boot{Network: "test", NetworkName: "testing (v3)", Farm: 1, KernelURL: "http://10.0.0.2:8080/kernel/net/test.efi"})
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.Contains(string(b), "syslog"); got != (tc.want != "") || !strings.HasPrefix(string(b), cmp.Or(tc.want, "#!ipxe\nset esc:hex 1b\n")) {
				t.Errorf("script starts:\n%.200s", b)
			}
		})
	}
}

func TestTemplateSlots(t *testing.T) {
	for _, tc := range []struct {
		text   string
		values map[string]string
		want   string
		err    bool
	}{
		{"a{{x}}b{{y}}c", map[string]string{"x": "1", "y": "2"}, "a1b2c", false},
		{"{{x}}{{x}}", map[string]string{"x": "${net0/mac}"}, "${net0/mac}${net0/mac}", false},
		{"no slots ${x}", nil, "no slots ${x}", false},
		{"a{{x}}b", map[string]string{"y": "1"}, "", true},             // a slot without a value is an error, not ""
		{"a{{x}}b", map[string]string{"x": "{{x}}"}, "a{{x}}b", false}, // values are not parsed again
	} {
		got, err := parseTemplate("t", tc.text).render(tc.values)
		if (err != nil) != tc.err || string(got) != tc.want {
			t.Errorf("%q with %v = %q, %v; want %q, error %v", tc.text, tc.values, got, err, tc.want, tc.err)
		}
	}
	// Every slot of the shipped scripts is filled: a slot left unfilled fails the golden test
	// with an error, and none is left in the output.
	s := testScripts(t)
	b, err := s.Render(Boot{Network: "test", NetworkName: "t", Farm: 1, KernelURL: "http://a/k"})
	if err != nil || bytes.Contains(b, []byte("{{")) {
		t.Fatalf("render: %v\n%s", err, b)
	}
}

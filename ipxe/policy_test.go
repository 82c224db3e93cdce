package ipxe

import (
	"errors"
	"strings"
	"testing"
)

// kernelFiles is a KernelSet of the names it holds.
type kernelFiles map[string]bool

func (k kernelFiles) Exists(name string) bool { return k[name] }

func testPolicy(t *testing.T) Policy {
	return Policy{
		Scripts:  testScripts(t),
		Networks: map[string]string{"prod": "production (v3)", "test": "testing (v3)", "arm": "arm only", "both": "both arches"},
		Kernels: kernelFiles{"net/test.efi": true, "zos-v3.efi": true, "net/arm-arm64.efi": true,
			"net/both.efi": true, "net/both-arm64.efi": true},
		Base: "http://boot.lan:8080/",
	}
}

func TestPolicyBoot(t *testing.T) {
	tests := map[string]struct {
		req  BootRequest
		err  error
		want string // in the script
		not  string // not in the script ("": no check)
	}{
		"both defaults":        {BootRequest{Network: "both", Farm: 1}, nil, "iseq ${buildarch} arm64 && set kernel http://boot.lan:8080/kernel/net/both-arm64.efi || set kernel http://boot.lan:8080/kernel/net/both.efi\n", "goto no_kernel\n"},
		"no arm64 kernel":      {BootRequest{Network: "test", Farm: 1}, nil, "iseq ${buildarch} arm64 && goto no_kernel || set kernel http://boot.lan:8080/kernel/net/test.efi\n", "-arm64.efi"},
		"arm64 told the fix":   {BootRequest{Network: "test", Farm: 1}, nil, "bootstrapd kernel default --network test --arch arm64 --name KERNEL", ""},
		"only arm64 kernel":    {BootRequest{Network: "arm", Farm: 1}, nil, "iseq ${buildarch} arm64 && set kernel http://boot.lan:8080/kernel/net/arm-arm64.efi || goto no_kernel\n", "net/arm.efi"},
		"only arm64, x86 told": {BootRequest{Network: "arm", Farm: 1}, nil, "bootstrapd kernel default --network arm --name KERNEL", "--arch"},
		"override on any arch": {BootRequest{Network: "both", Farm: 1, Kernel: "zos-v3.efi"}, nil, "set kernel http://boot.lan:8080/kernel/zos-v3.efi\n", "buildarch"},
		"chosen one fetched":   {BootRequest{Network: "both", Farm: 1}, nil, "imgfetch --name zos ${kernel}?mac=", ""},
		"network default":      {BootRequest{Network: "test", Farm: 42}, nil, "set kernel http://boot.lan:8080/kernel/net/test.efi\n", ""},
		"kernel override":      {BootRequest{Network: "test", Farm: 42, Kernel: "zos-v3.efi"}, nil, "set kernel http://boot.lan:8080/kernel/zos-v3.efi\n", ""},
		"args":                 {BootRequest{Network: "test", Farm: 42, Args: "console=ttyS0"}, nil, "nomodeset panic=7200 version=v3 runmode=test farmer_id=42 console=ttyS0\n", ""},
		"display name":         {BootRequest{Network: "test"}, nil, "testing (v3)", ""},
		"unknown network":      {BootRequest{Network: "mainnet"}, ErrUnknownNetwork, "", ""},
		"no default link":      {BootRequest{Network: "prod"}, ErrNoKernel, "", ""},
		"missing override":     {BootRequest{Network: "test", Kernel: "nope.efi"}, ErrNoKernel, "", ""},
		"unsafe kernel":        {BootRequest{Network: "test", Kernel: "../etc/passwd"}, ErrUnsafe, "", ""},
		"unsafe args":          {BootRequest{Network: "test", Args: "a;reboot"}, ErrUnsafe, "", ""},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			script, err := testPolicy(t).Boot(tc.req)
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Fatalf("Boot = %v, want %v", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(string(script), tc.want) {
				t.Fatalf("script lacks %q:\n%s", tc.want, script)
			}
			if tc.not != "" && strings.Contains(string(script), tc.not) {
				t.Fatalf("script holds %q:\n%s", tc.not, script)
			}
		})
	}
}

func TestDefaultKernels(t *testing.T) {
	k := kernelFiles{"net/test.efi": true, "net/both.efi": true, "net/both-arm64.efi": true, "net/arm-arm64.efi": true}
	tests := map[string]struct {
		network, x86, arm64 string
		err                 error
	}{
		"x86 only":   {"test", "net/test.efi", "", nil},
		"both":       {"both", "net/both.efi", "net/both-arm64.efi", nil},
		"arm64 only": {"arm", "", "net/arm-arm64.efi", nil},
		"neither":    {"prod", "", "", ErrNoKernel},
		"unsafe":     {"../x", "", "", ErrUnsafe},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			x86, arm64, err := DefaultKernels(k, tc.network)
			if !errors.Is(err, tc.err) || (tc.err == nil) != (err == nil) {
				t.Fatalf("DefaultKernels(%s) = %v, want %v", tc.network, err, tc.err)
			}
			if x86 != tc.x86 || arm64 != tc.arm64 {
				t.Fatalf("DefaultKernels(%s) = %q, %q; want %q, %q", tc.network, x86, arm64, tc.x86, tc.arm64)
			}
		})
	}
	// The error names both links, never the directory.
	if _, _, err := DefaultKernels(k, "prod"); err == nil || err.Error() != "kernel file not found: net/prod.efi (nor net/prod-arm64.efi)" {
		t.Fatalf("DefaultKernels(prod) = %v", err)
	}
}

func TestParseArch(t *testing.T) {
	for in, want := range map[string]string{"": ArchX86, "x86_64": ArchX86, "amd64": ArchX86, "AMD64": ArchX86,
		"arm64": ArchARM64, "aarch64": ArchARM64} {
		if got, err := ParseArch(in); err != nil || got != want {
			t.Errorf("ParseArch(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"i386", "riscv64", "arm", "arm64\n", "${buildarch}"} {
		if got, err := ParseArch(in); !errors.Is(err, ErrUnsafe) {
			t.Errorf("ParseArch(%q) = %q, %v; want ErrUnsafe", in, got, err)
		}
	}
}

func TestCheckNetworkNames(t *testing.T) {
	if err := CheckNetworkNames(map[string]string{"prod": "", "prod-x": "", "arm64": ""}); err != nil {
		t.Fatalf("distinct links refused: %v", err)
	}
	err := CheckNetworkNames(map[string]string{"prod": "", "prod-arm64": ""})
	if err == nil || !strings.Contains(err.Error(), "net/prod-arm64.efi") {
		t.Fatalf("colliding links: %v", err)
	}
}

// The error of a missing kernel names the file, never where the kernels directory is.
func TestKernelFor(t *testing.T) {
	k := kernelFiles{"net/test.efi": true}
	if name, err := KernelFor(k, "test", ""); err != nil || name != "net/test.efi" {
		t.Fatalf("KernelFor = %q, %v", name, err)
	}
	_, err := KernelFor(k, "prod", "")
	if !errors.Is(err, ErrNoKernel) || err.Error() != "kernel file not found: net/prod.efi" {
		t.Fatalf("KernelFor(prod) = %v", err)
	}
	if _, err := KernelFor(nil, "test", ""); !errors.Is(err, ErrNoKernel) {
		t.Fatalf("KernelFor without kernels = %v", err)
	}
}

func TestPolicyProvision(t *testing.T) {
	const mac = "52:54:00:12:34:56"
	lookupFailed := errors.New("bbolt: read failed")
	tests := map[string]struct {
		rec       *BootRequest
		lookupErr error
		def       BootRequest
		kind      Kind
		reason    error // nil: none
		want      string
	}{
		"record":                  {&BootRequest{Network: "test", Farm: 42, Args: "a=1"}, nil, BootRequest{}, KindNode, nil, "runmode=test farmer_id=42 a=1"},
		"record over default":     {&BootRequest{Network: "test", Farm: 42}, nil, BootRequest{Network: "test", Farm: 7}, KindNode, nil, "farmer_id=42"},
		"no record, default":      {nil, nil, BootRequest{Network: "test", Farm: 7, Args: "d=1"}, KindDefault, nil, "runmode=test farmer_id=7 d=1"},
		"no record, no default":   {nil, nil, BootRequest{}, KindWait, nil, "chain --replace --autofree http://boot.lan:8080/provision/" + mac},
		"record, removed network": {&BootRequest{Network: "qa", Farm: 1}, nil, BootRequest{Network: "test", Farm: 7}, KindWait, ErrUnknownNetwork, "has no boot record"},
		"record, missing kernel":  {&BootRequest{Network: "test", Farm: 1, Kernel: "gone.efi"}, nil, BootRequest{}, KindWait, ErrNoKernel, "sleep 30"},
		"default, missing kernel": {nil, nil, BootRequest{Network: "prod", Farm: 7}, KindWait, ErrNoKernel, "MAC " + mac},
		"lookup fails":            {nil, lookupFailed, BootRequest{Network: "test", Farm: 7}, KindWait, lookupFailed, "has no boot record"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			p := testPolicy(t)
			p.Default = tc.def
			d, err := p.Provision(mac, tc.rec, tc.lookupErr)
			if err != nil {
				t.Fatal(err)
			}
			if d.Kind != tc.kind {
				t.Errorf("kind %s, want %s", d.Kind, tc.kind)
			}
			if (tc.reason == nil) != (d.Reason == nil) || (tc.reason != nil && !errors.Is(d.Reason, tc.reason)) {
				t.Errorf("reason %v, want %v", d.Reason, tc.reason)
			}
			if !strings.Contains(string(d.Script), tc.want) {
				t.Errorf("script lacks %q:\n%s", tc.want, d.Script)
			}
		})
	}
}

// A MAC that cannot even get the wait script (an unusable base URL) is an error: there is
// no script to answer with.
func TestPolicyProvisionNoScript(t *testing.T) {
	p := testPolicy(t)
	p.Base = "not a url"
	if _, err := p.Provision("52:54:00:12:34:56", nil, nil); !errors.Is(err, ErrUnsafe) {
		t.Fatalf("Provision = %v, want ErrUnsafe", err)
	}
}

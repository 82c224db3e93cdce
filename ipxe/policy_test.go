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
		Networks: map[string]string{"prod": "production (v3)", "test": "testing (v3)"},
		Kernels:  kernelFiles{"net/test.efi": true, "zos-v3.efi": true},
		Base:     "http://boot.lan:8080/",
	}
}

func TestPolicyBoot(t *testing.T) {
	tests := map[string]struct {
		req  BootRequest
		err  error
		want string // in the script
	}{
		"network default":  {BootRequest{Network: "test", Farm: 42}, nil, "http://boot.lan:8080/kernel/net/test.efi?mac="},
		"kernel override":  {BootRequest{Network: "test", Farm: 42, Kernel: "zos-v3.efi"}, nil, "http://boot.lan:8080/kernel/zos-v3.efi?mac="},
		"args":             {BootRequest{Network: "test", Farm: 42, Args: "console=ttyS0"}, nil, "nomodeset panic=7200 version=v3 runmode=test farmer_id=42 console=ttyS0\n"},
		"display name":     {BootRequest{Network: "test"}, nil, "testing (v3)"},
		"unknown network":  {BootRequest{Network: "mainnet"}, ErrUnknownNetwork, ""},
		"no default link":  {BootRequest{Network: "prod"}, ErrNoKernel, ""},
		"missing override": {BootRequest{Network: "test", Kernel: "nope.efi"}, ErrNoKernel, ""},
		"unsafe kernel":    {BootRequest{Network: "test", Kernel: "../etc/passwd"}, ErrUnsafe, ""},
		"unsafe args":      {BootRequest{Network: "test", Args: "a;reboot"}, ErrUnsafe, ""},
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
		})
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

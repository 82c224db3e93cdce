package httpd

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/threefoldtech/bootstrapd/ipxe"
)

func TestParseBootPath(t *testing.T) {
	tests := map[string]struct {
		in   string
		want ipxe.BootRequest
		err  error
	}{
		"network":       {in: "prod", want: ipxe.BootRequest{Network: "prod"}},
		"farm":          {in: "prod/1234", want: ipxe.BootRequest{Network: "prod", Farm: 1234}},
		"extra":         {in: "/test/5550/console=ttyS0", want: ipxe.BootRequest{Network: "test", Farm: 5550, Args: "console=ttyS0"}},
		"slash marker":  {in: "test/1/a=___b___c", want: ipxe.BootRequest{Network: "test", Farm: 1, Args: "a=/b/c"}},
		"kernel":        {in: "test/1/x/zos.efi", want: ipxe.BootRequest{Network: "test", Farm: 1, Args: "x", Kernel: "zos.efi"}},
		"kernel subdir": {in: "test/1/x/net/prod.efi", want: ipxe.BootRequest{Network: "test", Farm: 1, Args: "x", Kernel: "net/prod.efi"}},
		"empty args":    {in: "test/1//zos.efi", want: ipxe.BootRequest{Network: "test", Farm: 1, Kernel: "zos.efi"}},
		"empty":         {in: "", err: ipxe.ErrUnsafe},
		"unknown":       {in: "mainnet", err: ipxe.ErrUnknownNetwork},
		"farm word":     {in: "test/abc", err: ipxe.ErrUnsafe},
		"kernel dotdot": {in: "test/1/x/../../etc/passwd", err: ipxe.ErrUnsafe},
		"args expand":   {in: "test/1/${x}", err: ipxe.ErrUnsafe},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := ParseBootPath(tc.in, testNetworks)
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Fatalf("err = %v, want %v", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Fatalf("(-want +got):\n%s", diff)
			}
		})
	}
}

// FuzzParseBootPath: accepted requests hold only values that are safe in a script and a path.
func FuzzParseBootPath(f *testing.F) {
	for _, s := range []string{"prod", "test/1", "test/1/console=ttyS0___x", "test/1/a/b/c", "test/0", "x/../..", "test/1/${a}"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, path string) {
		r, err := ParseBootPath(path, testNetworks)
		if err != nil {
			return
		}
		if _, ok := testNetworks[r.Network]; !ok {
			t.Fatalf("%q: network %q accepted", path, r.Network)
		}
		if ipxe.ValidateArgs(r.Args) != nil || (r.Kernel != "" && ipxe.ValidateKernel(r.Kernel) != nil) {
			t.Fatalf("%q: unsafe request accepted: %+v", path, r)
		}
		if strings.ContainsAny(r.Args, "\n$;|&") {
			t.Fatalf("%q: args %q", path, r.Args)
		}
	})
}

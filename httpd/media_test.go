package httpd

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/threefoldtech/bootstrapd/ipxe/media"
)

// fakeMedia records what it was asked to build and answers err when set.
type fakeMedia struct {
	err    error
	kind   media.Kind
	script []byte
	arch   media.Arch
}

func (f *fakeMedia) Build(_ context.Context, kind media.Kind, script []byte, opts media.Options) (*media.Medium, error) {
	f.kind, f.script, f.arch = kind, script, opts.Arch
	return nil, f.err
}

func TestMediaErrors(t *testing.T) {
	t.Run("not configured", func(t *testing.T) {
		f := newFixture(t, func(c *Config) { c.MediaErr = fmt.Errorf("paths.isolinux: %w", os.ErrNotExist) })
		code, _, body := get(t, f.base+"/iso/test/42")
		if code != 503 || !strings.Contains(body, "paths.isolinux") {
			t.Fatalf("%d %q", code, body)
		}
	})
	fm := &fakeMedia{}
	f := newFixture(t, func(c *Config) { c.Media = fm })
	for _, tc := range []struct {
		path string
		err  error
		code int
		want string
	}{
		{"/iso/mainnet/1", nil, 404, "unknown network"},
		{"/usb/test/1/a;b", nil, 400, "interpreted by iPXE"},
		{"/krn/test/1/x/missing.efi", nil, 404, "kernel file not found"},
		{"/uefi/test/1?arch=mips", nil, 400, "arch=amd64 or arch=arm64"},
		{"/uefi/test/1", fmt.Errorf("wrapped: %w", media.ErrScriptTooLong), 413, "shorten"},
		{"/uefimg/test/1", media.ErrBadScript, 400, "plain-ASCII"},
		{"/uefi-generic", media.ErrUnavailable, 503, "not configured"},
		{"/krn-provision", fmt.Errorf("disk on fire"), 500, "could not build"},
		{"/snponly/test/1?arch=arm64", fmt.Errorf("%w: snponly.efi exists for amd64 only", media.ErrUnknownArch), 400, "amd64 only"},
		{"/snponly/", nil, 400, "network"},
		{"/snponly/mainnet", nil, 404, "unknown network"},
	} {
		fm.err = tc.err
		code, _, body := get(t, f.base+tc.path)
		if code != tc.code || !strings.Contains(body, tc.want) {
			t.Errorf("GET %s = %d %q, want %d containing %q", tc.path, code, body, tc.code, tc.want)
		}
	}
	// What reaches the builder: the /ipxe/ script for the same arguments, the kind and arch.
	fm.err = fmt.Errorf("stop here")
	get(t, f.base+"/uefi/test/42/console=ttyS0?arch=arm64")
	_, _, script := get(t, f.base+"/ipxe/test/42/console=ttyS0")
	if fm.kind != media.KindUEFI || fm.arch != media.ArchARM64 || string(fm.script) != script {
		t.Fatalf("builder got kind %s arch %s script\n%s", fm.kind, fm.arch, fm.script)
	}
	get(t, f.base+"/snponly/test/42/console=ttyS0")
	if fm.kind != media.KindSNPOnly || string(fm.script) != script {
		t.Fatalf("snponly: builder got kind %s script\n%s", fm.kind, fm.script)
	}
	get(t, f.base+"/krn-generic")
	if fm.kind != media.KindKRN || len(fm.script) != 0 {
		t.Fatalf("generic: kind %s, script %q", fm.kind, fm.script)
	}
	get(t, f.base+"/uefi-provision")
	if fm.kind != media.KindUEFI || !strings.Contains(string(fm.script), f.base+"/provision/${net${idx}/mac:hexhyp}") {
		t.Fatalf("provision: kind %s, script\n%s", fm.kind, fm.script)
	}
}

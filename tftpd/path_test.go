package tftpd

import (
	"errors"
	"io/fs"
	"slices"
	"strings"
	"testing"
)

func TestParsePath(t *testing.T) {
	tests := map[string]struct {
		in     string
		want   string
		mac    string // the MAC of an accepted <mac>/<file>
		reason string // "" = accepted
	}{
		"mac prefix":           {in: "52-54-00-12-34-56/ipxe-amd64.efi", want: "ipxe-amd64.efi", mac: "52:54:00:12:34:56"},
		"mac prefix colons":    {in: "52:54:00:12:34:56/undionly.kpxe", want: "undionly.kpxe", mac: "52:54:00:12:34:56"},
		"mac prefix upper":     {in: "52-54-00-AB-CD-EF/undionly.kpxe", want: "undionly.kpxe", mac: "52:54:00:ab:cd:ef"},
		"mac then traversal":   {in: "52-54-00-12-34-56/../etc/passwd", reason: reasonTraversal},
		"mac then directory":   {in: "52-54-00-12-34-56/a/b", reason: reasonDirectory},
		"mac then nothing":     {in: "52-54-00-12-34-56/", reason: reasonDirectory},
		"not a mac prefix":     {in: "52-54-00-12-34/undionly.kpxe", reason: reasonDirectory},
		"bios binary":          {in: "undionly.kpxe", want: "undionly.kpxe"},
		"efi binary":           {in: "ipxe-amd64.efi", want: "ipxe-amd64.efi"},
		"unknown bare name":    {in: "pxelinux.0", want: "pxelinux.0"},
		"dots inside name":     {in: "a..b", want: "a..b"},
		"leading dots name":    {in: "..foo", want: "..foo"},
		"utf-8 name":           {in: "ñ.efi", want: "ñ.efi"},
		"255 bytes":            {in: strings.Repeat("a", 255), want: strings.Repeat("a", 255)},
		"empty":                {in: "", reason: reasonEmpty},
		"256 bytes":            {in: strings.Repeat("a", 256), reason: reasonInvalid},
		"NUL":                  {in: "undionly.kpxe\x00../etc/passwd", reason: reasonInvalid},
		"only NUL":             {in: "\x00", reason: reasonInvalid},
		"newline":              {in: "undionly.kpxe\n", reason: reasonInvalid},
		"DEL":                  {in: "a\x7fb", reason: reasonInvalid},
		"invalid utf-8":        {in: "a\xffb", reason: reasonInvalid},
		"backslash traversal":  {in: `..\..\etc\passwd`, reason: reasonBackslash},
		"windows path":         {in: `boot\x64\wdsnbp.com`, reason: reasonBackslash},
		"absolute":             {in: "/etc/passwd", reason: reasonAbsolute},
		"absolute bare name":   {in: "/undionly.kpxe", reason: reasonAbsolute},
		"root":                 {in: "/", reason: reasonAbsolute},
		"absolute traversal":   {in: "/../etc/passwd", reason: reasonAbsolute},
		"dotdot":               {in: "..", reason: reasonTraversal},
		"traversal":            {in: "../etc/passwd", reason: reasonTraversal},
		"inner traversal":      {in: "a/../../etc/passwd", reason: reasonTraversal},
		"trailing dotdot":      {in: "a/..", reason: reasonTraversal},
		"subdirectory":         {in: "efi/ipxe.efi", reason: reasonDirectory},
		"dot":                  {in: ".", reason: reasonDirectory},
		"dot slash":            {in: "./undionly.kpxe", reason: reasonDirectory},
		"trailing slash":       {in: "undionly.kpxe/", reason: reasonDirectory},
		"double slash inside":  {in: "a//b", reason: reasonDirectory},
		"url-encoded is plain": {in: "%2e%2e%2fetc", want: "%2e%2e%2fetc"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			mac, got, err := parsePath(tc.in)
			if tc.reason == "" {
				if err != nil || got != tc.want || mac != tc.mac {
					t.Fatalf("parsePath(%q) = %q, %q, %v; want %q, %q, nil", tc.in, mac, got, err, tc.mac, tc.want)
				}
				return
			}
			if err == nil {
				t.Fatalf("parsePath(%q) = %q, nil; want refusal %q", tc.in, got, tc.reason)
			}
			if !errors.Is(err, ErrRefused) {
				t.Errorf("parsePath(%q) error %v does not wrap ErrRefused", tc.in, err)
			}
			if r := refuseReason(err); r != tc.reason {
				t.Errorf("parsePath(%q) reason = %q, want %q (%v)", tc.in, r, tc.reason, err)
			}
			if want := codeText[reasonCode[tc.reason]] + ": "; !strings.HasPrefix(err.Error(), want) {
				t.Errorf("parsePath(%q) error %q does not start with %q", tc.in, err, want)
			}
		})
	}
}

func FuzzParsePath(f *testing.F) {
	for _, s := range []string{
		"undionly.kpxe", "", "/", "..", ".", "../etc/passwd", "/etc/passwd", "a/b", `a\b`,
		"a\x00b", "\xff", "ñ", "a/../b", strings.Repeat("x", 300),
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		mac, got, err := parsePath(in)
		if err != nil {
			if !errors.Is(err, ErrRefused) {
				t.Fatalf("parsePath(%q): error %v does not wrap ErrRefused", in, err)
			}
			if !slices.Contains(refuseReasons, refuseReason(err)) {
				t.Fatalf("parsePath(%q): unknown reason %q", in, refuseReason(err))
			}
			return
		}
		// An accepted name is returned unchanged, or without a MAC prefix, and is exactly one
		// valid path element.
		if want := strings.TrimPrefix(in, in[:len(in)-len(got)]); got != want || (mac == "") != (got == in) {
			t.Fatalf("parsePath(%q) = %q, %q: want the name unchanged, or a MAC and the name after it", in, mac, got)
		}
		if !fs.ValidPath(got) || strings.ContainsAny(got, "/\\\x00") || got == "." || got == ".." {
			t.Fatalf("parsePath(%q) accepted a name that is not one bare file name", in)
		}
		if len(got) > maxNameLen {
			t.Fatalf("parsePath(%q) accepted %d bytes", in, len(got))
		}
	})
}

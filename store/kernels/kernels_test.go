package kernels

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/threefoldtech/bootstrapd/ipxe"
)

// newDir is a kernels directory holding zos-v3.efi, net/test.efi -> ../zos-v3.efi and a file
// outside it that links try to reach.
func newDir(t *testing.T) (*Dir, string) {
	t.Helper()
	top := t.TempDir()
	dir := filepath.Join(top, "kernels")
	must(t, os.MkdirAll(filepath.Join(dir, "net"), 0o755))
	must(t, os.WriteFile(filepath.Join(dir, "zos-v3.efi"), []byte("MZ v3"), 0o644))
	must(t, os.Symlink("../zos-v3.efi", filepath.Join(dir, "net", "test.efi")))
	must(t, os.WriteFile(filepath.Join(top, "outside"), []byte("secret"), 0o644))
	d, err := Open(dir)
	must(t, err)
	t.Cleanup(func() { d.Close() })
	return d, dir
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func digest(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// names lists a directory, hidden files included.
func names(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	must(t, err)
	var out []string
	for _, e := range entries {
		out = append(out, e.Name())
	}
	return out
}

func noTemps(t *testing.T, dir string) {
	t.Helper()
	for _, sub := range []string{".", "net"} {
		for _, n := range names(t, filepath.Join(dir, sub)) {
			if strings.HasPrefix(n, uploadPrefix) || strings.HasPrefix(n, linkPrefix) {
				t.Errorf("temporary file left: %s/%s", sub, n)
			}
		}
	}
}

func TestPut(t *testing.T) {
	payload := []byte("MZ new kernel " + strings.Repeat("x", 100000))
	tests := map[string]struct {
		name string
		body []byte
		want string
		err  error // nil: stored
	}{
		"checked":             {"zos-v4.efi", payload, digest(payload), nil},
		"checked, upper case": {"zos-v4.efi", payload, strings.ToUpper(digest(payload)), nil},
		"unchecked":           {"zos-v4.efi", payload, "", nil},
		"replaces":            {"zos-v3.efi", payload, digest(payload), nil},
		"wrong sum":           {"zos-v4.efi", payload, strings.Repeat("0", 64), ErrChecksum},
		"sum not hex":         {"zos-v4.efi", payload, "xyz", ErrChecksum},
		"empty":               {"zos-v4.efi", nil, "", ErrEmpty},
		"traversal":           {"../escape.efi", payload, "", ipxe.ErrUnsafe},
		"hidden":              {".hidden", payload, "", ipxe.ErrUnsafe},
		"into net/":           {"net/prod.efi", payload, "", ipxe.ErrUnsafe},
		"space":               {"a b.efi", payload, "", ipxe.ErrUnsafe},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			d, dir := newDir(t)
			before, _ := os.ReadFile(filepath.Join(dir, tc.name))
			info, err := d.Put(tc.name, bytes.NewReader(tc.body), tc.want)
			noTemps(t, dir)
			got, _ := os.ReadFile(filepath.Join(dir, tc.name))
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Fatalf("Put = %v, want %v", err, tc.err)
				}
				if !bytes.Equal(got, before) {
					t.Fatalf("a refused Put changed %s", tc.name)
				}
				return
			}
			must(t, err)
			if !bytes.Equal(got, tc.body) {
				t.Fatal("stored bytes differ")
			}
			if info.Name != tc.name || info.Size != int64(len(tc.body)) || info.SHA256 != digest(tc.body) || info.MTime.IsZero() {
				t.Fatalf("Put = %+v", info)
			}
			list, err := d.List(nil)
			must(t, err)
			if !slices.Contains(list.Kernels, info) {
				t.Fatalf("List %+v lacks %+v", list.Kernels, info)
			}
		})
	}
}

// failingReader delivers n bytes, then fails as a dropped connection would.
type failingReader struct{ n int }

var errDropped = errors.New("connection reset by peer")

func (r *failingReader) Read(p []byte) (int, error) {
	if r.n == 0 {
		return 0, errDropped
	}
	k := min(len(p), r.n)
	for i := range k {
		p[i] = 'x'
	}
	r.n -= k
	return k, nil
}

// An upload cut off mid-stream leaves no file under its name (and the previous version of a
// replaced kernel intact), no temporary file, and the reader's error to the caller.
func TestPutInterrupted(t *testing.T) {
	for _, name := range []string{"zos-v4.efi", "zos-v3.efi"} {
		t.Run(name, func(t *testing.T) {
			d, dir := newDir(t)
			before, _ := os.ReadFile(filepath.Join(dir, name))
			_, err := d.Put(name, &failingReader{n: 3 << 20}, "")
			if !errors.Is(err, errDropped) {
				t.Fatalf("Put = %v, want the reader's error", err)
			}
			after, _ := os.ReadFile(filepath.Join(dir, name))
			if !bytes.Equal(after, before) {
				t.Fatalf("%s is %d bytes after the interrupted upload, was %d", name, len(after), len(before))
			}
			noTemps(t, dir)
		})
	}
}

// Uploads of the same name at once all succeed; the name ends up holding one of them whole,
// and the listed digest is that file's, even though every version has the same size.
func TestPutConcurrentSameName(t *testing.T) {
	d, dir := newDir(t)
	const n = 8
	payloads := make([][]byte, n)
	for i := range payloads {
		payloads[i] = bytes.Repeat([]byte{byte('a' + i)}, 1<<20)
	}
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			_, errs[i] = d.Put("same.efi", bytes.NewReader(payloads[i]), digest(payloads[i]))
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("Put %d: %v", i, err)
		}
	}
	got, err := os.ReadFile(filepath.Join(dir, "same.efi"))
	must(t, err)
	if !slices.ContainsFunc(payloads, func(p []byte) bool { return bytes.Equal(p, got) }) {
		t.Fatal("same.efi holds none of the uploads whole")
	}
	noTemps(t, dir)
	list, err := d.List(nil)
	must(t, err)
	for _, k := range list.Kernels {
		if k.Name == "same.efi" && k.SHA256 != digest(got) {
			t.Fatalf("listed sha256 %s, the file's is %s", k.SHA256, digest(got))
		}
	}
}

func TestRemove(t *testing.T) {
	usedBy := func(users ...string) func(string) ([]string, error) {
		return func(string) ([]string, error) { return users, nil }
	}
	tests := map[string]struct {
		name  string
		inUse func(string) ([]string, error)
		err   error // nil: removed
		msg   string
	}{
		"unused":          {"zos-v3.efi", usedBy(), nil, ""},
		"no check":        {"zos-v3.efi", nil, nil, ""},
		"in use":          {"zos-v3.efi", usedBy("node 52:54:00:00:00:01", "network test"), ErrInUse, "booted by network test, node 52:54:00:00:00:01"},
		"check fails":     {"zos-v3.efi", func(string) ([]string, error) { return nil, errDropped }, errDropped, ""},
		"missing":         {"nope.efi", usedBy(), ErrNotFound, "nope.efi"},
		"link, not file":  {"link.efi", usedBy(), ErrNotFound, ""},
		"directory":       {"net", usedBy(), ErrNotFound, ""},
		"into net/":       {"net/test.efi", usedBy(), ipxe.ErrUnsafe, ""},
		"traversal":       {"../outside", usedBy(), ipxe.ErrUnsafe, ""},
		"hidden temp too": {".upload-X", usedBy(), ipxe.ErrUnsafe, ""},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			d, dir := newDir(t)
			must(t, os.Symlink("zos-v3.efi", filepath.Join(dir, "link.efi")))
			err := d.Remove(tc.name, tc.inUse)
			_, statErr := os.Lstat(filepath.Join(dir, tc.name))
			if tc.err == nil {
				must(t, err)
				if !os.IsNotExist(statErr) {
					t.Fatalf("%s still there", tc.name)
				}
				return
			}
			if !errors.Is(err, tc.err) || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("Remove = %v, want %v with %q", err, tc.err, tc.msg)
			}
			if _, err := os.Stat(filepath.Join(filepath.Dir(dir), "outside")); err != nil {
				t.Fatal("a refused Remove deleted a file outside the directory")
			}
		})
	}
}

func TestSetDefault(t *testing.T) {
	tests := map[string]struct {
		network, arch, name string
		err                 error // nil: set
		link                string
	}{
		"new network":        {"prod", ipxe.ArchX86, "zos-v3.efi", nil, "prod.efi"},
		"replaces a link":    {"test", ipxe.ArchX86, "zos-v4.efi", nil, "test.efi"},
		"arm64 default":      {"test", ipxe.ArchARM64, "zos-v4.efi", nil, "test-arm64.efi"},
		"arm64, new network": {"prod", ipxe.ArchARM64, "zos-v3.efi", nil, "prod-arm64.efi"},
		"unknown arch":       {"prod", "riscv64", "zos-v3.efi", ipxe.ErrUnsafe, ""},
		"missing kernel":     {"prod", ipxe.ArchX86, "nope.efi", ErrNotFound, ""},
		"arm64 missing":      {"prod", ipxe.ArchARM64, "nope.efi", ErrNotFound, ""},
		"directory":          {"prod", ipxe.ArchX86, "net", ErrNotFound, ""},
		"network escapes":    {"../x", ipxe.ArchX86, "zos-v3.efi", ipxe.ErrUnsafe, ""},
		"network with dot":   {"a.b", ipxe.ArchX86, "zos-v3.efi", ipxe.ErrUnsafe, ""},
		"kernel in net/":     {"prod", ipxe.ArchX86, "net/test.efi", ipxe.ErrUnsafe, ""},
		"kernel escapes":     {"prod", ipxe.ArchARM64, "../outside", ipxe.ErrUnsafe, ""},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			d, dir := newDir(t)
			must(t, os.WriteFile(filepath.Join(dir, "zos-v4.efi"), []byte("MZ v4"), 0o644))
			before := [2]string{d.DefaultFor(tc.network, ipxe.ArchX86), d.DefaultFor(tc.network, ipxe.ArchARM64)}
			err := d.SetDefaultFor(tc.network, tc.arch, tc.name)
			noTemps(t, dir)
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Fatalf("SetDefaultFor = %v, want %v", err, tc.err)
				}
				if got := [2]string{d.DefaultFor(tc.network, ipxe.ArchX86), d.DefaultFor(tc.network, ipxe.ArchARM64)}; got != before {
					t.Fatalf("a refused SetDefaultFor changed the defaults to %q", got)
				}
				return
			}
			must(t, err)
			target, err := os.Readlink(filepath.Join(dir, "net", tc.link))
			must(t, err)
			if target != "../"+tc.name {
				t.Fatalf("net/%s -> %q, want a relative link to ../%s", tc.link, target, tc.name)
			}
			if got := d.DefaultFor(tc.network, tc.arch); got != tc.name {
				t.Fatalf("DefaultFor = %q, want %q", got, tc.name)
			}
			// The other architecture's default is untouched.
			other, was := ipxe.ArchARM64, before[1]
			if tc.arch == ipxe.ArchARM64 {
				other, was = ipxe.ArchX86, before[0]
			}
			if got := d.DefaultFor(tc.network, other); got != was {
				t.Fatalf("setting the %s default changed the %s one from %q to %q", tc.arch, other, was, got)
			}
			f, err := d.Open("net/" + tc.link)
			must(t, err)
			defer f.Close()
			b, _ := io.ReadAll(f)
			want, _ := os.ReadFile(filepath.Join(dir, tc.name))
			if !bytes.Equal(b, want) {
				t.Fatalf("the network's kernel reads %q, want %q", b, want)
			}
			list, err := d.List([]string{tc.network})
			must(t, err)
			got := list.Networks[tc.network]
			if tc.arch == ipxe.ArchARM64 {
				got = list.NetworksArm64[tc.network]
			}
			if got != tc.name {
				t.Fatalf("List shows %q for %s %s, want %q", got, tc.network, tc.arch, tc.name)
			}
		})
	}
}

// SetDefault creates net/ when it is missing.
func TestSetDefaultMakesNet(t *testing.T) {
	d, dir := newDir(t)
	must(t, os.RemoveAll(filepath.Join(dir, "net")))
	must(t, d.SetDefault("prod", "zos-v3.efi"))
	if got := d.Default("prod"); got != "zos-v3.efi" {
		t.Fatalf("Default = %q", got)
	}
}

// Links that leave the directory are refused everywhere: nothing outside it is opened,
// listed, hashed or named as a network's kernel.
func TestSymlinkEscapes(t *testing.T) {
	tests := map[string]struct {
		link, target string
	}{
		"net link up two":  {"net/prod.efi", "../../outside"},
		"net link to root": {"net/prod.efi", "/etc/passwd"},
		"top-level link":   {"evil.efi", "../outside"},
		"top absolute":     {"evil.efi", "/etc/passwd"},
		"through net dir":  {"net/dev.efi", "../net/../../outside"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			d, dir := newDir(t)
			must(t, os.Symlink(tc.target, filepath.Join(dir, tc.link)))
			if f, err := d.Open(tc.link); err == nil {
				b, _ := io.ReadAll(f)
				f.Close()
				t.Fatalf("Open(%s) read %q", tc.link, b)
			}
			if _, err := d.Stat(tc.link); err == nil {
				t.Errorf("Stat(%s) succeeded", tc.link)
			}
			if d.Exists(tc.link) {
				t.Errorf("Exists(%s)", tc.link)
			}
			network := strings.TrimSuffix(strings.TrimPrefix(tc.link, "net/"), ".efi")
			if got := d.Default(network); got != "" {
				t.Errorf("Default(%s) = %q", network, got)
			}
			if err := d.SetDefault("prod", "evil.efi"); err == nil {
				t.Error("SetDefault to an escaping link succeeded")
			}
			list, err := d.List([]string{"prod", "test", "dev"})
			must(t, err)
			for _, k := range list.Kernels {
				if k.SHA256 == digest([]byte("secret")) {
					t.Errorf("List hashed the file outside: %+v", k)
				}
			}
		})
	}
}

func TestDefault(t *testing.T) {
	d, dir := newDir(t)
	must(t, os.WriteFile(filepath.Join(dir, "net", "plain.efi"), []byte("MZ"), 0o644))
	must(t, os.Symlink("../gone.efi", filepath.Join(dir, "net", "dangling.efi")))
	for network, want := range map[string]string{
		"test":     "zos-v3.efi",
		"plain":    "net/plain.efi",
		"dangling": "gone.efi", // what the link names; Exists says it cannot boot
		"missing":  "",
		"../x":     "",
		"":         "",
	} {
		if got := d.Default(network); got != want {
			t.Errorf("Default(%q) = %q, want %q", network, got, want)
		}
	}
}

// List hashes each file version once: a replaced file (a new inode) is hashed again even
// when its size and mtime are those of the old one.
func TestListHashes(t *testing.T) {
	d, dir := newDir(t)
	list, err := d.List([]string{"test", "prod"})
	must(t, err)
	want := KernelList{
		Kernels:  []KernelInfo{{Name: "zos-v3.efi", Size: 5, SHA256: digest([]byte("MZ v3"))}},
		Networks: map[string]string{"test": "zos-v3.efi", "prod": ""},
	}
	if len(list.Kernels) != 1 || list.Kernels[0].SHA256 != want.Kernels[0].SHA256 || list.Kernels[0].Size != 5 ||
		fmt.Sprint(list.Networks) != fmt.Sprint(want.Networks) {
		t.Fatalf("List = %+v, want %+v", list, want)
	}
	st, err := os.Stat(filepath.Join(dir, "zos-v3.efi"))
	must(t, err)
	tmp := filepath.Join(dir, "new")
	must(t, os.WriteFile(tmp, []byte("MZ v9"), 0o644))
	must(t, os.Chtimes(tmp, st.ModTime(), st.ModTime()))
	must(t, os.Rename(tmp, filepath.Join(dir, "zos-v3.efi")))
	list, err = d.List(nil)
	must(t, err)
	if len(list.Kernels) != 1 || list.Kernels[0].SHA256 != digest([]byte("MZ v9")) {
		t.Fatalf("after replacing the file: %+v", list.Kernels)
	}
	must(t, os.Remove(filepath.Join(dir, "zos-v3.efi")))
	if list, err = d.List(nil); err != nil || len(list.Kernels) != 0 {
		t.Fatalf("after removing the file: %+v, %v", list, err)
	}
	if len(d.hashes.m) != 0 {
		t.Errorf("the cache keeps %d removed files", len(d.hashes.m))
	}
}

func TestRemoveTemps(t *testing.T) {
	d, dir := newDir(t)
	for _, n := range []string{".upload-ABC", ".upload-DEF", ".hidden"} {
		must(t, os.WriteFile(filepath.Join(dir, n), []byte("x"), 0o644))
	}
	must(t, os.Symlink("../zos-v3.efi", filepath.Join(dir, "net", ".link-XYZ")))
	removed, err := d.RemoveTemps()
	must(t, err)
	if strings.Join(removed, ",") != ".upload-ABC,.upload-DEF,net/.link-XYZ" {
		t.Errorf("removed %v", removed)
	}
	if got := strings.Join(names(t, dir), ","); got != ".hidden,net,zos-v3.efi" {
		t.Errorf("left %s", got)
	}
	if got := strings.Join(names(t, filepath.Join(dir, "net")), ","); got != "test.efi" {
		t.Errorf("left in net/: %s", got)
	}
	// Without net/ there is nothing to clean there.
	must(t, os.RemoveAll(filepath.Join(dir, "net")))
	if _, err := d.RemoveTemps(); err != nil {
		t.Fatal(err)
	}
}

func TestOpenMissingDir(t *testing.T) {
	if _, err := Open(filepath.Join(t.TempDir(), "nope")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Open = %v", err)
	}
}

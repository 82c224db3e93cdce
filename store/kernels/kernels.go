package kernels

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/threefoldtech/bootstrapd/ipxe"
)

var (
	// ErrNotFound means a kernel file does not exist (or is not a regular file, or is a link
	// out of the directory).
	ErrNotFound = errors.New("kernel file not found")
	// ErrInUse means a kernel is still a network's default or a node's override.
	ErrInUse = errors.New("kernel in use")
	// ErrChecksum means an upload's sha256 is not the expected one, or the expected one is
	// not a sha256 at all.
	ErrChecksum = errors.New("sha256 mismatch")
	// ErrEmpty means an upload had no bytes.
	ErrEmpty = errors.New("empty kernel")
)

// KernelInfo describes one kernel file.
type KernelInfo struct {
	Name   string    `json:"name"`
	Size   int64     `json:"size"`
	SHA256 string    `json:"sha256"`
	MTime  time.Time `json:"mtime"`
}

// KernelList is the kernel files and what each network boots (GET /api/v1/kernels).
type KernelList struct {
	Kernels []KernelInfo `json:"kernels"`
	// Networks maps each network to the kernel net/<network>.efi points at ("" if none): the
	// x86-64 default.
	Networks map[string]string `json:"networks"`
	// NetworksArm64 maps each network to the kernel net/<network>-arm64.efi points at ("" if
	// none): what arm64 nodes boot.
	NetworksArm64 map[string]string `json:"networks_arm64"`
}

// Temporary names. Both start with ".", which no kernel name may (ipxe.ValidateKernel), so a
// reader never sees one; they outlive their operation only when the daemon was killed.
const (
	uploadPrefix = ".upload-"
	linkPrefix   = ".link-"
	netDir       = "net"
)

// Dir is an open kernels directory. It is safe for concurrent use.
type Dir struct {
	root   *os.Root
	hashes hashCache
	// mu makes Remove's in-use check and its unlink one step against SetDefault, so a network
	// cannot be pointed at a file between the check and the unlink.
	mu sync.Mutex
}

// Open opens the kernels directory at dir.
func Open(dir string) (*Dir, error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("kernels: %w", err)
	}
	return &Dir{root: root}, nil
}

// Close releases the directory.
func (d *Dir) Close() error { return d.root.Close() }

// ValidName checks a name for Put, Remove and SetDefault: one file at the top of the
// directory (net/ holds only the links).
func ValidName(name string) error {
	if err := ipxe.ValidateKernel(name); err != nil {
		return err
	}
	if strings.Contains(name, "/") {
		return fmt.Errorf("%w: kernel %q: uploads go to the top of the kernels directory (no /)", ipxe.ErrUnsafe, name)
	}
	return nil
}

// Open opens a kernel file for reading; name may be a path under the directory, such as
// net/prod.efi. Links are followed only as long as they stay inside the directory.
func (d *Dir) Open(name string) (*os.File, error) {
	if err := ipxe.ValidateKernel(name); err != nil {
		return nil, err
	}
	f, err := d.root.Open(name)
	if err != nil {
		return nil, fmt.Errorf("kernels: %w", err)
	}
	return f, nil
}

// Stat is Open's file information, links followed inside the directory.
func (d *Dir) Stat(name string) (fs.FileInfo, error) {
	if err := ipxe.ValidateKernel(name); err != nil {
		return nil, err
	}
	st, err := d.root.Stat(name)
	if err != nil {
		return nil, fmt.Errorf("kernels: %w", err)
	}
	return st, nil
}

// Exists reports whether name is a regular file that can be served.
func (d *Dir) Exists(name string) bool {
	st, err := d.Stat(name)
	return err == nil && st.Mode().IsRegular()
}

// Default is the kernel net/<network>.efi (the x86-64 default) points at: DefaultFor with
// ipxe.ArchX86.
func (d *Dir) Default(network string) string { return d.DefaultFor(network, ipxe.ArchX86) }

// DefaultFor is the kernel network's default link for arch (ipxe.DefaultKernel:
// net/<network>.efi, net/<network>-arm64.efi) points at, relative to the directory: "" if
// the link is missing or leaves the directory, the link itself if it is a plain file.
func (d *Dir) DefaultFor(network, arch string) string {
	if ipxe.ValidateNetwork(network) != nil {
		return ""
	}
	link := ipxe.DefaultKernel(network, arch)
	target, err := d.root.Readlink(link)
	if err != nil {
		if st, err := d.root.Lstat(link); err == nil && st.Mode().IsRegular() {
			return link
		}
		return ""
	}
	clean := path.Clean(path.Join(netDir, target))
	if strings.HasPrefix(clean, "../") || path.IsAbs(target) {
		return ""
	}
	return clean
}

// List describes the regular files at the top of the directory and, for each of networks,
// the kernel it boots. Digests are computed once per file version (hashCache).
func (d *Dir) List(networks []string) (KernelList, error) {
	entries, err := d.readDir(".")
	if err != nil {
		return KernelList{}, err
	}
	list := KernelList{Kernels: []KernelInfo{}, Networks: make(map[string]string, len(networks)),
		NetworksArm64: make(map[string]string, len(networks))}
	for _, e := range entries {
		if !e.Type().IsRegular() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		info, err := d.hashes.info(d.root, e.Name())
		if errors.Is(err, fs.ErrNotExist) {
			continue // removed since the directory was read
		}
		if err != nil {
			return KernelList{}, err
		}
		list.Kernels = append(list.Kernels, info)
	}
	d.hashes.keep(list.Kernels)
	for _, n := range networks {
		list.Networks[n] = d.DefaultFor(n, ipxe.ArchX86)
		list.NetworksArm64[n] = d.DefaultFor(n, ipxe.ArchARM64)
	}
	return list, nil
}

func (d *Dir) readDir(dir string) ([]fs.DirEntry, error) {
	f, err := d.root.Open(dir)
	if err != nil {
		return nil, fmt.Errorf("kernels: %w", err)
	}
	defer f.Close()
	entries, err := f.ReadDir(-1)
	if err != nil {
		return nil, fmt.Errorf("kernels: read %s: %w", dir, err)
	}
	slices.SortFunc(entries, func(a, b fs.DirEntry) int { return strings.Compare(a.Name(), b.Name()) })
	return entries, nil
}

// Put stores r's bytes as the kernel name. They are streamed into a temporary file beside it,
// checked against want (a sha256 in hex; "" accepts any), fsynced and renamed over name, so
// a reader sees the old kernel or the new one, never half of one. On any error, r's included,
// nothing is left behind.
func (d *Dir) Put(name string, r io.Reader, want string) (info KernelInfo, err error) {
	if err := ValidName(name); err != nil {
		return KernelInfo{}, err
	}
	want = strings.ToLower(want)
	if b, err := hex.DecodeString(want); want != "" && (err != nil || len(b) != sha256.Size) {
		return KernelInfo{}, fmt.Errorf("%w: %q is not 64 hex digits", ErrChecksum, want)
	}
	tmp := uploadPrefix + rand.Text()
	f, err := d.root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return KernelInfo{}, fmt.Errorf("kernels: create temporary file: %w", err)
	}
	committed := false
	defer func() {
		if !committed {
			f.Close()
			d.root.Remove(tmp)
		}
	}()
	sum := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, sum), r)
	if err != nil {
		return KernelInfo{}, fmt.Errorf("receive kernel %s: %w", name, err)
	}
	got := hex.EncodeToString(sum.Sum(nil))
	if want != "" && got != want {
		return KernelInfo{}, fmt.Errorf("%w: the upload's sha256 is %s, %s was expected; nothing stored", ErrChecksum, got, want)
	}
	if n == 0 {
		return KernelInfo{}, ErrEmpty
	}
	if err := f.Sync(); err != nil {
		return KernelInfo{}, fmt.Errorf("kernels: sync %s: %w", name, err)
	}
	// The open file's own information: after the rename, name may already be another
	// upload's file, and the digest must be cached for this one.
	st, err := f.Stat()
	if err != nil {
		return KernelInfo{}, fmt.Errorf("kernels: stat %s: %w", name, err)
	}
	if err := f.Close(); err != nil {
		return KernelInfo{}, fmt.Errorf("kernels: close %s: %w", name, err)
	}
	if err := d.root.Rename(tmp, name); err != nil {
		return KernelInfo{}, fmt.Errorf("kernels: install %s: %w", name, err)
	}
	committed = true
	d.syncDir(".")
	info = KernelInfo{Name: name, Size: n, SHA256: got, MTime: st.ModTime().UTC()}
	d.hashes.put(info, st)
	return info, nil
}

// Remove deletes the kernel name unless inUse (nil: no check) names anyone who boots it. The
// check and the unlink are one step against SetDefault.
func (d *Dir) Remove(name string, inUse func(name string) (users []string, err error)) error {
	if err := ValidName(name); err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if inUse != nil {
		users, err := inUse(name)
		if err != nil {
			return fmt.Errorf("kernels: who boots %s: %w", name, err)
		}
		if len(users) > 0 {
			users = slices.Sorted(slices.Values(users))
			return fmt.Errorf("%w: %s is booted by %s", ErrInUse, name, strings.Join(users, ", "))
		}
	}
	if st, err := d.root.Lstat(name); err != nil || !st.Mode().IsRegular() {
		return fmt.Errorf("%w: %s", ErrNotFound, name)
	}
	if err := d.root.Remove(name); err != nil {
		return fmt.Errorf("kernels: %w", err)
	}
	d.syncDir(".")
	return nil
}

// SetDefault points net/<network>.efi, the x86-64 default, at the kernel name: SetDefaultFor
// with ipxe.ArchX86.
func (d *Dir) SetDefault(network, name string) error {
	return d.SetDefaultFor(network, ipxe.ArchX86, name)
}

// SetDefaultFor points network's default link for arch (net/<network>.efi,
// net/<network>-arm64.efi) at the kernel name with a relative link. The new link is made
// beside the old one and renamed over it, so a node fetching the network's kernel meanwhile
// gets one of the two.
func (d *Dir) SetDefaultFor(network, arch, name string) error {
	if err := ipxe.ValidateNetwork(network); err != nil {
		return err
	}
	if arch != ipxe.ArchX86 && arch != ipxe.ArchARM64 {
		return fmt.Errorf("%w: architecture %q", ipxe.ErrUnsafe, arch)
	}
	if err := ValidName(name); err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.Exists(name) {
		return fmt.Errorf("%w: %s", ErrNotFound, name)
	}
	if err := d.root.MkdirAll(netDir, 0o755); err != nil {
		return fmt.Errorf("kernels: %w", err)
	}
	link := ipxe.DefaultKernel(network, arch)
	tmp := path.Join(netDir, linkPrefix+rand.Text())
	if err := d.root.Symlink("../"+name, tmp); err != nil {
		return fmt.Errorf("kernels: make link: %w", err)
	}
	if err := d.root.Rename(tmp, link); err != nil {
		d.root.Remove(tmp)
		return fmt.Errorf("kernels: replace %s: %w", link, err)
	}
	d.syncDir(netDir)
	return nil
}

// syncDir makes a rename or unlink in dir durable. It is best effort: the change itself has
// happened, and a failed fsync of a directory leaves nothing for the caller to undo.
func (d *Dir) syncDir(dir string) {
	if f, err := d.root.Open(dir); err == nil {
		f.Sync()
		f.Close()
	}
}

// RemoveTemps deletes what interrupted operations left (uploads at the top, links in net/)
// and returns the names it removed. Run it at start, before any upload: it cannot tell an
// abandoned temporary file from one in use.
func (d *Dir) RemoveTemps() ([]string, error) {
	var removed []string
	for _, t := range []struct {
		dir, prefix string
		link        bool
	}{{".", uploadPrefix, false}, {netDir, linkPrefix, true}} {
		entries, err := d.readDir(t.dir)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return removed, err
		}
		for _, e := range entries {
			kind := e.Type().IsRegular()
			if t.link {
				kind = e.Type()&fs.ModeSymlink != 0
			}
			if !kind || !strings.HasPrefix(e.Name(), t.prefix) {
				continue
			}
			name := path.Join(t.dir, e.Name())
			if err := d.root.Remove(name); err != nil {
				return removed, fmt.Errorf("kernels: remove %s: %w", name, err)
			}
			removed = append(removed, name)
		}
	}
	return removed, nil
}

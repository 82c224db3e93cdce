package httpd

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/threefoldtech/bootstrapd/ipxe"
)

// KernelInfo describes one kernel file.
type KernelInfo struct {
	Name   string    `json:"name"`
	Size   int64     `json:"size"`
	SHA256 string    `json:"sha256"`
	MTime  time.Time `json:"mtime"`
}

// KernelList is the answer of GET /api/v1/kernels.
type KernelList struct {
	Kernels []KernelInfo `json:"kernels"`
	// Networks maps each network to the kernel net/<network>.efi points at ("" if none).
	Networks map[string]string `json:"networks"`
}

// NetworkInfo is one entry of the public GET /api/v1/networks.
type NetworkInfo struct {
	Name    string `json:"name"`
	Display string `json:"display"`
	Kernel  string `json:"kernel"`
}

// hashCache remembers kernel digests by (name, size, mtime): hashing 100 MB kernels on every
// listing would be slow, and a replaced file changes size or mtime.
type hashCache struct {
	mu sync.Mutex
	m  map[string]KernelInfo
}

func (h *hashCache) get(root *os.Root, name string, st fs.FileInfo) (string, error) {
	h.mu.Lock()
	c, ok := h.m[name]
	h.mu.Unlock()
	if ok && c.Size == st.Size() && c.MTime.Equal(st.ModTime()) {
		return c.SHA256, nil
	}
	f, err := root.Open(name)
	if err != nil {
		return "", err
	}
	defer f.Close()
	sum := sha256.New()
	if _, err := io.Copy(sum, f); err != nil {
		return "", fmt.Errorf("hash %s: %w", name, err)
	}
	digest := hex.EncodeToString(sum.Sum(nil))
	h.mu.Lock()
	if h.m == nil {
		h.m = map[string]KernelInfo{}
	}
	h.m[name] = KernelInfo{Name: name, Size: st.Size(), MTime: st.ModTime(), SHA256: digest}
	h.mu.Unlock()
	return digest, nil
}

// networkDefault is where net/<network>.efi points, relative to the kernels dir ("" if the
// link is missing or leaves the directory).
func (s *Server) networkDefault(network string) string {
	link := path.Join("net", network+".efi")
	target, err := s.kernels.Readlink(link)
	if err != nil {
		if st, err := s.kernels.Lstat(link); err == nil && st.Mode().IsRegular() {
			return link // a plain file, not a link
		}
		return ""
	}
	clean := path.Clean(path.Join("net", target))
	if strings.HasPrefix(clean, "../") || path.IsAbs(target) {
		return ""
	}
	return clean
}

func (s *Server) publicNetworks(c *gin.Context) {
	out := make([]NetworkInfo, 0, len(s.networks()))
	for _, name := range s.networkNames() {
		out = append(out, NetworkInfo{Name: name, Display: s.networks()[name], Kernel: s.networkDefault(name)})
	}
	c.JSON(http.StatusOK, out)
}

// apiKernels lists the regular files at the top of the kernels dir (net/ holds the links).
func (s *Server) apiKernels(c *gin.Context) {
	entries, err := fs.ReadDir(s.kernels.FS(), ".")
	if err != nil {
		s.apiFail(c, err)
		return
	}
	list := KernelList{Kernels: []KernelInfo{}, Networks: map[string]string{}}
	for _, e := range entries {
		if !e.Type().IsRegular() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		st, err := e.Info()
		if err != nil {
			continue
		}
		sum, err := s.hashes.get(s.kernels, e.Name(), st)
		if err != nil {
			s.apiFail(c, err)
			return
		}
		list.Kernels = append(list.Kernels, KernelInfo{Name: e.Name(), Size: st.Size(), SHA256: sum, MTime: st.ModTime().UTC()})
	}
	for name := range s.networks() {
		list.Networks[name] = s.networkDefault(name)
	}
	c.JSON(http.StatusOK, list)
}

// kernelName checks a name for upload and delete: one file at the top of the kernels dir.
func kernelName(name string) error {
	if err := ipxe.ValidateKernel(name); err != nil {
		return err
	}
	if strings.Contains(name, "/") {
		return fmt.Errorf("%w: kernel %q: uploads go to the top of the kernels directory (no /)", ipxe.ErrUnsafe, name)
	}
	return nil
}

// MaxKernelSize bounds an upload.
const MaxKernelSize = 1 << 30

// apiUploadKernel streams the body into a temporary file in the kernels dir, checks its sha256
// against X-Checksum-Sha256 when given, fsyncs it and renames it over the final name: a reader
// sees the old kernel or the new one, never half of one.
func (s *Server) apiUploadKernel(c *gin.Context) {
	name := c.Param("name")
	if err := kernelName(name); err != nil {
		s.apiFail(c, err)
		return
	}
	want := strings.ToLower(strings.TrimSpace(c.GetHeader("X-Checksum-Sha256")))
	if want != "" {
		if b, err := hex.DecodeString(want); err != nil || len(b) != sha256.Size {
			s.apiFail(c, fmt.Errorf("%w: X-Checksum-Sha256 is not 64 hex digits", errBadInput))
			return
		}
	}
	tmp := uploadPrefix + rand.Text()
	f, err := s.kernels.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		s.apiFail(c, fmt.Errorf("create temporary kernel: %w", err))
		return
	}
	committed := false
	defer func() {
		if !committed {
			f.Close()
			s.kernels.Remove(tmp)
		}
	}()
	sum := sha256.New()
	body := http.MaxBytesReader(c.Writer, c.Request.Body, MaxKernelSize)
	n, err := io.Copy(io.MultiWriter(f, sum), body)
	if err != nil {
		s.apiFail(c, fmt.Errorf("receive kernel %s: %w", name, err))
		return
	}
	got := hex.EncodeToString(sum.Sum(nil))
	if want != "" && got != want {
		s.apiFail(c, fmt.Errorf("%w: sha256 of the upload is %s, X-Checksum-Sha256 says %s; nothing stored", errBadInput, got, want))
		return
	}
	if n == 0 {
		s.apiFail(c, fmt.Errorf("%w: empty kernel", errBadInput))
		return
	}
	if err := f.Sync(); err != nil {
		s.apiFail(c, fmt.Errorf("sync kernel: %w", err))
		return
	}
	if err := f.Close(); err != nil {
		s.apiFail(c, fmt.Errorf("close kernel: %w", err))
		return
	}
	if err := s.kernels.Rename(tmp, name); err != nil {
		s.apiFail(c, fmt.Errorf("install kernel: %w", err))
		return
	}
	committed = true
	s.syncKernelsDir(".")
	st, _ := s.kernels.Stat(name)
	info := KernelInfo{Name: name, Size: n, SHA256: got}
	if st != nil {
		info.MTime = st.ModTime().UTC()
	}
	s.log.Info("kernel uploaded", "name", name, "bytes", n, "sha256", got)
	c.JSON(http.StatusCreated, info)
}

// syncKernelsDir makes a rename in dir durable.
func (s *Server) syncKernelsDir(dir string) {
	if d, err := s.kernels.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
}

// errInUse means a kernel is still a network's default or a node's override.
var errInUse = errors.New("kernel in use")

func (s *Server) apiDeleteKernel(c *gin.Context) {
	name := c.Param("name")
	if err := kernelName(name); err != nil {
		s.apiFail(c, err)
		return
	}
	var users []string
	for net := range s.networks() {
		if s.networkDefault(net) == name {
			users = append(users, "network "+net)
		}
	}
	nodes, err := s.cfg.Store.ListNodes()
	if err != nil {
		s.apiFail(c, err)
		return
	}
	for _, n := range nodes {
		if n.Kernel == name {
			users = append(users, "node "+n.MAC)
		}
	}
	if len(users) > 0 {
		slices.Sort(users)
		s.apiFail(c, fmt.Errorf("%w: %s is booted by %s", errInUse, name, strings.Join(users, ", ")))
		return
	}
	if st, err := s.kernels.Lstat(name); err != nil || !st.Mode().IsRegular() {
		s.apiFail(c, fmt.Errorf("%w: %s", ErrNoKernel, name))
		return
	}
	if err := s.kernels.Remove(name); err != nil {
		s.apiFail(c, err)
		return
	}
	s.syncKernelsDir(".")
	s.log.Info("kernel deleted", "name", name)
	c.Status(http.StatusNoContent)
}

// apiSetNetworkKernel points net/<network>.efi at a kernel: a new relative symlink is made
// beside it and renamed over it, so a node fetching the kernel meanwhile gets one of the two.
func (s *Server) apiSetNetworkKernel(c *gin.Context) {
	network := c.Param("network")
	if _, ok := s.networks()[network]; !ok {
		s.apiFail(c, fmt.Errorf("%w: %q", ErrUnknownNetwork, network))
		return
	}
	var in struct {
		Kernel string `json:"kernel"`
	}
	if err := c.ShouldBindJSON(&in); err != nil {
		s.apiFail(c, fmt.Errorf("%w: %v", errBadInput, err))
		return
	}
	if err := kernelName(in.Kernel); err != nil {
		s.apiFail(c, err)
		return
	}
	if st, err := s.kernels.Stat(in.Kernel); err != nil || !st.Mode().IsRegular() {
		s.apiFail(c, fmt.Errorf("%w: %s", ErrNoKernel, in.Kernel))
		return
	}
	if err := s.kernels.MkdirAll("net", 0o755); err != nil {
		s.apiFail(c, err)
		return
	}
	link := path.Join("net", network+".efi")
	tmp := path.Join("net", ".link-"+rand.Text())
	if err := s.kernels.Symlink("../"+in.Kernel, tmp); err != nil {
		s.apiFail(c, fmt.Errorf("make link: %w", err))
		return
	}
	if err := s.kernels.Rename(tmp, link); err != nil {
		s.kernels.Remove(tmp)
		s.apiFail(c, fmt.Errorf("replace %s: %w", link, err))
		return
	}
	s.syncKernelsDir("net")
	s.log.Info("network kernel set", "network", network, "kernel", in.Kernel)
	c.JSON(http.StatusOK, NetworkInfo{Name: network, Display: s.networks()[network], Kernel: s.networkDefault(network)})
}

// uploadPrefix names the temporary file of an upload in progress. Such a file outlives its
// upload only when the daemon was killed; no reader ever sees one (names starting with "."
// are not kernels), so they are removed at start.
const uploadPrefix = ".upload-"

// removeUploadTemps deletes what interrupted uploads left in the kernels directory and
// returns the names it removed.
func removeUploadTemps(root *os.Root) ([]string, error) {
	d, err := root.Open(".")
	if err != nil {
		return nil, err
	}
	defer d.Close()
	entries, err := d.ReadDir(-1)
	if err != nil {
		return nil, err
	}
	var removed []string
	for _, e := range entries {
		if !e.Type().IsRegular() || !strings.HasPrefix(e.Name(), uploadPrefix) {
			continue
		}
		if err := root.Remove(e.Name()); err != nil {
			return removed, fmt.Errorf("remove %s: %w", e.Name(), err)
		}
		removed = append(removed, e.Name())
	}
	return removed, nil
}

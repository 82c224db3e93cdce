package httpd

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/threefoldtech/bootstrapd/ipxe"
	"github.com/threefoldtech/bootstrapd/store/kernels"
)

// Kernels is the kernels directory as the handlers use it; *kernels.Dir is one. Every name
// is relative to the directory and checked by it: links that leave it are refused.
type Kernels interface {
	// Open opens a kernel file (net/<network>.efi included) for serving.
	Open(name string) (*os.File, error)
	// Exists reports whether a kernel file can be served (ipxe.KernelSet).
	Exists(name string) bool
	// Default is the kernel net/<network>.efi points at, "" if none.
	Default(network string) string
	// DefaultFor is the kernel a network's default link for an architecture
	// (ipxe.DefaultKernel) points at, "" if none.
	DefaultFor(network, arch string) string
	// List describes the kernel files and what each of networks boots.
	List(networks []string) (kernels.KernelList, error)
	// Put stores a kernel atomically, checked against a sha256 in hex ("" accepts any).
	Put(name string, r io.Reader, sha256Hex string) (kernels.KernelInfo, error)
	// Remove deletes a kernel unless inUse names someone who boots it.
	Remove(name string, inUse func(name string) ([]string, error)) error
	// SetDefault points net/<network>.efi at a kernel atomically.
	SetDefault(network, name string) error
	// SetDefaultFor points a network's default link for an architecture at a kernel
	// atomically.
	SetDefaultFor(network, arch, name string) error
}

// NetworkInfo is one entry of the public GET /api/v1/networks.
type NetworkInfo struct {
	Name    string `json:"name"`
	Display string `json:"display"`
	// Kernel is what x86-64 nodes boot (net/<network>.efi), KernelArm64 what arm64 nodes
	// boot (net/<network>-arm64.efi); "" when the link is missing.
	Kernel      string `json:"kernel"`
	KernelArm64 string `json:"kernel_arm64"`
}

func (a *api) networkInfo(name, display string) NetworkInfo {
	return NetworkInfo{Name: name, Display: display, Kernel: a.kernels.DefaultFor(name, ipxe.ArchX86),
		KernelArm64: a.kernels.DefaultFor(name, ipxe.ArchARM64)}
}

func (a *api) publicNetworks(c *gin.Context) {
	nets := a.live.networks()
	out := make([]NetworkInfo, 0, len(nets))
	for _, name := range networkNames(nets) {
		out = append(out, a.networkInfo(name, nets[name]))
	}
	c.JSON(http.StatusOK, out)
}

// apiKernels lists the kernel files and each network's default.
func (a *api) apiKernels(c *gin.Context) {
	list, err := a.kernels.List(networkNames(a.live.networks()))
	if err != nil {
		a.apiFail(c, err)
		return
	}
	c.JSON(http.StatusOK, list)
}

// MaxKernelSize bounds an upload.
const MaxKernelSize = 1 << 30

// apiUploadKernel streams the body into the kernels directory, checked against
// X-Checksum-Sha256 when given; a reader sees the old kernel or the new one, never half of
// one (kernels.Dir.Put).
func (a *api) apiUploadKernel(c *gin.Context) {
	name := c.Param("name")
	if err := kernels.ValidName(name); err != nil {
		a.apiFail(c, err)
		return
	}
	want := strings.ToLower(strings.TrimSpace(c.GetHeader("X-Checksum-Sha256")))
	if want != "" {
		// Refused before a byte is received, with the header's name in the reason.
		if b, err := hex.DecodeString(want); err != nil || len(b) != sha256.Size {
			a.apiFail(c, fmt.Errorf("%w: X-Checksum-Sha256 is not 64 hex digits", errBadInput))
			return
		}
	}
	body := http.MaxBytesReader(c.Writer, c.Request.Body, MaxKernelSize)
	info, err := a.kernels.Put(name, body, want)
	if err != nil {
		a.apiFail(c, err)
		return
	}
	a.log.Info("kernel uploaded", "name", name, "bytes", info.Size, "sha256", info.SHA256)
	c.JSON(http.StatusCreated, info)
}

func (a *api) apiDeleteKernel(c *gin.Context) {
	name := c.Param("name")
	if err := a.kernels.Remove(name, a.kernelUsers); err != nil {
		a.apiFail(c, err)
		return
	}
	a.log.Info("kernel deleted", "name", name)
	c.Status(http.StatusNoContent)
}

// kernelUsers names the networks and nodes that boot the kernel name.
func (a *api) kernelUsers(name string) ([]string, error) {
	var users []string
	for _, net := range networkNames(a.live.networks()) {
		if a.kernels.DefaultFor(net, ipxe.ArchX86) == name {
			users = append(users, "network "+net)
		}
		if a.kernels.DefaultFor(net, ipxe.ArchARM64) == name {
			users = append(users, "network "+net+" (arm64)")
		}
	}
	nodes, err := a.nodes.ListNodes()
	if err != nil {
		return nil, err
	}
	for _, n := range nodes {
		if n.Kernel == name {
			users = append(users, "node "+n.MAC)
		}
	}
	return users, nil
}

// apiSetNetworkKernel points net/<network>.efi ("arch" absent or x86_64) or
// net/<network>-arm64.efi ("arch": "arm64") at a kernel; a node fetching the kernel meanwhile
// gets the old one or the new one.
func (a *api) apiSetNetworkKernel(c *gin.Context) {
	network := c.Param("network")
	display, ok := a.live.networks()[network]
	if !ok {
		a.apiFail(c, fmt.Errorf("%w: %q", ipxe.ErrUnknownNetwork, network))
		return
	}
	var in struct {
		Kernel string `json:"kernel"`
		Arch   string `json:"arch"`
	}
	if err := readJSON(c, &in); err != nil {
		a.apiFail(c, err)
		return
	}
	arch, err := ipxe.ParseArch(in.Arch)
	if err != nil {
		a.apiFail(c, err)
		return
	}
	if err := a.kernels.SetDefaultFor(network, arch, in.Kernel); err != nil {
		a.apiFail(c, err)
		return
	}
	a.log.Info("network kernel set", "network", network, "arch", arch, "kernel", in.Kernel)
	c.JSON(http.StatusOK, a.networkInfo(network, display))
}

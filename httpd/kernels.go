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
	// List describes the kernel files and what each of networks boots.
	List(networks []string) (kernels.KernelList, error)
	// Put stores a kernel atomically, checked against a sha256 in hex ("" accepts any).
	Put(name string, r io.Reader, sha256Hex string) (kernels.KernelInfo, error)
	// Remove deletes a kernel unless inUse names someone who boots it.
	Remove(name string, inUse func(name string) ([]string, error)) error
	// SetDefault points net/<network>.efi at a kernel atomically.
	SetDefault(network, name string) error
}

// NetworkInfo is one entry of the public GET /api/v1/networks.
type NetworkInfo struct {
	Name    string `json:"name"`
	Display string `json:"display"`
	Kernel  string `json:"kernel"`
}

func (s *Server) publicNetworks(c *gin.Context) {
	nets := s.networks()
	out := make([]NetworkInfo, 0, len(nets))
	for _, name := range s.networkNames() {
		out = append(out, NetworkInfo{Name: name, Display: nets[name], Kernel: s.cfg.Kernels.Default(name)})
	}
	c.JSON(http.StatusOK, out)
}

// apiKernels lists the kernel files and each network's default.
func (s *Server) apiKernels(c *gin.Context) {
	list, err := s.cfg.Kernels.List(s.networkNames())
	if err != nil {
		s.apiFail(c, err)
		return
	}
	c.JSON(http.StatusOK, list)
}

// MaxKernelSize bounds an upload.
const MaxKernelSize = 1 << 30

// apiUploadKernel streams the body into the kernels directory, checked against
// X-Checksum-Sha256 when given; a reader sees the old kernel or the new one, never half of
// one (kernels.Dir.Put).
func (s *Server) apiUploadKernel(c *gin.Context) {
	name := c.Param("name")
	if err := kernels.ValidName(name); err != nil {
		s.apiFail(c, err)
		return
	}
	want := strings.ToLower(strings.TrimSpace(c.GetHeader("X-Checksum-Sha256")))
	if want != "" {
		// Refused before a byte is received, with the header's name in the reason.
		if b, err := hex.DecodeString(want); err != nil || len(b) != sha256.Size {
			s.apiFail(c, fmt.Errorf("%w: X-Checksum-Sha256 is not 64 hex digits", errBadInput))
			return
		}
	}
	body := http.MaxBytesReader(c.Writer, c.Request.Body, MaxKernelSize)
	info, err := s.cfg.Kernels.Put(name, body, want)
	if err != nil {
		s.apiFail(c, err)
		return
	}
	s.log.Info("kernel uploaded", "name", name, "bytes", info.Size, "sha256", info.SHA256)
	c.JSON(http.StatusCreated, info)
}

func (s *Server) apiDeleteKernel(c *gin.Context) {
	name := c.Param("name")
	if err := s.cfg.Kernels.Remove(name, s.kernelUsers); err != nil {
		s.apiFail(c, err)
		return
	}
	s.log.Info("kernel deleted", "name", name)
	c.Status(http.StatusNoContent)
}

// kernelUsers names the networks and nodes that boot the kernel name.
func (s *Server) kernelUsers(name string) ([]string, error) {
	var users []string
	for _, net := range s.networkNames() {
		if s.cfg.Kernels.Default(net) == name {
			users = append(users, "network "+net)
		}
	}
	nodes, err := s.cfg.Nodes.ListNodes()
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

// apiSetNetworkKernel points net/<network>.efi at a kernel; a node fetching the kernel
// meanwhile gets the old one or the new one.
func (s *Server) apiSetNetworkKernel(c *gin.Context) {
	network := c.Param("network")
	display, ok := s.networks()[network]
	if !ok {
		s.apiFail(c, fmt.Errorf("%w: %q", ipxe.ErrUnknownNetwork, network))
		return
	}
	var in struct {
		Kernel string `json:"kernel"`
	}
	if err := c.ShouldBindJSON(&in); err != nil {
		s.apiFail(c, fmt.Errorf("%w: %v", errBadInput, err))
		return
	}
	if err := s.cfg.Kernels.SetDefault(network, in.Kernel); err != nil {
		s.apiFail(c, err)
		return
	}
	s.log.Info("network kernel set", "network", network, "kernel", in.Kernel)
	c.JSON(http.StatusOK, NetworkInfo{Name: network, Display: display, Kernel: s.cfg.Kernels.Default(network)})
}

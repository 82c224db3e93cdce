package httpd

import (
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"net/netip"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/threefoldtech/bootstrapd/ipxe"
	"github.com/threefoldtech/bootstrapd/store"
	"github.com/threefoldtech/bootstrapd/store/timeline"
)

const scriptType = "text/plain; charset=utf-8"

// handleIPXE serves /ipxe/<network>[/<farm>[/<extra>[/<kernel>]]].
func (s *Server) handleIPXE(c *gin.Context) {
	script, _, ok := s.pathScript(c)
	if !ok {
		return
	}
	s.metrics.scripts.WithLabelValues(string(ipxe.KindBoot)).Inc()
	c.Data(http.StatusOK, scriptType, script)
}

// policy is the boot policy for r: the configuration of the moment, URLs based where r came
// in.
func (s *Server) policy(r *http.Request) ipxe.Policy {
	def := s.live.defaultNode()
	return ipxe.Policy{
		Scripts:  s.cfg.Scripts,
		Networks: s.live.networks(),
		Default:  ipxe.BootRequest{Network: def.Network, Farm: def.Farm, Args: def.Args},
		Kernels:  s.cfg.Kernels,
		Base:     s.baseURL(r),
	}
}

// pathScript renders the script the URL's <network>[/<farm>[/<extra>[/<kernel>]]] asks for,
// for /ipxe/ and the media alike; on a bad request it has answered and ok is false.
func (s *Server) pathScript(c *gin.Context) (script []byte, req ipxe.BootRequest, ok bool) {
	p := s.policy(c.Request)
	req, err := ParseBootPath(c.Param("network")+c.Param("rest"), p.Networks)
	if err == nil {
		script, err = s.boot(p, req)
	}
	if err != nil {
		s.failBoot(c, err)
		return nil, req, false
	}
	return script, req, true
}

func (s *Server) failBoot(c *gin.Context, err error) {
	switch {
	case errors.Is(err, ipxe.ErrUnknownNetwork):
		fail(c, http.StatusNotFound, "%v (known: %s)", err, strings.Join(networkNames(s.live.networks()), ", "))
	case errors.Is(err, ipxe.ErrNoKernel):
		fail(c, http.StatusNotFound, "%v", err)
	case errors.Is(err, ipxe.ErrUnsafe), errors.Is(err, store.ErrBadMAC):
		fail(c, http.StatusBadRequest, "%v", err)
	default:
		s.log.Error("boot script", "path", c.Request.URL.Path, "err", err)
		fail(c, http.StatusInternalServerError, "internal error")
	}
}

// handleProvision serves a node's boot script as the policy decides from its record. It
// never answers 500 to a node: a node that cannot be booted gets a script that waits and
// asks again, so it boots without a power cycle once the problem is fixed.
func (s *Server) handleProvision(c *gin.Context) {
	mac, err := store.ParseMAC(c.Param("mac"))
	if err != nil {
		fail(c, http.StatusBadRequest, "%v", err)
		return
	}
	ip := clientIP(c)

	var rec *ipxe.BootRequest
	n, err := s.cfg.Nodes.GetNode(mac)
	switch {
	case err == nil:
		rec = &ipxe.BootRequest{Network: n.Network, Farm: n.Farm, Args: n.Args, Kernel: n.Kernel}
	case errors.Is(err, store.ErrNotFound):
		err = nil // no record is not a failed lookup: the policy boots default_node or waits
	}
	d, err := s.provision(s.policy(c.Request), mac, rec, err)
	if err != nil {
		s.log.Error("wait script", "mac", mac, "remote", ip, "err", err)
		fail(c, http.StatusServiceUnavailable, "cannot render a script: %v", err)
		return
	}
	if d.Reason != nil {
		s.log.Error("cannot boot node, it will wait", "mac", mac, "remote", ip, "err", d.Reason)
	}
	if c.Request.Method == http.MethodGet {
		s.metrics.scripts.WithLabelValues(string(d.Kind)).Inc()
		// Anyone can ask for any MAC: what the timeline keeps of it is short and checked
		// (arch= only as an iPXE architecture name), in memory until the store writes it
		// behind. The timeline logs the stage; a line here too would log each boot twice.
		s.emit(timeline.Event{MAC: mac, IP: ip, Arch: provisionArch(c.Query("arch")), Stage: timeline.ScriptServed, Detail: string(d.Kind)})
	}
	c.Data(http.StatusOK, scriptType, d.Script)
}

// provisionArch is the arch= of a /provision request as it may be recorded: one of iPXE's
// ${buildarch} values (or Go's name for it), optionally with iPXE's ${platform} as in
// "x86_64-efi". Anything else is dropped.
func provisionArch(q string) string {
	arch, platform, _ := strings.Cut(strings.ToLower(q), "-")
	switch arch {
	case "amd64":
		arch = "x86_64"
	case "i386", "x86_64", "arm32", "arm64", "riscv32", "riscv64", "loong64":
	default:
		return ""
	}
	switch platform {
	case "":
		return arch
	case "efi", "pcbios":
		return arch + "-" + platform
	}
	return ""
}

// emit reports a boot stage to the timeline, if there is one.
func (s *Server) emit(e timeline.Event) {
	if s.cfg.Timeline != nil {
		s.cfg.Timeline(e)
	}
}

// handleBinary serves the catalogue's iPXE binaries to UEFI HTTP Boot clients.
func (s *Server) handleBinary(c *gin.Context) {
	name := strings.TrimPrefix(c.Param("path"), "/")
	if dir, file, ok := strings.Cut(name, "/"); ok {
		if _, err := store.ParseMAC(dir); err == nil {
			name = file
		}
	}
	f, err := s.cfg.Binaries.Open(name)
	if err != nil {
		s.failOpen(c, "iPXE binary", name, err)
		return
	}
	defer f.Close()
	st, err := f.Stat()
	rs, ok := f.(interface {
		Read([]byte) (int, error)
		Seek(int64, int) (int64, error)
	})
	if err != nil || !ok {
		fail(c, http.StatusInternalServerError, "cannot read %q", name)
		return
	}
	c.Header("ETag", etag(st))
	c.Header("Content-Type", "application/efi")
	http.ServeContent(newProgressWriter(c.Writer, s.cfg.WriteTimeout), c.Request, name, st.ModTime(), rs)
}

func etag(st fs.FileInfo) string {
	return fmt.Sprintf(`"%x-%x"`, st.Size(), st.ModTime().UnixNano())
}

// clientIP is the client's address: the peer's, or the one a trusted proxy forwarded (gin
// reads X-Forwarded-For only from http.trusted_proxies).
func clientIP(c *gin.Context) netip.Addr {
	a, err := netip.ParseAddr(c.ClientIP())
	if err != nil {
		return netip.Addr{}
	}
	return a.Unmap().WithZone("")
}

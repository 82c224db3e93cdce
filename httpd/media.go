package httpd

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/threefoldtech/bootstrapd/ipxe/media"
)

// MediaBuilder builds a boot medium around a script; *media.Builder is one.
type MediaBuilder interface {
	Build(ctx context.Context, kind media.Kind, script []byte, opts media.Options) (*media.Medium, error)
}

// mediaName is the download name the predecessor used for a medium of network.
func mediaName(kind media.Kind, network string) string {
	switch kind {
	case media.KindUSB:
		return "ipxe-" + network + ".img"
	case media.KindUEFIImg:
		return "uefiusb-" + network + ".img"
	case media.KindSNPOnly:
		return "snponly-" + network + ".efi"
	}
	return "ipxe-" + network + kind.Ext() // .iso, .efi, .lkrn
}

func (s *Server) mediaRoutes(e *gin.Engine) {
	for _, kind := range media.Kinds() {
		h := func(c *gin.Context) { s.handleMedia(c, kind) }
		getHead(e, "/"+string(kind)+"/", h) // no network: ParseBootPath says what is missing
		getHead(e, "/"+string(kind)+"/:network", h)
		getHead(e, "/"+string(kind)+"/:network/*rest", h)
	}
	for _, st := range []struct {
		path string
		kind media.Kind
		prov bool
	}{
		{"/krn-generic", media.KindKRN, false}, {"/uefi-generic", media.KindUEFI, false},
		{"/krn-provision", media.KindKRN, true}, {"/uefi-provision", media.KindUEFI, true},
	} {
		h := func(c *gin.Context) { s.handleStaticMedia(c, st.kind, st.prov) }
		// The predecessor's README writes these with a trailing slash.
		getHead(e, st.path, h)
		getHead(e, st.path+"/", h)
	}
}

// handleMedia serves /<kind>/<network>[/<farm>[/<extra>[/<kernel>]]]: the medium carries
// exactly the script /ipxe/ returns for the same arguments.
func (s *Server) handleMedia(c *gin.Context, kind media.Kind) {
	if s.cfg.Media == nil {
		fail(c, http.StatusServiceUnavailable, "boot media are not available on this appliance: %v", s.cfg.MediaErr)
		return
	}
	script, req, ok := s.pathScript(c)
	if !ok {
		return
	}
	s.serveMedium(c, kind, script, mediaName(kind, req.Network))
}

// handleStaticMedia serves the -generic (no script: iPXE boots what the LAN offers) and
// -provision (asks /provision/<mac> for each NIC) binaries.
func (s *Server) handleStaticMedia(c *gin.Context, kind media.Kind, provision bool) {
	if s.cfg.Media == nil {
		fail(c, http.StatusServiceUnavailable, "boot media are not available on this appliance: %v", s.cfg.MediaErr)
		return
	}
	name := "ipxe-zero-os-generic" + kind.Ext()
	var script []byte
	if provision {
		var err error
		if script, err = s.cfg.Scripts.Provision(s.baseURL(c.Request)); err != nil {
			s.failBoot(c, err)
			return
		}
		name = "ipxe-zero-os-provision" + kind.Ext()
	}
	s.serveMedium(c, kind, script, name)
}

func (s *Server) serveMedium(c *gin.Context, kind media.Kind, script []byte, name string) {
	arch, err := media.ParseArch(c.Query("arch"))
	if err != nil {
		fail(c, http.StatusBadRequest, "%v: want arch=amd64 or arch=arm64", err)
		return
	}
	m, err := s.cfg.Media.Build(c.Request.Context(), kind, script, media.Options{Arch: arch})
	switch {
	case err == nil:
	case errors.Is(err, media.ErrScriptTooLong):
		fail(c, http.StatusRequestEntityTooLarge, "%v: %d bytes, at most %d; shorten the extra arguments", err, len(script), media.MaxScriptLen)
		return
	case errors.Is(err, media.ErrBadScript), errors.Is(err, media.ErrUnknownArch):
		fail(c, http.StatusBadRequest, "%v", err)
		return
	case errors.Is(err, media.ErrUnavailable):
		fail(c, http.StatusServiceUnavailable, "%v", err)
		return
	default:
		s.log.Error("build medium", "kind", kind, "err", err)
		fail(c, http.StatusInternalServerError, "could not build the medium")
		return
	}
	c.Header("Content-Type", "application/octet-stream")
	c.Header("Content-Disposition", fmt.Sprintf("attachment; filename=%q", name))
	c.Header("ETag", m.ETag)
	c.Header("Cache-Control", "no-cache")
	// No Last-Modified: the strong ETag alone decides (If-None-Match, If-Range).
	http.ServeContent(newProgressWriter(c.Writer, s.cfg.WriteTimeout), c.Request, name, time.Time{}, m.Reader())
}

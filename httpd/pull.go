package httpd

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/threefoldtech/bootstrapd/store/kernels"
)

// KernelPuller mirrors kernels from upstream URLs; *kernels.Puller is one.
type KernelPuller interface {
	// Pull downloads rawURL as network's kernel for arch ("" or x86_64: net/<network>.efi;
	// arm64: net/<network>-arm64.efi), checked (size, header, sha256 when given),
	// stores it and repoints net/<network>.efi; on error nothing changed.
	Pull(ctx context.Context, network, arch, rawURL, sha256Hex string) (kernels.PullEvent, error)
	// History is the recent pulls of networks, newest first.
	History(networks []string) []kernels.PullEvent
}

// PullInput is the body of POST /api/v1/networks/<network>/pull.
type PullInput struct {
	URL    string `json:"url"`
	SHA256 string `json:"sha256,omitempty"`
	Arch   string `json:"arch,omitempty"` // "" or x86_64, or arm64
}

// pullRoutes adds the kernel mirroring routes to the admin group.
func (s *Server) pullRoutes(g *gin.RouterGroup, a *api) {
	g.POST("/networks/:network/pull", func(c *gin.Context) { s.apiPull(c, a) })
	getHead(g, "/kernels/pulls", func(c *gin.Context) {
		if s.cfg.Puller == nil {
			fail(c, http.StatusServiceUnavailable, "kernel pulls are not configured")
			return
		}
		c.JSON(http.StatusOK, s.cfg.Puller.History(networkNames(a.live.networks())))
	})
}

// apiPull runs one pull and answers its event: 200 when the kernel was updated or is
// unchanged, 502 when the upstream or its bytes failed (the current kernel stays), 400 for
// a bad URL or sha256, 404 for a network that is not configured.
func (s *Server) apiPull(c *gin.Context, a *api) {
	if s.cfg.Puller == nil {
		fail(c, http.StatusServiceUnavailable, "kernel pulls are not configured")
		return
	}
	network := c.Param("network")
	if _, ok := a.live.networks()[network]; !ok {
		c.AbortWithStatusJSON(http.StatusNotFound, apiError{fmt.Sprintf("unknown network: %q", network)})
		return
	}
	var in PullInput
	if err := readJSON(c, &in); err != nil {
		a.apiFail(c, err)
		return
	}
	if err := kernels.ValidateUpstream(in.URL); err != nil {
		a.apiFail(c, err)
		return
	}
	ev, err := s.cfg.Puller.Pull(c.Request.Context(), network, in.Arch, in.URL, in.SHA256)
	// A pull may outlast the write deadline set when the request came in: the answer gets a
	// fresh one.
	_ = http.NewResponseController(c.Writer).SetWriteDeadline(time.Now().Add(s.cfg.WriteTimeout))
	switch {
	case err == nil:
		c.JSON(http.StatusOK, ev)
	case ev.Result == kernels.PullError:
		c.AbortWithStatusJSON(http.StatusBadGateway, struct {
			apiError
			Event kernels.PullEvent `json:"event"`
		}{apiError{err.Error()}, ev})
	case errors.Is(err, kernels.ErrChecksum):
		a.apiFail(c, err)
	default:
		a.apiFail(c, fmt.Errorf("%w: %v", errBadInput, err))
	}
}

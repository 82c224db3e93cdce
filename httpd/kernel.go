package httpd

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"syscall"

	"github.com/gin-gonic/gin"

	"github.com/threefoldtech/bootstrapd/ipxe"
	"github.com/threefoldtech/bootstrapd/store"
	"github.com/threefoldtech/bootstrapd/store/timeline"
)

// handleKernel serves /kernel/<name> from the kernels directory with Range and ETag. Links
// (net/prod.efi → ../zos-v3.4.efi) are followed only inside the directory (kernels.Dir), so
// a planted link cannot expose the rest of the disk.
func (s *Server) handleKernel(c *gin.Context) {
	name := strings.TrimPrefix(c.Param("name"), "/")
	if err := ipxe.ValidateKernel(name); err != nil {
		fail(c, http.StatusBadRequest, "%v", err)
		return
	}
	f, err := s.cfg.Kernels.Open(name)
	if err != nil {
		s.failOpen(c, "kernel", name, err)
		return
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil || !st.Mode().IsRegular() {
		fail(c, http.StatusNotFound, "kernel %q not found", name)
		return
	}
	c.Header("ETag", etag(st))
	c.Header("Content-Type", "application/octet-stream")
	// A node fetches the kernel whole right after its script; a HEAD, a Range request
	// (resume) or a conditional one (a cache) is not a boot.
	h := c.Request.Header
	boot := c.Request.Method == http.MethodGet && h.Get("Range") == "" &&
		h.Get("If-None-Match") == "" && h.Get("If-Modified-Since") == ""
	// The boot script names its node: /kernel/<name>?mac=<mac>. Without it (a download by
	// hand, an old script) the kernel is served but no node's timeline moves.
	mac, err := store.ParseMAC(c.Query("mac"))
	boot = boot && err == nil
	if boot {
		s.emit(timeline.Event{MAC: mac, IP: clientIP(c), Stage: timeline.KernelRequested, Detail: name})
	}
	cw := newProgressWriter(c.Writer, s.cfg.WriteTimeout)
	http.ServeContent(cw, c.Request, name, st.ModTime(), f)
	s.metrics.kernelBytes.Add(float64(cw.n))
	if boot && cw.n == st.Size() {
		s.emit(timeline.Event{MAC: mac, IP: clientIP(c), Stage: timeline.KernelSent, Detail: fmt.Sprintf("%s %d bytes", name, cw.n)})
	}
}

// failOpen answers a file that could not be opened: 503 when the server is short of
// descriptors or memory or the disk failed, which a client should retry rather than take as
// final; 404 otherwise (absent, or a symlink out of its directory). The reason never names a
// local path.
func (s *Server) failOpen(c *gin.Context, what, name string, err error) {
	for _, errno := range []syscall.Errno{syscall.EMFILE, syscall.ENFILE, syscall.ENOMEM, syscall.EIO} {
		if errors.Is(err, errno) {
			s.log.Error("open "+what, "name", name, "err", err)
			c.Header("Retry-After", "5")
			fail(c, http.StatusServiceUnavailable, "%s %q cannot be read right now (%v); try again", what, name, errno)
			return
		}
	}
	fail(c, http.StatusNotFound, "%s %q not found", what, name)
}

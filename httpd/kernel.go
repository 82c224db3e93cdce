package httpd

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/threefoldtech/bootstrapd/ipxe"
)

// handleKernel serves /kernel/<name> from the kernels directory with Range and ETag.
// os.Root resolves symlinks (net/prod.efi → ../zos-v3.4.efi) but refuses any that leave the
// directory, so a planted link cannot expose the rest of the disk.
func (s *Server) handleKernel(c *gin.Context) {
	name := strings.TrimPrefix(c.Param("name"), "/")
	if err := ipxe.ValidateKernel(name); err != nil {
		fail(c, http.StatusBadRequest, "%v", err)
		return
	}
	f, err := s.kernels.Open(name)
	if err != nil {
		fail(c, http.StatusNotFound, "kernel %q not found", name)
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
	if boot {
		s.stage(Stage{IP: remoteIP(c.Request), Name: "kernel-requested", Detail: name})
	}
	cw := &countingWriter{ResponseWriter: c.Writer}
	http.ServeContent(cw, c.Request, name, st.ModTime(), f)
	s.metrics.kernelBytes.Add(float64(cw.n))
	if boot && cw.n == st.Size() {
		s.stage(Stage{IP: remoteIP(c.Request), Name: "kernel-sent", Detail: fmt.Sprintf("%s %d bytes", name, cw.n)})
	}
}

type countingWriter struct {
	gin.ResponseWriter
	n int64
}

func (w *countingWriter) Write(p []byte) (int, error) {
	n, err := w.ResponseWriter.Write(p)
	w.n += int64(n)
	return n, err
}

package httpd

// The predecessor's /expert (a kernel file, extra arguments and a format) and /generate
// pages live on in the operator page's generator: these routes check what a link names and
// send the browser there with it, so a link (from /images, or shared) can name a kernel.

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"

	"github.com/gin-gonic/gin"

	"github.com/threefoldtech/bootstrapd/ipxe"
	"github.com/threefoldtech/bootstrapd/ipxe/media"
)

func (a *api) expertRoutes(e *gin.Engine) {
	generate := func(c *gin.Context) { c.Redirect(http.StatusFound, "/#generator") }
	getHead(e, "/generate", generate)
	getHead(e, "/generate/", generate)
	getHead(e, "/expert", a.expert)
	getHead(e, "/expert/", a.expert)
}

// expertFormats are the format= values /expert takes: the generator's rows.
func expertFormats() []string {
	f := []string{"ipxe"}
	for _, k := range media.Kinds() {
		f = append(f, string(k))
	}
	return f
}

// expert checks network, farm, args, kernel and format from the query (each optional) and
// redirects to the generator with them; anything wrong is 400 or 404 with the reason, so a
// broken link says what is broken instead of opening an empty form.
func (a *api) expert(c *gin.Context) {
	q := c.Request.URL.Query()
	out := url.Values{}
	if n := q.Get("network"); n != "" {
		if err := ipxe.ValidateNetwork(n); err != nil {
			fail(c, http.StatusBadRequest, "network: %v", err)
			return
		}
		if _, ok := a.live.networks()[n]; !ok {
			fail(c, http.StatusNotFound, "%v: %q", ipxe.ErrUnknownNetwork, n)
			return
		}
		out.Set("gen_network", n)
	}
	if f := q.Get("farm"); f != "" {
		farm, err := ipxe.ParseFarm(f)
		if err != nil {
			fail(c, http.StatusBadRequest, "farm: %v", err)
			return
		}
		out.Set("gen_farm", fmt.Sprint(farm))
	}
	if s := q.Get("args"); s != "" {
		if err := ipxe.ValidateArgs(s); err != nil {
			fail(c, http.StatusBadRequest, "args: %v", err)
			return
		}
		out.Set("gen_args", s)
	}
	if k := q.Get("kernel"); k != "" {
		if err := ipxe.ValidateKernel(k); err != nil {
			fail(c, http.StatusBadRequest, "kernel: %v", err)
			return
		}
		if !a.kernels.Exists(k) {
			fail(c, http.StatusNotFound, "%v: %s (see /images)", ipxe.ErrNoKernel, k)
			return
		}
		out.Set("gen_kernel", k)
	}
	if f := q.Get("format"); f != "" {
		if !slices.Contains(expertFormats(), f) {
			fail(c, http.StatusBadRequest, "unknown format %q: want one of %v", f, expertFormats())
			return
		}
		out.Set("gen_format", f)
	}
	target := "/"
	if len(out) > 0 {
		target += "?" + out.Encode()
	}
	c.Redirect(http.StatusFound, target+"#generator")
}

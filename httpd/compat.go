package httpd

// The predecessor's (0-bootstrap's) remaining routes: the public kernel list /images, and
// the kernel upload POST /api/kernel, now with the admin API's bearer token instead of a
// cookie. /api/symlink/… changed state on a GET: it answers 410 with what replaces it.

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"html"
	"io"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/threefoldtech/bootstrapd/store/kernels"
)

// compatRoutes registers /api/kernel and /api/symlink/… (admin), and /images (public).
func (a *api) compatRoutes(e *gin.Engine) {
	e.POST("/api/kernel", a.requireAdmin, a.apiKernelMultipart)
	// A GET never changes state: say what to send instead of a bare 404.
	getHead(e, "/api/kernel", func(c *gin.Context) {
		c.Header("Allow", http.MethodPost)
		fail(c, http.StatusMethodNotAllowed, "POST a multipart form with the kernel in the field %q and Authorization: Bearer <token> (see the README)", multipartField)
	})
	getHead(e, "/api/symlink/*rest", func(c *gin.Context) {
		fail(c, http.StatusGone, "/api/symlink/ is gone: PUT /api/v1/networks/<network>/kernel {\"kernel\":\"<name>\"} with Authorization: Bearer <token> (see the README)")
	})
	getHead(e, "/images", a.images)
	getHead(e, "/images/", a.images)
	getHead(e, "/images.json", a.imagesJSON)
	a.expertRoutes(e)
}

// multipartField is the predecessor's form field name for the kernel file.
const multipartField = "kernel"

// maxFormField bounds a multipart field other than the kernel (sha256, or anything an old
// script sends along); it is read and, unless it is sha256, dropped.
const maxFormField = 4 << 10

// kernelUploadResult answers POST /api/kernel. Status and Message are the predecessor's
// fields, so an old script that checks status keeps working; the rest is KernelInfo.
type kernelUploadResult struct {
	Status  string `json:"status"`
	Message string `json:"message,omitempty"`
	Error   string `json:"error,omitempty"`
	*kernels.KernelInfo
}

// apiKernelMultipart stores the file of the form field "kernel" under its own file name,
// streamed to disk as PUT /api/v1/kernels/<name> does: nothing is buffered, and a refused
// upload leaves nothing behind. A "sha256" field before the file, or X-Checksum-Sha256, is
// checked.
func (a *api) apiKernelMultipart(c *gin.Context) {
	failUpload := func(code int, err error) {
		c.AbortWithStatusJSON(code, kernelUploadResult{Status: "error", Message: err.Error(), Error: err.Error()})
	}
	mt, _, err := mime.ParseMediaType(c.GetHeader("Content-Type"))
	if err != nil || mt != "multipart/form-data" {
		failUpload(http.StatusBadRequest, fmt.Errorf("%w: Content-Type must be multipart/form-data (curl -F %s=@FILE)", errBadInput, multipartField))
		return
	}
	// The form's framing is small; the bound is the kernel's plus room for it.
	c.Request.Body = http.MaxBytesReader(c.Writer, c.Request.Body, MaxKernelSize+1<<20)
	mr, err := c.Request.MultipartReader()
	if err != nil {
		failUpload(http.StatusBadRequest, fmt.Errorf("%w: %v", errBadInput, err))
		return
	}
	want := strings.ToLower(strings.TrimSpace(c.GetHeader("X-Checksum-Sha256")))
	for {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			failUpload(http.StatusBadRequest, fmt.Errorf("%w: no file in the form field %q", errBadInput, multipartField))
			return
		}
		if err != nil {
			a.uploadErr(failUpload, fmt.Errorf("%w: multipart: %v", errBadInput, err))
			return
		}
		if part.FormName() != multipartField {
			if part.FileName() != "" {
				failUpload(http.StatusBadRequest, fmt.Errorf("%w: a file in the form field %q: the kernel goes in %q", errBadInput, part.FormName(), multipartField))
				return
			}
			v, err := io.ReadAll(io.LimitReader(part, maxFormField+1))
			if err != nil || len(v) > maxFormField {
				failUpload(http.StatusBadRequest, fmt.Errorf("%w: form field %q is longer than %d bytes", errBadInput, part.FormName(), maxFormField))
				return
			}
			if part.FormName() == "sha256" {
				want = strings.ToLower(strings.TrimSpace(string(v)))
			}
			continue
		}
		if want != "" {
			if b, err := hex.DecodeString(want); err != nil || len(b) != sha256.Size {
				failUpload(http.StatusBadRequest, fmt.Errorf("%w: the sha256 is not 64 hex digits", errBadInput))
				return
			}
		}
		// FileName is the base name the client sent (a path's directories dropped).
		name := part.FileName()
		if name == "" {
			failUpload(http.StatusBadRequest, fmt.Errorf("%w: the field %q carries no file name", errBadInput, multipartField))
			return
		}
		if err := kernels.ValidName(name); err != nil {
			failUpload(http.StatusBadRequest, err)
			return
		}
		info, err := a.kernels.Put(name, clientReader{part}, want)
		if err != nil {
			a.uploadErr(failUpload, err)
			return
		}
		a.log.Info("kernel uploaded", "name", name, "bytes", info.Size, "sha256", info.SHA256, "via", "multipart")
		c.JSON(http.StatusCreated, kernelUploadResult{Status: "success", KernelInfo: &info})
		return
	}
}

// clientReader marks its reader's errors (a broken form, a client that hung up) as the
// client's: 400, not 500.
type clientReader struct{ r io.Reader }

func (cr clientReader) Read(p []byte) (int, error) {
	n, err := cr.r.Read(p)
	if err != nil && err != io.EOF {
		err = fmt.Errorf("%w: %w", errBadInput, err)
	}
	return n, err
}

// uploadErr maps an upload error to its status as apiFail does.
func (a *api) uploadErr(failUpload func(int, error), err error) {
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		failUpload(http.StatusRequestEntityTooLarge, fmt.Errorf("kernel larger than %d bytes", MaxKernelSize))
	case errors.Is(err, errBadInput), errors.Is(err, kernels.ErrChecksum), errors.Is(err, kernels.ErrEmpty):
		failUpload(http.StatusBadRequest, err)
	default:
		a.log.Error("kernel upload", "err", err)
		failUpload(http.StatusInternalServerError, errors.New("the kernel could not be stored (see the appliance's log)"))
	}
}

// Image is one kernel file in /images: the predecessor's list, with what boots it.
type Image struct {
	kernels.KernelInfo
	// Networks whose net/<network>.efi points at this file.
	Networks []string `json:"networks"`
}

// imageList is the kernel files, newest first (the predecessor's order), then by name.
func (a *api) imageList() ([]Image, error) {
	nets := networkNames(a.live.networks())
	list, err := a.kernels.List(nets)
	if err != nil {
		return nil, err
	}
	out := make([]Image, 0, len(list.Kernels))
	for _, k := range list.Kernels {
		img := Image{KernelInfo: k, Networks: []string{}}
		for _, n := range nets {
			if list.Networks[n] == k.Name {
				img.Networks = append(img.Networks, n)
			}
		}
		out = append(out, img)
	}
	slices.SortFunc(out, func(x, y Image) int {
		return cmp.Or(y.MTime.Compare(x.MTime), strings.Compare(x.Name, y.Name))
	})
	return out, nil
}

func (a *api) imagesJSON(c *gin.Context) {
	imgs, err := a.imageList()
	if err != nil {
		a.log.Error("images", "err", err)
		fail(c, http.StatusInternalServerError, "the kernel list could not be read (see the appliance's log)")
		return
	}
	c.JSON(http.StatusOK, gin.H{"images": imgs})
}

func (a *api) images(c *gin.Context) {
	imgs, err := a.imageList()
	if err != nil {
		a.log.Error("images", "err", err)
		fail(c, http.StatusInternalServerError, "the kernel list could not be read (see the appliance's log)")
		return
	}
	c.Header("Content-Type", "text/html; charset=utf-8")
	c.Header("Cache-Control", "no-cache")
	c.Header("Content-Security-Policy", "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
	c.Header("X-Content-Type-Options", "nosniff")
	c.String(http.StatusOK, "%s", imagesPage(imgs))
}

// imagesPage is /images. Every name is escaped for where it lands (a kernel file name is
// the operator's, but it reaches other people's browsers). Built by hand rather than with
// html/template: see ipxe's template type for what template reflection costs the binary.
func imagesPage(imgs []Image) string {
	var b strings.Builder
	b.WriteString(`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Zero-OS kernel images</title>
<link rel="stylesheet" href="/ui/style.css">
</head>
<body>
<main>
<h1>Zero-OS kernel images</h1>
<p>Newest first. <a href="/images.json">JSON</a> · <a href="/">boot media generator</a></p>
<table class="images">
<thead><tr><th>file</th><th>size</th><th>modified</th><th>sha256</th><th>default of</th><th></th></tr></thead>
<tbody>`)
	esc := html.EscapeString
	for _, img := range imgs {
		fmt.Fprintf(&b, `
<tr><td><a href="/kernel/%s">%s</a></td><td title="%d bytes">%s</td><td>%s</td><td><code>%s</code></td><td>%s</td><td><a href="/expert?kernel=%s">boot media</a></td></tr>`,
			esc(url.PathEscape(img.Name)), esc(img.Name), img.Size, humanSize(img.Size),
			img.MTime.UTC().Format("2006-01-02 15:04:05 UTC"), esc(img.SHA256),
			esc(strings.Join(img.Networks, ", ")), esc(url.QueryEscape(img.Name)))
	}
	if len(imgs) == 0 {
		b.WriteString(`
<tr><td colspan="6">No kernel files.</td></tr>`)
	}
	b.WriteString(`
</tbody>
</table>
</main>
</body>
</html>
`)
	return b.String()
}

// humanSize writes n bytes in MiB with one decimal (kernels are tens of MiB), or bytes.
func humanSize(n int64) string {
	if n < 1<<20 {
		return fmt.Sprintf("%d B", n)
	}
	return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
}

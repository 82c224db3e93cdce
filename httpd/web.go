package httpd

import (
	"embed"
	"io/fs"
	"net/http"

	"github.com/gin-gonic/gin"
)

// The operator's page: static files, no CDN, so it works on a LAN without internet.
//
//go:embed web
var webFiles embed.FS

func (s *Server) webRoutes(e *gin.Engine) {
	sub, err := fs.Sub(webFiles, "web")
	if err != nil {
		panic(err) // the embed directive guarantees the directory
	}
	files := http.FS(sub)
	headers := func(c *gin.Context) {
		c.Header("Cache-Control", "no-cache")
		// The page loads only its own files and runs no inline code; nothing may frame it
		// (the admin token is typed into it).
		c.Header("Content-Security-Policy", "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
		c.Header("X-Content-Type-Options", "nosniff")
		c.Header("Referrer-Policy", "no-referrer")
	}
	getHead(e, "/", func(c *gin.Context) {
		headers(c)
		c.FileFromFS("/", files)
	})
	getHead(e, "/ui/*file", func(c *gin.Context) {
		headers(c)
		c.FileFromFS(c.Param("file"), files)
	})
}

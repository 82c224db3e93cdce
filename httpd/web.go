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
	e.GET("/", func(c *gin.Context) {
		c.Header("Cache-Control", "no-cache")
		c.FileFromFS("/", files)
	})
	e.GET("/ui/*file", func(c *gin.Context) {
		c.Header("Cache-Control", "no-cache")
		c.FileFromFS(c.Param("file"), files)
	})
}

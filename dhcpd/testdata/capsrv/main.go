// Command capsrv runs the dhcpd ProxyDHCP with a tiny HTTP server whose /provision/<mac>
// script powers the VM off. capture.sh uses it to record real firmware's DHCP packets; it
// lives in testdata so `go build ./...` skips it. Run: go run ./dhcpd/testdata/capsrv DIR.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"path"
	"syscall"

	"github.com/insomniacslk/dhcp/iana"

	"github.com/threefoldtech/bootstrapd/dhcpd"
	"github.com/threefoldtech/bootstrapd/ipxe"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "capsrv:", err)
		os.Exit(1)
	}
}

func run() error {
	cat, err := ipxe.OpenCatalogue(os.Args[1])
	if err != nil {
		return err
	}
	var files dhcpd.BootFiles = cat
	if len(os.Args) > 2 && os.Args[2] == "httpboot-only" {
		// Leave PXE unanswered so OVMF falls through to UEFI HTTP Boot.
		files = httpOnly{cat}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	srv, err := dhcpd.New(dhcpd.Config{Files: files, Logger: log, HTTPPort: 80})
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/provision/", func(w http.ResponseWriter, r *http.Request) {
		log.Info("http", "path", r.URL.Path)
		fmt.Fprint(w, "#!ipxe\necho capsrv: provision script reached\npoweroff\n")
	})
	// HTTP Boot clients are handed /boot/<mac>/<binary>: serve the binary whatever the prefix.
	binaries := http.FileServerFS(cat)
	mux.HandleFunc("/boot/", func(w http.ResponseWriter, r *http.Request) {
		r2 := r.Clone(r.Context())
		r2.URL.Path = "/" + path.Base(r.URL.Path)
		binaries.ServeHTTP(w, r2)
	})
	hs := &http.Server{Addr: ":80", Handler: mux}
	go func() { <-ctx.Done(); _ = hs.Close() }()
	go func() { _ = hs.ListenAndServe() }()
	return srv.Serve(ctx)
}

type httpOnly struct{ *ipxe.Catalogue }

func (h httpOnly) BootFile(arch iana.Arch) (string, error) {
	if !ipxe.IsHTTPBoot(arch) {
		return "", fmt.Errorf("capsrv: %s is not HTTP Boot", arch)
	}
	return h.Catalogue.BootFile(arch)
}

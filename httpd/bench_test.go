package httpd

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/threefoldtech/bootstrapd/store"
)

// BenchmarkProvision is the whole /provision/<mac> handler in-process: route, bbolt read,
// seen-MAC write (a bbolt transaction with fsync), script render.
func BenchmarkProvision(b *testing.B) {
	f := newFixture(b, nil)
	if _, err := f.db.CreateNode(store.Node{MAC: "52:54:00:12:34:56", Network: "test", Farm: 42}); err != nil {
		b.Fatal(err)
	}
	h := f.srv.Handler()
	b.ReportAllocs()
	for b.Loop() {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/provision/52:54:00:12:34:56", nil))
		if w.Code != 200 {
			b.Fatal(w.Code)
		}
		for len(f.stages) > 0 {
			<-f.stages
		}
	}
}

// BenchmarkProvisionParallel is the same under concurrency: bbolt batches the seen-MAC writes.
func BenchmarkProvisionParallel(b *testing.B) {
	f := newFixture(b, func(c *Config) { c.Timeline = nil })
	if _, err := f.db.CreateNode(store.Node{MAC: "52:54:00:12:34:56", Network: "test", Farm: 42}); err != nil {
		b.Fatal(err)
	}
	h := f.srv.Handler()
	b.ReportAllocs()
	b.SetParallelism(32)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			w := httptest.NewRecorder()
			h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/provision/52:54:00:12:34:56", nil))
			if w.Code != 200 {
				b.Error(w.Code)
				return
			}
		}
	})
}

func BenchmarkIPXEScript(b *testing.B) {
	f := newFixture(b, nil)
	h := f.srv.Handler()
	b.ReportAllocs()
	for b.Loop() {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/ipxe/test/42/console=ttyS0", nil))
		if w.Code != 200 {
			b.Fatal(w.Code)
		}
	}
}

// BenchmarkKernelDownload is a 32 MiB kernel over a real TCP connection on loopback, read by
// net/http's client: what serving one node's kernel costs, sendfile(2) included.
func BenchmarkKernelDownload(b *testing.B) {
	f := newFixture(b, nil)
	const size = 32 << 20
	if err := os.WriteFile(filepath.Join(f.kernels, "zos-bench.efi"), make([]byte, size), 0o644); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(size)
	for b.Loop() {
		resp, err := http.Get(f.base + "/kernel/zos-bench.efi")
		if err != nil {
			b.Fatal(err)
		}
		n, err := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if err != nil || n != size || resp.StatusCode != 200 {
			b.Fatalf("%d bytes, status %d, %v", n, resp.StatusCode, err)
		}
	}
}

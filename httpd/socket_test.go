package httpd

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
)

func TestListenUnix(t *testing.T) {
	tests := map[string]struct {
		prepare func(t *testing.T, path string) // what is at path before
		err     string                          // "": bound
	}{
		"fresh": {prepare: func(*testing.T, string) {}},
		"directory made": {prepare: func(t *testing.T, path string) {
			must(t, os.Remove(filepath.Dir(path)))
		}},
		"stale socket of a crashed daemon": {prepare: func(t *testing.T, path string) {
			l, err := net.Listen("unix", path)
			must(t, err)
			l.(*net.UnixListener).SetUnlinkOnClose(false)
			l.Close()
		}},
		"stale file": {prepare: func(t *testing.T, path string) {
			must(t, os.WriteFile(path, nil, 0o644))
		}},
		"another daemon listening": {prepare: func(t *testing.T, path string) {
			l, err := net.Listen("unix", path)
			must(t, err)
			t.Cleanup(func() { l.Close() })
		}, err: "another bootstrapd is listening"},
		"a directory in the way": {prepare: func(t *testing.T, path string) {
			must(t, os.Mkdir(path, 0o755))
			must(t, os.WriteFile(filepath.Join(path, "x"), nil, 0o644))
		}, err: "admin socket"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "run")
			must(t, os.Mkdir(dir, 0o700))
			path := filepath.Join(dir, "admin.sock")
			tc.prepare(t, path)
			l, err := listenUnix(path)
			// Whatever happened, no temporary socket is left beside the path.
			entries, _ := os.ReadDir(dir)
			for _, e := range entries {
				if strings.HasPrefix(e.Name(), ".admin.sock.") {
					t.Errorf("temporary socket left: %s", e.Name())
				}
			}
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("listenUnix = %v, want an error with %q", err, tc.err)
				}
				return
			}
			must(t, err)
			defer l.Close()
			st, err := os.Stat(path)
			must(t, err)
			if st.Mode().Type() != os.ModeSocket || st.Mode().Perm() != 0o600 {
				t.Fatalf("%s is %v, want a socket with mode 0600", path, st.Mode())
			}
			if st, err := os.Stat(dir); err != nil || st.Mode().Perm()&0o007 != 0 {
				t.Fatalf("socket directory %v, %v: others may enter it", st.Mode(), err)
			}
			// The listener is the one at path.
			go func() {
				if c, err := l.Accept(); err == nil {
					c.Write([]byte("k"))
					c.Close()
				}
			}()
			c, err := net.Dial("unix", path)
			must(t, err)
			defer c.Close()
			b := make([]byte, 1)
			if _, err := c.Read(b); err != nil || b[0] != 'k' {
				t.Fatalf("read %q, %v from the socket", b, err)
			}
		})
	}
}

// Serve removes the admin socket when it returns.
func TestAdminSocketRemovedOnReturn(t *testing.T) {
	f := newFixture(t, nil)
	if _, err := os.Stat(f.socket); err != nil {
		t.Fatal(err)
	}
	srv, err := New(Config{
		Addr: "127.0.0.1:0", Networks: testNetworks, Kernels: f.srv.cfg.Kernels, Binaries: f.srv.cfg.Binaries,
		Scripts: f.srv.cfg.Scripts, Nodes: f.db, AdminSocket: filepath.Join(filepath.Dir(f.socket), "second.sock"),
	})
	must(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- srv.Serve(ctx) }()
	cancel()
	must(t, <-done)
	if _, err := os.Stat(srv.AdminSocket()); !os.IsNotExist(err) {
		t.Fatalf("admin socket after Serve returned: %v", err)
	}
}

func TestNewConfig(t *testing.T) {
	f := newFixture(t, nil)
	base := Config{Addr: "127.0.0.1:0", Networks: testNetworks, Kernels: f.srv.cfg.Kernels,
		Binaries: f.srv.cfg.Binaries, Scripts: f.srv.cfg.Scripts, Nodes: f.db}
	reg := prometheus.NewRegistry()
	tests := map[string]struct {
		mutate func(*Config)
		err    string // "": accepted
	}{
		"defaults":          {func(*Config) {}, ""},
		"registry for both": {func(c *Config) { c.Registerer, c.Gatherer = reg, reg }, ""},
		"registerer alone":  {func(c *Config) { c.Registerer = prometheus.NewRegistry() }, "Registerer and Gatherer"},
		"gatherer alone":    {func(c *Config) { c.Gatherer = prometheus.NewRegistry() }, "Registerer and Gatherer"},
		"no nodes":          {func(c *Config) { c.Nodes = nil }, "required"},
		"no kernels":        {func(c *Config) { c.Kernels = nil }, "required"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			cfg := base
			tc.mutate(&cfg)
			srv, err := New(cfg)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("New = %v, want an error with %q", err, tc.err)
				}
				return
			}
			must(t, err)
			srv.tcp.Close()
		})
	}
}

// New leaves process-wide state alone: gin's mode is the program's.
func TestNewLeavesGinMode(t *testing.T) {
	defer gin.SetMode(gin.Mode())
	gin.SetMode(gin.TestMode)
	newFixture(t, nil)
	if m := gin.Mode(); m != gin.TestMode {
		t.Fatalf("gin mode %q after New, want %q", m, gin.TestMode)
	}
}

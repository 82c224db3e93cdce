package httpd

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// testCA is a certificate authority made for one test, so the TLS clients below check the
// server's chain for real instead of skipping verification.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
}

func newTestCA(t *testing.T) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	must(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "bootstrapd httpd test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	must(t, err)
	cert, err := x509.ParseCertificate(der)
	must(t, err)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &testCA{cert: cert, key: key, pool: pool}
}

// issue writes a server certificate for 127.0.0.1 named cn, valid until notAfter, and its key.
func (ca *testCA) issue(t *testing.T, certFile, keyFile, cn string, notAfter time.Time) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	must(t, err)
	serial, err := rand.Int(rand.Reader, big.NewInt(1<<62))
	must(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: serial, Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: notAfter,
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	must(t, err)
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	must(t, err)
	must(t, os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644))
	must(t, os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600))
}

func (ca *testCA) client() *http.Client {
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: ca.pool}, DisableKeepAlives: true,
	}}
}

// peerCN is the common name of the certificate a new TLS connection to addr is shown.
func (ca *testCA) peerCN(t *testing.T, addr string) string {
	t.Helper()
	c, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: ca.pool})
	must(t, err)
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0].Subject.CommonName
}

func tlsFixture(t *testing.T, mutate func(*Config)) (*fixture, *testCA, string, string) {
	t.Helper()
	ca := newTestCA(t)
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	ca.issue(t, certFile, keyFile, "first", time.Now().Add(time.Hour))
	f := newFixture(t, func(c *Config) {
		c.TLSAddr, c.TLSCertFile, c.TLSKeyFile = "127.0.0.1:0", certFile, keyFile
		if mutate != nil {
			mutate(c)
		}
	})
	return f, ca, certFile, keyFile
}

func TestTLSListener(t *testing.T) {
	f, ca, _, _ := tlsFixture(t, nil)
	base := "https://" + f.srv.TLSAddr().String()
	c := ca.client()
	tests := map[string]struct {
		path     string
		hdr      []string
		code     int
		contains string
	}{
		"health":              {"/healthz", nil, 200, "ok"},
		"script names https":  {"/ipxe/test/42", nil, 200, "set kernel " + base + "/kernel/net/test.efi\n"},
		"kernel":              {"/kernel/zos-v3.efi", nil, 200, "MZ kernel bytes"},
		"admin with token":    {"/api/v1/nodes", []string{"Authorization", "Bearer 0123456789abcdef0123"}, 200, "[]"},
		"admin without token": {"/api/v1/nodes", nil, 401, ""},
		"unknown route":       {"/nope", nil, 404, "not found"},
		"bad argument":        {"/ipxe/test/1/a;reboot", nil, 400, "interpreted by iPXE"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			code, body := do(t, c, http.MethodGet, base+tc.path, "", tc.hdr...)
			if code != tc.code || !strings.Contains(body, tc.contains) {
				t.Errorf("GET %s: %d %q, want %d with %q", tc.path, code, body, tc.code, tc.contains)
			}
		})
	}
	// The plain listener keeps its http:// base.
	if _, _, body := get(t, f.base+"/ipxe/test/42"); !strings.Contains(body, f.base+"/kernel/net/test.efi") {
		t.Errorf("plain listener's script does not name %s:\n%s", f.base, body)
	}
	// A client that does not trust the CA is refused by its own check: the chain is real.
	if _, err := http.Get(base + "/healthz"); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("a client without the test CA: err = %v, want a certificate error", err)
	}
	// Plain HTTP to the TLS port gets no HTTP answer.
	if resp, err := http.Get("http://" + f.srv.TLSAddr().String() + "/healthz"); err == nil && resp.StatusCode == 200 {
		t.Errorf("plain HTTP on the TLS port answered 200")
	}
}

func TestTLSReload(t *testing.T) {
	f, ca, certFile, keyFile := tlsFixture(t, nil)
	addr := f.srv.TLSAddr().String()
	if cn := ca.peerCN(t, addr); cn != "first" {
		t.Fatalf("served %q, want first", cn)
	}
	// A connection made before the reload keeps working after it.
	old, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: ca.pool})
	must(t, err)
	defer old.Close()

	later := time.Now().Add(48 * time.Hour).Truncate(time.Second)
	ca.issue(t, certFile, keyFile, "second", later)
	must(t, f.srv.ReloadTLS())
	if cn := ca.peerCN(t, addr); cn != "second" {
		t.Errorf("after reload served %q, want second", cn)
	}
	if v := testutil.ToFloat64(f.srv.certs.notAfter); v != float64(later.Unix()) {
		t.Errorf("not_after gauge %v, want %d", v, later.Unix())
	}
	if _, err := old.Write([]byte("GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")); err != nil {
		t.Fatalf("old connection: %v", err)
	}
	old.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 64)
	if n, _ := old.Read(buf); !strings.HasPrefix(string(buf[:n]), "HTTP/1.1 200") {
		t.Errorf("old connection after reload: %q", buf[:n])
	}

	// A broken file (a renewal half written) is refused and the certificate in use stays.
	must(t, os.WriteFile(keyFile, []byte("-----BEGIN PRIVATE KEY-----\ngarbage\n"), 0o600))
	if err := f.srv.ReloadTLS(); err == nil || !strings.Contains(err.Error(), "http.tls_cert") {
		t.Errorf("reload of a broken key: %v, want an error naming the key", err)
	}
	if cn := ca.peerCN(t, addr); cn != "second" {
		t.Errorf("after a failed reload served %q, want second", cn)
	}
	ok, bad := f.srv.certs.reloads.WithLabelValues("ok"), f.srv.certs.reloads.WithLabelValues("error")
	if testutil.ToFloat64(ok) != 2 || testutil.ToFloat64(bad) != 1 {
		t.Errorf("loads ok=%v error=%v, want 2 and 1", testutil.ToFloat64(ok), testutil.ToFloat64(bad))
	}
}

// TLS connections count under http.max_connections with the plain ones: at the cap an idle
// TLS connection is evicted to make room for a plain request.
func TestTLSSharesConnectionCap(t *testing.T) {
	const max = 4
	f, ca, _, _ := tlsFixture(t, func(c *Config) { c.MaxConnections = max })
	var idle []*tls.Conn
	for range max {
		c, err := tls.Dial("tcp", f.srv.TLSAddr().String(), &tls.Config{RootCAs: ca.pool})
		must(t, err)
		idle = append(idle, c)
	}
	t.Cleanup(func() {
		for _, c := range idle {
			c.Close()
		}
	})
	time.Sleep(100 * time.Millisecond)
	if v := testutil.ToFloat64(f.srv.metrics.connsOpen); v != max {
		t.Fatalf("open connections %v, want %d TLS ones", v, max)
	}
	if code, _, _ := get(t, f.base+"/healthz", "Connection", "close"); code != 200 {
		t.Fatalf("plain request at the cap: %d", code)
	}
	if n := testutil.ToFloat64(f.srv.metrics.connsEvicted); n != 1 {
		t.Errorf("evictions %v, want 1 (an idle TLS connection)", n)
	}
}

func TestTLSConfigErrors(t *testing.T) {
	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage.pem")
	must(t, os.WriteFile(garbage, []byte("not pem"), 0o600))
	tests := map[string]struct {
		cert, key, want string
	}{
		"no files":     {"", "", "TLSCertFile and TLSKeyFile"},
		"missing cert": {filepath.Join(dir, "none.pem"), garbage, "no such file"},
		"garbage":      {garbage, garbage, "http.tls_cert"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			base := newFixture(t, nil)
			cfg := Config{
				Addr: "127.0.0.1:0", Networks: testNetworks, Kernels: base.srv.cfg.Kernels, Binaries: base.srv.cfg.Binaries,
				Scripts: base.srv.cfg.Scripts, Nodes: base.db, TLSAddr: "127.0.0.1:0", TLSCertFile: tc.cert, TLSKeyFile: tc.key,
			}
			s, err := New(cfg)
			if err == nil {
				s.tcp.Close()
				t.Fatal("New succeeded")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q, want it to name %q", err, tc.want)
			}
		})
	}
}

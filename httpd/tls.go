package httpd

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// certSource holds the TLS listener's certificate and replaces it on Reload. Handshakes read
// it through GetCertificate, so a new certificate applies to the next handshake and never
// touches a connection that is already up.
type certSource struct {
	certFile, keyFile string

	mu      sync.Mutex // one Reload at a time
	current atomic.Pointer[tls.Certificate]

	reloads  *prometheus.CounterVec // result
	notAfter prometheus.Gauge
}

func newCertSource(certFile, keyFile string, reg prometheus.Registerer) (*certSource, error) {
	if certFile == "" || keyFile == "" {
		return nil, errors.New("httpd: TLSAddr needs TLSCertFile and TLSKeyFile")
	}
	c := &certSource{
		certFile: certFile, keyFile: keyFile,
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bootstrapd_http_tls_cert_loads_total",
			Help: "Loads of http.tls_cert and http.tls_key (at start and on SIGHUP), by result: ok, error (the previous certificate stays).",
		}, []string{"result"}),
		notAfter: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "bootstrapd_http_tls_cert_not_after_timestamp_seconds",
			Help: "Expiry of the certificate the TLS listener serves (Unix time).",
		}),
	}
	c.reloads.WithLabelValues("ok")
	c.reloads.WithLabelValues("error")
	if err := c.Reload(); err != nil {
		return nil, err
	}
	if reg != nil {
		reg.MustRegister(c.reloads, c.notAfter)
	}
	return c, nil
}

// Reload reads the certificate and key files again. On any error the certificate in use
// stays, so a half-written file during a renewal cannot take HTTPS down.
func (c *certSource) Reload() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	cert, err := tls.LoadX509KeyPair(c.certFile, c.keyFile)
	if err == nil && cert.Leaf == nil {
		cert.Leaf, err = x509.ParseCertificate(cert.Certificate[0])
	}
	if err != nil {
		c.reloads.WithLabelValues("error").Inc()
		return fmt.Errorf("http.tls_cert/http.tls_key: %w", err)
	}
	c.current.Store(&cert)
	c.notAfter.Set(float64(cert.Leaf.NotAfter.Unix()))
	c.reloads.WithLabelValues("ok").Inc()
	return nil
}

func (c *certSource) get(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return c.current.Load(), nil
}

// tlsConfig is the listener's configuration: TLS 1.2 and later (iPXE speaks 1.2), HTTP/1.1
// only, so every connection goes through the same limits and write deadlines as plain HTTP.
func (c *certSource) tlsConfig() *tls.Config {
	return &tls.Config{
		MinVersion:     tls.VersionTLS12,
		GetCertificate: c.get,
		NextProtos:     []string{"http/1.1"},
	}
}

// limitedListener accepts from its own socket under another listener's connection cap, so
// plain and TLS connections share http.max_connections.
type limitedListener struct {
	net.Listener
	lim *connLimiter
}

func (l *limitedListener) Accept() (net.Conn, error) { return l.lim.acceptFrom(l.Listener) }

// listenTLS binds addr as the TLS listener, under the plain listener's connection cap.
func (s *Server) listenTLS(addr string) (net.Listener, error) {
	tcp, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("httpd: listen %s (TLS): %w", addr, err)
	}
	return tls.NewListener(&limitedListener{Listener: tcp, lim: s.limiter}, s.certs.tlsConfig()), nil
}

// TLSAddr is the bound TLS address, nil without a TLS listener.
func (s *Server) TLSAddr() net.Addr {
	if s.tlsLn == nil {
		return nil
	}
	return s.tlsLn.Addr()
}

// ReloadTLS reads the TLS certificate and key again (SIGHUP); without a TLS listener it does
// nothing. On error the previous certificate stays in use.
func (s *Server) ReloadTLS() error {
	if s.certs == nil {
		return nil
	}
	return s.certs.Reload()
}

// plainConn is the connection the limiter tracks: TLS connections are tracked by the TCP
// connection under them.
func plainConn(c net.Conn) net.Conn {
	if tc, ok := c.(*tls.Conn); ok {
		return tc.NetConn()
	}
	return c
}

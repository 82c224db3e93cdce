package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// writeServerCert writes a certificate for 127.0.0.1 named cn, signed by a CA made for the
// test, and returns the pool that trusts that CA.
func writeServerCert(t *testing.T, certFile, keyFile, cn string) *x509.CertPool {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA " + cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true,
		BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalPKCS8PrivateKey(key)
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	return pool
}

// The daemon serves HTTPS on http.tls_listen, and a SIGHUP makes it read a renewed
// certificate: new handshakes get it without a restart.
func TestServeTLSReloadOnHUP(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	pool := writeServerCert(t, certFile, keyFile, "before")
	port := freePort(t, "tcp")
	hup := make(chan os.Signal, 1)
	d := startDaemon(t, daemonOpts{hup: hup,
		httpYAML: fmt.Sprintf("tls_listen: '127.0.0.1:%d', tls_cert: %q, tls_key: %q", port, certFile, keyFile)})
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	served := func(pool *x509.CertPool) (string, error) {
		c, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: pool})
		if err != nil {
			return "", err
		}
		defer c.Close()
		return c.ConnectionState().PeerCertificates[0].Subject.CommonName, nil
	}
	if cn, err := served(pool); err != nil || cn != "before" {
		t.Fatalf("served %q, %v; want before", cn, err)
	}
	pool = writeServerCert(t, certFile, keyFile, "after")
	hup <- syscall.SIGHUP
	deadline := time.Now().Add(5 * time.Second)
	for {
		cn, err := served(pool)
		if err == nil && cn == "after" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after SIGHUP served %q, %v; want after\n%s", cn, err, d.log)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !strings.Contains(d.log.String(), `service=https`) {
		t.Errorf("no listening line for https:\n%s", d.log)
	}
}

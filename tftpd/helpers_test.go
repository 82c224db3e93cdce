package tftpd

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// pseudoRandom returns n deterministic bytes that do not compress or repeat per block.
func pseudoRandom(n int, seed uint64) []byte {
	r := rand.New(rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8)}))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// testFiles has the catalogue's names at sizes that hit the block edge cases.
func testFiles() fstest.MapFS {
	return fstest.MapFS{
		"undionly.kpxe":  {Data: pseudoRandom(70001, 1)},
		"ipxe-amd64.efi": {Data: pseudoRandom(1<<20, 2)},
		"empty.bin":      {Data: nil},
		"blocks512.bin":  {Data: pseudoRandom(3*512, 3)},  // ends with an empty DATA block at 512
		"blocks1468.bin": {Data: pseudoRandom(5*1468, 4)}, // same at 1468
		"sub/inner.bin":  {Data: []byte("inside a directory")},
	}
}

type testServer struct {
	*Server
	reg    *prometheus.Registry
	events chan Transfer
	cancel context.CancelFunc
	done   chan error // receives Serve's result
}

// startServer serves cfg (Files defaults to testFiles) on a free loopback port until the test
// ends, and checks that Serve then returns nil promptly.
func startServer(t testing.TB, cfg Config) *testServer {
	t.Helper()
	ts := &testServer{reg: prometheus.NewRegistry(), events: make(chan Transfer, 1024), done: make(chan error, 1)}
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1:0"
	}
	if cfg.Files == nil {
		cfg.Files = testFiles()
	}
	cfg.Registerer = ts.reg
	if cfg.Timeout == 0 {
		cfg.Timeout = time.Second
	}
	cfg.OnTransfer = func(tr Transfer) { ts.events <- tr }
	s, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ts.Server = s
	ctx, cancel := context.WithCancel(context.Background())
	ts.cancel = cancel
	go func() { ts.done <- s.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-ts.done:
			if err != nil {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(15 * time.Second):
			t.Errorf("Serve did not return after cancel")
		}
	})
	return ts
}

func (ts *testServer) port() int { return ts.Addr().(*net.UDPAddr).Port }

// next waits for the report of the next request that ends.
func (ts *testServer) next(t testing.TB) Transfer {
	t.Helper()
	select {
	case tr := <-ts.events:
		return tr
	case <-time.After(20 * time.Second):
		t.Fatal("no transfer reported")
		return Transfer{}
	}
}

func (ts *testServer) transfers(file, result string) float64 {
	return testutil.ToFloat64(ts.metrics.transfers.WithLabelValues(file, result))
}

// allTransfers is the transfers counter of file summed over the results.
func (ts *testServer) allTransfers(file string) float64 {
	var n float64
	for _, r := range results {
		n += ts.transfers(file, r)
	}
	return n
}

func (ts *testServer) refusals(reason string) float64 {
	return testutil.ToFloat64(ts.metrics.refused.WithLabelValues(reason))
}

// needTool finds a client program; it fails under CI (where the tools are installed) and skips
// elsewhere.
func needTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s not installed: %v", name, err)
		}
		t.Skipf("%s not installed: %v", name, err)
	}
	return p
}

// rawClient speaks TFTP packet by packet, for what the real clients cannot send.
type rawClient struct {
	t      testing.TB
	conn   *net.UDPConn
	server *net.UDPAddr
}

func newRawClient(t testing.TB, server net.Addr) *rawClient {
	t.Helper()
	local := net.IPv4(127, 0, 0, 1)
	if server.(*net.UDPAddr).IP.To4() == nil {
		local = net.IPv6loopback
	}
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: local})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &rawClient{t: t, conn: conn, server: server.(*net.UDPAddr)}
}

func (c *rawClient) send(to *net.UDPAddr, p []byte) {
	c.t.Helper()
	if _, err := c.conn.WriteToUDP(p, to); err != nil {
		c.t.Fatalf("send: %v", err)
	}
}

func (c *rawClient) recv(timeout time.Duration) ([]byte, *net.UDPAddr, error) {
	buf := make([]byte, 65536)
	c.conn.SetReadDeadline(time.Now().Add(timeout))
	n, from, err := c.conn.ReadFromUDP(buf)
	if err != nil {
		return nil, nil, err
	}
	return buf[:n], from, nil
}

const (
	opRRQ   = 1
	opWRQ   = 2
	opDATA  = 3
	opACK   = 4
	opERROR = 5
	opOACK  = 6
)

// request builds an RRQ or WRQ; opts are name, value pairs.
func request(op uint16, name, mode string, opts ...string) []byte {
	p := binary.BigEndian.AppendUint16(nil, op)
	for _, s := range append([]string{name, mode}, opts...) {
		p = append(append(p, s...), 0)
	}
	return p
}

func ackPacket(block uint16) []byte {
	return binary.BigEndian.AppendUint16(binary.BigEndian.AppendUint16(nil, opACK), block)
}

// tftpError is an ERROR packet received from the server.
type tftpError struct {
	code uint16
	msg  string
}

func (e *tftpError) Error() string { return fmt.Sprintf("TFTP error %d: %s", e.code, e.msg) }

// parseError reads an ERROR packet exactly: opcode 5, a code, a message and one NUL that
// ends the packet.
func parseError(p []byte) (code uint16, msg string, ok bool) {
	if len(p) < 5 || binary.BigEndian.Uint16(p) != opERROR || p[len(p)-1] != 0 {
		return 0, "", false
	}
	msg = string(p[4 : len(p)-1])
	if strings.IndexByte(msg, 0) >= 0 {
		return 0, "", false
	}
	return binary.BigEndian.Uint16(p[2:]), msg, true
}

func parseOACK(p []byte) map[string]string {
	fields := bytes.Split(bytes.TrimSuffix(p[2:], []byte{0}), []byte{0})
	opts := map[string]string{}
	for i := 0; i+1 < len(fields); i += 2 {
		opts[string(fields[i])] = string(fields[i+1])
	}
	return opts
}

// get reads a file in lock step, like firmware: it returns the content, the options the
// server acknowledged, and a *tftpError if the server sent one.
func (c *rawClient) get(name string, opts ...string) ([]byte, map[string]string, error) {
	c.t.Helper()
	c.send(c.server, request(opRRQ, name, "octet", opts...))
	return c.readReply()
}

// readReply is get after the request was sent.
func (c *rawClient) readReply() ([]byte, map[string]string, error) {
	var (
		data    []byte
		oack    map[string]string
		tid     *net.UDPAddr
		blksize = 512
		want    = uint16(1)
	)
	for {
		p, from, err := c.recv(5 * time.Second)
		if err != nil {
			return data, oack, err
		}
		if tid == nil {
			tid = from
		} else if from.Port != tid.Port {
			continue
		}
		if len(p) < 4 {
			return data, oack, fmt.Errorf("short packet % x", p)
		}
		switch binary.BigEndian.Uint16(p) {
		case opOACK:
			oack = parseOACK(p)
			if bs, ok := oack["blksize"]; ok {
				blksize, _ = strconv.Atoi(bs)
			}
			c.send(tid, ackPacket(0))
		case opDATA:
			block := binary.BigEndian.Uint16(p[2:])
			if block != want {
				c.send(tid, ackPacket(block)) // a duplicate: ACK again, as RFC 1350 says
				continue
			}
			data = append(data, p[4:]...)
			c.send(tid, ackPacket(block))
			if len(p)-4 < blksize {
				return data, oack, nil
			}
			want++
		case opERROR:
			return data, oack, &tftpError{code: binary.BigEndian.Uint16(p[2:]), msg: string(bytes.TrimSuffix(p[4:], []byte{0}))}
		default:
			return data, oack, fmt.Errorf("unexpected packet % x", p[:4])
		}
	}
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

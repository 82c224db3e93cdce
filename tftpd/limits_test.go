package tftpd

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pin/tftp/v3"
)

// countingFS counts the files opened, to show that a refused request opens none.
type countingFS struct {
	fs.FS
	opens atomic.Int64
}

func (c *countingFS) Open(name string) (fs.File, error) {
	c.opens.Add(1)
	return c.FS.Open(name)
}

// otherInterface names an interface that does not carry 127.0.0.1, or skips the test.
func otherInterface(t *testing.T) string {
	t.Helper()
	ifaces, err := net.Interfaces()
	if err != nil {
		t.Fatal(err)
	}
	for _, ifi := range ifaces {
		if !slices.Contains(interfaceAddrs([]string{ifi.Name}), netip.MustParseAddr("127.0.0.1")) {
			return ifi.Name
		}
	}
	t.Skip("no interface besides loopback to refuse requests on")
	return ""
}

// newRawClientFrom is newRawClient bound to a given loopback address, for a second source.
func newRawClientFrom(t testing.TB, server net.Addr, ip net.IP) *rawClient {
	t.Helper()
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: ip})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &rawClient{t: t, conn: conn, server: server.(*net.UDPAddr)}
}

// stall starts a read from ip that takes the first block and never ACKs it, so that it holds
// a transfer slot until the server gives up on it.
func stall(t *testing.T, ts *testServer, ip net.IP) {
	t.Helper()
	c := newRawClientFrom(t, ts.Addr(), ip)
	c.send(c.server, request(opRRQ, "undionly.kpxe", "octet"))
	if p, _, err := c.recv(5 * time.Second); err != nil || p[1] != opDATA {
		t.Fatalf("stalled read: % x, %v; want its first block", p, err)
	}
	waitFor(t, "the stalled transfer to hold a slot", func() bool { return ts.slots.inFlight() == 1 })
}

// TestErrorCodes checks the ERROR packet of every kind of request that is not served, byte
// for byte, and that it is the only packet sent; then asks again with pin/tftp's client. If
// it reports code 1 for everything, pin/tftp's internals changed: see pintftp.go.
func TestErrorCodes(t *testing.T) {
	other := otherInterface(t)
	loopback2 := net.IPv4(127, 0, 0, 2)
	tests := map[string]struct {
		cfg      Config
		setup    func(t *testing.T, ts *testServer)
		write    bool   // a WRQ instead of an RRQ
		file     string // default undionly.kpxe
		mode     string // default octet
		wantCode uint16
		wantMsg  string // the whole message
		reason   string // "" for not found
	}{
		"not found": {
			file: "pxelinux.0", wantCode: codeNotFound, wantMsg: `file not found: "pxelinux.0"`,
		},
		"traversal": {
			file: "../etc/passwd", wantCode: codeAccess, wantMsg: `access violation: ".." in file name`, reason: reasonTraversal,
		},
		"other interface": {
			cfg:      Config{Interfaces: []string{other}},
			wantCode: codeAccess, wantMsg: "access violation: not served on this interface", reason: reasonInterface,
		},
		"too many transfers": {
			cfg:      Config{MaxTransfers: 1},
			setup:    func(t *testing.T, ts *testServer) { stall(t, ts, loopback2) },
			wantCode: codeAccess, wantMsg: "access violation: too many transfers, try again later", reason: reasonTooMany,
		},
		"too many from source": {
			cfg:      Config{MaxPerSource: 1},
			setup:    func(t *testing.T, ts *testServer) { stall(t, ts, net.IPv4(127, 0, 0, 1)) },
			wantCode: codeAccess, wantMsg: "access violation: too many transfers from your address, try again later", reason: reasonTooManyFrom,
		},
		"write": {
			write: true, wantCode: codeIllegal, wantMsg: "illegal TFTP operation: write requests are refused, this server is read-only", reason: reasonWrite,
		},
		"write on other interface": {
			cfg:   Config{Interfaces: []string{other}},
			write: true, wantCode: codeAccess, wantMsg: "access violation: not served on this interface", reason: reasonInterface,
		},
		"mode": {
			mode: "mail", wantCode: codeIllegal, wantMsg: `illegal TFTP operation: unsupported mode "mail", this server sends binaries in octet mode`, reason: reasonMode,
		},
		"empty name": {
			file: "-", wantCode: codeIllegal, wantMsg: "illegal TFTP operation: empty file name", reason: reasonEmpty,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			files := &countingFS{FS: testFiles()}
			cfg := tc.cfg
			cfg.Files = files
			// Long enough that a stalled transfer holds its slot through the test.
			cfg.Timeout, cfg.Retries = time.Second, 3
			ts := startServer(t, cfg)
			if tc.setup != nil {
				tc.setup(t, ts)
			}
			opens := files.opens.Load()
			file, mode, op := cmp.Or(tc.file, "undionly.kpxe"), cmp.Or(tc.mode, "octet"), uint16(opRRQ)
			if file == "-" {
				file = ""
			}
			if tc.write {
				op = opWRQ
			}

			c := newRawClient(t, ts.Addr())
			c.send(c.server, request(op, file, mode, "blksize", "1468", "tsize", "0"))
			p, from, err := c.recv(5 * time.Second)
			if err != nil {
				t.Fatalf("no answer: %v", err)
			}
			code, msg, ok := parseError(p)
			if !ok || code != tc.wantCode || msg != tc.wantMsg {
				t.Fatalf("got %q, want exactly ERROR code %d %q", p, tc.wantCode, tc.wantMsg)
			}
			if from.Port == ts.port() {
				t.Errorf("answer from the server port; RFC 1350 wants a new transfer ID")
			}
			// A resend would come after Timeout; pin/tftp's own code-1 packet at once.
			if p, _, err := c.recv(1300 * time.Millisecond); err == nil {
				t.Errorf("a second packet after the ERROR: %q", p)
			}
			tr := ts.next(t)
			if tc.reason == "" && !errors.Is(tr.Err, ErrNotFound) || tc.reason != "" && refuseReason(tr.Err) != tc.reason {
				t.Errorf("transfer error = %v, want reason %q", tr.Err, tc.reason)
			}

			// The same with a real client, which reports the code in its error.
			pc := pinClient(t, ts, 1468, true)
			if tc.write {
				_, err = pc.Send(file, mode)
				if want := fmt.Sprintf("code=%d, error: %s", tc.wantCode, tc.wantMsg); err == nil || !strings.Contains(err.Error(), want) {
					t.Errorf("pin/tftp Send error = %v, want %q", err, want)
				}
			} else {
				_, err = pc.Receive(file, mode)
				if want := fmt.Sprintf("code: %d, message: %s", tc.wantCode, tc.wantMsg); err == nil || !strings.Contains(err.Error(), want) {
					t.Errorf("pin/tftp Receive error = %v, want %q", err, want)
				}
			}
			ts.next(t)
			if tc.reason != "" {
				if got := ts.refusals(tc.reason); got != 2 {
					t.Errorf("refused{reason=%q} = %v, want 2", tc.reason, got)
				}
				if got := files.opens.Load() - opens; got != 0 {
					t.Errorf("%d files opened for refused requests", got)
				}
			}
		})
	}
}

// TestAmplification sends read requests from a socket that never ACKs, as a request with a
// spoofed source address would, and counts what comes back: before the first ACK, each
// block or OACK is sent at most 3 times, and one ERROR packet ends the transfer.
func TestAmplification(t *testing.T) {
	tests := map[string]struct {
		cfg    Config
		opts   []string
		window int // blocks sent before the first ACK is awaited
	}{
		"first block":             {window: 1},
		"option acknowledgement":  {opts: []string{"tsize", "0", "blksize", "1468"}, window: 1},
		"anticipate, first block": {cfg: Config{Anticipate: 8}, window: 8},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			cfg := tc.cfg
			cfg.Timeout = DefaultTimeout // the defaults, whatever startServer prefers
			ts := startServer(t, cfg)
			c := newRawClient(t, ts.Addr())
			rrq := request(opRRQ, "ipxe-amd64.efi", "octet", tc.opts...)
			c.send(c.server, rrq)
			var (
				sent     = map[string]int{} // "DATA 1", "OACK": times received
				blocks   int                // DATA and OACK packets
				errs     int
				received int // bytes
				deadline = time.Now().Add(5 * time.Second)
			)
			for time.Now().Before(deadline) {
				p, _, err := c.recv(time.Until(deadline))
				if err != nil {
					break
				}
				received += len(p)
				switch binary.BigEndian.Uint16(p) {
				case opDATA:
					blocks++
					sent[fmt.Sprintf("DATA %d", binary.BigEndian.Uint16(p[2:]))]++
				case opOACK:
					blocks++
					sent["OACK"]++
				case opERROR:
					errs++
					// Anything after the ERROR would come within a timeout.
					if soon := time.Now().Add(1500 * time.Millisecond); soon.Before(deadline) {
						deadline = soon
					}
				default:
					t.Errorf("unexpected packet % x", p)
				}
			}
			t.Logf("%d-byte request: %d packets (%v, %d ERROR), %d bytes back: %.1f× the request",
				len(rrq), blocks+errs, sent, errs, received, float64(received)/float64(len(rrq)))
			for what, n := range sent {
				if n > 3 {
					t.Errorf("%s sent %d times before any ACK, want at most 3", what, n)
				}
			}
			if blocks > 3*tc.window || errs > 1 {
				t.Errorf("%d DATA/OACK and %d ERROR packets, want at most %d and 1", blocks, errs, 3*tc.window)
			}
			if tr := ts.next(t); tr.Err == nil {
				t.Error("the transfer succeeded without an ACK")
			}
		})
	}
}

// TestSourceLimit fills one source's slots: that source is refused, another is served, and
// the slots come back when the transfers end.
func TestSourceLimit(t *testing.T) {
	content := testFiles()["undionly.kpxe"].Data
	ts := startServer(t, Config{MaxPerSource: 1, Timeout: 300 * time.Millisecond, Retries: 1})
	stall(t, ts, net.IPv4(127, 0, 0, 1))

	c := newRawClient(t, ts.Addr())
	if _, _, err := c.get("undionly.kpxe"); !isCode(err, codeAccess) {
		t.Fatalf("second read from 127.0.0.1: %v, want an access violation", err)
	}
	if tr := ts.next(t); refuseReason(tr.Err) != reasonTooManyFrom {
		t.Errorf("transfer = %+v, want refused for too many from its source", tr)
	}
	c2 := newRawClientFrom(t, ts.Addr(), net.IPv4(127, 0, 0, 2))
	if data, _, err := c2.get("undionly.kpxe"); err != nil || !slices.Equal(data, content) {
		t.Fatalf("read from 127.0.0.2: %d bytes, %v", len(data), err)
	}
	if tr := ts.next(t); tr.Err != nil {
		t.Errorf("read from 127.0.0.2: %v", tr.Err)
	}
	if tr := ts.next(t); tr.Err == nil { // the stalled one times out
		t.Errorf("stalled transfer = %+v, want a timeout", tr)
	}
	waitFor(t, "slots released", func() bool { return ts.slots.inFlight() == 0 })
	if data, _, err := newRawClient(t, ts.Addr()).get("undionly.kpxe"); err != nil || !slices.Equal(data, content) {
		t.Fatalf("read from 127.0.0.1 after the timeout: %d bytes, %v", len(data), err)
	}
	ts.next(t)
	if got := ts.refusals(reasonTooManyFrom); got != 1 {
		t.Errorf("refused{too_many_from_source} = %v, want 1", got)
	}
}

func isCode(err error, code uint16) bool {
	te, ok := errors.AsType[*tftpError](err)
	return ok && te.code == code
}

// TestInterfaces serves loopback only when it is listed, through IPv4, IPv6 and a wildcard
// socket (where IPv4 destinations come as IPv4-mapped IPv6 addresses).
func TestInterfaces(t *testing.T) {
	other := otherInterface(t)
	tests := map[string]struct {
		interfaces []string
		addr       string
		dial       net.IP
		served     bool
	}{
		"lo, ipv4":                {interfaces: []string{"lo"}, addr: "127.0.0.1:0", dial: net.IPv4(127, 0, 0, 1), served: true},
		"lo, ipv6":                {interfaces: []string{"lo"}, addr: "[::1]:0", dial: net.IPv6loopback, served: true},
		"lo, wildcard via ipv4":   {interfaces: []string{"lo"}, addr: ":0", dial: net.IPv4(127, 0, 0, 1), served: true},
		"lo among others":         {interfaces: []string{other, "lo"}, addr: "127.0.0.1:0", dial: net.IPv4(127, 0, 0, 1), served: true},
		"other, ipv4":             {interfaces: []string{other}, addr: "127.0.0.1:0", dial: net.IPv4(127, 0, 0, 1)},
		"other, wildcard via v6":  {interfaces: []string{other}, addr: ":0", dial: net.IPv6loopback},
		"every interface (empty)": {addr: "127.0.0.1:0", dial: net.IPv4(127, 0, 0, 1), served: true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			ts := startServer(t, Config{Addr: tc.addr, Interfaces: tc.interfaces})
			server := &net.UDPAddr{IP: tc.dial, Port: ts.port()}
			_, _, err := newRawClientFrom(t, server, tc.dial).get("undionly.kpxe")
			tr := ts.next(t)
			if tc.served {
				if err != nil || tr.Err != nil {
					t.Errorf("client: %v; server: %v; want the file", err, tr.Err)
				}
				return
			}
			if !isCode(err, codeAccess) || refuseReason(tr.Err) != reasonInterface {
				t.Errorf("client: %v; server: %v; want an access violation for the interface", err, tr.Err)
			}
		})
	}
}

// TestShutdownGrace cancels Serve while a client holds a transfer open: Serve must return
// once the grace period is over, and the transfer must end then rather than at its timeout.
func TestShutdownGrace(t *testing.T) {
	const grace = time.Second
	tests := map[string]struct {
		ackEvery time.Duration // 0: never ACK after the first block
	}{
		"stalled after one block": {},
		"slow, ACKs every 700 ms": {ackEvery: 700 * time.Millisecond},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			// Retries 5: on its own, the stalled transfer would last 6 s.
			ts := startServer(t, Config{Grace: grace, Timeout: time.Second, Retries: 5})
			c := newRawClient(t, ts.Addr())
			c.send(c.server, request(opRRQ, "ipxe-amd64.efi", "octet"))
			p, tid, err := c.recv(5 * time.Second)
			if err != nil || p[1] != opDATA {
				t.Fatalf("first block: % x, %v", p, err)
			}
			stop := make(chan struct{})
			defer close(stop)
			if tc.ackEvery > 0 {
				go func() {
					for block := uint16(1); ; block++ {
						select {
						case <-stop:
							return
						case <-time.After(tc.ackEvery):
						}
						c.conn.WriteToUDP(ackPacket(block), tid)
					}
				}()
			}
			time.Sleep(100 * time.Millisecond)
			start := time.Now()
			ts.cancel()
			select {
			case err := <-ts.done:
				ts.done <- err // for the cleanup's check
			case <-time.After(grace + time.Second):
				t.Fatalf("Serve did not return within the grace period + 1 s")
			}
			took := time.Since(start)
			t.Logf("Serve returned %v after cancel", took)
			if took < grace-100*time.Millisecond {
				t.Errorf("Serve returned after %v, before the grace period (%v) with a transfer in flight", took, grace)
			}
			select {
			case tr := <-ts.events:
				if tr.Err == nil || !strings.Contains(tr.Err.Error(), "abandoned at shutdown") {
					t.Errorf("transfer = %+v, want it abandoned", tr)
				}
			case <-time.After(time.Second):
				t.Error("the abandoned transfer did not end within 1 s of Serve's return")
			}
		})
	}
}

// TestLoad reads a 1 MiB file 500 times at once (100 with -short) with pin/tftp's client:
// all must succeed, and goroutines and heap must come back to where they were.
func TestLoad(t *testing.T) {
	clients := 500
	if testing.Short() {
		clients = 100
	}
	content := testFiles()["ipxe-amd64.efi"].Data
	// Timeout 5 s, as the clients: on a starved CPU a late ACK is not a lost one.
	ts := startServer(t, Config{MaxPerSource: clients, Timeout: 5 * time.Second})

	settle := func() (int, uint64) {
		var ms runtime.MemStats
		for range 3 {
			runtime.GC()
		}
		runtime.ReadMemStats(&ms)
		return runtime.NumGoroutine(), ms.HeapAlloc
	}
	baseG, baseHeap := settle()

	var peakG atomic.Int64
	var peakHeap atomic.Uint64
	sampled := make(chan struct{})
	stopSampling := make(chan struct{})
	go func() {
		defer close(sampled)
		var ms runtime.MemStats
		for {
			select {
			case <-stopSampling:
				return
			case <-time.After(50 * time.Millisecond):
			}
			peakG.Store(max(peakG.Load(), int64(runtime.NumGoroutine())))
			runtime.ReadMemStats(&ms)
			peakHeap.Store(max(peakHeap.Load(), ms.HeapAlloc))
		}
	}()

	start := time.Now()
	errs := make(chan error, clients)
	for range clients {
		go func() {
			c, err := tftp.NewClient(ts.Addr().String())
			if err != nil {
				errs <- err
				return
			}
			// Not firmware's 1468: 8192 (loopback's MTU allows it) takes a sixth of the round
			// trips, which keeps 500 transfers within the test's time under the race detector.
			// A transfer holds the same socket, goroutine and file whatever its block size.
			c.SetBlockSize(8192)
			c.RequestTSize(true)
			// Hundreds of transfers share two CPUs, under the race detector too: a client
			// that waits 1 s for a block has not lost it.
			c.SetTimeout(5 * time.Second)
			wt, err := c.Receive("ipxe-amd64.efi", "octet")
			if err != nil {
				errs <- fmt.Errorf("receive: %w", err)
				return
			}
			// Compared as it comes: 500 copies of the file would be the heap this test watches.
			w := &matchWriter{want: content}
			if _, err := wt.WriteTo(w); err != nil {
				errs <- fmt.Errorf("write: %w", err)
				return
			}
			errs <- w.check()
		}()
	}
	var failed int
	for range clients {
		if err := <-errs; err != nil {
			failed++
			if failed <= 5 {
				t.Error(err)
			}
		}
	}
	for range clients {
		if tr := ts.next(t); tr.Err != nil {
			t.Errorf("server: %+v", tr)
		}
	}
	elapsed := time.Since(start)
	close(stopSampling)
	<-sampled
	if failed > 0 {
		t.Fatalf("%d of %d reads failed", failed, clients)
	}

	waitFor(t, "transfers to release their slots", func() bool { return ts.slots.inFlight() == 0 })
	var endG int
	var endHeap uint64
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		endG, endHeap = settle()
		if endG <= baseG+5 || time.Now().After(deadline) {
			break
		}
	}
	t.Logf("%d reads of 1 MiB in %v; goroutines %d → peak %d → %d; heap %.1f → peak %.1f → %.1f MiB",
		clients, elapsed.Round(time.Millisecond), baseG, peakG.Load(), endG,
		mib(baseHeap), mib(peakHeap.Load()), mib(endHeap))
	// Each transfer is one client goroutine here and one server goroutine, with buffers of
	// a few blocks: anything much above that grows with the load.
	if peak := int(peakG.Load()); peak > baseG+2*clients+10 {
		t.Errorf("peak of %d goroutines for %d transfers", peak, clients)
	}
	if perTransfer := (peakHeap.Load() - min(peakHeap.Load(), baseHeap)) / uint64(clients); perTransfer > 128<<10 {
		t.Errorf("peak heap of %d KiB per transfer", perTransfer>>10)
	}
	if endG > baseG+5 {
		t.Errorf("%d goroutines after the load, %d before", endG, baseG)
	}
	if endHeap > baseHeap+8<<20 {
		t.Errorf("heap %.1f MiB after the load, %.1f MiB before", mib(endHeap), mib(baseHeap))
	}
}

func mib(b uint64) float64 { return float64(b) / (1 << 20) }

// matchWriter compares what is written to it with want.
type matchWriter struct {
	want []byte
	off  int
	bad  bool
}

func (w *matchWriter) Write(p []byte) (int, error) {
	if w.off+len(p) > len(w.want) || !bytes.Equal(p, w.want[w.off:w.off+len(p)]) {
		w.bad = true
	}
	w.off += len(p)
	return len(p), nil
}

func (w *matchWriter) check() error {
	if w.bad || w.off != len(w.want) {
		return fmt.Errorf("got %d bytes that differ from the %d of the file", w.off, len(w.want))
	}
	return nil
}

package tftpd

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"syscall"
	"testing"
	"testing/fstest"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/pin/tftp/v3"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func pinClient(t *testing.T, ts *testServer, blksize int, tsize bool) *tftp.Client {
	t.Helper()
	c, err := tftp.NewClient(ts.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	if blksize != 0 {
		c.SetBlockSize(blksize)
	}
	c.RequestTSize(tsize)
	c.SetTimeout(time.Second)
	return c
}

func TestPinClientReads(t *testing.T) {
	files := testFiles()
	ts := startServer(t, Config{})
	tests := map[string]struct {
		file    string
		blksize int
		tsize   bool
	}{
		"bios 512":              {file: "undionly.kpxe"},
		"bios 1468 tsize":       {file: "undionly.kpxe", blksize: 1468, tsize: true},
		"efi 1 MiB 1468 tsize":  {file: "ipxe-amd64.efi", blksize: 1468, tsize: true},
		"efi 1 MiB 8192":        {file: "ipxe-amd64.efi", blksize: 8192},
		"empty":                 {file: "empty.bin", tsize: true},
		"multiple of 512":       {file: "blocks512.bin", tsize: true},
		"multiple of 1468":      {file: "blocks1468.bin", blksize: 1468, tsize: true},
		"multiple of 512, 1468": {file: "blocks512.bin", blksize: 1468},
	}
	want := map[string]float64{}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			wt, err := pinClient(t, ts, tc.blksize, tc.tsize).Receive(tc.file, "octet")
			if err != nil {
				t.Fatalf("Receive: %v", err)
			}
			content := files[tc.file].Data
			size, ok := wt.(tftp.IncomingTransfer).Size()
			// pin/tftp leaves tsize=0 out of the OACK, so an empty file reports no size.
			if tc.tsize && len(content) > 0 && (!ok || size != int64(len(content))) {
				t.Errorf("tsize = %d, %v; want %d", size, ok, len(content))
			}
			var buf bytes.Buffer
			n, err := wt.WriteTo(&buf)
			if err != nil {
				t.Fatalf("WriteTo: %v", err)
			}
			if n != int64(len(content)) || !bytes.Equal(buf.Bytes(), content) {
				t.Fatalf("got %d bytes, want the %d bytes of %s", n, len(content), tc.file)
			}
			tr := ts.next(t)
			if tr.Err != nil || tr.File != tc.file || tr.Bytes != int64(len(content)) || !tr.Remote.Addr().IsLoopback() {
				t.Errorf("transfer = %+v, want %s, %d bytes, no error, from loopback", tr, tc.file, len(content))
			}
		})
		want[ts.metrics.fileLabel(tc.file)]++
	}
	for file, n := range want {
		if got := ts.transfers(file, resultOK); got != n {
			t.Errorf("transfers{file=%q,result=ok} = %v, want %v", file, got, n)
		}
	}
	var total float64
	for _, tc := range tests {
		total += float64(len(files[tc.file].Data))
	}
	if got := testutil.ToFloat64(ts.metrics.bytes); got != total {
		t.Errorf("bytes sent = %v, want %v", got, total)
	}
	if got := testutil.CollectAndCount(ts.metrics.duration); got != 1 {
		t.Errorf("duration histogram series = %d, want 1", got)
	}
}

func TestPinClientErrors(t *testing.T) {
	ts := startServer(t, Config{})
	tests := map[string]struct {
		file    string
		wantErr error
		reason  string // refused reason, for ErrRefused
		message string // in the client's error, after the code
	}{
		"traversal":        {file: "../etc/passwd", wantErr: ErrRefused, reason: reasonTraversal, message: `code: 2, message: access violation: ".." in file name`},
		"absolute":         {file: "/etc/passwd", wantErr: ErrRefused, reason: reasonAbsolute, message: "code: 2, message: access violation: absolute path"},
		"absolute catalog": {file: "/undionly.kpxe", wantErr: ErrRefused, reason: reasonAbsolute, message: "code: 2, message: access violation: absolute path"},
		"backslash":        {file: `..\..\etc\passwd`, wantErr: ErrRefused, reason: reasonBackslash, message: "code: 2, message: access violation: backslash"},
		"subdirectory":     {file: "sub/inner.bin", wantErr: ErrRefused, reason: reasonDirectory, message: "code: 2, message: access violation: directories"},
		"dot":              {file: ".", wantErr: ErrRefused, reason: reasonDirectory, message: "code: 2, message: access violation: directories"},
		"control":          {file: "a\tb", wantErr: ErrRefused, reason: reasonInvalid, message: "code: 4, message: illegal TFTP operation: control character"},
		"unknown":          {file: "pxelinux.0", wantErr: ErrNotFound, message: `code: 1, message: file not found: "pxelinux.0"`},
		"directory":        {file: "sub", wantErr: ErrNotFound, message: `code: 1, message: file not found: "sub"`},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			refusedBefore := ts.refusals(tc.reason)
			_, err := pinClient(t, ts, 1468, true).Receive(tc.file, "octet")
			if err == nil || !strings.Contains(err.Error(), tc.message) {
				t.Fatalf("Receive(%q) error = %v, want one containing %q", tc.file, err, tc.message)
			}
			tr := ts.next(t)
			if tr.File != tc.file || !errors.Is(tr.Err, tc.wantErr) || tr.Bytes != 0 {
				t.Errorf("transfer = %+v, want %q failing with %v", tr, tc.file, tc.wantErr)
			}
			if tc.reason != "" {
				if got := ts.refusals(tc.reason); got != refusedBefore+1 {
					t.Errorf("refused{reason=%q} = %v, want %v", tc.reason, got, refusedBefore+1)
				}
			}
		})
	}
	// The 7 refusals are in the refused counter only.
	if got := ts.allTransfers(otherFile); got != 2 {
		t.Errorf("transfers{other} = %v, want 2", got)
	}
	if got := ts.transfers(otherFile, resultNotFound); got != 2 {
		t.Errorf("transfers{other,not_found} = %v, want 2", got)
	}
}

func TestWriteRefused(t *testing.T) {
	ts := startServer(t, Config{})
	for _, name := range []string{"undionly.kpxe", "new.bin", "../etc/passwd"} {
		rf, err := pinClient(t, ts, 0, false).Send(name, "octet")
		if err == nil {
			_, err = rf.ReadFrom(strings.NewReader("overwrite"))
		}
		if err == nil || !strings.Contains(err.Error(), "code=4, error: illegal TFTP operation: write requests are refused") {
			t.Errorf("Send(%q) error = %v, want the read-only refusal with code 4", name, err)
		}
		if tr := ts.next(t); tr.File != name || !errors.Is(tr.Err, ErrRefused) {
			t.Errorf("transfer = %+v, want %q refused", tr, name)
		}
	}
	if got := ts.refusals(reasonWrite); got != 3 {
		t.Errorf("refused{write} = %v, want 3", got)
	}
	for _, f := range []string{"undionly.kpxe", otherFile} {
		if got := ts.allTransfers(f); got != 0 {
			t.Errorf("transfers{%s} = %v, want 0: refusals are not transfers", f, got)
		}
	}
}

// TestRawRequests sends what the real clients cannot: NUL bytes inside the request, odd modes.
func TestRawRequests(t *testing.T) {
	files := testFiles()
	ts := startServer(t, Config{})
	tests := map[string]struct {
		packet   []byte
		wantData []byte // nil: want an error packet with wantCode and wantMsg
		wantCode uint16
		wantMsg  string
	}{
		"empty name": {
			packet:   request(opRRQ, "", "octet"),
			wantCode: codeIllegal,
			wantMsg:  "illegal TFTP operation: empty file name",
		},
		// The request format ends the name at the first NUL: what follows is the mode, so a
		// NUL-spliced path can only ever be a mode, and only octet is served.
		"NUL before the name": {
			packet:   append([]byte{0, opRRQ, 0}, "undionly.kpxe\x00octet\x00"...),
			wantCode: codeIllegal,
			wantMsg:  `illegal TFTP operation: unsupported mode "undionly.kpxe"`,
		},
		"NUL-spliced traversal": {
			packet:   request(opRRQ, "undionly.kpxe", "../../etc/passwd"),
			wantCode: codeIllegal,
			wantMsg:  `illegal TFTP operation: unsupported mode "../../etc/passwd"`,
		},
		"netascii mode": {
			packet:   request(opRRQ, "../etc/passwd", "netascii"),
			wantCode: codeIllegal,
			wantMsg:  `illegal TFTP operation: unsupported mode "netascii"`,
		},
		"mail mode": {
			packet:   request(opRRQ, "undionly.kpxe", "mail"),
			wantCode: codeIllegal,
			wantMsg:  `illegal TFTP operation: unsupported mode "mail"`,
		},
		"octet in capitals": {
			packet:   request(opRRQ, "undionly.kpxe", "OCTET"),
			wantData: files["undionly.kpxe"].Data[:512],
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			c := newRawClient(t, ts.Addr())
			c.send(c.server, tc.packet)
			p, from, err := c.recv(5 * time.Second)
			if err != nil {
				t.Fatalf("no answer: %v", err)
			}
			if from.Port == ts.port() {
				t.Errorf("answer from the server port; RFC 1350 wants a new transfer ID")
			}
			if tc.wantData != nil {
				if p[1] != opDATA || !bytes.Equal(p[4:], tc.wantData) {
					t.Fatalf("got % x..., want DATA block 1 of undionly.kpxe", p[:min(len(p), 8)])
				}
				c.send(from, errorPacket(0, "enough"))
				ts.next(t)
				return
			}
			code, msg, ok := parseError(p)
			if !ok || code != tc.wantCode || !strings.HasPrefix(msg, tc.wantMsg) {
				t.Fatalf("got %q, want an ERROR packet with code %d and %q", p, tc.wantCode, tc.wantMsg)
			}
			if tr := ts.next(t); !errors.Is(tr.Err, ErrRefused) {
				t.Errorf("transfer error = %v, want ErrRefused", tr.Err)
			}
		})
	}
}

// TestMalformedPackets checks that garbage on the server port is dropped without an answer,
// counted, and does not stop the server.
func TestMalformedPackets(t *testing.T) {
	ts := startServer(t, Config{})
	garbage := map[string][]byte{
		"empty datagram":        {},
		"one byte":              {1},
		"unknown opcode":        {0, 9, 'x', 0},
		"DATA to server port":   {0, opDATA, 0, 1, 'x'},
		"ACK to server port":    ackPacket(1),
		"ERROR to server port":  errorPacket(0, "x"),
		"OACK to server port":   {0, opOACK, 'b', 0, '1', 0},
		"RRQ without mode":      {0, opRRQ, 'a'},
		"RRQ without any field": {0, opRRQ},
	}
	c := newRawClient(t, ts.Addr())
	for name, p := range garbage {
		c.send(c.server, p)
		if got, _, err := c.recv(200 * time.Millisecond); err == nil {
			t.Errorf("%s: got an answer %q, want none", name, got)
		}
	}
	waitFor(t, "malformed packets counted", func() bool {
		return ts.refusals(reasonMalformed) == float64(len(garbage))
	})
	data, _, err := c.get("undionly.kpxe", "blksize", "1468")
	if err != nil || !bytes.Equal(data, testFiles()["undionly.kpxe"].Data) {
		t.Fatalf("read after garbage: %d bytes, %v", len(data), err)
	}
	if tr := ts.next(t); tr.Err != nil {
		t.Errorf("transfer after garbage: %v", tr.Err)
	}
}

// TestOVMFSequence replays what OVMF's PXE client does (docs/FIRMWARE.md, "TFTP"): ask for
// tsize, blksize 1468 and windowsize 4; abort with error 8 once the size is known; ask again.
func TestOVMFSequence(t *testing.T) {
	content := testFiles()["ipxe-amd64.efi"].Data
	ts := startServer(t, Config{})
	c := newRawClient(t, ts.Addr())

	c.send(c.server, request(opRRQ, "ipxe-amd64.efi", "octet", "tsize", "0", "blksize", "1468", "windowsize", "4"))
	p, tid, err := c.recv(5 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if p[1] != opOACK {
		t.Fatalf("got % x, want an OACK", p)
	}
	// windowsize is left out: pin/tftp v3.1.0 does not implement RFC 7440.
	want := map[string]string{"tsize": "1048576", "blksize": "1468"}
	if diff := cmp.Diff(want, parseOACK(p)); diff != "" {
		t.Errorf("OACK options (-want +got):\n%s", diff)
	}
	c.send(tid, errorPacket(8, "")) // OVMF's "I only wanted the size"
	tr := ts.next(t)
	if !errors.Is(tr.Err, ErrClientAbort) || tr.Bytes != 0 {
		t.Errorf("probe transfer = %+v, want ErrClientAbort with 0 bytes", tr)
	}
	if got := ts.transfers("ipxe-amd64.efi", resultError); got != 1 {
		t.Errorf("transfers{ipxe-amd64.efi,error} = %v, want 1", got)
	}

	// pin/tftp answers the abort with an error packet of its own, which OVMF never reads: its
	// next request comes from a new port.
	if p, _, err := c.recv(5 * time.Second); err != nil || p[1] != opERROR {
		t.Errorf("after the abort: % x, %v; want pin/tftp's error packet", p, err)
	}
	c = newRawClient(t, ts.Addr())
	data, oack, err := c.get("ipxe-amd64.efi", "blksize", "1468", "windowsize", "4")
	if err != nil || !bytes.Equal(data, content) {
		t.Fatalf("second request: %d bytes, %v", len(data), err)
	}
	if diff := cmp.Diff(map[string]string{"blksize": "1468"}, oack); diff != "" {
		t.Errorf("second OACK (-want +got):\n%s", diff)
	}
	if tr := ts.next(t); tr.Err != nil || tr.Bytes != int64(len(content)) {
		t.Errorf("transfer = %+v, want all %d bytes", tr, len(content))
	}
	if got := ts.transfers("ipxe-amd64.efi", resultOK); got != 1 {
		t.Errorf("transfers{ipxe-amd64.efi,ok} = %v, want 1", got)
	}
}

// TestClientTimeout checks that a client that vanishes mid-transfer ends as an error.
func TestClientTimeout(t *testing.T) {
	ts := startServer(t, Config{Timeout: 100 * time.Millisecond, Retries: 2})
	c := newRawClient(t, ts.Addr())
	c.send(c.server, request(opRRQ, "undionly.kpxe", "octet"))
	if _, _, err := c.recv(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	tr := ts.next(t) // no ACK ever
	if tr.Err == nil || errors.Is(tr.Err, ErrClientAbort) {
		t.Errorf("transfer error = %v, want a timeout", tr.Err)
	}
	if got := ts.transfers("undionly.kpxe", resultError); got != 1 {
		t.Errorf("transfers{undionly.kpxe,error} = %v, want 1", got)
	}
}

// TestGracefulShutdown cancels Serve in the middle of a transfer: the transfer must complete
// and Serve must return only after it.
func TestGracefulShutdown(t *testing.T) {
	content := testFiles()["undionly.kpxe"].Data
	ts := startServer(t, Config{})
	c := newRawClient(t, ts.Addr())
	c.send(c.server, request(opRRQ, "undionly.kpxe", "octet"))
	p, tid, err := c.recv(5 * time.Second)
	if err != nil || p[1] != opDATA {
		t.Fatalf("first block: % x, %v", p, err)
	}
	data := slices.Clone(p[4:])
	ts.cancel()
	for block := uint16(1); ; block++ {
		select {
		case err := <-ts.done:
			t.Fatalf("Serve returned (%v) during a transfer, at block %d", err, block)
		default:
		}
		c.send(tid, ackPacket(block))
		if len(p)-4 < 512 {
			break
		}
		time.Sleep(time.Millisecond) // make the transfer outlast the cancel
		if p, _, err = c.recv(5 * time.Second); err != nil {
			t.Fatalf("block %d after cancel: %v", block+1, err)
		}
		data = append(data, p[4:]...)
	}
	if !bytes.Equal(data, content) {
		t.Fatalf("got %d bytes, want %d", len(data), len(content))
	}
	select {
	case err := <-ts.done:
		ts.done <- err // for the cleanup's check
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return after the transfer")
	}
	if tr := ts.next(t); tr.Err != nil {
		t.Errorf("transfer: %v", tr.Err)
	}
	// The server port is closed: a new request gets no answer.
	c.send(c.server, request(opRRQ, "undionly.kpxe", "octet"))
	if p, _, err := c.recv(300 * time.Millisecond); err == nil {
		t.Errorf("answer after shutdown: % x", p[:4])
	}
}

// TestListenAddresses reads through wildcard and IPv6 sockets, with the request sent before
// Serve starts, as happens when a firmware retries against a restarting server.
func TestListenAddresses(t *testing.T) {
	content := testFiles()["ipxe-amd64.efi"].Data
	tests := map[string]struct {
		addr string
		dial net.IP
	}{
		"ipv4 loopback":     {addr: "127.0.0.1:0", dial: net.IPv4(127, 0, 0, 1)},
		"wildcard":          {addr: ":0", dial: net.IPv4(127, 0, 0, 1)},
		"ipv4 wildcard":     {addr: "0.0.0.0:0", dial: net.IPv4(127, 0, 0, 1)},
		"ipv6 loopback":     {addr: "[::1]:0", dial: net.IPv6loopback},
		"wildcard via ipv6": {addr: ":0", dial: net.IPv6loopback},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			events := make(chan Transfer, 1)
			s, err := New(Config{Addr: tc.addr, Files: testFiles(), OnTransfer: func(tr Transfer) { events <- tr }})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			server := &net.UDPAddr{IP: tc.dial, Port: s.Addr().(*net.UDPAddr).Port}
			c := newRawClient(t, server)
			c.send(server, request(opRRQ, "ipxe-amd64.efi", "octet", "blksize", "1468", "tsize", "0"))
			time.Sleep(50 * time.Millisecond) // the request waits in the socket
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- s.Serve(ctx) }()
			defer func() {
				cancel()
				if err := <-done; err != nil {
					t.Errorf("Serve: %v", err)
				}
			}()
			data, oack, err := c.readReply()
			if err != nil || !bytes.Equal(data, content) {
				t.Fatalf("got %d bytes, %v", len(data), err)
			}
			if diff := cmp.Diff(map[string]string{"blksize": "1468", "tsize": "1048576"}, oack); diff != "" {
				t.Errorf("OACK (-want +got):\n%s", diff)
			}
			want, _ := netip.AddrFromSlice(tc.dial)
			if tr := <-events; tr.Err != nil || tr.Remote.Addr() != want.Unmap() {
				t.Errorf("transfer = %+v, want success from %s", tr, tc.dial)
			}
		})
	}
}

func TestNew(t *testing.T) {
	busy, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	tests := map[string]struct {
		cfg  Config
		want string
		is   error
	}{
		"no files":       {cfg: Config{Addr: "127.0.0.1:0"}, want: "Config.Files is nil"},
		"address in use": {cfg: Config{Addr: busy.LocalAddr().String(), Files: testFiles()}, want: "tftp listen", is: syscall.EADDRINUSE},
		"bad address":    {cfg: Config{Addr: "127.0.0.1:notaport", Files: testFiles()}, want: "tftp listen"},
		"unknown interface": {
			cfg: Config{Addr: "127.0.0.1:0", Files: testFiles(), Interfaces: []string{"lo", "nosuch0"}}, want: `tftpd: interface "nosuch0"`,
		},
		"negative MaxTransfers": {cfg: Config{Addr: "127.0.0.1:0", Files: testFiles(), MaxTransfers: -1}, want: "Config.MaxTransfers is negative"},
		"negative MaxPerSource": {cfg: Config{Addr: "127.0.0.1:0", Files: testFiles(), MaxPerSource: -1}, want: "Config.MaxPerSource is negative"},
		"negative Grace":        {cfg: Config{Addr: "127.0.0.1:0", Files: testFiles(), Grace: -time.Second}, want: "Config.Grace is negative"},
		"negative Retries":      {cfg: Config{Addr: "127.0.0.1:0", Files: testFiles(), Retries: -1}, want: "Config.Retries is negative"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			s, err := New(tc.cfg)
			if err == nil {
				s.Close()
				t.Fatal("New succeeded")
			}
			if !strings.Contains(err.Error(), tc.want) || (tc.is != nil && !errors.Is(err, tc.is)) {
				t.Errorf("New error = %v, want %q (%v)", err, tc.want, tc.is)
			}
		})
	}
}

func TestCloseWithoutServe(t *testing.T) {
	s, err := New(Config{Addr: "127.0.0.1:0", Files: testFiles()})
	if err != nil {
		t.Fatal(err)
	}
	addr := s.Addr().String()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Serve(context.Background()); err == nil {
		t.Error("Serve after Close succeeded")
	}
	s2, err := New(Config{Addr: addr, Files: testFiles()})
	if err != nil {
		t.Fatalf("rebind after Close: %v", err)
	}
	s2.Close()
}

func TestServeTwice(t *testing.T) {
	ts := startServer(t, Config{})
	waitFor(t, "Serve to start", func() bool {
		ts.mu.Lock()
		defer ts.mu.Unlock()
		return ts.started
	})
	if err := ts.Serve(context.Background()); err == nil {
		t.Error("second Serve succeeded")
	}
}

func TestMetricsRegistration(t *testing.T) {
	ts := startServer(t, Config{})
	mfs, err := ts.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	series := map[string]int{}
	for _, mf := range mfs {
		series[mf.GetName()] = len(mf.GetMetric())
	}
	// The file label: the regular files at the root of testFiles, and "other", each with
	// every result, created before any request.
	want := map[string]int{
		"bootstrapd_tftp_transfers_total":           6 * len(results),
		"bootstrapd_tftp_bytes_sent_total":          1,
		"bootstrapd_tftp_transfer_duration_seconds": 1,
		"bootstrapd_tftp_refused_total":             len(refuseReasons),
	}
	if diff := cmp.Diff(want, series); diff != "" {
		t.Errorf("series per metric (-want +got):\n%s", diff)
	}
	if problems, err := testutil.GatherAndLint(ts.reg); err != nil || len(problems) > 0 {
		t.Errorf("lint: %v %v", problems, err)
	}
	// A second server on the same registry is a configuration error, not a panic.
	_, err = New(Config{Addr: "127.0.0.1:0", Files: testFiles(), Registerer: ts.reg})
	if err == nil || !strings.Contains(err.Error(), "register TFTP metrics") {
		t.Errorf("New with a used registry: %v", err)
	}
	// nil Registerer: counted, not registered.
	s, err := New(Config{Addr: "127.0.0.1:0", Files: testFiles(), Registerer: nil})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
}

// lister stands for *ipxe.Catalogue: an fs.FS that names its files.
type lister []string

func (l lister) Open(string) (fs.File, error) { return nil, fs.ErrNotExist }
func (l lister) Files() []string              { return l }

func TestServedNames(t *testing.T) {
	many := fstest.MapFS{}
	var manyNames []string
	for i := range 40 {
		name := fmt.Sprintf("f%02d.bin", i)
		many[name] = &fstest.MapFile{}
		manyNames = append(manyNames, name)
	}
	tests := map[string]struct {
		files fs.FS
		want  []string
	}{
		"lister":      {files: lister{"undionly.kpxe", "../x", "other", "a.efi", "a.efi"}, want: []string{"a.efi", "undionly.kpxe"}},
		"map fs":      {files: testFiles(), want: []string{"blocks1468.bin", "blocks512.bin", "empty.bin", "ipxe-amd64.efi", "undionly.kpxe"}},
		"empty dir":   {files: os.DirFS(t.TempDir()), want: nil},
		"missing dir": {files: os.DirFS("/nonexistent"), want: nil},
		"40 files":    {files: many, want: manyNames[:maxFileLabels]},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got := servedNames(tc.files)
			if diff := cmp.Diff(tc.want, got, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("servedNames (-want +got):\n%s", diff)
			}
		})
	}
}

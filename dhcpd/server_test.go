package dhcpd

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/threefoldtech/bootstrapd/ipxe"
)

type testLogWriter struct{ t testing.TB }

func (w testLogWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(testLogWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// stages collects OnStage calls.
type stages struct {
	mu sync.Mutex
	s  []Stage
}

func (s *stages) add(st Stage) { s.mu.Lock(); s.s = append(s.s, st); s.mu.Unlock() }
func (s *stages) list() []Stage {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Stage(nil), s.s...)
}

// serve runs srv until the test ends and checks that Serve returns nil once ctx is cancelled.
func serve(t *testing.T, srv *Server) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Error("Serve did not return after cancel")
		}
	})
}

// readReply reads one DHCP message from c, or fails the test after a timeout.
func readReply(t *testing.T, c net.PacketConn) (*dhcpv4.DHCPv4, net.Addr) {
	t.Helper()
	buf := make([]byte, 1500)
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, from, err := c.ReadFrom(buf)
	if err != nil {
		t.Fatalf("no reply: %v", err)
	}
	p, err := dhcpv4.FromBytes(buf[:n])
	if err != nil {
		t.Fatalf("reply does not decode: %v", err)
	}
	return p, from
}

func send(t *testing.T, c net.PacketConn, b []byte, to string) {
	t.Helper()
	if _, err := c.WriteTo(b, net.UDPAddrFromAddrPort(netip.MustParseAddrPort(to))); err != nil {
		t.Fatalf("send to %s: %v", to, err)
	}
}

func withXID(b []byte, xid byte) []byte {
	return patch(b, func(b []byte) []byte { b[7] = xid; return b })
}

// TestServerLoopback runs the server on 127.0.0.1 with high ports, as any user can: a relay
// on 127.0.0.2 forwards real OVMF and iPXE DISCOVERs (giaddr set, so the offers come back to
// it by unicast), and a client sends OVMF's real 4011 REQUEST. Garbage and a non-PXE
// request in between must be counted and left unanswered.
func TestServerLoopback(t *testing.T) {
	reg := prometheus.NewRegistry()
	var got stages
	var srv *Server
	var port int
	for try := 0; ; try++ {
		port = 20000 + rand.IntN(20000)
		var err error
		srv, err = New(Config{
			Interfaces: []string{"lo"}, Addr: "127.0.0.1", Port: port, PXEPort: port + 2, HTTPPort: 8080,
			Files: testCatalogue(t), Logger: testLogger(t), Registerer: reg, OnStage: got.add,
		})
		if err == nil {
			break
		}
		if !errors.Is(err, syscall.EADDRINUSE) || try > 20 {
			t.Fatal(err)
		}
	}
	wantAddrs := []netip.AddrPort{
		netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(port)),
		netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(port+2)),
	}
	if a := srv.Addrs(); len(a) != 2 || a[0] != wantAddrs[0] || a[1] != wantAddrs[1] {
		t.Errorf("Addrs() = %v, want %v", a, wantAddrs)
	}
	serve(t, srv)

	relay, err := net.ListenPacket("udp4", "127.0.0.2:"+strconv.Itoa(port))
	if err != nil {
		t.Fatal(err)
	}
	defer relay.Close()
	srvAddr := "127.0.0.1:" + strconv.Itoa(port)

	ovmf := patch(fromCapture(t, "ovmf.pcap", 67, dhcpv4.MessageTypeDiscover, 0).Data, withGiaddr("127.0.0.2"))
	send(t, relay, []byte("\x01\x01\x06\x00not dhcp at all"), srvAddr)
	send(t, relay, patch(craft(t, dhcpv4.MessageTypeDiscover), withGiaddr("127.0.0.2")), srvAddr)
	send(t, relay, ovmf, srvAddr)
	// The socket is served in order, so the first reply is to the OVMF DISCOVER and the two
	// before it were handled (silently) by then.
	offer, from := readReply(t, relay)
	req, _ := dhcpv4.FromBytes(ovmf)
	if offer.TransactionID != req.TransactionID || offer.MessageType() != dhcpv4.MessageTypeOffer {
		t.Fatalf("first reply is %s xid %s, want the OFFER for %s", offer.MessageType(), offer.TransactionID, req.TransactionID)
	}
	if from.String() != srvAddr {
		t.Errorf("offer came from %s, want %s", from, srvAddr)
	}
	if err := checkReply(ovmf, decision{Reply: offer, Server: netip.MustParseAddr("127.0.0.1"),
		File: ipxe.FileEFIx64, To: netip.MustParseAddrPort("127.0.0.2:1")}); err != nil {
		t.Error(err)
	}
	if offer.BootFileName != ipxe.FileEFIx64 || !offer.GatewayIPAddr.Equal(net.IPv4(127, 0, 0, 2)) ||
		!bytes.Equal(offer.Options.Get(dhcpv4.OptionVendorSpecificInformation), []byte{6, 1, 8, 255}) {
		t.Errorf("offer: file %q giaddr %s option 43 %x", offer.BootFileName, offer.GatewayIPAddr,
			offer.Options.Get(dhcpv4.OptionVendorSpecificInformation))
	}

	// The 2025 iPXE, relayed: its script URL names our loopback address and the HTTP port.
	ipxeDiscover := patch(fromCapture(t, "ovmf.pcap", 67, dhcpv4.MessageTypeDiscover, 1).Data, withGiaddr("127.0.0.2"))
	send(t, relay, ipxeDiscover, srvAddr)
	offer, _ = readReply(t, relay)
	if want := "http://127.0.0.1:8080/provision/" + capMAC; offer.BootFileName != want || offer.BootFileNameOption() != want {
		t.Errorf("iPXE offer file %q / option 67 %q, want %q", offer.BootFileName, offer.BootFileNameOption(), want)
	}

	// Port 4011: OVMF's real REQUEST, answered to its source address and port.
	client, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	r4011 := fromCapture(t, "ovmf-4011.pcap", 4011, dhcpv4.MessageTypeRequest, 0).Data
	send(t, client, r4011, "127.0.0.1:"+strconv.Itoa(port+2))
	ack, from := readReply(t, client)
	if ack.MessageType() != dhcpv4.MessageTypeAck || ack.BootFileName != ipxe.FileEFIx64 ||
		!ack.ServerIPAddr.Equal(net.IPv4(127, 0, 0, 1)) || from.String() != "127.0.0.1:"+strconv.Itoa(port+2) {
		t.Errorf("4011 answer: %s file %q siaddr %s from %s", ack.MessageType(), ack.BootFileName, ack.ServerIPAddr, from)
	}

	// OnStage runs last for each reply: once all three are in, so are the counters.
	st := waitStages(t, &got, 3)
	for _, c := range []struct {
		c    prometheus.Collector
		want float64
	}{
		{srv.m.dropped.WithLabelValues(dropMalformed), 1},
		{srv.m.dropped.WithLabelValues(dropNotPXE), 1},
		{srv.m.dropped.WithLabelValues(dropWrongType), 0},
		{srv.m.replies.WithLabelValues(kindBinary), 2},
		{srv.m.replies.WithLabelValues(kindIPXEScript), 1},
		{srv.m.received.WithLabelValues("malformed", "none"), 1},
		{srv.m.received.WithLabelValues("discover", "none"), 1},
		{srv.m.received.WithLabelValues("discover", "efi-x64"), 2},
		{srv.m.received.WithLabelValues("request", "efi-x64"), 1},
	} {
		if got := testutil.ToFloat64(c.c); got != c.want {
			desc := make(chan *prometheus.Desc, 1)
			c.c.Describe(desc)
			t.Errorf("%s = %v, want %v", <-desc, got, c.want)
		}
	}
	// Every label value exists from the start, on the registry we passed.
	for name, want := range map[string]int{
		"bootstrapd_dhcp_dropped_total":          len(dropReasons),
		"bootstrapd_dhcp_replies_total":          len(replyKinds),
		"bootstrapd_dhcp_packets_received_total": (len(msgTypes) + 2) * (len(archNames) + 2),
	} {
		if n, err := testutil.GatherAndCount(reg, name); err != nil || n != want {
			t.Errorf("%s: %d series (err %v), want %d", name, n, err, want)
		}
	}

	if len(st) != 3 {
		t.Fatalf("OnStage called %d times, want 3: %+v", len(st), st)
	}
	if diff := cmp.Diff([]string{
		"offer-binary 52:54:00:12:34:56 EFI x86-64 10.99.0.111 ipxe-amd64.efi",
		"offer-binary 52:54:00:12:34:56 EFI x86-64 invalid IP ipxe-amd64.efi",
		"offer-ipxe-script 52:54:00:12:34:56 EFI x86-64 invalid IP http://127.0.0.1:8080/provision/52:54:00:12:34:56",
	}, stageLines(st)); diff != "" {
		t.Errorf("stages (-want +got):\n%s", diff)
	}
}

// TestServeReleasesSockets: after Serve returns the ports can be bound again.
func TestServeReleasesSockets(t *testing.T) {
	port := 40000 + rand.IntN(20000)
	cfg := Config{Interfaces: []string{"lo"}, Addr: "127.0.0.1", Port: port, PXEPort: port + 2, Files: testCatalogue(t)}
	srv, err := New(cfg)
	if err != nil {
		t.Skipf("port %d busy: %v", port, err)
	}
	if _, err := New(cfg); !errors.Is(err, syscall.EADDRINUSE) {
		t.Errorf("second New on the same ports: %v, want EADDRINUSE", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	time.Sleep(50 * time.Millisecond)
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Serve: %v", err)
	}
	again, err := New(cfg)
	if err != nil {
		t.Fatalf("ports not released: %v", err)
	}
	if err := again.Close(); err != nil {
		t.Error(err)
	}
}

func TestNewConfigErrors(t *testing.T) {
	cat := testCatalogue(t)
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"no catalogue", Config{Port: 40001}, "Files is required"},
		{"bad public URL scheme", Config{Files: cat, PublicURL: "ftp://x"}, "want http(s)"},
		{"public URL with query", Config{Files: cat, PublicURL: "http://x/?a=b"}, "want http(s)"},
		{"public URL too long", Config{Files: cat, PublicURL: "http://x/" + strings.Repeat("a", 200)}, "longer than"},
		{"unknown interface", Config{Files: cat, Interfaces: []string{"nosuch0"}}, `interface "nosuch0"`},
		{"port out of range", Config{Files: cat, Port: 70000}, "out of range"},
		{"client port out of range", Config{Files: cat, Port: 65535}, "out of range"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := New(tt.cfg)
			if err == nil {
				_ = s.Close()
				t.Fatal("New succeeded")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not mention %q", err, tt.want)
			}
		})
	}
}

// TestNewUnprivileged: binding port 67 without the capability is an os.ErrPermission. As root
// the test re-runs itself as nobody.
func TestNewUnprivileged(t *testing.T) {
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_unprivileged_port_start"); err == nil {
		if n, _ := strconv.Atoi(strings.TrimSpace(string(b))); n <= 67 {
			t.Skipf("ip_unprivileged_port_start is %d: port 67 needs no privilege here", n)
		}
	}
	if os.Geteuid() != 0 {
		_, err := New(Config{Addr: "127.0.0.1", Files: testCatalogue(t)})
		if !errors.Is(err, os.ErrPermission) {
			t.Fatalf("New on port 67 as uid %d: %v, want os.ErrPermission", os.Geteuid(), err)
		}
		t.Logf("as uid %d: %v", os.Geteuid(), err)
		return
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "dhcpd-unpriv-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	bin := filepath.Join(dir, "dhcpd.test")
	if err := copyFile(exe, bin); err != nil {
		t.Fatal(err)
	}
	tmp := filepath.Join(dir, "tmp")
	if err := os.Mkdir(tmp, 0o755); err != nil {
		t.Fatal(err)
	}
	for d, mode := range map[string]os.FileMode{dir: 0o755, tmp: 0o777 | os.ModeSticky} {
		if err := os.Chmod(d, mode); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(bin, "-test.run=^TestNewUnprivileged$", "-test.v")
	cmd.Dir = dir
	cmd.Env = []string{"HOME=" + dir, "TMPDIR=" + tmp, "PATH=/usr/bin:/bin"}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	t.Logf("as nobody:\n%s", out)
	if err != nil {
		t.Fatalf("unprivileged run: %v", err)
	}
}

func copyFile(from, to string) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// waitStages waits for n OnStage calls: the callback runs after the send, so a client can
// hold its reply before the server has recorded it.
func waitStages(t *testing.T, s *stages, n int) []Stage {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		st := s.list()
		if len(st) >= n || time.Now().After(deadline) {
			return st
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestSharesDHCPPort: a DHCP server on the same host that set SO_REUSEADDR (dnsmasq and ISC
// dhcpd do) already holds port 67; New still binds it, and the PXE port stays exclusive.
func TestSharesDHCPPort(t *testing.T) {
	port := 40000 + rand.IntN(20000)
	lc := net.ListenConfig{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_REUSEADDR, 1)
		})
		if err != nil {
			return err
		}
		return serr
	}}
	other, err := lc.ListenPacket(context.Background(), "udp4", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		t.Skipf("port %d busy: %v", port, err)
	}
	defer other.Close()
	srv, err := New(Config{Addr: "127.0.0.1", Port: port, PXEPort: port + 2, Files: testCatalogue(t)})
	if err != nil {
		t.Fatalf("New next to another DHCP server: %v", err)
	}
	defer srv.Close()
	pxe, err := lc.ListenPacket(context.Background(), "udp4", "127.0.0.1:"+strconv.Itoa(port+2))
	if err == nil {
		pxe.Close()
		t.Error("the PXE port could be bound twice")
	}
}

// stageLines renders stages sortably: the two ports are served concurrently, so their
// callbacks may come in either order.
func stageLines(st []Stage) []string {
	var out []string
	for _, s := range st {
		if s.Time.IsZero() {
			s.Kind += " (no time)"
		}
		out = append(out, fmt.Sprintf("%s %s %s %s %s", s.Kind, s.MAC, s.Arch, s.IP, s.File))
	}
	slices.Sort(out)
	return out
}

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
	"golang.org/x/net/ipv4"

	"github.com/threefoldtech/bootstrapd/ipxe"
	"github.com/threefoldtech/bootstrapd/store/timeline"
)

type testLogWriter struct{ t testing.TB }

func (w testLogWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(testLogWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// recordLog keeps the level and message of every record it is given, and passes it on.
type recordLog struct {
	slog.Handler
	mu   *sync.Mutex
	recs *[]string
}

// newRecordLog is a logger to t at level and above, and a function listing what it logged
// as "LEVEL message".
func newRecordLog(t testing.TB, level slog.Level) (*slog.Logger, func() []string) {
	h := recordLog{
		Handler: slog.NewTextHandler(testLogWriter{t}, &slog.HandlerOptions{Level: level}),
		mu:      &sync.Mutex{}, recs: new([]string),
	}
	return slog.New(h), func() []string {
		h.mu.Lock()
		defer h.mu.Unlock()
		return slices.Clone(*h.recs)
	}
}

func (h recordLog) Handle(ctx context.Context, r slog.Record) error {
	h.mu.Lock()
	*h.recs = append(*h.recs, r.Level.String()+" "+r.Message)
	h.mu.Unlock()
	return h.Handler.Handle(ctx, r)
}

func (h recordLog) WithAttrs(a []slog.Attr) slog.Handler {
	return recordLog{Handler: h.Handler.WithAttrs(a), mu: h.mu, recs: h.recs}
}

func (h recordLog) WithGroup(g string) slog.Handler {
	return recordLog{Handler: h.Handler.WithGroup(g), mu: h.mu, recs: h.recs}
}

// stagesSeen collects the timeline events a server emits.
type stagesSeen struct {
	mu sync.Mutex
	s  []timeline.Event
}

func (s *stagesSeen) add(e timeline.Event) { s.mu.Lock(); s.s = append(s.s, e); s.mu.Unlock() }
func (s *stagesSeen) list() []timeline.Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]timeline.Event(nil), s.s...)
}

// serve runs srv until the test ends and checks that Serve returns nil once ctx is cancelled.
func serve(t testing.TB, srv *Server) {
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
	var got stagesSeen
	srv, port := loopbackServer(t, Config{HTTPPort: 8080, Logger: testLogger(t), Registerer: reg, Timeline: got.add})
	wantAddrs := []netip.AddrPort{
		netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(port)),
		netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(port+2)),
	}
	if a := srv.Addrs(); len(a) != 2 || a[0] != wantAddrs[0] || a[1] != wantAddrs[1] {
		t.Errorf("Addrs() = %v, want %v", a, wantAddrs)
	}

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
		File: capFile, To: netip.MustParseAddrPort("127.0.0.2:1")}); err != nil {
		t.Error(err)
	}
	if offer.BootFileName != capFile || !offer.GatewayIPAddr.Equal(net.IPv4(127, 0, 0, 2)) ||
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
	if ack.MessageType() != dhcpv4.MessageTypeAck || ack.BootFileName != capFile ||
		!ack.ServerIPAddr.Equal(net.IPv4(127, 0, 0, 1)) || from.String() != "127.0.0.1:"+strconv.Itoa(port+2) {
		t.Errorf("4011 answer: %s file %q siaddr %s from %s", ack.MessageType(), ack.BootFileName, ack.ServerIPAddr, from)
	}

	// The timeline callback runs last for each reply: once all three are in, so are the counters.
	st := waitStages(t, &got, 3)
	for _, c := range []struct {
		c    prometheus.Collector
		want float64
	}{
		{srv.m.dropped.WithLabelValues(dropTruncated), 1},
		{srv.m.dropped.WithLabelValues(dropNotPXE), 1},
		{srv.m.dropped.WithLabelValues(dropWrongType), 0},
		{srv.m.replies.WithLabelValues(kindBinary), 2},
		{srv.m.replies.WithLabelValues(kindIPXEScript), 1},
		{srv.m.received.WithLabelValues("malformed", "none"), 1},
		{srv.m.received.WithLabelValues("discover", "none"), 1},
		{srv.m.received.WithLabelValues("discover", "efi_x64"), 2},
		{srv.m.received.WithLabelValues("request", "efi_x64"), 1},
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
		t.Fatalf("%d timeline events, want 3: %+v", len(st), st)
	}
	if diff := cmp.Diff([]string{
		"offer_binary 52:54:00:12:34:56 10.99.0.111 | EFI x86-64 52-54-00-12-34-56/ipxe-amd64.efi",
		"offer_binary 52:54:00:12:34:56 invalid IP | EFI x86-64 52-54-00-12-34-56/ipxe-amd64.efi",
		"offer_script 52:54:00:12:34:56 invalid IP | EFI x86-64 http://127.0.0.1:8080/provision/52:54:00:12:34:56",
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
		{"bad public URL scheme", Config{Files: cat, PublicURL: "ftp://x"}, "public URL"},
		{"public URL with iPXE syntax", Config{Files: cat, PublicURL: "http://x/{a}"}, "public URL"},
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

// TestPublicURL: the configured base goes into option 67 and iPXE scripts as it is, so it
// passes ipxe.ValidateBaseURL, and leaves room for the longest path we append.
func TestPublicURL(t *testing.T) {
	longest := "http://x/" + strings.Repeat("a", maxBootFileLen-len("http://x/")-len("/provision/aa:bb:cc:dd:ee:ff"))
	tests := []struct {
		name    string
		in      string
		want    string
		unsafe  bool // refused with ipxe.ErrUnsafe
		tooLong bool
	}{
		{name: "empty means derived per request", in: "", want: ""},
		{name: "host only", in: "http://boot.example.net", want: "http://boot.example.net"},
		{name: "trailing slash dropped", in: "https://boot.example.net:8443/farm/", want: "https://boot.example.net:8443/farm"},
		{name: "IPv6 literal", in: "http://[2001:db8::1]:8080", want: "http://[2001:db8::1]:8080"},
		{name: "as long as fits", in: longest, want: longest},
		{name: "one byte too long", in: longest + "a", tooLong: true},
		{name: "braces", in: "http://x/{a}", unsafe: true},
		{name: "iPXE variable", in: "http://x/${net0/mac}", unsafe: true},
		{name: "command separator", in: "http://x/a;shell", unsafe: true},
		{name: "space", in: "http://x/a b", unsafe: true},
		{name: "IPv6 zone", in: "http://[fe80::1%25eth0]:8080", unsafe: true},
		{name: "query", in: "http://x/?a=b", unsafe: true},
		{name: "empty query", in: "http://x/?", unsafe: true},
		{name: "fragment", in: "http://x/#top", unsafe: true},
		{name: "ftp", in: "ftp://x", unsafe: true},
		{name: "relative", in: "/boot", unsafe: true},
		{name: "no host", in: "http:///boot", unsafe: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := publicURL(tt.in)
			switch {
			case tt.unsafe:
				if !errors.Is(err, ipxe.ErrUnsafe) {
					t.Errorf("publicURL(%q) = %q, %v; want ipxe.ErrUnsafe", tt.in, got, err)
				}
			case tt.tooLong:
				if err == nil || !strings.Contains(err.Error(), "longer than") {
					t.Errorf("publicURL(%q) = %q, %v; want too long", tt.in, got, err)
				}
			case err != nil || got != tt.want:
				t.Errorf("publicURL(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
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

// waitStages waits for n timeline events: the callback runs after the send, so a client can
// hold its reply before the server has recorded it.
func waitStages(t *testing.T, s *stagesSeen, n int) []timeline.Event {
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
func stageLines(st []timeline.Event) []string {
	var out []string
	for _, s := range st {
		if s.Time.IsZero() {
			s.Stage += " (no time)"
		}
		out = append(out, fmt.Sprintf("%s %s %s | %s", s.Stage, s.MAC, s.IP, s.Detail))
	}
	slices.Sort(out)
	return out
}

// loopbackServer runs a server on 127.0.0.1 with free high ports (DHCP on port, PXE on
// port+2) until the test ends.
func loopbackServer(t testing.TB, cfg Config) (*Server, int) {
	t.Helper()
	cfg.Interfaces, cfg.Addr, cfg.Files = []string{"lo"}, "127.0.0.1", testCatalogue(t)
	for try := 0; ; try++ {
		port := 20000 + rand.IntN(20000)
		cfg.Port, cfg.PXEPort = port, port+2
		srv, err := New(cfg)
		if err == nil {
			serve(t, srv)
			return srv, port
		}
		if !errors.Is(err, syscall.EADDRINUSE) || try > 20 {
			t.Fatal(err)
		}
	}
}

// TestServerDropsGarbage sends what is not a whole DHCP message to both ports over loopback,
// where a datagram can be 64 KiB without fragments: each is counted under its reason, is not
// answered, and is logged below Info. A real request sent after it on the same socket is
// answered first, which shows the garbage before it got nothing.
func TestServerDropsGarbage(t *testing.T) {
	reg := prometheus.NewRegistry()
	log, records := newRecordLog(t, slog.LevelDebug)
	srv, port := loopbackServer(t, Config{HTTPPort: 8080, Logger: log, Registerer: reg})
	relay, err := net.ListenPacket("udp4", "127.0.0.2:"+strconv.Itoa(port))
	if err != nil {
		t.Fatal(err)
	}
	defer relay.Close()
	dhcpAddr, pxeAddr := "127.0.0.1:"+strconv.Itoa(port), "127.0.0.1:"+strconv.Itoa(port+2)

	discover := patch(fromCapture(t, "ovmf.pcap", 67, dhcpv4.MessageTypeDiscover, 0).Data, withGiaddr("127.0.0.2"))
	request := fromCapture(t, "ovmf-4011.pcap", 4011, dhcpv4.MessageTypeRequest, 0).Data
	padTo := func(b []byte, n int) []byte { return append(bytes.Clone(b), make([]byte, n-len(b))...) }
	tests := []struct {
		name string
		b    []byte
		to   string
		want string
	}{
		{"64 KiB datagram holding a valid discover", padTo(discover, 65507), dhcpAddr, dropOversized},
		{"64 KiB datagram holding a valid request", padTo(request, 65507), pxeAddr, dropOversized},
		{"one byte over the limit", padTo(discover, maxRequestLen+1), dhcpAddr, dropOversized},
		{"empty", []byte{}, dhcpAddr, dropTruncated},
		{"header cut short", discover[:200], pxeAddr, dropTruncated},
		{"option past the end", append(bytes.Clone(discover[:240]), 53, 1, 1, 60, 255, 'P'), dhcpAddr, dropTruncated},
		{"no end option", discover[:len(discover)-1], dhcpAddr, dropTruncated},
		{"random bytes", bytes.Repeat([]byte{0xde, 0xad, 0xbe, 0xef, 0x01}, 100), pxeAddr, dropMalformed},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := testutil.ToFloat64(srv.m.dropped.WithLabelValues(tt.want))
			send(t, relay, tt.b, tt.to)
			sentinel, want := withXID(discover, byte(i)), dhcpv4.MessageTypeOffer
			if tt.to == pxeAddr {
				sentinel, want = withXID(request, byte(i)), dhcpv4.MessageTypeAck
			}
			send(t, relay, sentinel, tt.to)
			reply, _ := readReply(t, relay)
			if reply.TransactionID[3] != byte(i) || reply.MessageType() != want {
				t.Fatalf("first reply is %s xid %s, want the %s to the request sent after the garbage",
					reply.MessageType(), reply.TransactionID, want)
			}
			if got := testutil.ToFloat64(srv.m.dropped.WithLabelValues(tt.want)); got != before+1 {
				t.Errorf("dropped{reason=%q} went from %v to %v, want +1", tt.want, before, got)
			}
		})
	}
	for _, r := range records() {
		if strings.HasSuffix(r, " dhcp request ignored") && !strings.HasPrefix(r, "DEBUG ") {
			t.Errorf("a drop was logged as %q: a flood would flood the log", r)
		}
	}
	if n, err := testutil.GatherAndCount(reg, "bootstrapd_dhcp_dropped_total"); err != nil || n != len(dropReasons) {
		t.Errorf("dropped series: %d (err %v), want %d", n, err, len(dropReasons))
	}
}

// TestDropLevel: drops that are on our side are a Warn once a minute per reason, with the
// number held back since; everything else is always Debug.
func TestDropLevel(t *testing.T) {
	log, records := newRecordLog(t, slog.LevelDebug)
	s := &Server{log: log, warns: &warnLimiter{every: time.Hour}}
	in := arrival{Iface: "lo"}
	for _, reason := range []string{dropNoArch, dropNoArch, dropNoArch, dropNotPXE, dropTruncated, dropNoBinary, dropNoArch} {
		s.logDrop(&listener{role: roleDHCP}, in, decision{Drop: reason}, 300)
	}
	want := []string{
		"WARN dhcp request ignored", "DEBUG dhcp request ignored", "DEBUG dhcp request ignored",
		"DEBUG dhcp request ignored", "DEBUG dhcp request ignored", "WARN dhcp request ignored",
		"DEBUG dhcp request ignored",
	}
	if diff := cmp.Diff(want, records()); diff != "" {
		t.Errorf("levels (-want +got):\n%s", diff)
	}
}

func TestWarnLimiter(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	w := &warnLimiter{every: time.Minute}
	steps := []struct {
		key      string
		at       time.Duration
		wantOK   bool
		wantHeld int
	}{
		{"no-arch", 0, true, 0},
		{"no-arch", time.Second, false, 0},
		{"no-binary", time.Second, true, 0}, // keys are independent
		{"no-arch", 59 * time.Second, false, 0},
		{"no-arch", time.Minute, true, 2},
		{"no-arch", time.Minute + time.Second, false, 0},
		{"no-binary", 3 * time.Minute, true, 0},
		{"no-arch", 3 * time.Minute, true, 1},
	}
	for i, st := range steps {
		ok, held := w.allow(st.key, t0.Add(st.at))
		if ok != st.wantOK || held != st.wantHeld {
			t.Errorf("step %d (%s at %v): allow = %v, %d; want %v, %d", i, st.key, st.at, ok, held, st.wantOK, st.wantHeld)
		}
	}
}

// A reply the kernel refuses (here: IP_PKTINFO names no interface) is counted and logged, and
// the rest of its batch still goes. sendmmsg reports the failed first message as -1.
func TestSendBatchWithRefusedReply(t *testing.T) {
	reg := prometheus.NewRegistry()
	srv, _ := loopbackServer(t, Config{HTTPPort: 8080, Logger: testLogger(t), Registerer: reg})
	c, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	l := &listener{role: rolePXE, pc: ipv4.NewPacketConn(c)}
	client, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	to := client.LocalAddr().(*net.UDPAddr)
	bad := (&ipv4.ControlMessage{IfIndex: 1 << 20}).Marshal()
	good := (&ipv4.ControlMessage{Src: net.IPv4(127, 0, 0, 1)}).Marshal()
	for _, order := range [][]bool{{false, true}, {true, false, true}} { // false: refused
		var out []ipv4.Message
		var sent []sentReply
		for i, ok := range order {
			oob := bad
			if ok {
				oob = good
			}
			out = append(out, ipv4.Message{Buffers: [][]byte{{byte(i)}}, OOB: oob, Addr: to})
			sent = append(sent, sentReply{d: decision{Kind: kindBinary, Reply: &dhcpv4.DHCPv4{}}})
		}
		before := testutil.ToFloat64(srv.m.dropped.WithLabelValues(dropSendFailed))
		srv.send(l, out, sent) // must not panic
		if got := testutil.ToFloat64(srv.m.dropped.WithLabelValues(dropSendFailed)) - before; got != 1 {
			t.Errorf("batch %v: %v sends counted as failed, want 1", order, got)
		}
		for i, ok := range order {
			if !ok {
				continue
			}
			buf := make([]byte, 16)
			_ = client.SetReadDeadline(time.Now().Add(2 * time.Second))
			n, _, err := client.ReadFrom(buf)
			if err != nil || n != 1 || buf[0] != byte(i) {
				t.Fatalf("batch %v: message %d not delivered: %v (%d bytes, %x)", order, i, err, n, buf[:n])
			}
		}
	}
}

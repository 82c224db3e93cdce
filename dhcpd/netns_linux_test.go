package dhcpd

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/dhcpv4/server4"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"golang.org/x/net/ipv4"
	"golang.org/x/sys/unix"
)

const netnsChildEnv = "DHCPD_TEST_CLIENT_NETNS"

// TestServeNetns runs the server on the real ports 67 and 4011 in a network namespace with two
// links, s0 (10.77.0.1/24) and s1 (10.78.0.1/24), whose peers c0 and c1 live in a client
// namespace. It proves what loopback cannot: broadcast DISCOVERs are answered by broadcast to
// port 68 out of the interface they came in on, with that interface's address as siaddr.
// Needs root and iproute2; the test re-runs itself inside the server namespace.
func TestServeNetns(t *testing.T) {
	if cli := os.Getenv(netnsChildEnv); cli != "" {
		netnsChild(t, cli)
		return
	}
	requireNetns(t)
	srvNS, cliNS := netnsLinks(t)
	runInNetns(t, srvNS, cliNS)
}

// requireNetns skips a test that needs root and iproute2 when they are missing, or fails it
// when BOOTSTRAPD_REQUIRE_TOOLS=1 says no check may be skipped.
func requireNetns(t *testing.T) {
	t.Helper()
	missing := ""
	if os.Geteuid() != 0 {
		missing = "root (network namespaces, real sockets on ports 67 and 4011)"
	} else if _, err := exec.LookPath("ip"); err != nil {
		missing = "iproute2 (the ip command)"
	}
	if missing == "" {
		return
	}
	if os.Getenv("BOOTSTRAPD_REQUIRE_TOOLS") == "1" {
		t.Fatalf("needs %s, and BOOTSTRAPD_REQUIRE_TOOLS=1 forbids skipping", missing)
	}
	t.Skipf("needs %s; skipped (BOOTSTRAPD_REQUIRE_TOOLS=1 makes this a failure)", missing)
}

// netnsLinks creates a server and a client namespace joined by two links, s0 (10.77.0.1/24)
// and s1 (10.78.0.1/24) whose peers c0 (.50) and c1 (.50) are in the client namespace. Both
// are deleted when the test ends.
func netnsLinks(t *testing.T) (srvNS, cliNS string) {
	t.Helper()
	id := strconv.Itoa(os.Getpid())
	srvNS, cliNS = "dhcpdt-srv-"+id, "dhcpdt-cli-"+id
	run := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	run("netns", "add", srvNS)
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", srvNS).Run() })
	run("netns", "add", cliNS)
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", cliNS).Run() })
	for i, n := range []string{"0", "1"} {
		run("-n", srvNS, "link", "add", "s"+n, "type", "veth", "peer", "name", "c"+n, "netns", cliNS)
		run("-n", srvNS, "addr", "add", fmt.Sprintf("10.7%d.0.1/24", 7+i), "dev", "s"+n)
		run("-n", cliNS, "addr", "add", fmt.Sprintf("10.7%d.0.50/24", 7+i), "dev", "c"+n)
		run("-n", srvNS, "link", "set", "s"+n, "up")
		run("-n", cliNS, "link", "set", "c"+n, "up")
	}
	run("-n", srvNS, "link", "set", "lo", "up")
	run("-n", cliNS, "link", "set", "lo", "up")
	return srvNS, cliNS
}

// runInNetns re-runs the current test inside srvNS, with the client namespace's name in
// netnsChildEnv: the server must be in its namespace for its interface lookups (netlink) as
// well as its sockets, which a thread of this process cannot give it.
func runInNetns(t *testing.T, srvNS, cliNS string) {
	t.Helper()
	args := []string{"netns", "exec", srvNS, os.Args[0], "-test.run=^" + t.Name() + "$", "-test.v"}
	cmd := exec.Command("ip", args...)
	cmd.Env = append(os.Environ(), netnsChildEnv+"="+cliNS)
	out, err := cmd.CombinedOutput()
	t.Logf("in namespace %s:\n%s", srvNS, out)
	if err != nil {
		t.Fatalf("namespace run: %v", err)
	}
}

// inNamespace runs f on a thread in the named namespace; sockets f opens stay there and can
// be used from any goroutine afterwards.
func inNamespace(ns string, f func() error) error {
	errc := make(chan error)
	go func() {
		// This thread switches namespace and is never unlocked: Go discards it when the
		// goroutine ends, so no other goroutine ever runs in the client namespace.
		runtime.LockOSThread()
		fd, err := os.Open("/run/netns/" + ns)
		if err != nil {
			errc <- err
			return
		}
		defer fd.Close()
		if err := unix.Setns(int(fd.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("setns %s: %w", ns, err)
			return
		}
		errc <- f()
	}()
	return <-errc
}

// clientSockets opens, inside the client namespace, one socket per link bound to port 68 of
// that device (as a DHCP client's), and one on c0's address and port 4011 (as EDK2's).
type clientSockets struct {
	c0, c1   *ipv4.PacketConn
	idx0     int
	idx1     int
	pxe      net.PacketConn
	setupErr error
}

func openClientSockets(ns string) clientSockets {
	var cs clientSockets
	cs.setupErr = inNamespace(ns, func() error {
		for _, s := range []struct {
			dev string
			pc  **ipv4.PacketConn
			idx *int
		}{{"c0", &cs.c0, &cs.idx0}, {"c1", &cs.c1, &cs.idx1}} {
			c, err := server4.NewIPv4UDPConn(s.dev, &net.UDPAddr{Port: 68})
			if err != nil {
				return fmt.Errorf("client socket on %s: %w", s.dev, err)
			}
			*s.pc = ipv4.NewPacketConn(c)
			if err := (*s.pc).SetControlMessage(ipv4.FlagDst|ipv4.FlagInterface, true); err != nil {
				return err
			}
			ifi, err := net.InterfaceByName(s.dev)
			if err != nil {
				return err
			}
			*s.idx = ifi.Index
		}
		var err error
		cs.pxe, err = net.ListenPacket("udp4", "10.77.0.50:4011")
		return err
	})
	return cs
}

func netnsChild(t *testing.T, cliNS string) {
	cs := openClientSockets(cliNS)
	if cs.setupErr != nil {
		t.Fatal(cs.setupErr)
	}
	defer cs.c0.Close()
	defer cs.c1.Close()
	defer cs.pxe.Close()

	var got stagesSeen
	srv, err := New(Config{HTTPPort: 8080, Files: testCatalogue(t), Logger: testLogger(t), Timeline: got.add})
	if err != nil {
		t.Fatal(err)
	}
	if a := srv.Addrs(); len(a) != 2 || a[0].String() != "0.0.0.0:67" || a[1].String() != "0.0.0.0:4011" {
		t.Errorf("Addrs() = %v", a)
	}
	serve(t, srv)

	ovmf := fromCapture(t, "ovmf.pcap", 67, dhcpv4.MessageTypeDiscover, 0).Data
	bcast67 := &net.UDPAddr{IP: net.IPv4bcast, Port: 67}
	for _, link := range []struct {
		name   string
		pc     *ipv4.PacketConn
		idx    int
		server string
		xid    byte
	}{
		{"c1", cs.c1, cs.idx1, "10.78.0.1", 0xc1},
		{"c0", cs.c0, cs.idx0, "10.77.0.1", 0xc0},
	} {
		t.Run(link.name, func(t *testing.T) {
			// A plain DHCP client first: it must stay unanswered, so the first reply read
			// below is the PXE one.
			if _, err := link.pc.WriteTo(withXID(craft(t, dhcpv4.MessageTypeDiscover), link.xid+1), nil, bcast67); err != nil {
				t.Fatal(err)
			}
			if _, err := link.pc.WriteTo(withXID(ovmf, link.xid), nil, bcast67); err != nil {
				t.Fatal(err)
			}
			buf := make([]byte, 1500)
			_ = link.pc.SetReadDeadline(time.Now().Add(5 * time.Second))
			n, cm, from, err := link.pc.ReadFrom(buf)
			if err != nil {
				t.Fatalf("no offer: %v", err)
			}
			offer, err := dhcpv4.FromBytes(buf[:n])
			if err != nil {
				t.Fatal(err)
			}
			if offer.TransactionID[3] != link.xid {
				t.Fatalf("first reply has xid %s, want the OVMF DISCOVER's", offer.TransactionID)
			}
			if cm == nil || cm.IfIndex != link.idx || !cm.Dst.Equal(net.IPv4bcast) {
				t.Errorf("offer arrived as %v, want a broadcast on %s (ifindex %d)", cm, link.name, link.idx)
			}
			if from.String() != link.server+":67" || offer.ServerIPAddr.String() != link.server ||
				offer.ServerIdentifier().String() != link.server {
				t.Errorf("offer from %s siaddr %s option 54 %s, want %s", from, offer.ServerIPAddr, offer.ServerIdentifier(), link.server)
			}
			if offer.BootFileName != capFile || !offer.YourIPAddr.IsUnspecified() || !offer.IsBroadcast() {
				t.Errorf("offer file %q yiaddr %s broadcast %v", offer.BootFileName, offer.YourIPAddr, offer.IsBroadcast())
			}
		})
	}

	// EDK2's port-4011 exchange: from and to 4011, unicast.
	req := patch(fromCapture(t, "ovmf-4011.pcap", 4011, dhcpv4.MessageTypeRequest, 0).Data, func(b []byte) []byte {
		copy(b[12:16], net.IPv4(10, 77, 0, 50).To4()) // ciaddr: the address the real server leased
		return b
	})
	send(t, cs.pxe, req, "10.77.0.1:4011")
	ack, from := readReply(t, cs.pxe)
	if ack.MessageType() != dhcpv4.MessageTypeAck || from.String() != "10.77.0.1:4011" ||
		ack.ServerIPAddr.String() != "10.77.0.1" || ack.BootFileName != capFile {
		t.Errorf("4011: %s from %s siaddr %s file %q", ack.MessageType(), from, ack.ServerIPAddr, ack.BootFileName)
	}
	st := waitStages(t, &got, 3)
	if diff := cmp.Diff([]string{
		"offer_binary 52:54:00:12:34:56 10.77.0.50 | EFI x86-64 52-54-00-12-34-56/ipxe-amd64.efi",
		"offer_binary 52:54:00:12:34:56 invalid IP | EFI x86-64 52-54-00-12-34-56/ipxe-amd64.efi",
		"offer_binary 52:54:00:12:34:56 invalid IP | EFI x86-64 52-54-00-12-34-56/ipxe-amd64.efi",
	}, stageLines(st)); diff != "" {
		t.Errorf("stages (-want +got):\n%s", diff)
	}
	if n := testutil.ToFloat64(srv.m.dropped.WithLabelValues(dropNotPXE)); n != 2 {
		t.Errorf("not_pxe drops: %v, want 2", n)
	}
}

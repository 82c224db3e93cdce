package dhcpd

import (
	"bytes"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/iana"

	"github.com/threefoldtech/bootstrapd/ipxe"
)

// Addresses of the capture LAN (testdata/capture.sh): dnsmasq leases on 10.99.0.1, dhcpd on
// 10.99.0.2 (interface vp0), the VM got 10.99.0.111.
var (
	capServer = netip.MustParseAddr("10.99.0.2")
	capClient = netip.MustParseAddr("10.99.0.111")
	capMAC    = "52:54:00:12:34:56"
	// capFile is the boot file an EFI x64 client with capMAC is handed: <mac>/<binary>.
	capFile = "52-54-00-12-34-56/" + ipxe.FileEFIx64
	bcast68 = netip.MustParseAddrPort("255.255.255.255:68")
)

// testCatalogue is a real *ipxe.Catalogue over placeholder files.
func testCatalogue(t testing.TB) *ipxe.Catalogue {
	t.Helper()
	dir := t.TempDir()
	for _, f := range []string{ipxe.FileBIOS, ipxe.FileEFIx64, ipxe.FileEFIArm64, ipxe.FileSNPOnly, ipxe.FileLKRN} {
		if err := os.WriteFile(filepath.Join(dir, f), []byte("placeholder "+f), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	c, err := ipxe.OpenCatalogue(dir)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func testPolicy(t testing.TB) policy {
	return policy{HTTPPort: 80, ServerPort: 67, Files: testCatalogue(t)}
}

// capArrival is how the capture LAN's packets reached dhcpd.
func capArrival(r role, d datagram) arrival {
	return arrival{
		Role: r, Src: d.Src, Dst: d.Dst.Addr(), IfIndex: 2, Iface: "vp0", Served: true,
		Addrs: []netip.Prefix{netip.MustParsePrefix("10.99.0.2/24")},
	}
}

// fromCapture returns the nth datagram in file sent to dstPort carrying DHCP message type typ.
func fromCapture(t testing.TB, file string, dstPort uint16, typ dhcpv4.MessageType, nth int) datagram {
	t.Helper()
	for _, d := range readPcap(t, file) {
		if d.Dst.Port() != dstPort {
			continue
		}
		p, err := dhcpv4.FromBytes(d.Data)
		if err != nil || p.MessageType() != typ {
			continue
		}
		if nth == 0 {
			return d
		}
		nth--
	}
	t.Fatalf("%s: no %s #%d to port %d", file, typ, nth, dstPort)
	return datagram{}
}

// ourReply returns the nth reply dhcpd (10.99.0.2) sent in a capture.
func ourReply(t testing.TB, file string, srcPort uint16, nth int) datagram {
	t.Helper()
	for _, d := range readPcap(t, file) {
		if d.Src.Addr() != capServer || d.Src.Port() != srcPort {
			continue
		}
		if nth == 0 {
			return d
		}
		nth--
	}
	t.Fatalf("%s: no reply #%d from %s:%d", file, nth, capServer, srcPort)
	return datagram{}
}

// craft builds a request with the library, as a firmware would send it.
func craft(t testing.TB, typ dhcpv4.MessageType, mods ...dhcpv4.Modifier) []byte {
	t.Helper()
	mac, _ := net.ParseMAC("52:54:00:ab:cd:ef")
	base := []dhcpv4.Modifier{
		dhcpv4.WithTransactionID(dhcpv4.TransactionID{1, 2, 3, 4}),
		dhcpv4.WithMessageType(typ),
	}
	p, err := dhcpv4.NewDiscovery(mac, append(base, mods...)...)
	if err != nil {
		t.Fatal(err)
	}
	return p.ToBytes()
}

func vendorClass(s string) dhcpv4.Modifier { return dhcpv4.WithOption(dhcpv4.OptClassIdentifier(s)) }

func arch(a iana.Arch) dhcpv4.Modifier {
	return dhcpv4.WithGeneric(dhcpv4.OptionClientSystemArchitectureType, []byte{byte(a >> 8), byte(a)})
}

func userClass(s string) dhcpv4.Modifier {
	return dhcpv4.WithGeneric(dhcpv4.OptionUserClassInformation, []byte(s))
}

func opt175(b ...byte) dhcpv4.Modifier { return dhcpv4.WithGeneric(dhcpv4.OptionEtherboot, b) }

// Option 175 as the 2025 iPXE sends it and as the 2019 ROM (no HTTPS) does.
var (
	newIPXE175 = []byte{0xb1, 5, 1, 0x80, 0x86, 0x10, 0x0e, 0x13, 1, 1, 0x14, 1, 1, 0x15, 1, 1, 0x18, 1, 1}
	oldIPXE175 = []byte{0x13, 1, 1, 0x15, 1, 1, 0x18, 1, 1}
)

// patch applies byte edits to a copy of b: a relay's giaddr and hop count, a cut, garbage.
func patch(b []byte, f func([]byte) []byte) []byte { return f(bytes.Clone(b)) }

func withGiaddr(ip string) func([]byte) []byte {
	return func(b []byte) []byte {
		b[3] = 1 // hops
		copy(b[24:28], netip.MustParseAddr(ip).AsSlice())
		return b
	}
}

// summary is what the table compares: the parts of a decision a client depends on.
type summary struct {
	Drop      string
	Kind      string
	Type      string
	To        string
	Broadcast bool
	Siaddr    string
	ServerID  string
	Vendor    string
	File      string
	Opt67     string
	Opt43     []byte
	Ciaddr    string
	Giaddr    string
}

func summarize(d decision) summary {
	if d.Reply == nil {
		return summary{Drop: d.Drop}
	}
	r := d.Reply
	return summary{
		Kind: d.Kind, Type: r.MessageType().String(), To: d.To.String(), Broadcast: d.Broadcast,
		Siaddr: r.ServerIPAddr.String(), ServerID: r.ServerIdentifier().String(),
		Vendor: r.ClassIdentifier(), File: r.BootFileName, Opt67: r.BootFileNameOption(),
		Opt43:  r.Options.Get(dhcpv4.OptionVendorSpecificInformation),
		Ciaddr: r.ClientIPAddr.String(), Giaddr: r.GatewayIPAddr.String(),
	}
}

// withMAC is want with the boot file as decide hands it out: "<mac>/<binary>" for the
// request's client, so that the transfer that follows names its node. The tables name the
// bare binary.
func withMAC(t *testing.T, req []byte, want summary) summary {
	t.Helper()
	if want.Kind != kindBinary && want.Kind != kindHTTPBoot {
		return want
	}
	m, err := dhcpv4.FromBytes(req)
	if err != nil || len(m.ClientHWAddr) != 6 {
		return want
	}
	prefix := strings.ReplaceAll(m.ClientHWAddr.String(), ":", "-") + "/"
	add := func(f string) string {
		if i := strings.LastIndex(f, "/boot/"); i >= 0 {
			return f[:i+len("/boot/")] + prefix + f[i+len("/boot/"):]
		}
		return prefix + f
	}
	want.File, want.Opt67 = add(want.File), add(want.Opt67)
	return want
}

// offer is the summary of a port-67 proxy offer broadcast on the capture LAN.
func offer(kind, file string) summary {
	s := summary{
		Kind: kind, Type: "OFFER", To: bcast68.String(), Broadcast: true, Siaddr: "10.99.0.2",
		ServerID: "10.99.0.2", Vendor: "PXEClient", File: file, Opt67: file,
		Opt43: []byte{6, 1, 8, 255}, Ciaddr: "0.0.0.0", Giaddr: "0.0.0.0",
	}
	if kind == kindHTTPBoot {
		s.Vendor, s.Opt43 = "HTTPClient", nil
	}
	return s
}

// snponlyFor makes the policy hand snponly.efi to mac's x86_64 UEFI firmware, and say
// "ipxe" for every other MAC.
func snponlyFor(mac string) func(*policy) {
	return func(p *policy) {
		p.EFIChoice = func(m string) string {
			if m == mac {
				return ipxe.EFIBinarySNPOnly
			}
			return ipxe.EFIBinaryIPXE
		}
	}
}

func TestDecide(t *testing.T) {
	pol := testPolicy(t)
	ovmfDiscover := fromCapture(t, "ovmf.pcap", 67, dhcpv4.MessageTypeDiscover, 0)
	ovmfRequest := fromCapture(t, "ovmf.pcap", 67, dhcpv4.MessageTypeRequest, 0)
	ipxeEFIDiscover := fromCapture(t, "ovmf.pcap", 67, dhcpv4.MessageTypeDiscover, 1)
	oldROMDiscover := fromCapture(t, "seabios.pcap", 67, dhcpv4.MessageTypeDiscover, 0)
	undionlyDiscover := fromCapture(t, "seabios.pcap", 67, dhcpv4.MessageTypeDiscover, 1)
	ovmf4011 := fromCapture(t, "ovmf-4011.pcap", 4011, dhcpv4.MessageTypeRequest, 0)
	ipxe4011 := fromCapture(t, "ovmf-4011.pcap", 4011, dhcpv4.MessageTypeRequest, 1)
	ourOffer := ourReply(t, "ovmf.pcap", 67, 0)
	httpBoot := withVendor(t, "httpboot.pcap", "HTTPClient")
	aavmfDiscover := fromCapture(t, "aavmf.pcap", 67, dhcpv4.MessageTypeDiscover, 0)
	aavmfRequest := fromCapture(t, "aavmf.pcap", 67, dhcpv4.MessageTypeRequest, 0)
	ipxeArm64Discover := fromCapture(t, "aavmf.pcap", 67, dhcpv4.MessageTypeDiscover, 1)
	provision := "http://10.99.0.2/provision/" + capMAC
	lan := func(r role, d datagram) arrival { return capArrival(r, d) }
	bcastIn := arrival{
		Role: roleDHCP, Src: netip.MustParseAddrPort("0.0.0.0:68"), Dst: netip.MustParseAddr("255.255.255.255"),
		IfIndex: 2, Iface: "vp0", Served: true, Addrs: []netip.Prefix{netip.MustParsePrefix("10.99.0.2/24")},
	}
	with := func(a arrival, f func(*arrival)) arrival { f(&a); return a }

	tests := []struct {
		name string
		in   []byte
		at   arrival
		pol  func(*policy)
		want summary
	}{
		// Real firmware, captured by testdata/capture.sh.
		{name: "OVMF UEFI x64 PXE discover", in: ovmfDiscover.Data, at: lan(roleDHCP, ovmfDiscover),
			want: offer(kindBinary, ipxe.FileEFIx64)},
		{name: "OVMF request on port 67 belongs to the real DHCP server", in: ovmfRequest.Data,
			at: lan(roleDHCP, ovmfRequest), want: summary{Drop: dropWrongType}},
		{name: "OVMF request on 4011 gets a unicast ACK", in: ovmf4011.Data, at: lan(rolePXE, ovmf4011),
			want: summary{Kind: kindBinary, Type: "ACK", To: netip.AddrPortFrom(capClient, 4011).String(),
				Siaddr: "10.99.0.2", ServerID: "10.99.0.2", Vendor: "PXEClient", File: ipxe.FileEFIx64,
				Opt67: ipxe.FileEFIx64, Ciaddr: "10.99.0.111", Giaddr: "0.0.0.0"}},
		{name: "2025 iPXE EFI x64 gets its provisioning script", in: ipxeEFIDiscover.Data,
			at: lan(roleDHCP, ipxeEFIDiscover), want: offer(kindIPXEScript, provision)},
		{name: "iPXE proxy request on 4011 from port 68", in: ipxe4011.Data, at: lan(rolePXE, ipxe4011),
			want: summary{Kind: kindIPXEScript, Type: "ACK", To: netip.AddrPortFrom(capClient, 68).String(),
				Siaddr: "10.99.0.2", ServerID: "10.99.0.2", Vendor: "PXEClient", File: provision,
				Opt67: provision, Ciaddr: "10.99.0.111", Giaddr: "0.0.0.0"}},
		{name: "2019 iPXE ROM without HTTPS gets the BIOS binary", in: oldROMDiscover.Data,
			at: lan(roleDHCP, oldROMDiscover), want: offer(kindBinary, ipxe.FileBIOS)},
		{name: "2025 iPXE from undionly.kpxe gets its script", in: undionlyDiscover.Data,
			at: lan(roleDHCP, undionlyDiscover), want: offer(kindIPXEScript, provision)},
		{name: "relayed OVMF discover is answered to the relay", at: with(bcastIn, func(a *arrival) {
			a.Src, a.Dst = netip.MustParseAddrPort("10.50.0.1:67"), capServer
		}), in: patch(ovmfDiscover.Data, withGiaddr("10.50.0.1")),
			want: func() summary {
				s := offer(kindBinary, ipxe.FileEFIx64)
				s.To, s.Broadcast, s.Giaddr = netip.MustParseAddrPort("10.50.0.1:67").String(), false, "10.50.0.1"
				return s
			}()},
		{name: "AAVMF UEFI arm64 PXE discover", in: aavmfDiscover.Data, at: lan(roleDHCP, aavmfDiscover),
			want: offer(kindBinary, ipxe.FileEFIArm64)},
		{name: "AAVMF request on port 67 belongs to the real DHCP server", in: aavmfRequest.Data,
			at: lan(roleDHCP, aavmfRequest), want: summary{Drop: dropWrongType}},
		{name: "2025 iPXE EFI arm64 gets its provisioning script", in: ipxeArm64Discover.Data,
			at: lan(roleDHCP, ipxeArm64Discover), want: offer(kindIPXEScript, provision)},
		{name: "OVMF UEFI HTTP Boot x64", in: httpBoot.Data, at: lan(roleDHCP, httpBoot),
			want: offer(kindHTTPBoot, "http://10.99.0.2/boot/"+ipxe.FileEFIx64)},
		{name: "our own offer is not a request", in: ourOffer.Data, at: bcastIn,
			want: summary{Drop: dropNotRequest}},

		// snponly.efi for x86_64 UEFI firmware, per MAC (a node record or dhcp.efi_binary).
		{name: "OVMF node set to snponly", in: ovmfDiscover.Data, at: lan(roleDHCP, ovmfDiscover),
			pol: snponlyFor(capMAC), want: offer(kindBinary, ipxe.FileSNPOnly)},
		{name: "another node set to snponly", in: ovmfDiscover.Data, at: lan(roleDHCP, ovmfDiscover),
			pol: snponlyFor("52:54:00:00:00:99"), want: offer(kindBinary, ipxe.FileEFIx64)},
		{name: "snponly over UEFI HTTP Boot", in: httpBoot.Data, at: lan(roleDHCP, httpBoot),
			pol: snponlyFor(capMAC), want: offer(kindHTTPBoot, "http://10.99.0.2/boot/"+ipxe.FileSNPOnly)},
		{name: "snponly leaves iPXE its script", in: ipxeEFIDiscover.Data, at: lan(roleDHCP, ipxeEFIDiscover),
			pol: snponlyFor(capMAC), want: offer(kindIPXEScript, provision)},
		{name: "snponly leaves BIOS alone", in: oldROMDiscover.Data, at: lan(roleDHCP, oldROMDiscover),
			pol: snponlyFor(capMAC), want: offer(kindBinary, ipxe.FileBIOS)},
		{name: "snponly leaves arm64 alone", at: bcastIn, pol: snponlyFor("52:54:00:ab:cd:ef"),
			in:   craft(t, dhcpv4.MessageTypeDiscover, vendorClass("PXEClient:Arch:00011:UNDI:003000"), arch(iana.EFI_ARM64)),
			want: offer(kindBinary, ipxe.FileEFIArm64)},
		{name: "EFI BC (9) node set to snponly", at: bcastIn, pol: snponlyFor("52:54:00:ab:cd:ef"),
			in:   craft(t, dhcpv4.MessageTypeDiscover, vendorClass("PXEClient:Arch:00009:UNDI:003016"), arch(iana.EFI_BC)),
			want: offer(kindBinary, ipxe.FileSNPOnly)},

		// Architectures and clients we have no firmware for here, built with the library.
		{name: "EFI BC (9) gets the x64 binary", at: bcastIn,
			in:   craft(t, dhcpv4.MessageTypeDiscover, vendorClass("PXEClient:Arch:00009:UNDI:003016"), arch(iana.EFI_BC)),
			want: offer(kindBinary, ipxe.FileEFIx64)},
		{name: "EFI arm64 PXE", at: bcastIn,
			in:   craft(t, dhcpv4.MessageTypeDiscover, vendorClass("PXEClient:Arch:00011:UNDI:003000"), arch(iana.EFI_ARM64)),
			want: offer(kindBinary, ipxe.FileEFIArm64)},
		{name: "BIOS PXE without option 93 uses Arch in option 60", at: bcastIn,
			in:   craft(t, dhcpv4.MessageTypeDiscover, vendorClass("PXEClient:Arch:00000:UNDI:002001")),
			want: offer(kindBinary, ipxe.FileBIOS)},
		{name: "UEFI HTTP Boot arm64", at: bcastIn,
			in:   craft(t, dhcpv4.MessageTypeDiscover, vendorClass("HTTPClient:Arch:00019:UNDI:003000"), arch(iana.EFI_ARM64_HTTP)),
			want: offer(kindHTTPBoot, "http://10.99.0.2/boot/"+ipxe.FileEFIArm64)},
		{name: "HTTP Boot URL uses the HTTP port", at: bcastIn, pol: func(p *policy) { p.HTTPPort = 8080 },
			in:   craft(t, dhcpv4.MessageTypeDiscover, vendorClass("HTTPClient:Arch:00016:UNDI:003000"), arch(iana.EFI_X86_64_HTTP)),
			want: offer(kindHTTPBoot, "http://10.99.0.2:8080/boot/"+ipxe.FileEFIx64)},
		{name: "iPXE URL uses the public URL", at: bcastIn,
			pol: func(p *policy) { p.PublicURL = "https://boot.example.net/farm" },
			in: craft(t, dhcpv4.MessageTypeDiscover, vendorClass("PXEClient"), arch(iana.EFI_X86_64),
				userClass("iPXE"), opt175(newIPXE175...)),
			want: offer(kindIPXEScript, "https://boot.example.net/farm/provision/52:54:00:ab:cd:ef")},
		{name: "iPXE with HTTP but no HTTPS is treated as plain PXE", at: bcastIn,
			in: craft(t, dhcpv4.MessageTypeDiscover, vendorClass("PXEClient:Arch:00007:UNDI:003010"),
				arch(iana.EFI_X86_64), userClass("iPXE"), opt175(oldIPXE175...)),
			want: offer(kindBinary, ipxe.FileEFIx64)},
		{name: "iPXE without option 175 is treated as plain PXE", at: bcastIn,
			in:   craft(t, dhcpv4.MessageTypeDiscover, vendorClass("PXEClient:Arch:00000:UNDI:002001"), arch(iana.INTEL_X86PC), userClass("iPXE")),
			want: offer(kindBinary, ipxe.FileBIOS)},
		{name: "option 175 with features but no iPXE user class", at: bcastIn,
			in:   craft(t, dhcpv4.MessageTypeDiscover, vendorClass("PXEClient:Arch:00000:UNDI:002001"), arch(iana.INTEL_X86PC), opt175(newIPXE175...)),
			want: offer(kindBinary, ipxe.FileBIOS)},
		{name: "iPXE in RFC 3004 user class form", at: bcastIn,
			in: craft(t, dhcpv4.MessageTypeDiscover, vendorClass("PXEClient"), arch(iana.INTEL_X86PC),
				dhcpv4.WithUserClass("iPXE", true), opt175(newIPXE175...)),
			want: offer(kindIPXEScript, "http://10.99.0.2/provision/52:54:00:ab:cd:ef")},
		{name: "4011 request with a boot item gets it echoed", at: with(bcastIn, func(a *arrival) {
			a.Role, a.Src, a.Dst = rolePXE, netip.MustParseAddrPort("10.99.0.50:4011"), capServer
		}), in: craft(t, dhcpv4.MessageTypeRequest, vendorClass("PXEClient:Arch:00007:UNDI:003000"), arch(iana.EFI_X86_64),
			dhcpv4.WithClientIP(net.IPv4(10, 99, 0, 50)), dhcpv4.WithBroadcast(false),
			dhcpv4.WithGeneric(dhcpv4.OptionVendorSpecificInformation, []byte{71, 4, 0x80, 0x00, 0x00, 0x00, 255})),
			want: summary{Kind: kindBinary, Type: "ACK", To: netip.MustParseAddrPort("10.99.0.50:4011").String(),
				Siaddr: "10.99.0.2", ServerID: "10.99.0.2", Vendor: "PXEClient", File: ipxe.FileEFIx64,
				Opt67: ipxe.FileEFIx64, Opt43: []byte{71, 4, 0x80, 0, 0, 0, 255}, Ciaddr: "10.99.0.50", Giaddr: "0.0.0.0"}},
		{name: "4011 request from 0.0.0.0 is broadcast back", at: with(bcastIn, func(a *arrival) {
			a.Role, a.Src = rolePXE, netip.MustParseAddrPort("0.0.0.0:4011")
		}), in: craft(t, dhcpv4.MessageTypeRequest, vendorClass("PXEClient:Arch:00007:UNDI:003000"), arch(iana.EFI_X86_64)),
			want: summary{Kind: kindBinary, Type: "ACK", To: netip.MustParseAddrPort("255.255.255.255:4011").String(), Broadcast: true,
				Siaddr: "10.99.0.2", ServerID: "10.99.0.2", Vendor: "PXEClient", File: ipxe.FileEFIx64,
				Opt67: ipxe.FileEFIx64, Ciaddr: "0.0.0.0", Giaddr: "0.0.0.0"}},
		{name: "server address follows the relay's subnet", at: with(bcastIn, func(a *arrival) {
			a.Src, a.Dst = netip.MustParseAddrPort("10.60.0.1:67"), netip.MustParseAddr("255.255.255.255")
			a.Addrs = []netip.Prefix{netip.MustParsePrefix("192.168.7.2/24"), netip.MustParsePrefix("10.60.0.2/16")}
		}), in: patch(ovmfDiscover.Data, withGiaddr("10.60.0.1")),
			want: summary{Kind: kindBinary, Type: "OFFER", To: netip.MustParseAddrPort("10.60.0.1:67").String(),
				Siaddr: "10.60.0.2", ServerID: "10.60.0.2", Vendor: "PXEClient", File: ipxe.FileEFIx64,
				Opt67: ipxe.FileEFIx64, Opt43: []byte{6, 1, 8, 255}, Ciaddr: "0.0.0.0", Giaddr: "10.60.0.1"}},

		// Requests we stay silent for.
		{name: "ordinary DHCP client", at: bcastIn, in: craft(t, dhcpv4.MessageTypeDiscover),
			want: summary{Drop: dropNotPXE}},
		{name: "vendor class that only contains PXEClient", at: bcastIn,
			in: craft(t, dhcpv4.MessageTypeDiscover, vendorClass("MSFT 5.0 PXEClient")), want: summary{Drop: dropNotPXE}},
		{name: "discover on 4011", at: with(bcastIn, func(a *arrival) { a.Role = rolePXE }), in: ovmfDiscover.Data,
			want: summary{Drop: dropWrongType}},
		{name: "inform on 67", at: bcastIn, in: craft(t, dhcpv4.MessageTypeInform, vendorClass("PXEClient:Arch:00007:UNDI:003000")),
			want: summary{Drop: dropWrongType}},
		{name: "PXE client with no architecture anywhere", at: bcastIn,
			in: craft(t, dhcpv4.MessageTypeDiscover, vendorClass("PXEClient")), want: summary{Drop: dropNoArch}},
		{name: "architecture without a binary (Itanium)", at: bcastIn,
			in:   craft(t, dhcpv4.MessageTypeDiscover, vendorClass("PXEClient:Arch:00002:UNDI:003000"), arch(iana.EFI_ITANIUM)),
			want: summary{Drop: dropNoBinary}},
		{name: "no catalogue", at: bcastIn, pol: func(p *policy) { p.Files = nil }, in: ovmfDiscover.Data,
			want: summary{Drop: dropNoBinary}},
		{name: "interface we do not serve", at: with(bcastIn, func(a *arrival) { a.Served = false }), in: ovmfDiscover.Data,
			want: summary{Drop: dropOtherInterface}},
		{name: "interface without IPv4", at: with(bcastIn, func(a *arrival) { a.Addrs = nil }), in: ovmfDiscover.Data,
			want: summary{Drop: dropNoAddress}},
		{name: "chaddr longer than Ethernet", at: bcastIn,
			in: patch(ovmfDiscover.Data, func(b []byte) []byte { b[2] = 16; return b }), want: summary{Drop: dropBadHWAddr}},

		// Garbage, truncation and size.
		{name: "empty datagram", at: bcastIn, in: []byte{}, want: summary{Drop: dropTruncated}},
		{name: "short random bytes", at: bcastIn, in: []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), want: summary{Drop: dropTruncated}},
		{name: "header cut short", at: bcastIn, in: ovmfDiscover.Data[:100], want: summary{Drop: dropTruncated}},
		{name: "header without magic cookie", at: bcastIn, in: ovmfDiscover.Data[:238], want: summary{Drop: dropTruncated}},
		{name: "wrong magic cookie", at: bcastIn,
			in: patch(ovmfDiscover.Data, func(b []byte) []byte { b[236] = 0; return b }), want: summary{Drop: dropMalformed}},
		{name: "long random bytes", at: bcastIn, in: bytes.Repeat([]byte{0xa5, 0x17, 0xff}, 200), want: summary{Drop: dropMalformed}},
		{name: "options cut inside an option", at: bcastIn,
			in: patch(ovmfDiscover.Data, func(b []byte) []byte { return b[:241+4] }), want: summary{Drop: dropTruncated}},
		{name: "option length past the end", at: bcastIn,
			in: append(bytes.Clone(ovmfDiscover.Data[:240]), 53, 1, 1, 60, 200, 'P', 'X', 'E'), want: summary{Drop: dropTruncated}},
		{name: "option code as the last byte", at: bcastIn,
			in: append(bytes.Clone(ovmfDiscover.Data[:240]), 53, 1, 1, 60), want: summary{Drop: dropTruncated}},
		{name: "options without end option", at: bcastIn,
			in:   append(bytes.Clone(ovmfDiscover.Data[:240]), 53, 1, 1, 60, 9, 'P', 'X', 'E', 'C', 'l', 'i', 'e', 'n', 't'),
			want: summary{Drop: dropTruncated}},
		{name: "header without options decodes", at: bcastIn, in: ovmfDiscover.Data[:240], want: summary{Drop: dropNotPXE}},
		{name: "only pad after the cookie", at: bcastIn,
			in: append(bytes.Clone(ovmfDiscover.Data[:240]), make([]byte, 300)...), want: summary{Drop: dropTruncated}},
		{name: "discover padded to the size limit is answered", at: bcastIn,
			in:   append(bytes.Clone(ovmfDiscover.Data), make([]byte, maxRequestLen-len(ovmfDiscover.Data))...),
			want: offer(kindBinary, ipxe.FileEFIx64)},
		{name: "discover padded past the size limit", at: bcastIn,
			in: append(bytes.Clone(ovmfDiscover.Data), make([]byte, maxRequestLen+1-len(ovmfDiscover.Data))...), want: summary{Drop: dropOversized}},
		{name: "discover inside a 64 KiB datagram", at: bcastIn,
			in: append(bytes.Clone(ovmfDiscover.Data), make([]byte, 65507-len(ovmfDiscover.Data))...), want: summary{Drop: dropOversized}},
		{name: "option overload is not followed into file and sname", at: bcastIn,
			in: patch(ovmfDiscover.Data, func(b []byte) []byte {
				// sname and file full of "option 52: overload both", as a looping parser would
				// read them, and option 52 itself in front.
				for i := 44; i+3 <= 236; i += 3 {
					copy(b[i:], []byte{52, 1, 3})
				}
				return append(append(bytes.Clone(b[:240]), 52, 1, 3), b[240:]...)
			}),
			want: offer(kindBinary, ipxe.FileEFIx64)},
		{name: "vendor class split over many options (RFC 3396)", at: bcastIn,
			in: append(append(bytes.Clone(ovmfDiscover.Data[:240]), 53, 1, 1, 93, 2, 0, 7,
				60, 9, 'P', 'X', 'E', 'C', 'l', 'i', 'e', 'n', 't'), append(bytes.Repeat(append([]byte{60, 255}, bytes.Repeat([]byte{'x'}, 255)...), 4), 255)...),
			want: offer(kindBinary, ipxe.FileEFIx64)},
		{name: "option 93 one byte long falls back to option 60", at: bcastIn,
			in: append(bytes.Clone(ovmfDiscover.Data[:240]), 53, 1, 1, 93, 1, 7,
				60, 32, 'P', 'X', 'E', 'C', 'l', 'i', 'e', 'n', 't', ':', 'A', 'r', 'c', 'h', ':', '0', '0', '0', '0', '7', ':',
				'U', 'N', 'D', 'I', ':', '0', '0', '3', '0', '0', '0', 255),
			want: offer(kindBinary, ipxe.FileEFIx64)},
		{name: "option 93 of odd length falls back to option 60", at: bcastIn,
			in: append(bytes.Clone(ovmfDiscover.Data[:240]), 53, 1, 1, 93, 3, 0, 0, 0,
				60, 32, 'P', 'X', 'E', 'C', 'l', 'i', 'e', 'n', 't', ':', 'A', 'r', 'c', 'h', ':', '0', '0', '0', '0', '7', ':',
				'U', 'N', 'D', 'I', ':', '0', '0', '3', '0', '0', '0', 255),
			want: offer(kindBinary, ipxe.FileEFIx64)},
		{name: "option 93 listing two architectures uses the first", at: bcastIn,
			in: append(bytes.Clone(ovmfDiscover.Data[:240]), 53, 1, 1, 93, 4, 0, 11, 0, 7,
				60, 9, 'P', 'X', 'E', 'C', 'l', 'i', 'e', 'n', 't', 255),
			want: offer(kindBinary, ipxe.FileEFIArm64)},
		{name: "non-numeric Arch in option 60", at: bcastIn,
			in: craft(t, dhcpv4.MessageTypeDiscover, vendorClass("PXEClient:Arch:0x007:UNDI:003000")), want: summary{Drop: dropNoArch}},
		{name: "truncated option 175 TLV keeps what came before", at: bcastIn,
			in: craft(t, dhcpv4.MessageTypeDiscover, vendorClass("PXEClient"), arch(iana.EFI_X86_64),
				userClass("iPXE"), opt175(0x13, 1, 1, 0x14, 5, 1)),
			want: offer(kindBinary, ipxe.FileEFIx64)},
		{name: "option 175 cut after the HTTPS feature code is no HTTPS", at: bcastIn,
			in: craft(t, dhcpv4.MessageTypeDiscover, vendorClass("PXEClient"), arch(iana.EFI_X86_64),
				userClass("iPXE"), opt175(0x13, 1, 1, 0x14)),
			want: offer(kindBinary, ipxe.FileEFIx64)},
		{name: "option 175 with pad between features", at: bcastIn,
			in: craft(t, dhcpv4.MessageTypeDiscover, vendorClass("PXEClient"), arch(iana.EFI_X86_64),
				userClass("iPXE"), opt175(0, 0x13, 1, 1, 0, 0, 0x14, 1, 1, 255, 0x99)),
			want: offer(kindIPXEScript, "http://10.99.0.2/provision/52:54:00:ab:cd:ef")},
		{name: "4011 boot item after other sub-options and pad is echoed", at: with(bcastIn, func(a *arrival) {
			a.Role, a.Src, a.Dst = rolePXE, netip.MustParseAddrPort("10.99.0.50:4011"), capServer
		}), in: craft(t, dhcpv4.MessageTypeRequest, vendorClass("PXEClient:Arch:00007:UNDI:003000"), arch(iana.EFI_X86_64),
			dhcpv4.WithClientIP(net.IPv4(10, 99, 0, 50)), dhcpv4.WithBroadcast(false),
			dhcpv4.WithGeneric(dhcpv4.OptionVendorSpecificInformation, []byte{6, 1, 8, 0, 0, 71, 4, 0x80, 0x01, 0x00, 0x00, 255})),
			want: summary{Kind: kindBinary, Type: "ACK", To: netip.MustParseAddrPort("10.99.0.50:4011").String(),
				Siaddr: "10.99.0.2", ServerID: "10.99.0.2", Vendor: "PXEClient", File: ipxe.FileEFIx64,
				Opt67: ipxe.FileEFIx64, Opt43: []byte{71, 4, 0x80, 0x01, 0, 0, 255}, Ciaddr: "10.99.0.50", Giaddr: "0.0.0.0"}},
		{name: "4011 boot item of the wrong length is not echoed", at: with(bcastIn, func(a *arrival) {
			a.Role, a.Src, a.Dst = rolePXE, netip.MustParseAddrPort("10.99.0.50:4011"), capServer
		}), in: craft(t, dhcpv4.MessageTypeRequest, vendorClass("PXEClient:Arch:00007:UNDI:003000"), arch(iana.EFI_X86_64),
			dhcpv4.WithClientIP(net.IPv4(10, 99, 0, 50)), dhcpv4.WithBroadcast(false),
			dhcpv4.WithGeneric(dhcpv4.OptionVendorSpecificInformation, []byte{71, 3, 0x80, 0x01, 0x00, 255})),
			want: summary{Kind: kindBinary, Type: "ACK", To: netip.MustParseAddrPort("10.99.0.50:4011").String(),
				Siaddr: "10.99.0.2", ServerID: "10.99.0.2", Vendor: "PXEClient", File: ipxe.FileEFIx64,
				Opt67: ipxe.FileEFIx64, Ciaddr: "10.99.0.50", Giaddr: "0.0.0.0"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := pol
			if tt.pol != nil {
				tt.pol(&p)
			}
			d := decide(tt.in, tt.at, p)
			if diff := cmp.Diff(withMAC(t, tt.in, tt.want), summarize(d)); diff != "" {
				t.Errorf("decision (-want +got):\n%s\ndetail: %s", diff, d.Detail)
			}
			if d.Reply != nil {
				if err := checkReply(tt.in, d); err != nil {
					t.Error(err)
				}
				if n := len(d.Reply.ToBytes()); n > 576 {
					t.Errorf("reply of %d bytes: some firmware takes no more than 576", n)
				}
			}
		})
	}
}

// TestDecideMatchesCapturedReplies holds decide to the exact bytes that real firmware accepted
// and booted from in the captures (dhcpd sent them during capture.sh).
func TestDecideMatchesCapturedReplies(t *testing.T) {
	pol := testPolicy(t)
	tests := []struct {
		file    string
		r       role
		port    uint16
		typ     dhcpv4.MessageType
		nth     int
		replyOn uint16
	}{
		{"ovmf.pcap", roleDHCP, 67, dhcpv4.MessageTypeDiscover, 0, 67},
		{"ovmf.pcap", roleDHCP, 67, dhcpv4.MessageTypeDiscover, 1, 67},
		{"seabios.pcap", roleDHCP, 67, dhcpv4.MessageTypeDiscover, 0, 67},
		{"seabios.pcap", roleDHCP, 67, dhcpv4.MessageTypeDiscover, 1, 67},
		{"ovmf-no43.pcap", rolePXE, 4011, dhcpv4.MessageTypeRequest, 0, 4011},
		{"httpboot.pcap", roleDHCP, 67, dhcpv4.MessageTypeDiscover, -1, 67},
		{"aavmf.pcap", roleDHCP, 67, dhcpv4.MessageTypeDiscover, 0, 67},
		{"aavmf.pcap", roleDHCP, 67, dhcpv4.MessageTypeDiscover, 1, 67},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s/%s#%d", tt.file, tt.typ, tt.nth), func(t *testing.T) {
			var req, want datagram
			if tt.nth < 0 { // HTTP Boot: the PXE DISCOVERs before it went unanswered
				req, want = withVendor(t, tt.file, vendorHTTP), ourReply(t, tt.file, tt.replyOn, 0)
			} else {
				req, want = fromCapture(t, tt.file, tt.port, tt.typ, tt.nth), ourReply(t, tt.file, tt.replyOn, tt.nth)
			}
			d := decide(req.Data, capArrival(tt.r, req), pol)
			if d.Reply == nil {
				t.Fatalf("no reply: %s %s", d.Drop, d.Detail)
			}
			// Most captures predate the <mac>/ prefix of the boot file (aavmf.pcap has it):
			// every other byte of the reply must be what the firmware accepted.
			wantMsg, err := dhcpv4.FromBytes(want.Data)
			if err != nil {
				t.Fatal(err)
			}
			file := wantMsg.BootFileName
			if !strings.Contains(file, strings.ReplaceAll(wantMsg.ClientHWAddr.String(), ":", "-")+"/") {
				file = withMAC(t, req.Data, summary{Kind: d.Kind, File: file}).File
			}
			wantMsg.BootFileName = file
			wantMsg.UpdateOption(dhcpv4.OptBootFileName(file))
			if got := d.Reply.ToBytes(); !bytes.Equal(got, wantMsg.ToBytes()) {
				t.Errorf("reply differs from the captured one (with the <mac>/ prefix)\ngot:  %x\nwant: %x", got, wantMsg.ToBytes())
			}
			if d.To != want.Dst {
				t.Errorf("reply to %s, captured reply went to %s", d.To, want.Dst)
			}
		})
	}
}

// checkReply asserts what every proxy reply must be, whatever the request.
func checkReply(reqBytes []byte, d decision) error {
	req, err := dhcpv4.FromBytes(reqBytes)
	if err != nil {
		return fmt.Errorf("reply to an undecodable request: %v", err)
	}
	wire := d.Reply.ToBytes()
	r, err := dhcpv4.FromBytes(wire)
	if err != nil {
		return fmt.Errorf("reply does not decode: %v", err)
	}
	var problems []string
	bad := func(f string, a ...any) { problems = append(problems, fmt.Sprintf(f, a...)) }
	if r.OpCode != dhcpv4.OpcodeBootReply {
		bad("op %s", r.OpCode)
	}
	if !r.YourIPAddr.IsUnspecified() {
		bad("yiaddr %s set: a proxy never leases", r.YourIPAddr)
	}
	if r.ServerIPAddr.IsUnspecified() || !r.ServerIPAddr.Equal(r.ServerIdentifier()) ||
		r.ServerIPAddr.String() != d.Server.String() {
		bad("siaddr %s, option 54 %s, server %s", r.ServerIPAddr, r.ServerIdentifier(), d.Server)
	}
	if r.TransactionID != req.TransactionID || !bytes.Equal(r.ClientHWAddr, req.ClientHWAddr) {
		bad("xid/chaddr not echoed")
	}
	if vc := r.ClassIdentifier(); vc != vendorPXE && vc != vendorHTTP {
		bad("option 60 %q", vc)
	}
	if f := r.BootFileNameOption(); f == "" || f != d.File || (len(f) < 128 && r.BootFileName != f) {
		bad("boot file %q, option 67 %q, decided %q", r.BootFileName, f, d.File)
	}
	if u := req.Options.Get(dhcpv4.OptionClientMachineIdentifier); u != nil &&
		!bytes.Equal(u, r.Options.Get(dhcpv4.OptionClientMachineIdentifier)) {
		bad("option 97 not copied")
	}
	if mt := r.MessageType(); mt != dhcpv4.MessageTypeOffer && mt != dhcpv4.MessageTypeAck {
		bad("message type %s", mt)
	}
	if r.MessageType() == dhcpv4.MessageTypeOffer && r.ClassIdentifier() == vendorPXE &&
		!bytes.Equal(r.Options.Get(dhcpv4.OptionVendorSpecificInformation), []byte{6, 1, 8, 255}) {
		bad("PXE offer without option 43 discovery control 8")
	}
	if r.MessageType() == dhcpv4.MessageTypeOffer && !r.IsBroadcast() {
		bad("offer without the broadcast flag")
	}
	if !d.To.IsValid() || d.To.Port() == 0 {
		bad("destination %s", d.To)
	}
	if len(wire) > 1472 {
		bad("reply of %d bytes does not fit one Ethernet datagram", len(wire))
	}
	if strings.ContainsRune(d.File, 0) {
		bad("NUL in boot file")
	}
	if problems != nil {
		return fmt.Errorf("invalid proxy reply: %s", strings.Join(problems, "; "))
	}
	return nil
}

// withVendor returns the first DISCOVER in file whose option 60 starts with prefix.
func withVendor(t testing.TB, file, prefix string) datagram {
	t.Helper()
	for _, d := range readPcap(t, file) {
		p, err := dhcpv4.FromBytes(d.Data)
		if err == nil && d.Dst.Port() == 67 && p.MessageType() == dhcpv4.MessageTypeDiscover &&
			strings.HasPrefix(p.ClassIdentifier(), prefix) {
			return d
		}
	}
	t.Fatalf("%s: no DISCOVER with vendor class %s", file, prefix)
	return datagram{}
}

// TestDerivedBase: without a public URL the base is built from our interface address, and it
// must pass the same check a configured one does, whatever netip hands us.
func TestDerivedBase(t *testing.T) {
	tests := []struct {
		addr string
		port int
		want string
	}{
		{"10.99.0.2", 80, "http://10.99.0.2"},
		{"10.99.0.2", 0, "http://10.99.0.2"},
		{"10.99.0.2", 8080, "http://10.99.0.2:8080"},
		{"::ffff:10.99.0.2", 8080, "http://10.99.0.2:8080"},
		{"2001:db8::2", 80, "http://[2001:db8::2]"},
		{"fe80::1%eth0", 8080, "http://[fe80::1]:8080"},
		{"fe80::1%25eth0", 80, "http://[fe80::1]"},
	}
	for _, tt := range tests {
		t.Run(tt.addr, func(t *testing.T) {
			got := derivedBase(netip.MustParseAddr(tt.addr), tt.port)
			if got != tt.want {
				t.Errorf("derivedBase(%s, %d) = %q, want %q", tt.addr, tt.port, got, tt.want)
			}
			if v, err := ipxe.ValidateBaseURL(got); err != nil || v != got {
				t.Errorf("ValidateBaseURL(%q) = %q, %v", got, v, err)
			}
		})
	}
}

func TestIsIPXEUserClass(t *testing.T) {
	for _, tc := range []struct {
		opt  string
		want bool
	}{
		{"iPXE", true},                 // what iPXE sends: the bare string
		{"\x04iPXE", true},             // RFC 3004, one entry
		{"\x08gPXE-old\x04iPXE", true}, // RFC 3004, second entry
		{"\x04iPXE\x05", true},         // found before a malformed tail
		{"", false},
		{"ipxe", false},         // case-sensitive, as iPXE sends it
		{"\x04IPXE", false},     //
		{"iPXE\x00", false},     // neither the bare string nor a list ('i' is a length past the end)
		{"\x05iPXE", false},     // a length past the end
		{"\x00\x04iPXE", false}, // an empty entry: malformed, the rest is not read
		{"\x02iP\x02XE", false}, // split across entries
		{"\x08gPXE-old", false}, //
	} {
		if got := isIPXEUserClass([]byte(tc.opt)); got != tc.want {
			t.Errorf("isIPXEUserClass(%q) = %v, want %v", tc.opt, got, tc.want)
		}
	}
}

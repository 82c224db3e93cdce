package dhcpd

import (
	"bytes"
	"net/netip"
	"slices"
	"testing"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/iana"
)

// FuzzDecide feeds arbitrary datagrams to both ports: decide must never panic, must give a
// known reason whenever it stays silent, must call a datagram undecodable exactly when the
// library cannot decode it (or it is too long), and any reply must be a valid proxy reply
// (siaddr and option 54 set, no yiaddr, boot file present, decodable).
func FuzzDecide(f *testing.F) {
	for _, file := range []string{"ovmf.pcap", "seabios.pcap", "ovmf-4011.pcap", "ovmf-no43.pcap", "httpboot.pcap"} {
		for _, d := range readPcap(f, file) {
			if d.Dst.Port() == 67 {
				f.Add(d.Data, uint8(roleDHCP))
			}
			if d.Dst.Port() == 4011 {
				f.Add(d.Data, uint8(rolePXE))
			}
		}
	}
	f.Add(craft(f, dhcpv4.MessageTypeDiscover, vendorClass("HTTPClient:Arch:00019:UNDI:003000"), arch(iana.EFI_ARM64_HTTP)), uint8(roleDHCP))
	f.Add(craft(f, dhcpv4.MessageTypeDiscover, vendorClass("PXEClient"), userClass("iPXE"), opt175(newIPXE175...)), uint8(roleDHCP))
	f.Add(craft(f, dhcpv4.MessageTypeRequest, vendorClass("PXEClient:Arch:00011:UNDI:003000"),
		dhcpv4.WithGeneric(dhcpv4.OptionVendorSpecificInformation, []byte{71, 4, 0, 0, 0, 0, 255})), uint8(rolePXE))
	f.Add([]byte{}, uint8(roleDHCP))
	f.Add([]byte{1, 1, 6, 0}, uint8(rolePXE))
	hdr := craft(f, dhcpv4.MessageTypeDiscover)[:240]
	f.Add(append(bytes.Clone(hdr), 53, 1, 1, 60), uint8(roleDHCP))     // option code as the last byte
	f.Add(append(bytes.Clone(hdr), 0, 0, 0), uint8(roleDHCP))          // pad, no end
	f.Add(append(bytes.Clone(hdr), 60, 200, 'P', 'X'), uint8(rolePXE)) // length past the end

	pol := testPolicy(f)
	f.Fuzz(func(t *testing.T, b []byte, r uint8) {
		in := arrival{
			Role: role(r % 2), Src: netip.MustParseAddrPort("0.0.0.0:68"), Dst: netip.MustParseAddr("255.255.255.255"),
			IfIndex: 2, Iface: "vp0", Served: true,
			Addrs: []netip.Prefix{netip.MustParsePrefix("10.99.0.2/24"), netip.MustParsePrefix("172.16.0.1/12")},
		}
		if in.Role == rolePXE {
			in.Src, in.Dst = netip.MustParseAddrPort("10.99.0.50:4011"), netip.MustParseAddr("10.99.0.2")
		}
		d := decide(b, in, pol)
		// checkFraming must agree with the library: what it lets through decodes, and what
		// the library refuses is one of the undecodable reasons.
		if _, err := dhcpv4.FromBytes(b); (err != nil || len(b) > maxRequestLen) != undecodable(d.Drop) {
			t.Fatalf("FromBytes error %v, %d bytes, but decision %q (%s)", err, len(b), d.Drop, d.Detail)
		}
		if d.Reply == nil {
			if !slices.Contains(dropReasons, d.Drop) {
				t.Fatalf("silent with unknown reason %q", d.Drop)
			}
			return
		}
		if err := checkReply(b, d); err != nil {
			t.Fatal(err)
		}
	})
}

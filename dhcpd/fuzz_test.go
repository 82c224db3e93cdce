package dhcpd

import (
	"net/netip"
	"slices"
	"testing"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/iana"
)

// FuzzDecide feeds arbitrary datagrams to both ports: decide must never panic, must give a
// known reason whenever it stays silent, and any reply must be a valid proxy reply (siaddr and
// option 54 set, no yiaddr, boot file present, decodable).
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

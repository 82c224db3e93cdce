package dhcpd

import (
	"testing"

	"github.com/insomniacslk/dhcp/dhcpv4"
)

// BenchmarkDecide is the pure decision for real captured requests: parse, classify, build
// and serialise the reply.
func BenchmarkDecide(b *testing.B) {
	pol := testPolicy(b)
	for _, bc := range []struct {
		name, file string
		nth        int
	}{
		{"ovmf-discover", "ovmf.pcap", 0},
		{"ipxe-discover", "ovmf.pcap", 1},
	} {
		d := fromCapture(b, bc.file, 67, dhcpv4.MessageTypeDiscover, bc.nth)
		at := capArrival(roleDHCP, d)
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if dec := decide(d.Data, at, pol); dec.Reply == nil {
					b.Fatalf("no reply: %+v", dec.Drop)
				}
			}
		})
	}
}

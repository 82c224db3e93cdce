package dhcpd

import (
	"encoding/binary"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
)

// datagram is one UDP/IPv4 datagram from a capture.
type datagram struct {
	Src, Dst netip.AddrPort
	Data     []byte
}

// readPcap reads the UDP/IPv4 datagrams of a classic libpcap file with Ethernet framing, as
// tcpdump -w writes them (testdata/capture.sh).
func readPcap(t testing.TB, name string) []datagram {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatalf("read capture: %v", err)
	}
	if len(b) < 24 {
		t.Fatalf("%s: too short for a pcap header", name)
	}
	var bo binary.ByteOrder
	switch binary.LittleEndian.Uint32(b) {
	case 0xa1b2c3d4, 0xa1b23c4d:
		bo = binary.LittleEndian
	case 0xd4c3b2a1, 0x4d3cb2a1:
		bo = binary.BigEndian
	default:
		t.Fatalf("%s: not a pcap file", name)
	}
	if lt := bo.Uint32(b[20:]); lt != 1 {
		t.Fatalf("%s: link type %d, want Ethernet", name, lt)
	}
	var out []datagram
	for b = b[24:]; len(b) >= 16; {
		n := int(bo.Uint32(b[8:]))
		if len(b) < 16+n {
			t.Fatalf("%s: truncated record", name)
		}
		frame := b[16 : 16+n]
		b = b[16+n:]
		if d, ok := udpOfFrame(frame); ok {
			out = append(out, d)
		}
	}
	return out
}

func udpOfFrame(f []byte) (datagram, bool) {
	if len(f) < 14 || binary.BigEndian.Uint16(f[12:]) != 0x0800 {
		return datagram{}, false
	}
	ip := f[14:]
	if len(ip) < 20 || ip[0]>>4 != 4 || ip[9] != 17 {
		return datagram{}, false
	}
	ihl := int(ip[0]&0x0f) * 4
	total := int(binary.BigEndian.Uint16(ip[2:]))
	if total > len(ip) || ihl+8 > total {
		return datagram{}, false
	}
	udp := ip[ihl:total]
	src := netip.AddrFrom4([4]byte(ip[12:16]))
	dst := netip.AddrFrom4([4]byte(ip[16:20]))
	return datagram{
		Src:  netip.AddrPortFrom(src, binary.BigEndian.Uint16(udp[0:])),
		Dst:  netip.AddrPortFrom(dst, binary.BigEndian.Uint16(udp[2:])),
		Data: udp[8:],
	}, true
}

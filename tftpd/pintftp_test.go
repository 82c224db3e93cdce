package tftpd

import (
	"net"
	"testing"
)

// Stand-ins for pin/tftp v3.1.0's sender and connConnection, and for what a later version
// might have instead: transferConn and transferMode must find the socket and mode in the
// first, and give up without panicking on the others.
type (
	fakeConnection interface{ close() }
	fakeConnConn   struct{ conn *net.UDPConn }
	fakeSender     struct {
		conn fakeConnection
		mode string
	}
	otherConnConn struct{ conn net.PacketConn }
	renamedSender struct {
		sock fakeConnection
		kind []byte
	}
)

func (*fakeConnConn) close()  {}
func (*otherConnConn) close() {}

func TestPinInternals(t *testing.T) {
	sock, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer sock.Close()
	tests := map[string]struct {
		transfer any
		wantConn *net.UDPConn
		wantMode string
	}{
		"pin/tftp v3.1.0 layout": {transfer: &fakeSender{conn: &fakeConnConn{conn: sock}, mode: "octet"}, wantConn: sock, wantMode: "octet"},
		"transfer already ended": {transfer: &fakeSender{mode: "octet"}, wantMode: "octet"},
		"socket of another type": {transfer: &fakeSender{conn: &otherConnConn{conn: sock}}},
		"nil socket":             {transfer: &fakeSender{conn: &fakeConnConn{}}},
		"renamed fields":         {transfer: &renamedSender{sock: &fakeConnConn{conn: sock}, kind: []byte("octet")}},
		"not a pointer":          {transfer: fakeSender{conn: &fakeConnConn{conn: sock}, mode: "octet"}},
		"nil pointer":            {transfer: (*fakeSender)(nil)},
		"nil":                    {transfer: nil},
		"pointer to non-struct":  {transfer: new(string)},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := transferConn(tc.transfer); got != tc.wantConn {
				t.Errorf("transferConn = %p, want %p", got, tc.wantConn)
			}
			if got := transferMode(tc.transfer); got != tc.wantMode {
				t.Errorf("transferMode = %q, want %q", got, tc.wantMode)
			}
		})
	}
}

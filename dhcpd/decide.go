package dhcpd

import (
	"bytes"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/iana"

	"github.com/threefoldtech/bootstrapd/ipxe"
)

// role says which listener a datagram arrived on; the ports themselves are configurable.
type role int

const (
	roleDHCP role = iota // the DHCP server port, 67
	rolePXE              // the PXE boot-server port, 4011
)

func (r role) String() string {
	if r == rolePXE {
		return "pxe"
	}
	return "dhcp"
}

// Vendor classes (option 60) of the clients we answer, and the one we put in replies.
const (
	vendorPXE  = "PXEClient"
	vendorHTTP = "HTTPClient"
)

// iPXE encapsulated options inside option 175 (iPXE include/ipxe/features.h): each feature the
// build has is a TLV whose code is the feature.
const (
	ipxeFeatureHTTP  = 0x13
	ipxeFeatureHTTPS = 0x14
)

// PXE vendor sub-options inside option 43 (PXE 2.1 spec, EDK2 PxeBcDhcp4.h).
const (
	pxeDiscoveryControl = 6
	pxeBootItem         = 71
	// Discovery control bit 3: boot the file named in this offer, without boot-server
	// discovery or a menu. With it EDK2 classifies our offer as "ProxyPxe10" and uses it
	// directly; without it EDK2 asks again on port 4011.
	pxeUseOfferedFile = 0x08
)

// Reply kinds, used as the replies metric's label values; server.go maps each to its boot
// stage.
const (
	kindBinary     = "binary"
	kindIPXEScript = "ipxe_script"
	kindHTTPBoot   = "httpboot"
)

var replyKinds = []string{kindBinary, kindIPXEScript, kindHTTPBoot}

// Reasons a datagram gets no reply; metric label values. The first three are datagrams that
// are not a whole DHCP message at all; they are checked before anything else is read.
const (
	dropOversized      = "oversized"       // longer than maxRequestLen
	dropTruncated      = "truncated"       // ends inside the header, inside an option, or before option 255
	dropMalformed      = "malformed"       // complete, but not DHCPv4 (no magic cookie) or undecodable
	dropNotRequest     = "not_bootrequest" // op is not BOOTREQUEST (a reply, our own or a server's)
	dropNotPXE         = "not_pxe"         // option 60 is neither PXEClient nor HTTPClient
	dropWrongType      = "wrong_type"      // not a DISCOVER on port 67 / a REQUEST on 4011
	dropBadHWAddr      = "bad_hwaddr"      // chaddr is not a 6-byte Ethernet address
	dropOtherInterface = "other_interface" // arrived on an interface we do not serve
	dropNoAddress      = "no_address"      // the arrival interface has no IPv4 address
	dropNoArch         = "no_arch"         // no usable option 93 and no Arch: in option 60
	dropNoBinary       = "no_binary"       // no iPXE binary for the client's architecture
	dropSendFailed     = "send_failed"     // the reply could not be sent
)

var dropReasons = []string{
	dropOversized, dropTruncated, dropMalformed, dropNotRequest, dropNotPXE, dropWrongType,
	dropBadHWAddr, dropOtherInterface, dropNoAddress, dropNoArch, dropNoBinary, dropSendFailed,
}

// undecodable reports whether a drop reason means the datagram was never parsed.
func undecodable(reason string) bool {
	return reason == dropOversized || reason == dropTruncated || reason == dropMalformed
}

// maxRequestLen bounds the requests we parse. Firmware sends 340 to 412 bytes (testdata
// captures) and one Ethernet frame carries 1472; anything longer is not a boot request, and
// refusing it up front keeps a flood of large datagrams cheap.
const maxRequestLen = 1500

// The fixed BOOTP header (RFC 2131 section 2) is 236 bytes, then comes the magic cookie that
// says options follow in DHCP form (RFC 2131 section 3).
const (
	headerLen   = 240
	magicCookie = "\x63\x82\x53\x63"
)

// maxBootFileLen bounds the boot file we send: option 67 may be split over several options
// (RFC 3396) but a whole reply must fit the 576-byte minimum every client accepts.
const maxBootFileLen = 200

// arrival is what the server knows about where a datagram came from.
type arrival struct {
	Role    role
	Src     netip.AddrPort // sender's address and port
	Dst     netip.Addr     // the packet's destination address (ours, or a broadcast)
	IfIndex int
	Iface   string
	Served  bool           // the interface is one we serve
	Addrs   []netip.Prefix // IPv4 addresses of the arrival interface
}

// policy is the part of the configuration the decision needs.
type policy struct {
	PublicURL  string    // base of every URL we hand out; empty: http://<our address>:<HTTPPort>
	HTTPPort   int       // port of bootstrapd's HTTP server
	ServerPort int       // our DHCP port: relays listen on it; clients on ServerPort+1
	Files      BootFiles // the iPXE binary catalogue
	// EFIChoice picks snponly.efi over ipxe-amd64.efi per MAC (Config.EFIChoice); nil: never.
	EFIChoice func(mac string) string
}

// client is what a request says about the machine that sent it.
type client struct {
	MAC          net.HardwareAddr
	XID          dhcpv4.TransactionID
	Type         dhcpv4.MessageType
	VendorClass  string // option 60 as sent
	Arch         iana.Arch
	HasArch      bool
	IPXE         bool // option 77 is "iPXE"
	IPXEFeatures bool // option 175 advertises HTTP and HTTPS
	IP           netip.Addr
}

// decision is decide's answer: a reply and where to send it, or the reason for silence.
type decision struct {
	Client client
	Reply  *dhcpv4.DHCPv4 // nil: stay silent, see Drop
	Drop   string         // a drop reason when Reply is nil
	Detail string         // extra words for the log
	Kind   string         // reply kind when Reply is set
	File   string         // the boot file handed out
	Server netip.Addr     // our address the reply comes from
	To     netip.AddrPort // reply destination
	// Broadcast replies go out of the arrival interface (IfIndex) because a limited broadcast
	// has no route to choose an interface by.
	Broadcast bool
}

// decide turns one datagram into a ProxyDHCP reply or a reason to stay silent. It never
// touches a socket; the only calls outside this package are Files.BootFile and EFIChoice.
func decide(b []byte, in arrival, p policy) decision {
	var d decision
	if d.Drop, d.Detail = checkFraming(b); d.Drop != "" {
		return d
	}
	req, err := dhcpv4.FromBytes(b)
	if err != nil {
		d.Drop, d.Detail = dropMalformed, err.Error()
		return d
	}
	d.Client = classify(req)
	c := &d.Client
	if req.OpCode != dhcpv4.OpcodeBootRequest {
		d.Drop = dropNotRequest
		return d
	}
	httpBoot := strings.HasPrefix(c.VendorClass, vendorHTTP)
	if !httpBoot && !strings.HasPrefix(c.VendorClass, vendorPXE) {
		d.Drop = dropNotPXE
		return d
	}
	want := dhcpv4.MessageTypeDiscover
	if in.Role == rolePXE {
		want = dhcpv4.MessageTypeRequest
	}
	if c.Type != want {
		d.Drop, d.Detail = dropWrongType, fmt.Sprintf("%s on the %s port", c.Type, in.Role)
		return d
	}
	if req.HWType != iana.HWTypeEthernet || len(req.ClientHWAddr) != 6 {
		d.Drop, d.Detail = dropBadHWAddr, fmt.Sprintf("htype %d hlen %d", req.HWType, len(req.ClientHWAddr))
		return d
	}
	if !in.Served {
		d.Drop, d.Detail = dropOtherInterface, in.Iface
		return d
	}
	d.Server = serverAddr(in, req)
	if !d.Server.IsValid() {
		d.Drop, d.Detail = dropNoAddress, in.Iface
		return d
	}
	if c.HasArch && ipxe.IsHTTPBoot(c.Arch) {
		httpBoot = true
	}

	base := p.PublicURL
	if base == "" {
		base = derivedBase(d.Server, p.HTTPPort)
	}
	vendor := vendorPXE
	switch {
	case c.IPXE && c.IPXEFeatures:
		d.Kind, d.File = kindIPXEScript, base+"/provision/"+c.MAC.String()
	case !c.HasArch:
		d.Drop = dropNoArch
		return d
	case p.Files == nil:
		d.Drop = dropNoBinary
		return d
	default:
		name, err := p.Files.BootFile(c.Arch)
		if err != nil || name == "" {
			d.Drop = dropNoBinary
			if err != nil {
				d.Detail = err.Error()
			}
			return d
		}
		// A NIC that iPXE's own drivers do not run needs snponly.efi, which uses the
		// firmware's driver: the node's record or dhcp.efi_binary says so.
		if name == ipxe.FileEFIx64 && p.EFIChoice != nil && len(c.MAC) == 6 {
			name = ipxe.EFIBootFile(p.EFIChoice(c.MAC.String()))
		}
		// "<mac>/<binary>" ties the transfer that follows to this node (tftpd and httpd
		// take the prefix off); OVMF, SeaBIOS's iPXE ROM and HTTP Boot all take a path.
		if len(c.MAC) == 6 {
			name = strings.ReplaceAll(c.MAC.String(), ":", "-") + "/" + name
		}
		d.Kind, d.File = kindBinary, name
		if httpBoot {
			d.Kind, d.File, vendor = kindHTTPBoot, base+"/boot/"+name, vendorHTTP
		}
	}
	if len(d.File) > maxBootFileLen {
		d.Drop, d.Detail = dropNoBinary, "boot file name too long"
		return d
	}

	d.Reply = buildReply(req, in.Role, d.Server, vendor, d.File)
	switch {
	case in.Role == rolePXE && in.Src.Addr().IsUnspecified():
		// Only a client without an address would send from 0.0.0.0; it can only hear a
		// broadcast, on the port it sent from.
		d.To, d.Broadcast = netip.AddrPortFrom(netip.IPv4Unspecified(), in.Src.Port()), true
	case in.Role == rolePXE:
		// EDK2 sends from and listens on 4011 (PxeBcDhcp4Discover); iPXE from an
		// ephemeral port. Either way the answer goes back where the request came from.
		d.To = in.Src
	case !isZero(req.GatewayIPAddr):
		// RFC 2131 4.1: replies to a relayed request go to the relay's server port.
		gw, _ := netip.AddrFromSlice(req.GatewayIPAddr.To4())
		d.To = netip.AddrPortFrom(gw, uint16(p.ServerPort))
	default:
		// The client has no address yet (yiaddr stays zero), so only a broadcast reaches it.
		d.To, d.Broadcast = netip.AddrPortFrom(netip.IPv4Unspecified(), uint16(p.ServerPort+1)), true
	}
	if d.Broadcast {
		d.To = netip.AddrPortFrom(netip.AddrFrom4([4]byte{255, 255, 255, 255}), d.To.Port())
	}
	return d
}

// checkFraming sorts out datagrams that are not one whole DHCP message, with a reason that
// says which way they fail, before the library parses them. The walk over the options is the
// one dhcpv4.FromBytes does, so a datagram that passes here only fails there if it is
// malformed in some way we do not tell apart. It stays our own because the library says
// which way a datagram fails only in the text of its errors.
func checkFraming(b []byte) (reason, detail string) {
	switch {
	// Details are constants where they can be: they are built for every datagram of a flood
	// and read only when Debug is on. The size is logged with them.
	case len(b) > maxRequestLen:
		return dropOversized, "longer than a DHCP request can be"
	case len(b) < headerLen:
		// Short garbage lands here too: a cut-off message and a few random bytes look alike.
		return dropTruncated, "shorter than the DHCP header"
	case string(b[headerLen-4:headerLen]) != magicCookie:
		return dropMalformed, "no DHCP magic cookie"
	}
	if len(b) == headerLen {
		// No options at all decodes (as the library does) and is dropped later as not PXE.
		return "", ""
	}
	for o := b[headerLen:]; ; {
		switch {
		case len(o) == 0:
			return dropTruncated, "no end option"
		case o[0] == 0: // pad
			o = o[1:]
		case o[0] == 255:
			return "", ""
		case len(o) < 2 || len(o) < 2+int(o[1]):
			return dropTruncated, "option " + strconv.Itoa(int(o[0])) + " runs past the end"
		default:
			o = o[2+int(o[1]):]
		}
	}
}

// derivedBase is the base URL when no public URL is set: our address on the arrival
// interface. A zone (fe80::1%eth0) means nothing to the client and ipxe.ValidateBaseURL
// refuses it, so it is dropped; an IPv6 address goes in brackets.
func derivedBase(a netip.Addr, httpPort int) string {
	a = a.Unmap().WithZone("")
	host := a.String()
	if a.Is6() {
		host = "[" + host + "]"
	}
	if httpPort != 0 && httpPort != 80 {
		host += ":" + strconv.Itoa(httpPort)
	}
	return "http://" + host
}

// classify reads what the request says about the client; it never fails, absent options
// leave fields zero.
func classify(req *dhcpv4.DHCPv4) client {
	c := client{
		MAC:         req.ClientHWAddr,
		XID:         req.TransactionID,
		Type:        req.MessageType(),
		VendorClass: string(req.Options.Get(dhcpv4.OptionClassIdentifier)),
	}
	// RFC 4578 allows a list; firmware sends one, the first is the one it runs. An option 93
	// the library cannot read (empty, or an odd length) is no better than none: option 60
	// may still say.
	if archs := req.ClientArch(); len(archs) > 0 {
		c.Arch, c.HasArch = archs[0], true
	} else if a, ok := archFromVendorClass(c.VendorClass); ok {
		c.Arch, c.HasArch = a, true
	}
	c.IPXE = isIPXEUserClass(req.Options.Get(dhcpv4.OptionUserClassInformation))
	if c.IPXE {
		f := encapsulated(req.Options.Get(dhcpv4.OptionEtherboot))
		c.IPXEFeatures = hasFeature(f, ipxeFeatureHTTP) && hasFeature(f, ipxeFeatureHTTPS)
	}
	if ip := req.ClientIPAddr.To4(); !isZero(ip) {
		c.IP, _ = netip.AddrFromSlice(ip)
	} else if ip := req.RequestedIPAddress().To4(); !isZero(ip) {
		c.IP, _ = netip.AddrFromSlice(ip)
	}
	return c
}

// isIPXEUserClass tells whether option 77 names iPXE. iPXE sends the bare string "iPXE"
// rather than RFC 3004's list of length-prefixed strings; both are read. Not the library's
// UserClass: it tries the list first and builds an error for every bare string, a fifth of
// an iPXE request's allocations.
func isIPXEUserClass(opt []byte) bool {
	if string(opt) == "iPXE" {
		return true
	}
	for len(opt) > 0 {
		n := int(opt[0])
		if n == 0 || n+1 > len(opt) {
			return false
		}
		if string(opt[1:1+n]) == "iPXE" {
			return true
		}
		opt = opt[1+n:]
	}
	return false
}

// archFromVendorClass parses "PXEClient:Arch:00007:UNDI:003000" (PXE 2.1 spec, RFC 4578 2.1),
// for firmware that omits option 93.
func archFromVendorClass(vc string) (iana.Arch, bool) {
	_, rest, ok := strings.Cut(vc, ":Arch:")
	if !ok || len(rest) < 5 {
		return 0, false
	}
	n, err := strconv.ParseUint(rest[:5], 10, 16)
	if err != nil {
		return 0, false
	}
	return iana.Arch(n), true
}

// encapsulated decodes the sub-options of option 43 or 175. A truncated sub-option ends the
// walk with an error, but the ones before it are decoded already and still count.
func encapsulated(opt []byte) dhcpv4.Options {
	o := dhcpv4.Options{}
	_ = o.FromBytes(opt)
	return o
}

// hasFeature reports whether option 175 lists an iPXE feature. Each feature carries its
// version byte (iPXE include/ipxe/features.h), so an empty one is a code byte cut off at the
// end of the option, which the library keeps, not a feature.
func hasFeature(f dhcpv4.Options, code uint8) bool {
	return len(f.Get(dhcpv4.GenericOptionCode(code))) > 0
}

// serverAddr picks our address on the arrival interface: the one the client sent to if it
// unicast to us, else the one sharing a subnet with the relay or client, else the first.
func serverAddr(in arrival, req *dhcpv4.DHCPv4) netip.Addr {
	var first netip.Addr
	for _, p := range in.Addrs {
		if !p.Addr().Is4() {
			continue
		}
		if !first.IsValid() {
			first = p.Addr()
		}
		if p.Addr() == in.Dst {
			return p.Addr()
		}
	}
	for _, ip := range []net.IP{req.GatewayIPAddr, req.ClientIPAddr} {
		a, ok := netip.AddrFromSlice(ip.To4())
		if !ok || a.IsUnspecified() {
			continue
		}
		for _, p := range in.Addrs {
			if p.Addr().Is4() && p.Contains(a) {
				return p.Addr()
			}
		}
	}
	return first
}

// buildReply builds the proxy reply: never an address (yiaddr zero), always siaddr and the
// server identifier (iPXE drops a ProxyDHCP reply with siaddr zero even when it has a file).
func buildReply(req *dhcpv4.DHCPv4, r role, server netip.Addr, vendor, file string) *dhcpv4.DHCPv4 {
	srv := net.IP(server.AsSlice())
	rep := &dhcpv4.DHCPv4{
		OpCode:        dhcpv4.OpcodeBootReply,
		HWType:        req.HWType,
		TransactionID: req.TransactionID,
		Flags:         req.Flags,
		ClientIPAddr:  net.IPv4zero.To4(),
		YourIPAddr:    net.IPv4zero.To4(),
		ServerIPAddr:  srv,
		GatewayIPAddr: req.GatewayIPAddr,
		ClientHWAddr:  req.ClientHWAddr,
		Options:       dhcpv4.Options{},
	}
	msg := dhcpv4.MessageTypeOffer
	if r == rolePXE {
		msg = dhcpv4.MessageTypeAck
		rep.ClientIPAddr = req.ClientIPAddr
	} else {
		// As dnsmasq does: a client without an address can only take a broadcast, and a
		// relay must broadcast our reply on the client's segment.
		rep.SetBroadcast()
	}
	// A truncated file field would win over the full option 67 in iPXE (dhcppkt_fetch reads
	// the header field first), so a name that does not fit goes in option 67 only.
	if len(file) < 128 {
		rep.BootFileName = file
	}
	rep.UpdateOption(dhcpv4.OptMessageType(msg))
	rep.UpdateOption(dhcpv4.OptServerIdentifier(srv))
	rep.UpdateOption(dhcpv4.OptClassIdentifier(vendor))
	rep.UpdateOption(dhcpv4.OptBootFileName(file))
	for _, code := range []dhcpv4.OptionCode{
		dhcpv4.OptionClientMachineIdentifier, // PXE spec: the UUID is echoed
		dhcpv4.OptionClientIdentifier,        // RFC 6842
		dhcpv4.OptionRelayAgentInformation,   // RFC 3046 2.2
	} {
		// Bounded so a hostile request cannot blow the reply past one datagram.
		if v := req.Options.Get(code); v != nil && len(v) <= 255 {
			rep.UpdateOption(dhcpv4.OptGeneric(code, bytes.Clone(v)))
		}
	}
	if vendor == vendorPXE {
		if vo := pxeVendorOptions(r, req.Options.Get(dhcpv4.OptionVendorSpecificInformation)); vo != nil {
			rep.UpdateOption(dhcpv4.OptGeneric(dhcpv4.OptionVendorSpecificInformation, vo))
		}
	}
	return rep
}

// pxeVendorOptions is option 43 of a PXEClient reply. Port-67 offers say "use the offered
// file". A 4011 ACK echoes the boot item the client asked for (PXE 2.1, as dnsmasq does), and
// is otherwise left without option 43, like the BINL answers EDK2 expects there.
func pxeVendorOptions(r role, req43 []byte) []byte {
	if r == roleDHCP {
		return withEnd(dhcpv4.Options{pxeDiscoveryControl: {pxeUseOfferedFile}})
	}
	if item := encapsulated(req43).Get(dhcpv4.GenericOptionCode(pxeBootItem)); len(item) == 4 {
		return withEnd(dhcpv4.Options{pxeBootItem: item})
	}
	return nil
}

// withEnd encodes PXE sub-options closed by an end option, as in the offers the captured
// firmware booted from (testdata); Options.ToBytes leaves it out.
func withEnd(o dhcpv4.Options) []byte {
	return append(o.ToBytes(), 255)
}

func isZero(ip net.IP) bool {
	return ip == nil || ip.IsUnspecified()
}

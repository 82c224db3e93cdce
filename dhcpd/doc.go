// Package dhcpd is bootstrapd's ProxyDHCP server: it tells network-booting firmware which file
// to load, and never hands out addresses (the LAN's own DHCP server owns leases).
//
// It follows the PXE 2.1 ProxyDHCP model as dnsmasq's proxy mode implements it, with what
// real firmware (OVMF/EDK2, SeaBIOS with iPXE ROMs, iPXE itself) needs on top; the captures in
// testdata hold the exchanges these rules come from:
//
//   - Only requests whose vendor class (option 60) starts with "PXEClient" or "HTTPClient" are
//     answered; everything else is ignored, and yiaddr is always zero.
//   - On the DHCP port (67) a DHCPDISCOVER gets a proxy DHCPOFFER, broadcast to the client port
//     (68) out of the interface it came in on, or unicast to the relay (giaddr) on port 67.
//     DHCPREQUESTs on port 67 are not answered: they belong to the real DHCP server's
//     exchange. dnsmasq's proxy mode does the same (it answers REQUESTs only on 4011); EDK2
//     takes the boot file from our offer when option 43 carries sub-option 6 = 8, or else
//     asks on 4011; iPXE takes it from the offer when siaddr and a file name are present, or
//     else asks on 4011. Neither needs a proxy answer to a port-67 REQUEST.
//   - On the PXE boot-server port (4011) a DHCPREQUEST gets a DHCPACK unicast back to its
//     source address and port.
//   - Every reply carries siaddr and option 54 set to our address on the arrival interface
//     (iPXE drops a ProxyDHCP reply with a zero siaddr), option 60, option 97 copied, and the
//     boot file in both the file field and option 67. Port-67 PXEClient offers also carry
//     option 43 with PXE discovery control (sub-option 6) = 8: "boot the file in this offer,
//     no boot-server discovery", which makes EDK2 use the offer directly.
//
// What a client gets:
//
//   - An iPXE (option 77 "iPXE") that advertises HTTP and HTTPS in option 175 gets the URL of
//     its provisioning script, <base>/provision/<mac>.
//   - Any other PXE firmware, including an old iPXE ROM without HTTPS, gets the iPXE binary for
//     its architecture (option 93, or "Arch:NNNNN" in option 60) as a TFTP file name. That
//     binary is a current iPXE, so the next DHCP round gets the script URL: no loop.
//   - UEFI HTTP Boot (vendor class "HTTPClient") gets <base>/boot/<binary> and option 60
//     "HTTPClient".
//
// Every device on the LAN can reach both ports, so anything may arrive. A datagram that is not
// one whole DHCP message is dropped before any field is read, and counted in
// bootstrapd_dhcp_dropped_total under one of three reasons: "oversized" (longer than 1500
// bytes; the read buffer is one byte longer, so a 64 KiB datagram is seen as too long rather
// than cut to a valid-looking prefix), "truncated" (it ends inside the 240-byte header and
// magic cookie, inside an option, or before the end option; short garbage lands here too) and
// "malformed" (no DHCP magic cookie, or anything else the library refuses). Requests that
// decode but are not ours to answer are counted under their own reasons (not_pxe,
// wrong_type, ...). No drop is answered, and none is logged above Debug, so a flood costs a
// counter increment per datagram and never grows the log; the exceptions are drops that leave
// a PXE client we should serve without an answer (no address, architecture or binary for it,
// or a failed send), logged as a Warn once a minute per reason with the count held back. The
// option overload of RFC 2132 (option 52) is not followed, so options in the file and sname
// fields cannot make the parse loop; repeated options are concatenated (RFC 3396), within
// the 1500 bytes.
//
// URLs handed out are built on Config.PublicURL, checked once by ipxe.ValidateBaseURL (no
// iPXE syntax, query, fragment or IPv6 zone), or else on our IPv4 address on the arrival
// interface (with any zone dropped, though an IPv4 address has none).
//
// The decision is the pure function decide (bytes in, reply or reason out); the Server only
// reads datagrams with their arrival interface (IP_PKTINFO) and sends what decide returns.
//
// It owns the two UDP sockets (67, 4011) and the decision of what each PXE or iPXE client is
// told. It must not touch the store, the kernels or any file: the binaries' names come from
// the catalogue it is given, and what it saw goes to a timeline.Sink.
package dhcpd

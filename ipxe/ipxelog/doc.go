// Package ipxelog receives iPXE's console over syslog (UDP) and puts each line on the
// sending node's boot timeline, so "No configuration methods succeeded", "Connection timed
// out" or a kernel that would not start show up beside the appliance's own stages.
//
// iPXE built with CONSOLE_SYSLOG copies every console line to the server named by its
// "syslog" setting (the boot script sets it), as one UDP datagram to port 514:
// "<PRI>[hostname[.domain] ]ipxe: <line>" (src/net/udp/syslog.c), at most 128 bytes of line,
// colour escapes stripped. Debian's stock build lacks CONSOLE_SYSLOG; the trusted build
// (packaging/ipxe-trust) has it.
//
// Every datagram is unauthenticated and may be spoofed: a line is attached by its source
// IPv4 address to the MAC the appliance last saw use that address (Neighbours, fed by the
// timeline's own events), and is dropped when none did. Lines are cut to the store's
// event detail length, stripped of control characters, and rate-limited per source address;
// every drop is counted by reason. The receiver never answers a packet.
package ipxelog

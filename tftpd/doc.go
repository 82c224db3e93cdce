// Package tftpd is bootstrapd's read-only TFTP server (RFC 1350) for the iPXE binaries that PXE
// firmware loads before it can speak HTTP.
//
// It owns one UDP socket (Config.Addr, port 69 in production) and the transfers started from
// it, each with its own socket and goroutine (pin/tftp's model: one new port per transfer,
// as RFC 1350 asks). Every machine on the LAN can reach it, and UDP sources can be forged, so
// every request is treated as hostile until its client has ACKed something.
//
// It serves only the files of one fs.FS (bootstrapd passes the iPXE catalogue, which is an
// fs.FS over exactly its binaries), by bare name: "undionly.kpxe", or with the MAC the
// ProxyDHCP put in front of it, "52-54-00-12-34-56/undionly.kpxe" (the MAC goes to the boot
// timeline, not to the file system). Any other directory part, "..", a leading "/", a
// backslash, NUL or control bytes are refused before the file system is asked (see
// parsePath); write requests and every mode but octet are refused too.
//
// It owns the TFTP socket, its transfers and their limits. It must not touch the store or
// decide anything about a node: it reports boot stages to a timeline.Sink and stops there.
//
// # Limits, and what happens when one is hit
//
//   - Interfaces (Config.Interfaces): a request sent to an address of another interface is
//     refused with an access violation. Empty: every interface.
//   - Transfers in flight (Config.MaxTransfers, in all; Config.MaxPerSource, per client IP
//     address): a request over either is refused at once with one ERROR packet, before any
//     file is opened; the slot of a transfer is freed when it ends.
//   - Silence (Config.Timeout, Config.Retries): a block or option acknowledgement that is not
//     ACKed is sent again after Timeout, at most Retries times (2 by default, so 3 sends in
//     all), then the transfer fails with one ERROR packet. This also bounds what a request
//     with a forged source reflects at its victim before the first ACK: three copies of the
//     first block or of the OACK, and one ERROR packet. Anticipate mode multiplies that by
//     its window.
//   - Shutdown (Config.Grace): once Serve's context ends, no request is taken; transfers in
//     flight may finish within Grace, then their sockets are closed, they end with an error,
//     and Serve returns.
//   - Garbage on the server port (no valid read or write request) is dropped without an
//     answer and counted.
//
// A refusal is counted only in bootstrapd_tftp_refused_total, by reason;
// bootstrapd_tftp_transfers_total counts the read requests that were not refused. Refusals are logged at most once per reason every 10 s,
// so that a flood does not fill the log.
//
// # Error codes
//
// Requests that are not served get the RFC 1350 code that says why: 1 (file not found) for a
// valid name that is not served, 2 (access violation) for a policy refusal (a name outside
// the served set, the interface, the transfer limits), 4 (illegal TFTP operation) for what
// this server never does (write requests, malformed requests, modes other than octet), 0 for
// a failure of the server itself. pin/tftp v3.1.0 sends code 1 for any handler error; how the
// handler sends its own code instead is explained in pintftp.go. Errors after a transfer has
// started (timeouts, read errors) are still sent by pin/tftp, with code 1.
//
// # Options
//
// blksize (RFC 2348) and tsize (RFC 2349) are negotiated by github.com/pin/tftp/v3; the size
// is always reported, because OVMF first asks for tsize alone, aborts with error 8 once it
// knows it, and then asks again. windowsize (RFC 7440) is not supported by pin/tftp v3.1.0
// and is silently left out of the OACK, so clients that ask for it (OVMF asks for 4) fall
// back to lock-step. Config.Anticipate turns on pin/tftp's experimental "anticipate" mode
// instead, which sends several blocks before it waits for an ACK; it is off by default
// because it does not recover from a packet lost inside a window.
//
// Caveats of pin/tftp v3.1.0 that show on the wire:
//   - a client that aborts after the option acknowledgement (OVMF's size probe) is answered
//     with one more error packet, which the client ignores.
//   - the transfer block size is capped by the MTU of the interface the request arrived on.
//   - a duplicate ACK is ignored, so a lost block is sent again only after Timeout.
package tftpd

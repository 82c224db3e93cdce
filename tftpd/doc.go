// Package tftpd is bootstrapd's read-only TFTP server (RFC 1350) for the iPXE binaries that PXE
// firmware loads before it can speak HTTP.
//
// It serves only the files of one fs.FS (bootstrapd passes the iPXE catalogue, which is an
// fs.FS over exactly its five binaries), by bare name: "undionly.kpxe", never a path. Names
// with a directory part, "..", a leading "/", a backslash, NUL or control bytes are refused
// before the file system is asked (see parsePath), and write requests are always refused.
//
// Options: blksize (RFC 2348) and tsize (RFC 2349) are negotiated by github.com/pin/tftp/v3;
// the size is always reported, because OVMF first asks for tsize alone, aborts with error 8
// once it knows it, and then asks again. windowsize (RFC 7440) is not supported by pin/tftp
// v3.1.0 and is silently left out of the OACK, so clients that ask for it (OVMF asks for 4)
// fall back to lock-step. Config.Anticipate turns on pin/tftp's experimental "anticipate"
// mode instead, which sends several blocks before it waits for an ACK; it is off by default
// because it does not recover from a packet lost inside a window.
//
// Caveats of pin/tftp v3.1.0 that show on the wire:
//   - every TFTP error packet carries error code 1 ("file not found"), even for refused names
//     and write requests; the message says what happened ("access violation: ...").
//   - a client that aborts after the option acknowledgement (OVMF's size probe) is answered
//     with one more error packet, which the client ignores.
//   - the transfer block size is capped by the MTU of the interface the request arrived on.
package tftpd

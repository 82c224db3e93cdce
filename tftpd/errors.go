package tftpd

import (
	"errors"
	"fmt"
)

// Errors a Transfer can carry; check them with errors.Is.
var (
	// ErrRefused means the request was refused before any file was opened: a policy refusal
	// (too many transfers, wrong interface, a name that is not a bare file name) or an
	// illegal operation (a write request, a malformed request, a mode other than octet). The
	// error's text is the message of the ERROR packet the client got.
	ErrRefused = errors.New("request refused")
	// ErrNotFound means the name is valid but not a regular file of Config.Files.
	ErrNotFound = errors.New("file not found")
	// ErrClientAbort means the client ended the transfer with a TFTP error packet. OVMF does
	// this on purpose after the option acknowledgement to learn the file size (tsize), then
	// asks for the file again.
	ErrClientAbort = errors.New("client aborted the transfer")
)

// TFTP error codes (RFC 1350) this server sends for a request it does not serve.
const (
	codeNotDefined uint16 = 0 // a failure of the server itself; the message says what
	codeNotFound   uint16 = 1
	codeAccess     uint16 = 2 // access violation: refused by policy
	codeIllegal    uint16 = 4 // illegal TFTP operation: not something this server does
)

// codeText is the RFC 1350 wording of a refusal's code, which starts its message.
var codeText = map[uint16]string{
	codeAccess:  "access violation",
	codeIllegal: "illegal TFTP operation",
}

// Reasons a request is refused; the values of the refused-requests metric's reason label.
const (
	reasonEmpty       = "empty"                // empty file name
	reasonInvalid     = "invalid"              // NUL or control bytes, invalid UTF-8, longer than maxNameLen
	reasonBackslash   = "backslash"            // Windows-style separators
	reasonAbsolute    = "absolute"             // leading "/"
	reasonTraversal   = "traversal"            // a ".." element
	reasonDirectory   = "directory"            // any other directory part, or "."
	reasonWrite       = "write"                // write request (WRQ)
	reasonMode        = "mode"                 // transfer mode other than octet
	reasonInterface   = "interface"            // addressed to us on an interface outside Config.Interfaces
	reasonTooMany     = "too_many_transfers"   // Config.MaxTransfers in flight
	reasonTooManyFrom = "too_many_from_source" // Config.MaxPerSource in flight from the client's address
	reasonShutdown    = "shutting_down"        // arrived as Serve gave up on the transfers in flight
	reasonMalformed   = "malformed"            // packet on the server port that is not a valid request
)

var refuseReasons = []string{
	reasonEmpty, reasonInvalid, reasonBackslash, reasonAbsolute, reasonTraversal,
	reasonDirectory, reasonWrite, reasonMode, reasonInterface, reasonTooMany, reasonTooManyFrom,
	reasonShutdown, reasonMalformed,
}

// reasonCode is the error code sent for each reason: a request this server could serve but
// will not is an access violation; one no TFTP server of its kind serves is illegal.
var reasonCode = map[string]uint16{
	reasonEmpty:       codeIllegal,
	reasonInvalid:     codeIllegal,
	reasonBackslash:   codeAccess,
	reasonAbsolute:    codeAccess,
	reasonTraversal:   codeAccess,
	reasonDirectory:   codeAccess,
	reasonWrite:       codeIllegal,
	reasonMode:        codeIllegal,
	reasonInterface:   codeAccess,
	reasonTooMany:     codeAccess,
	reasonTooManyFrom: codeAccess,
	reasonShutdown:    codeAccess,
	reasonMalformed:   codeIllegal,
}

// refusedError is a refused request with the reason that labels the refused-requests metric.
type refusedError struct {
	reason string // one of the reason* constants
	detail string
}

func (e *refusedError) Error() string        { return codeText[e.code()] + ": " + e.detail }
func (e *refusedError) Is(target error) bool { return target == ErrRefused }
func (e *refusedError) code() uint16         { return reasonCode[e.reason] }

func refuse(reason, detail string) error { return &refusedError{reason: reason, detail: detail} }

// wireError is what the client is told when a request is not served: an RFC 1350 code and
// the message of the ERROR packet.
func wireError(err error) (uint16, string) {
	switch {
	case errors.Is(err, ErrRefused):
		if re, ok := errors.AsType[*refusedError](err); ok {
			return re.code(), err.Error()
		}
		return codeAccess, err.Error()
	case errors.Is(err, ErrNotFound):
		return codeNotFound, err.Error()
	default:
		return codeNotDefined, err.Error()
	}
}

// errorPacket builds an ERROR packet. The message is cut so that the packet fits the
// 512-byte payload every client accepts.
func errorPacket(code uint16, msg string) []byte {
	const maxMsg = 512 - 5
	if len(msg) > maxMsg {
		msg = msg[:maxMsg]
	}
	p := make([]byte, 0, 5+len(msg))
	p = append(p, 0, 5, byte(code>>8), byte(code))
	p = append(p, msg...)
	return append(p, 0)
}

// notFound is the error of a valid name that is not served.
func notFound(name string) error { return fmt.Errorf("%w: %q", ErrNotFound, name) }

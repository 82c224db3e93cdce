package tftpd

import "errors"

// Errors a Transfer can carry; check them with errors.Is.
var (
	// ErrRefused means the request was refused before any file was opened: a write request,
	// or a name that is not a bare file name (path traversal, absolute path, NUL bytes...).
	// Its text is the TFTP "access violation" wording the client sees.
	ErrRefused = errors.New("access violation")

	// ErrNotFound means the name is valid but not a regular file of Config.Files.
	ErrNotFound = errors.New("file not found")

	// ErrClientAbort means the client ended the transfer with a TFTP error packet. OVMF does
	// this on purpose after the option acknowledgement to learn the file size (tsize), then
	// asks for the file again.
	ErrClientAbort = errors.New("client aborted the transfer")
)

// refusedError is a refused request with the reason that labels the refused-requests metric.
type refusedError struct {
	reason string // one of the reason* constants
	detail string
}

func (e *refusedError) Error() string        { return ErrRefused.Error() + ": " + e.detail }
func (e *refusedError) Is(target error) bool { return target == ErrRefused }

func refuse(reason, detail string) error { return &refusedError{reason: reason, detail: detail} }

package media

import (
	"errors"
	"fmt"
)

var (
	// ErrScriptTooLong: the script does not fit the MaxScriptLen-byte slot (HTTP 413).
	ErrScriptTooLong = errors.New("media: script longer than the script slot")
	// ErrBadScript: the script is empty where a medium needs one, does not start with
	// "#!ipxe", or holds bytes other than printable ASCII, tab, CR and LF (HTTP 400).
	ErrBadScript = errors.New("media: not a plain-ASCII iPXE script")
	// ErrUnknownKind and ErrUnknownArch: no such medium or architecture (HTTP 404/400).
	ErrUnknownKind = errors.New("media: unknown medium kind")
	ErrUnknownArch = errors.New("media: unknown architecture")
	// ErrUnavailable: the kind needs a file that was not configured (Config.EmbedDir
	// empty for KindUEFI) (HTTP 503).
	ErrUnavailable = errors.New("media: medium not configured")
)

// MissingFileError says which input file is missing, which config key names its
// directory, and which Debian package ships it.
type MissingFileError struct {
	Key     string // config key, e.g. "paths.isolinux"
	Path    string
	Package string // Debian package or script that provides the file
	Err     error
}

func (e *MissingFileError) Error() string {
	return fmt.Sprintf("media: %s: %v (set %s; provided by %s)", e.Path, e.Err, e.Key, e.Package)
}

func (e *MissingFileError) Unwrap() error { return e.Err }

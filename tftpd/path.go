package tftpd

import (
	"strings"
	"unicode/utf8"

	"github.com/threefoldtech/bootstrapd/store"
)

// maxNameLen bounds a request name. A 516-byte request packet cannot carry much more anyway,
// and every name bootstrapd serves is a short bare file name.
const maxNameLen = 255

// parsePath turns the file name of a read request into the MAC it names and the fs.FS name
// to open, or refuses it with an error that wraps ErrRefused. Two forms are accepted: a bare
// file name ("undionly.kpxe"), and "<mac>/<file>" ("52-54-00-12-34-56/undionly.kpxe"), the
// form the ProxyDHCP hands out so that each transfer is tied to its node. Firmware sends the
// DHCP boot file name as it was given, and iPXE strips the "/" that a tftp:// URI puts in
// front of it, so nothing legitimate carries another directory part. A leading "/" is
// refused rather than stripped, so that "/etc/passwd" can never mean anything.
func parsePath(name string) (mac, file string, err error) {
	if dir, base, ok := strings.Cut(name, "/"); ok {
		if m, err := store.ParseMAC(dir); err == nil {
			if file, err := parseFile(base); err == nil {
				return m, file, nil
			}
		}
	}
	file, err = parseFile(name)
	return "", file, err
}

// parseFile checks a bare file name.
func parseFile(name string) (string, error) {
	switch {
	case name == "":
		return "", refuse(reasonEmpty, "empty file name")
	case len(name) > maxNameLen:
		return "", refuse(reasonInvalid, "file name longer than 255 bytes")
	case strings.IndexByte(name, 0) >= 0:
		return "", refuse(reasonInvalid, "NUL byte in file name")
	case strings.ContainsFunc(name, func(r rune) bool { return r < 0x20 || r == 0x7f }):
		return "", refuse(reasonInvalid, "control character in file name")
	case !utf8.ValidString(name):
		return "", refuse(reasonInvalid, "file name is not valid UTF-8")
	case strings.IndexByte(name, '\\') >= 0:
		return "", refuse(reasonBackslash, "backslash in file name")
	case name[0] == '/':
		return "", refuse(reasonAbsolute, "absolute path refused, ask for the bare file name")
	}
	for _, elem := range strings.Split(name, "/") {
		if elem == ".." {
			return "", refuse(reasonTraversal, `".." in file name`)
		}
	}
	if strings.IndexByte(name, '/') >= 0 || name == "." {
		return "", refuse(reasonDirectory, "directories are not served, ask for a bare file name")
	}
	return name, nil
}

package ipxe

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// ErrUnsafe means a value cannot be placed in an iPXE script or a path as it is.
var ErrUnsafe = errors.New("unsafe value")

// Metachars are the characters iPXE's script parser gives a meaning to: settings expansion
// ($, as in ${...}), command separators and chaining (; || &&), quotes and backslashes (its
// tokenizer treats them specially), comments and braces. No value from a URL, a record or
// the configuration may carry one into a script; every check in this package uses this set.
const Metachars = "$;&|\\\"'`#{}"

// urlMetachars are refused in URLs on top of Metachars: characters a URL must escape anyway.
const urlMetachars = Metachars + "<>^"

// Limits on values that reach a script. They keep scripts small enough to fit the media
// builders' fixed script slot.
const (
	MaxArgsLen   = 512
	MaxKernelLen = 128
)

var (
	networkRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,31}$`)
	// Kernel file names: path components of safe characters, no "..", no leading "/".
	kernelRE = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9._+-]*(/[A-Za-z0-9_][A-Za-z0-9._+-]*)*$`)
)

// ValidateNetwork checks a network's short name (prod, test, ...): lower-case letters,
// digits, '-' and '_', at most 32 characters.
func ValidateNetwork(s string) error {
	if !networkRE.MatchString(s) {
		return fmt.Errorf("%w: network %q: want 1-32 of a-z 0-9 - _", ErrUnsafe, s)
	}
	return nil
}

// ParseFarm parses a farm id: a positive decimal integer.
func ParseFarm(s string) (uint64, error) {
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil || v == 0 || strings.HasPrefix(s, "+") {
		return 0, fmt.Errorf("%w: farm id %q: want a positive integer", ErrUnsafe, s)
	}
	return v, nil
}

// ValidateKernel checks a kernel file name relative to the kernels directory.
func ValidateKernel(s string) error {
	if len(s) > MaxKernelLen || !kernelRE.MatchString(s) {
		return fmt.Errorf("%w: kernel %q: want a relative file name of A-Z a-z 0-9 . _ + - and /", ErrUnsafe, s)
	}
	for _, part := range strings.Split(s, "/") {
		if part == "." || part == ".." || strings.HasPrefix(part, "..") {
			return fmt.Errorf("%w: kernel %q: no . or .. components", ErrUnsafe, s)
		}
	}
	return nil
}

// ValidateArgs checks extra kernel arguments. They are placed on an imgfetch command line, so
// anything iPXE would interpret is refused: settings expansion ($, as in ${...}), command
// separators and chaining (; || &&), quotes and backslashes (iPXE's tokenizer treats them
// specially), comments, and control characters such as newlines. Spaces separate arguments.
func ValidateArgs(s string) error {
	if len(s) > MaxArgsLen {
		return fmt.Errorf("%w: kernel args are %d bytes, at most %d", ErrUnsafe, len(s), MaxArgsLen)
	}
	for i, r := range s {
		switch {
		case r < 0x20 || r > 0x7e:
			return fmt.Errorf("%w: kernel args: character %q at %d: only printable ASCII", ErrUnsafe, r, i)
		case strings.ContainsRune(Metachars, r):
			return fmt.Errorf("%w: kernel args: character %q at %d is interpreted by iPXE", ErrUnsafe, r, i)
		}
	}
	return nil
}

// DecodeExtra turns the URL form of extra kernel arguments into the arguments: "___" stands
// for "/" (a path segment cannot hold one), as in the predecessor's URLs.
func DecodeExtra(s string) string { return strings.ReplaceAll(s, "___", "/") }

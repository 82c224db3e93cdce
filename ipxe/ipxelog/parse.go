package ipxelog

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// MaxLine is the longest line kept (bytes): the store's event detail length.
const MaxLine = 256

// ErrMalformed means a datagram is not a syslog message from iPXE.
var ErrMalformed = errors.New("not an iPXE syslog message")

// Message is one parsed datagram.
type Message struct {
	Severity int    // 0 (emergency) … 7 (debug): iPXE logs console lines at 6 (info)
	Host     string // iPXE's hostname[.domain] setting, "" when unset
	Line     string // the console line: printable, at most MaxLine bytes
}

// Parse reads one datagram as iPXE sends it: "<PRI>", an optional "host " and the tag
// "ipxe: ", then the line. Anything else (another program's syslog, garbage) is
// ErrMalformed. Control characters and invalid UTF-8 in the line become spaces and the
// line is cut on a character boundary, so it is safe for a log, a terminal and the page.
func Parse(b []byte) (Message, error) {
	s := string(b)
	if len(s) < 3 || s[0] != '<' {
		return Message{}, fmt.Errorf("%w: no <priority>", ErrMalformed)
	}
	end := strings.IndexByte(s, '>')
	if end < 2 || end > 4 {
		return Message{}, fmt.Errorf("%w: bad <priority>", ErrMalformed)
	}
	pri, err := strconv.Atoi(s[1:end])
	if err != nil || pri < 0 || pri > 191 || s[1] == '+' || s[1] == '-' {
		return Message{}, fmt.Errorf("%w: bad <priority>", ErrMalformed)
	}
	rest := s[end+1:]
	var host string
	if !strings.HasPrefix(rest, "ipxe: ") {
		h, after, ok := strings.Cut(rest, " ")
		if !ok || !strings.HasPrefix(after, "ipxe: ") || h == "" || len(h) > 255 {
			return Message{}, fmt.Errorf("%w: no ipxe: tag", ErrMalformed)
		}
		host, rest = clean(h, 255), after
	}
	line := strings.TrimSpace(clean(strings.TrimPrefix(rest, "ipxe: "), MaxLine))
	return Message{Severity: pri & 7, Host: host, Line: line}, nil
}

// clean replaces control characters and invalid UTF-8 with spaces and cuts s to max bytes
// on a character boundary.
func clean(s string, max int) string {
	var b strings.Builder
	for i, r := range s {
		if r == utf8.RuneError {
			if _, size := utf8.DecodeRuneInString(s[i:]); size <= 1 {
				r = ' '
			}
		}
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			r = ' '
		}
		if b.Len()+utf8.RuneLen(r) > max {
			break
		}
		b.WriteRune(r)
	}
	return b.String()
}

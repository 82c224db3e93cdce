package media

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
)

// A medium is its template plus a few small spans of patched bytes (the script slots and
// the size fields that describe them): a build allocates a few KiB, not a copy of the
// template, and readers see the spans over the shared template bytes.
type span struct {
	off  int64
	data []byte
}

// patchSet collects the spans of one build.
type patchSet struct{ spans []span }

// bytes registers a zeroed n-byte span at off and returns it for the patcher to fill.
func (p *patchSet) bytes(off, n int) []byte {
	b := make([]byte, n)
	p.spans = append(p.spans, span{off: int64(off), data: b})
	return b
}

// seal sorts the spans and checks they stay inside size and never overlap.
func (p *patchSet) seal(size int64) ([]span, error) {
	s := p.spans
	slices.SortFunc(s, func(a, b span) int {
		switch {
		case a.off < b.off:
			return -1
		case a.off > b.off:
			return 1
		}
		return 0
	})
	for i, x := range s {
		if x.off < 0 || x.off+int64(len(x.data)) > size {
			return nil, fmt.Errorf("patch at %d+%d outside %d bytes", x.off, len(x.data), size)
		}
		if i > 0 && s[i-1].off+int64(len(s[i-1].data)) > x.off {
			return nil, fmt.Errorf("patches overlap at %d", x.off)
		}
	}
	return s, nil
}

// ReadAt reads the medium's bytes at off (io.ReaderAt: safe for concurrent use).
func (m *Medium) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, errors.New("media: negative offset")
	}
	if off >= int64(len(m.base)) {
		return 0, io.EOF
	}
	n := copy(p, m.base[off:])
	end := off + int64(n)
	i := sort.Search(len(m.spans), func(i int) bool { return m.spans[i].off+int64(len(m.spans[i].data)) > off })
	for ; i < len(m.spans) && m.spans[i].off < end; i++ {
		s := m.spans[i]
		lo, hi := max(off, s.off), min(end, s.off+int64(len(s.data)))
		copy(p[lo-off:hi-off], s.data[lo-s.off:hi-s.off])
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// WriteTo writes the whole medium to w (for files: bootstrapd media … -o FILE).
func (m *Medium) WriteTo(w io.Writer) (int64, error) {
	var total int64
	pos := int64(0)
	write := func(b []byte) error {
		n, err := w.Write(b)
		total += int64(n)
		return err
	}
	for _, s := range m.spans {
		if err := write(m.base[pos:s.off]); err != nil {
			return total, err
		}
		if err := write(s.data); err != nil {
			return total, err
		}
		pos = s.off + int64(len(s.data))
	}
	err := write(m.base[pos:])
	return total, err
}

// Bytes returns a new slice holding the whole medium.
func (m *Medium) Bytes() []byte {
	b := make([]byte, len(m.base))
	copy(b, m.base)
	for _, s := range m.spans {
		copy(b[s.off:], s.data)
	}
	return b
}

// Size is the medium's length in bytes, for Content-Length.
func (m *Medium) Size() int64 { return int64(len(m.base)) }

// Reader gives an io.ReadSeeker (with ReadAt) over the medium, for http.ServeContent,
// which then also answers Range requests.
func (m *Medium) Reader() *io.SectionReader { return io.NewSectionReader(m, 0, m.Size()) }

// memSize is what a cached medium costs beyond the shared template.
func (m *Medium) memSize() int64 {
	n := int64(256 + 32*len(m.spans))
	for _, s := range m.spans {
		n += int64(len(s.data))
	}
	return n
}

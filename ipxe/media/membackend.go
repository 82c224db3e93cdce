package media

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"time"

	"github.com/diskfs/go-diskfs/backend"
)

// memStorage is a go-diskfs backend over a byte slice, so images are built in memory: no
// temporary image files, and the result is the slice itself. Writes past the end fail
// rather than grow, which catches a size computed too small.
type memStorage struct {
	buf []byte
	pos int64
}

var _ backend.Storage = (*memStorage)(nil)

func newMemStorage(size int64) *memStorage { return &memStorage{buf: make([]byte, size)} }

func (m *memStorage) Stat() (fs.FileInfo, error) { return memInfo{size: int64(len(m.buf))}, nil }

func (m *memStorage) Read(p []byte) (int, error) {
	n, err := m.ReadAt(p, m.pos)
	m.pos += int64(n)
	return n, err
}

func (m *memStorage) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, errors.New("memstorage: negative offset")
	}
	if off >= int64(len(m.buf)) {
		return 0, io.EOF
	}
	n := copy(p, m.buf[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func (m *memStorage) WriteAt(p []byte, off int64) (int, error) {
	if off < 0 || off+int64(len(p)) > int64(len(m.buf)) {
		return 0, errors.New("memstorage: write outside the image")
	}
	return copy(m.buf[off:], p), nil
}

func (m *memStorage) Seek(offset int64, whence int) (int64, error) {
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		offset += m.pos
	case io.SeekEnd:
		offset += int64(len(m.buf))
	default:
		return 0, errors.New("memstorage: bad whence")
	}
	if offset < 0 {
		return 0, errors.New("memstorage: negative position")
	}
	m.pos = offset
	return offset, nil
}

func (m *memStorage) Close() error                            { return nil }
func (m *memStorage) Sys() (*os.File, error)                  { return nil, errors.New("memstorage: no OS file") }
func (m *memStorage) Writable() (backend.WritableFile, error) { return m, nil }
func (m *memStorage) Path() string                            { return "" }

type memInfo struct{ size int64 }

func (i memInfo) Name() string       { return "image" }
func (i memInfo) Size() int64        { return i.size }
func (i memInfo) Mode() fs.FileMode  { return 0o600 }
func (i memInfo) ModTime() time.Time { return time.Time{} }
func (i memInfo) IsDir() bool        { return false }
func (i memInfo) Sys() any           { return nil }

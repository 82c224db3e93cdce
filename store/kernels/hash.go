package kernels

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"sync"
	"syscall"
)

// hashCache remembers the digest of each file version: hashing 100 MB kernels on every
// listing would be slow. A version is the inode with its size and mtime: an upload is always
// a new inode, and a file rewritten in place changes its mtime, so two files that share a
// name one after the other never share a cache entry, even within one mtime tick.
type hashCache struct {
	mu sync.Mutex
	m  map[string]cached
}

type cached struct {
	version fileVersion
	info    KernelInfo
}

type fileVersion struct {
	dev, ino uint64
	size     int64
	mtime    int64
}

func versionOf(st fs.FileInfo) fileVersion {
	v := fileVersion{size: st.Size(), mtime: st.ModTime().UnixNano()}
	if sys, ok := st.Sys().(*syscall.Stat_t); ok {
		v.dev, v.ino = uint64(sys.Dev), sys.Ino
	}
	return v
}

// info describes the file name, hashing it unless this version's digest is known. The file
// is opened first and its own information used, so the digest and the version it is cached
// under belong to the same file even if name is replaced meanwhile.
func (h *hashCache) info(root *os.Root, name string) (KernelInfo, error) {
	f, err := root.Open(name)
	if err != nil {
		return KernelInfo{}, fmt.Errorf("kernels: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return KernelInfo{}, fmt.Errorf("kernels: stat %s: %w", name, err)
	}
	v := versionOf(st)
	h.mu.Lock()
	c, ok := h.m[name]
	h.mu.Unlock()
	if ok && c.version == v {
		return c.info, nil
	}
	sum := sha256.New()
	if _, err := io.Copy(sum, f); err != nil {
		return KernelInfo{}, fmt.Errorf("kernels: hash %s: %w", name, err)
	}
	info := KernelInfo{Name: name, Size: st.Size(), SHA256: hex.EncodeToString(sum.Sum(nil)), MTime: st.ModTime().UTC()}
	h.put(info, st)
	return info, nil
}

// put remembers info for the file version st describes.
func (h *hashCache) put(info KernelInfo, st fs.FileInfo) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.m == nil {
		h.m = map[string]cached{}
	}
	h.m[info.Name] = cached{version: versionOf(st), info: info}
}

// keep forgets every name not in listed, so deleted kernels do not stay in memory.
func (h *hashCache) keep(listed []KernelInfo) {
	names := make(map[string]bool, len(listed))
	for _, k := range listed {
		names[k.Name] = true
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for n := range h.m {
		if !names[n] {
			delete(h.m, n)
		}
	}
}

package media

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path"

	"github.com/diskfs/go-diskfs/filesystem/fat16"
)

// fatFile is one file to put into a FAT image, at path (directories are made as needed).
type fatFile struct {
	path string
	data []byte
}

// Fixed FAT timestamps (2024-01-01 00:00): equal inputs give equal bytes across restarts.
const (
	fatFixedDate = uint16((2024-1980)<<9 | 1<<5 | 1)
	fatFixedTime = uint16(0)
	// fatMinBytes is the smallest FAT16 go-diskfs makes: FAT16 needs at least 4085 clusters,
	// and go-diskfs uses 1 KiB clusters up to 32 MiB.
	fatMinBytes = 5 << 20
)

// buildFAT16 makes a FAT16 filesystem image (no partition table) holding files, sized to
// fit them with slack, in whole MiB. FAT16 rather than FAT32: OVMF reads the FAT type from
// the cluster count, so a small FAT32 (under 65,525 clusters) does not boot.
func buildFAT16(files []fatFile, label string) ([]byte, error) {
	var need int64
	for _, f := range files {
		need += int64(len(f.data)) + 4096
	}
	size := max(need+need/4+(1<<20), fatMinBytes)
	size = (size + (1 << 20) - 1) &^ ((1 << 20) - 1)
	st := newMemStorage(size)
	fs, err := fat16.Create(st, size, 0, 512, label, true)
	if err != nil {
		return nil, fmt.Errorf("create FAT16: %w", err)
	}
	for _, f := range files {
		if err := fs.Mkdir(path.Dir(f.path)); err != nil && path.Dir(f.path) != "/" {
			return nil, fmt.Errorf("mkdir %q: %w", path.Dir(f.path), err)
		}
		w, err := fs.OpenFile(f.path, os.O_CREATE|os.O_RDWR)
		if err != nil {
			return nil, fmt.Errorf("create %q: %w", f.path, err)
		}
		if _, err := w.Write(f.data); err != nil {
			return nil, fmt.Errorf("write %q: %w", f.path, err)
		}
		if err := w.Close(); err != nil {
			return nil, fmt.Errorf("close %q: %w", f.path, err)
		}
	}
	img := st.buf
	v, err := parseFAT16(img)
	if err != nil {
		return nil, fmt.Errorf("re-read FAT16: %w", err)
	}
	if err := v.walk(func(_ string, e []byte) error {
		// 13: creation centiseconds; 14/16 creation time/date; 18 access date; 22/24 write time/date.
		e[13] = 0
		binary.LittleEndian.PutUint16(e[14:], fatFixedTime)
		binary.LittleEndian.PutUint16(e[16:], fatFixedDate)
		binary.LittleEndian.PutUint16(e[18:], fatFixedDate)
		binary.LittleEndian.PutUint16(e[22:], fatFixedTime)
		binary.LittleEndian.PutUint16(e[24:], fatFixedDate)
		return nil
	}); err != nil {
		return nil, err
	}
	if err := v.freeLost(); err != nil {
		return nil, err
	}
	return img, nil
}

// freeLost frees clusters marked used in the FAT that no file or directory owns.
// go-diskfs's FAT16 marks cluster 2 as a root directory cluster, which FAT16 does not have
// (its root directory is a fixed area), and fsck.fat reports it as lost.
func (v *fat16View) freeLost() error {
	owned := map[int]bool{}
	if err := v.walk(func(p string, e []byte) error {
		name := shortName(e)
		if e[11]&0x08 != 0 || name == "." || name == ".." {
			return nil
		}
		cs, err := v.chain(int(binary.LittleEndian.Uint16(e[26:])))
		if err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		for _, c := range cs {
			owned[c] = true
		}
		return nil
	}); err != nil {
		return err
	}
	for c := 2; c < v.clusters+2; c++ {
		if v.next(c) != 0 && !owned[c] {
			for _, f := range v.fats {
				binary.LittleEndian.PutUint16(v.img[f+2*c:], 0)
			}
		}
	}
	return nil
}

// fat16View reads a FAT16 image in place (a slice of a larger image is fine): the layout
// from the boot sector, then directories and cluster chains. Used to normalise and patch
// built images and, in tests, to check them.
type fat16View struct {
	img         []byte
	bps         int
	clusterSize int
	fats        []int // byte offset of each FAT copy
	rootOff     int
	rootEntries int
	dataOff     int
	clusters    int
}

func parseFAT16(img []byte) (*fat16View, error) {
	if len(img) < 512 || img[510] != 0x55 || img[511] != 0xAA {
		return nil, errors.New("no boot sector signature")
	}
	le := binary.LittleEndian
	bps := int(le.Uint16(img[11:]))
	spc := int(img[13])
	reserved := int(le.Uint16(img[14:]))
	nfats := int(img[16])
	rootEntries := int(le.Uint16(img[17:]))
	total := int(le.Uint16(img[19:]))
	if total == 0 {
		total = int(le.Uint32(img[32:]))
	}
	fatSz := int(le.Uint16(img[22:]))
	if bps != 512 || spc == 0 || nfats == 0 || fatSz == 0 || total*bps > len(img) {
		return nil, fmt.Errorf("implausible FAT boot sector (bps %d, spc %d, fats %d, fatsz %d, total %d)", bps, spc, nfats, fatSz, total)
	}
	v := &fat16View{img: img[:total*bps], bps: bps, clusterSize: spc * bps, rootEntries: rootEntries}
	for i := range nfats {
		v.fats = append(v.fats, (reserved+i*fatSz)*bps)
	}
	v.rootOff = (reserved + nfats*fatSz) * bps
	v.dataOff = v.rootOff + (rootEntries*32+bps-1)/bps*bps
	v.clusters = (total*bps - v.dataOff) / v.clusterSize
	if v.clusters < 4085 || v.clusters >= 65525 {
		return nil, fmt.Errorf("%d clusters: not FAT16", v.clusters)
	}
	return v, nil
}

func (v *fat16View) next(c int) int { return int(binary.LittleEndian.Uint16(v.img[v.fats[0]+2*c:])) }

// chain lists the clusters of a file starting at c, refusing loops and bad links.
func (v *fat16View) chain(c int) ([]int, error) {
	var out []int
	for c >= 2 && c < 0xFFF8 {
		if c >= v.clusters+2 || len(out) > v.clusters {
			return nil, fmt.Errorf("bad cluster chain at %d", c)
		}
		out = append(out, c)
		c = v.next(c)
	}
	return out, nil
}

func (v *fat16View) clusterOff(c int) int { return v.dataOff + (c-2)*v.clusterSize }

// dirEntries returns the 32-byte entries of a directory (cluster 0 = root), in place.
func (v *fat16View) dirEntries(cluster int) ([][]byte, error) {
	var areas [][]byte
	if cluster == 0 {
		areas = append(areas, v.img[v.rootOff:v.rootOff+v.rootEntries*32])
	} else {
		cs, err := v.chain(cluster)
		if err != nil {
			return nil, err
		}
		for _, c := range cs {
			areas = append(areas, v.img[v.clusterOff(c):v.clusterOff(c)+v.clusterSize])
		}
	}
	var out [][]byte
	for _, a := range areas {
		for i := 0; i+32 <= len(a); i += 32 {
			e := a[i : i+32]
			if e[0] == 0 {
				return out, nil
			}
			if e[0] == 0xE5 || e[11] == 0x0F {
				continue
			}
			out = append(out, e)
		}
	}
	return out, nil
}

// shortName renders an entry's 8.3 name as "NAME.EXT".
func shortName(e []byte) string {
	base, ext := trimSpace(e[0:8]), trimSpace(e[8:11])
	if ext == "" {
		return base
	}
	return base + "." + ext
}

func trimSpace(b []byte) string {
	n := len(b)
	for n > 0 && b[n-1] == ' ' {
		n--
	}
	return string(b[:n])
}

// walk calls fn for every entry (files, directories, volume label) below the root, with
// its path of short names; "." and ".." are visited too, so their times are normalised.
func (v *fat16View) walk(fn func(p string, e []byte) error) error {
	var rec func(dir string, cluster, depth int) error
	rec = func(dir string, cluster, depth int) error {
		if depth > 16 {
			return errors.New("FAT directories nested too deep")
		}
		es, err := v.dirEntries(cluster)
		if err != nil {
			return err
		}
		for _, e := range es {
			name := shortName(e)
			p := path.Join(dir, name)
			if err := fn(p, e); err != nil {
				return err
			}
			if e[11]&0x10 != 0 && name != "." && name != ".." {
				if err := rec(p, int(binary.LittleEndian.Uint16(e[26:])), depth+1); err != nil {
					return err
				}
			}
		}
		return nil
	}
	return rec("/", 0, 0)
}

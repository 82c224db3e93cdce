package media

import (
	"encoding/binary"
	"fmt"

	"github.com/diskfs/go-diskfs/partition/gpt"
)

// Fixed GUIDs: a random disk GUID per build would make equal requests differ.
const (
	uefimgDiskGUID = "8E1A4C2B-5B0F-4D7E-9C61-0B5D7A3F2E10"
	uefimgPartGUID = "3C9D2E71-A4B8-4F06-8E5A-6D1C0B9F7A24"
	uefimgStartLBA = 2048
)

// buildUEFIImg wraps a FAT16 ESP in a GPT disk: protective MBR, primary and backup GPT,
// one EFI System Partition at 1 MiB.
func buildUEFIImg(esp []byte) ([]byte, int, error) {
	const sector = 512
	start := int64(uefimgStartLBA * sector)
	size := start + int64(len(esp)) + 1<<20
	st := newMemStorage(size)
	tbl := &gpt.Table{
		LogicalSectorSize:  sector,
		PhysicalSectorSize: sector,
		ProtectiveMBR:      true,
		GUID:               uefimgDiskGUID,
		Partitions: []*gpt.Partition{{
			Index: 1,
			Start: uefimgStartLBA,
			End:   uint64(uefimgStartLBA + len(esp)/sector - 1),
			Size:  uint64(len(esp)),
			Type:  gpt.EFISystemPartition,
			Name:  "EFI System",
			GUID:  uefimgPartGUID,
		}},
	}
	if err := tbl.Write(st, size); err != nil {
		return nil, 0, fmt.Errorf("write GPT: %w", err)
	}
	img := st.buf
	copy(img[start:], esp)
	// Hidden sectors = the partition's LBA, as mkfs.fat writes it for a partition.
	binary.LittleEndian.PutUint32(img[start+28:], uefimgStartLBA)
	return img, int(start), nil
}

package tftpd

import (
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/pin/tftp/v3"
)

// BenchmarkTransfer1MiB reads a 1 MiB file over loopback with pin/tftp's client, whole
// transfers from the request to the last ACK. Results depend on whether client and server
// goroutines share a CPU (docs/FIRMWARE.md, "TFTP"): compare runs with -cpu 1 and -cpu 2.
func BenchmarkTransfer1MiB(b *testing.B) {
	const file = "ipxe-amd64.efi" // 1 MiB in testFiles
	// The same file from disk, as the daemon serves it (a read per block or per buffer).
	dir := b.TempDir()
	data, err := fs.ReadFile(testFiles(), file)
	if err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, file), data, 0o644); err != nil {
		b.Fatal(err)
	}
	for _, tc := range []struct {
		name       string
		anticipate uint
		files      fs.FS
	}{
		{"memory", 0, testFiles()},
		{"memory/anticipate=8", 8, testFiles()},
		{"disk", 0, os.DirFS(dir)},
	} {
		ts := startServer(b, Config{Anticipate: tc.anticipate, Files: tc.files})
		for _, blksize := range []int{512, 1468} {
			b.Run(fmt.Sprintf("%s/blksize=%d", tc.name, blksize), func(b *testing.B) {
				c, err := tftp.NewClient(ts.Addr().String())
				if err != nil {
					b.Fatal(err)
				}
				c.SetBlockSize(blksize)
				c.RequestTSize(true)
				// Long enough that a starved client does not time out: in anticipate mode one
				// timeout stalls the transfer (TestLossRecovery).
				c.SetTimeout(5 * time.Second)
				b.SetBytes(1 << 20)
				for b.Loop() {
					wt, err := c.Receive(file, "octet")
					if err != nil {
						b.Fatal(err)
					}
					n, err := wt.WriteTo(io.Discard)
					if err != nil || n != 1<<20 {
						b.Fatalf("got %d bytes, %v", n, err)
					}
					if tr := ts.next(b); tr.Err != nil {
						b.Fatal(tr.Err)
					}
				}
			})
		}
	}
}

// Command server runs bootstrapd's tftpd package alone over a directory, for
// test/tftp-load/run.sh: the TFTP path without DHCP, HTTP or the store.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/threefoldtech/bootstrapd/tftpd"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:69", "UDP address")
	dir := flag.String("dir", ".", "directory whose files are served")
	anticipate := flag.Uint("anticipate", 0, "pin/tftp anticipate window (0 = lock-step)")
	timeout := flag.Duration("timeout", 0, "ACK timeout (0 = tftpd's default)")
	flag.Parse()
	if err := run(*addr, *dir, *anticipate, *timeout); err != nil {
		fmt.Fprintln(os.Stderr, "server:", err)
		os.Exit(1)
	}
}

func run(addr, dir string, anticipate uint, timeout time.Duration) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	s, err := tftpd.New(tftpd.Config{
		Addr:       addr,
		Files:      os.DirFS(dir),
		Logger:     slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
		Anticipate: anticipate,
		Timeout:    timeout,
	})
	if err != nil {
		return err
	}
	return s.Serve(ctx)
}

package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/threefoldtech/bootstrapd/cmd/bootstrapd/internal/earlyhup"
)

// version is set at build time: -ldflags "-X main.version=1.2.3". Left at "dev",
// currentBuild falls back to what the go command recorded in the binary.
var version = "dev"

const usage = `bootstrapd: Zero-OS network-boot appliance

Usage:
  bootstrapd serve   [--config appliance.yaml]      run ProxyDHCP, TFTP and HTTP
  bootstrapd node    add|set|show|list|rm|import|export|discovered [flags]   manage node records
  bootstrapd kernel  list|upload|rm|default [flags]   manage kernels
  bootstrapd media   iso|usb|uefimg|uefi|krn|snponly --network N [...] -o FILE   build a boot medium offline
  bootstrapd migrate --db FILE [--kernels DIR] [--skip-unmappable] [--dry-run]   take over 0-bootstrap
  bootstrapd store   copy --from bbolt:PATH|etcd:URLS --to ...   copy records, seen MACs, events
  bootstrapd version

Run "bootstrapd <command> -h" for a command's flags.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "bootstrapd:", err)
		}
		os.Exit(exitCode(err))
	}
}

// errUsage marks command-line mistakes (exit 2, like flag's own errors).
var errUsage = errors.New("usage")

func exitCode(err error) int {
	if errors.Is(err, errUsage) || errors.Is(err, flag.ErrHelp) {
		return 2
	}
	return 1
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return fmt.Errorf("%w: no command", errUsage)
	}
	if args[0] != "serve" {
		earlyhup.Release()
	}
	switch args[0] {
	case "serve":
		return cmdServe(ctx, args[1:], stderr)
	case "node":
		return cmdNode(ctx, args[1:], stdout, stderr)
	case "kernel":
		return cmdKernel(ctx, args[1:], stdout, stderr)
	case "media":
		return cmdMedia(ctx, args[1:], stdout, stderr)
	case "migrate":
		return cmdMigrate(ctx, args[1:], stdout, stderr)
	case "store":
		return cmdStore(args[1:], stdout, stderr)
	case "version", "--version":
		fmt.Fprintln(stdout, "bootstrapd", currentBuild())
		return nil
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprint(stderr, usage)
	return fmt.Errorf("%w: unknown command %q", errUsage, args[0])
}

// configPath is the file --config names: an explicit file must exist; the default (appliance.yaml) is used
// when present, else the built-in defaults (the same values).
func configPath(flagValue string, set bool) string {
	if set {
		return flagValue
	}
	if _, err := os.Stat(flagValue); err == nil {
		return flagValue
	}
	return ""
}

func flagWasSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

func parseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return l, fmt.Errorf("%q is not debug, info, warn or error", s)
	}
	return l, nil
}

func newLogger(w io.Writer, format, level string) *slog.Logger {
	l, _ := parseLevel(level)
	opts := &slog.HandlerOptions{Level: l}
	if strings.EqualFold(format, "json") {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

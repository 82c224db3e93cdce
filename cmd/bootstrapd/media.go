package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/threefoldtech/bootstrapd/ipxe"
	"github.com/threefoldtech/bootstrapd/ipxe/media"
	"github.com/threefoldtech/bootstrapd/store/kernels"
)

const mediaUsage = `Usage: bootstrapd media KIND --network N [--farm F] [--args A] [--kernel K] -o FILE
       bootstrapd media krn-generic|uefi-generic|krn-provision|uefi-provision -o FILE

Builds, offline, the same bytes as GET /KIND/<network>/<farm>/<args>/<kernel>.
KIND: iso usb uefimg uefi krn snponly. The script inside fetches the kernel from --base-url
(default http.public_url from --config); one of the two must be set.
`

func cmdMedia(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprint(stdout, mediaUsage)
		if len(args) == 0 {
			return fmt.Errorf("%w: media needs a kind", errUsage)
		}
		return nil
	}
	kindArg := args[0]
	fs := flag.NewFlagSet("media "+kindArg, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, mediaUsage) }
	cfgPath := fs.String("config", "appliance.yaml", "configuration `file`")
	baseURL := fs.String("base-url", "", "`URL` nodes reach the appliance at (default http.public_url)")
	network := fs.String("network", "", "network (prod, test, ...)")
	farm := fs.Uint64("farm", 0, "farm id")
	kargs := fs.String("args", "", "extra kernel arguments")
	kernel := fs.String("kernel", "", "kernel file under paths.kernels (default net/<network>.efi)")
	arch := fs.String("arch", "amd64", "EFI architecture of uefi media: amd64 or arm64")
	out := fs.String("o", "", "output `file`")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if *out == "" {
		return fmt.Errorf("%w: media needs -o FILE", errUsage)
	}
	cfg, err := loadConfig(configPath(*cfgPath, flagWasSet(fs, "config")))
	if err != nil {
		return err
	}
	base := *baseURL
	if base == "" {
		base = cfg.HTTP.PublicURL
	}
	if base == "" {
		return fmt.Errorf("%w: the medium must know where the appliance is: set --base-url or http.public_url", errUsage)
	}
	scripts, err := ipxe.NewScripts(cfg.scriptConfig())
	if err != nil {
		return fmt.Errorf("boot: %w", err)
	}

	var kind media.Kind
	var script []byte
	switch kindArg {
	case "krn-generic", "uefi-generic", "krn-provision", "uefi-provision":
		kind = media.KindKRN
		if strings.HasPrefix(kindArg, "uefi") {
			kind = media.KindUEFI
		}
		if strings.HasSuffix(kindArg, "-provision") {
			if script, err = scripts.Provision(base); err != nil {
				return err
			}
		}
	default:
		if kind, err = media.ParseKind(kindArg); err != nil {
			return fmt.Errorf("%w: %v", errUsage, err)
		}
		req := ipxe.BootRequest{Network: *network, Farm: *farm, Args: *kargs, Kernel: *kernel}
		if req.Network == "" {
			return fmt.Errorf("%w: media %s needs --network", errUsage, kindArg)
		}
		dir, err := kernels.Open(cfg.Paths.Kernels)
		if err != nil {
			return fmt.Errorf("paths.kernels: %w", err)
		}
		defer dir.Close()
		// The same policy as GET /<kind>/…, so the offline medium carries the served script.
		policy := ipxe.Policy{Scripts: scripts, Networks: cfg.Networks, Kernels: dir, Base: base}
		if script, err = policy.Boot(req); err != nil {
			return err
		}
	}
	a, err := media.ParseArch(*arch)
	if err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	// The medium's base URL decides which iPXE it carries (trustDir).
	cfg.HTTP.PublicURL = base
	builder, err := newMediaBuilder(cfg, slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn})), nil)
	if err != nil {
		return err
	}
	m, err := builder.Build(ctx, kind, script, media.Options{Arch: a})
	if err != nil {
		return err
	}
	if err := writeFileAtomic(*out, m); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s: %s, %d bytes, ETag %s\n", *out, kind, m.Size(), m.ETag)
	return nil
}

// writeFileAtomic writes beside path and renames over it after an fsync: an interrupted
// build never leaves a half-written image under the final name.
func writeFileAtomic(path string, src io.WriterTo) (err error) {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if _, err = src.WriteTo(tmp); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err = tmp.Sync(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err = tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err = os.Chmod(tmp.Name(), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err = os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

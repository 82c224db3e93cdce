package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"golang.org/x/sync/errgroup"

	"github.com/threefoldtech/bootstrapd/cmd/bootstrapd/internal/earlyhup"
	"github.com/threefoldtech/bootstrapd/dhcpd"
	"github.com/threefoldtech/bootstrapd/httpd"
	"github.com/threefoldtech/bootstrapd/ipxe"
	"github.com/threefoldtech/bootstrapd/ipxe/ipxelog"
	"github.com/threefoldtech/bootstrapd/ipxe/media"
	"github.com/threefoldtech/bootstrapd/store"
	"github.com/threefoldtech/bootstrapd/store/kernels"
	"github.com/threefoldtech/bootstrapd/store/timeline"
	"github.com/threefoldtech/bootstrapd/tftpd"
)

func cmdServe(ctx context.Context, args []string, stderr io.Writer) error {
	// Process-wide, so the program's choice rather than a constructor's: no route dump and
	// no debug warnings in the journal.
	gin.SetMode(gin.ReleaseMode)
	// SIGHUP has been caught since package initialisation (earlyhup); until the reload loop
	// runs, a HUP waits in its channel.
	hup := earlyhup.Signals()
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", "appliance.yaml", "configuration `file` (absent default file: built-in defaults)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: serve takes no arguments", errUsage)
	}
	cfg, err := loadConfig(configPath(*cfgPath, flagWasSet(fs, "config")))
	if err != nil {
		return err
	}
	log := newLogger(stderr, cfg.Log.Format, cfg.Log.Level)
	return serve(ctx, cfg, configPath(*cfgPath, flagWasSet(fs, "config")), log, hup)
}

// serve runs every listener until ctx ends. HTTP must bind; TFTP and DHCP on privileged
// ports may be refused to an ordinary user, which is one warning, not a failure. Each
// signal on hup reloads the configuration.
func serve(ctx context.Context, cfg Config, cfgPath string, log *slog.Logger, hup <-chan os.Signal) error {
	cat, err := ipxe.OpenCatalogue(cfg.Paths.IPXE)
	if err != nil {
		return fmt.Errorf("paths.ipxe: %w", err)
	}
	scripts, err := ipxe.NewScripts(cfg.scriptConfig())
	if err != nil {
		return fmt.Errorf("boot: %w", err)
	}
	if cfg.Boot.ArgsSuffix != "" {
		// The old default, kept in an old file, would override every operator's arguments.
		log.Warn("boot.args_suffix is appended after the operator's kernel arguments and overrides them; move arguments an operator may change to boot.base_args", "args_suffix", cfg.Boot.ArgsSuffix)
	}
	token, err := cfg.adminToken()
	if err != nil {
		return err
	}
	proxies, err := parseProxies(cfg.HTTP.TrustedProxies)
	if err != nil {
		return fmt.Errorf("http.trusted_proxies: %w", err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	newBuildInfo(reg)
	db, err := openStore(cfg, reg, log.With("service", "store"))
	if err != nil {
		return err
	}
	// Close writes the boot activity still in memory: SIGTERM loses none of it.
	defer func() {
		if err := db.Close(); err != nil {
			log.Error("close store", "err", err)
		}
	}()
	tl, err := timeline.NewRecorder(db, log.With("service", "timeline"), reg)
	if err != nil {
		return fmt.Errorf("timeline: %w", err)
	}
	// record is what the servers report boot stages to. With the syslog receiver on, the
	// addresses in those events also teach it which MAC sends from which address.
	record := tl.Record
	var neighbours *ipxelog.Neighbours
	if cfg.Syslog.Listen != "" {
		neighbours = ipxelog.NewNeighbours(cfg.Events.MaxDiscovered)
		record = func(e timeline.Event) { neighbours.Observe(e); tl.Record(e) }
	}

	builder, mediaErr := newMediaBuilder(cfg, log, reg)
	if mediaErr != nil {
		log.Warn("boot media endpoints off: they answer 503", "err", mediaErr)
	}
	kdir, err := openKernels(cfg.Paths.Kernels, log.With("service", "http"))
	if err != nil {
		return fmt.Errorf("paths.kernels: %w", err)
	}
	defer kdir.Close()
	puller, err := kernels.NewPuller(kernels.PullerConfig{
		Dir: kdir, Networks: slices.Sorted(maps.Keys(cfg.Networks)), Registerer: reg,
		Logger: log.With("service", "kernels"),
	})
	if err != nil {
		return fmt.Errorf("kernels: %w", err)
	}
	web, err := httpd.New(httpd.Config{
		Addr:          cfg.HTTP.Listen,
		PublicURL:     cfg.HTTP.PublicURL,
		Networks:      cfg.Networks,
		Kernels:       kdir,
		Binaries:      cat,
		Scripts:       scripts,
		Nodes:         db,
		Default:       httpd.DefaultNode{Network: cfg.DefaultNode.Network, Farm: cfg.DefaultNode.Farm, Args: cfg.DefaultNode.Args},
		AdminSocket:   cfg.Admin.Socket,
		AdminToken:    token,
		Logger:        log.With("service", "http"),
		Registerer:    reg,
		Gatherer:      reg,
		Timeline:      record,
		ShutdownGrace: cfg.HTTP.ShutdownGrace,
		StuckAfter:    cfg.Events.StuckAfter,
		Media:         builder,
		MediaErr:      mediaErr,

		ReadHeaderTimeout: cfg.HTTP.ReadHeaderTimeout,
		IdleTimeout:       cfg.HTTP.IdleTimeout,
		WriteTimeout:      cfg.HTTP.WriteTimeout,
		MaxHeaderBytes:    cfg.HTTP.MaxHeaderBytes,
		MaxConnections:    cfg.HTTP.MaxConnections,
		TrustedProxies:    proxies,
		TLSAddr:           cfg.HTTP.TLSListen,
		TLSCertFile:       cfg.HTTP.TLSCert,
		TLSKeyFile:        cfg.HTTP.TLSKey,
		Puller:            puller,
	})
	if err != nil {
		return fmt.Errorf("http.listen: %w", err)
	}
	httpPort := web.Addr().(*net.TCPAddr).Port
	log.Info("listening", "service", "http", "addr", web.Addr().String())
	if a := web.TLSAddr(); a != nil {
		log.Info("listening", "service", "https", "addr", a.String())
	}
	if s := web.AdminSocket(); s != "" {
		log.Info("listening", "service", "admin", "socket", s)
	}

	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return web.Serve(ctx) })
	// The store's own context outlives the servers': its last flush (in Close) comes after
	// every server has stopped adding activity.
	storeCtx, stopStore := context.WithCancel(context.WithoutCancel(ctx))
	defer stopStore()
	go db.Run(storeCtx)

	tftp, err := tftpd.New(tftpd.Config{
		Addr: cfg.TFTP.Listen,
		// TFTP serves the LAN the ProxyDHCP sends nodes to.
		Interfaces:   cfg.DHCP.Interfaces,
		MaxTransfers: cfg.TFTP.MaxTransfers,
		MaxPerSource: cfg.TFTP.MaxPerSource,
		Grace:        cfg.HTTP.ShutdownGrace,
		Files:        cat,
		Logger:       log.With("service", "tftp"),
		Registerer:   reg,
		Timeline:     record,
	})
	switch {
	case errors.Is(err, os.ErrPermission):
		log.Warn("TFTP not started: binding a privileged port needs root or CAP_NET_BIND_SERVICE; serving the rest", "addr", cfg.TFTP.Listen)
	case err != nil:
		return stopWith(g, fmt.Errorf("tftp.listen: %w", err))
	default:
		log.Info("listening", "service", "tftp", "addr", tftp.Addr().String())
		g.Go(func() error { return tftp.Serve(ctx) })
	}

	if cfg.DHCP.Enabled {
		dhcp, err := dhcpd.New(dhcpd.Config{
			Interfaces: cfg.DHCP.Interfaces,
			HTTPPort:   httpPort,
			PublicURL:  cfg.HTTP.PublicURL,
			Files:      cat,
			EFIChoice:  efiChoice(db, cfg.DHCP.EFIBinary),
			Logger:     log.With("service", "dhcp"),
			Registerer: reg,
			Timeline:   record,
		})
		switch {
		case errors.Is(err, os.ErrPermission):
			log.Warn("ProxyDHCP not started: binding ports 67 and 4011 needs root or CAP_NET_BIND_SERVICE; serving the rest")
		case err != nil:
			return stopWith(g, fmt.Errorf("dhcp: %w", err))
		default:
			for _, a := range dhcp.Addrs() {
				log.Info("listening", "service", "dhcp", "addr", a.String())
			}
			g.Go(func() error { return dhcp.Serve(ctx) })
		}
	}

	if len(cfg.Kernels.Upstream) > 0 {
		g.Go(func() error { puller.Run(ctx, cfg.Kernels.Upstream, cfg.Kernels.Refresh); return nil })
	}
	if neighbours != nil {
		rx, err := ipxelog.New(ipxelog.Config{
			Addr: cfg.Syslog.Listen, Neighbours: neighbours, Timeline: tl.Record,
			Registerer: reg, Logger: log.With("service", "syslog"),
		})
		switch {
		case errors.Is(err, os.ErrPermission):
			log.Warn("iPXE syslog receiver not started: binding a privileged port needs root or CAP_NET_BIND_SERVICE; serving the rest", "addr", cfg.Syslog.Listen)
		case err != nil:
			return stopWith(g, fmt.Errorf("syslog.listen: %w", err))
		default:
			log.Info("listening", "service", "syslog", "addr", rx.Addr().String())
			g.Go(func() error { return rx.Serve(ctx) })
		}
	}
	notify("READY=1\nSTATUS=serving on http " + strconv.Itoa(httpPort))
	g.Go(func() error { reloadOnHUP(ctx, hup, cfgPath, web, log); return nil })
	<-ctx.Done()
	notify("STOPPING=1")
	log.Info("shutting down")
	return g.Wait()
}

// stopWith ends the services already started and returns err.
func stopWith(g *errgroup.Group, err error) error {
	g.Go(func() error { return err })
	return g.Wait()
}

// reloadOnHUP re-reads the configuration on SIGHUP and applies what can change without a
// restart: networks and default_node (kernels are read from disk at each request anyway), and
// the TLS certificate and key files.
// A bad file is logged and changes nothing; transfers in flight are never touched.
func reloadOnHUP(ctx context.Context, hup <-chan os.Signal, path string, web *httpd.Server, log *slog.Logger) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
		}
		// The certificate first: its files are renewed in place (same paths), so a bad
		// configuration file must not hold a renewed certificate back.
		if err := web.ReloadTLS(); err != nil {
			log.Error("TLS certificate reload refused, the previous one stays", "err", err)
		}
		cfg, err := loadConfig(path)
		if err != nil {
			log.Error("reload refused, configuration unchanged", "err", err)
			continue
		}
		web.Reload(cfg.Networks, httpd.DefaultNode{Network: cfg.DefaultNode.Network, Farm: cfg.DefaultNode.Farm, Args: cfg.DefaultNode.Args})
		log.Info("reloaded networks and default_node (other keys need a restart)", "networks", len(cfg.Networks))
	}
}

// newMediaBuilder builds the media templates. Missing syslinux files or an unbuilt
// paths.ipxe_embed do not stop the appliance: the LAN boot needs neither.
func newMediaBuilder(cfg Config, log *slog.Logger, reg prometheus.Registerer) (httpd.MediaBuilder, error) {
	embed := cfg.Paths.IPXEEmbed
	if st, err := os.Stat(embed); embed != "" && (err != nil || !st.IsDir()) {
		log.Warn("paths.ipxe_embed is missing: /uefi/, /uefi-generic and /uefi-provision answer 503 (run make embed)", "dir", embed)
		embed = ""
	}
	b, err := media.New(media.Config{
		IPXEDir:         cfg.Paths.IPXE,
		IsolinuxDir:     cfg.Paths.Isolinux,
		SyslinuxBIOSDir: cfg.Paths.SyslinuxBIOS,
		EmbedDir:        embed,
		TrustDir:        trustDir(cfg),
		CacheBytes:      cfg.Media.CacheBytes,
		Logger:          log.With("service", "media"),
		Registerer:      reg,
	})
	if err != nil {
		return nil, err
	}
	return b, nil
}

// efiChoice is the ProxyDHCP's EFI binary choice for a MAC: its record's efi_binary, else
// global (dhcp.efi_binary). A failed lookup counts as no record: the firmware must get an
// answer either way.
func efiChoice(nodes interface {
	GetNode(mac string) (store.Node, error)
}, global string) func(mac string) string {
	return func(mac string) string {
		if n, err := nodes.GetNode(mac); err == nil && n.EFIBinary != "" {
			return n.EFIBinary
		}
		return global
	}
}

// trustDir is paths.ipxe_trust when media point at an https:// base URL: stock iPXE would
// need ca.ipxe.org's cross-signed certificates to trust it, the trusted build does not.
func trustDir(cfg Config) string {
	if strings.HasPrefix(cfg.HTTP.PublicURL, "https://") {
		return cfg.Paths.IPXETrust
	}
	return ""
}

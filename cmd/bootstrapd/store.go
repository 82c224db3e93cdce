package main

import (
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/threefoldtech/bootstrapd/store"
	"github.com/threefoldtech/bootstrapd/store/etcdstore"
)

// storeOptions are the activity bounds of the configuration, for either backend.
func (c *Config) storeOptions(reg prometheus.Registerer, log *slog.Logger) store.Options {
	return store.Options{
		MaxEvents:           c.Events.Keep,
		MaxDiscoveredEvents: c.Events.KeepUnknown,
		MaxDiscovered:       c.Events.MaxDiscovered,
		EventTTL:            c.Events.ExpireAfter,
		FlushInterval:       c.Events.FlushInterval,
		Registerer:          reg,
		Logger:              log,
	}
}

// etcdCopyFile keeps the etcd backend's copy of the records, for a start while etcd is down.
func (c *Config) etcdCopyFile() string { return filepath.Join(c.Paths.Data, "etcd-copy.json") }

// openStore opens the backend store.backend names.
func openStore(cfg Config, reg prometheus.Registerer, log *slog.Logger) (store.Store, error) {
	opts := cfg.storeOptions(reg, log)
	if cfg.Store.Backend != backendEtcd {
		db, err := store.Open(cfg.dbPath(), opts)
		if err != nil {
			return nil, fmt.Errorf("paths.data: %w", err)
		}
		return db, nil
	}
	return openEtcd(cfg, cfg.Store.Etcd.Endpoints, cfg.etcdCopyFile(), opts)
}

// openEtcd opens the etcd backend of cfg on endpoints; cacheFile "" keeps no copy on disk.
func openEtcd(cfg Config, endpoints []string, cacheFile string, opts store.Options) (*etcdstore.DB, error) {
	e := cfg.Store.Etcd
	tlsCfg, err := etcdstore.LoadTLS(e.TLS.CA, e.TLS.Cert, e.TLS.Key)
	if err != nil {
		return nil, fmt.Errorf("store.etcd.tls: %w", err)
	}
	name, err := cfg.applianceName()
	if err != nil {
		return nil, err
	}
	db, err := etcdstore.Open(etcdstore.Config{
		Endpoints:   endpoints,
		Prefix:      e.Prefix,
		DialTimeout: e.DialTimeout,
		TLS:         tlsCfg,
		Name:        name,
		CacheFile:   cacheFile,
		Options:     opts,
	})
	if err != nil {
		return nil, fmt.Errorf("store.etcd: %w", err)
	}
	return db, nil
}

// cmdStore runs `bootstrapd store copy`.
func cmdStore(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "copy" {
		fmt.Fprint(stderr, storeUsage)
		return fmt.Errorf("%w: store takes copy", errUsage)
	}
	fs := flag.NewFlagSet("store copy", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, storeUsage); fs.PrintDefaults() }
	from := fs.String("from", "", "source: bbolt:PATH or etcd:URL[,URL...]")
	to := fs.String("to", "", "destination: bbolt:PATH or etcd:URL[,URL...]")
	cfgPath := fs.String("config", "appliance.yaml", "configuration `file` whose store.etcd keys (prefix, tls, dial_timeout, name) apply")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if fs.NArg() > 0 || *from == "" || *to == "" {
		return fmt.Errorf("%w: store copy needs --from and --to, and no arguments", errUsage)
	}
	cfg := defaultConfig()
	if p := configPath(*cfgPath, flagWasSet(fs, "config")); p != "" {
		var err error
		if cfg, err = parseConfigFile(p); err != nil {
			return err
		}
	}
	// The keys that apply to a copy, whatever the backend the file runs.
	cfg.Store.Backend = backendEtcd
	src, err := openSpec(cfg, *from, true)
	if err != nil {
		return fmt.Errorf("--from: %w", err)
	}
	defer src.Close()
	dst, err := openSpec(cfg, *to, false)
	if err != nil {
		return fmt.Errorf("--to: %w", err)
	}
	defer dst.Close()
	d, err := store.ReadDump(src)
	if err != nil {
		return fmt.Errorf("read %s: %w", *from, err)
	}
	if err := dst.(store.Restorer).Restore(d); err != nil {
		return fmt.Errorf("write %s: %w", *to, err)
	}
	if err := dst.Close(); err != nil {
		return fmt.Errorf("write %s: %w", *to, err)
	}
	events := 0
	for _, evs := range d.Events {
		events += len(evs)
	}
	fmt.Fprintf(stdout, "copied %d records, %d seen MACs, %d events from %s to %s\n", len(d.Nodes), len(d.Seen), events, *from, *to)
	return nil
}

const storeUsage = `Usage:
  bootstrapd store copy --from bbolt:PATH|etcd:URL[,URL...] --to bbolt:PATH|etcd:URL[,URL...] [--config FILE]

Copies node records, seen MACs and boot events; running it again changes nothing. A bbolt
file must not be open by a running daemon (stop it first). The etcd side uses the config
file's store.etcd prefix, tls, dial_timeout and name.
`

// storeRestorer is a store a copy can write to.
type storeRestorer interface {
	store.Store
	store.Restorer
}

// openSpec opens bbolt:PATH or etcd:URL[,URL...].
func openSpec(cfg Config, spec string, source bool) (storeRestorer, error) {
	kind, rest, ok := strings.Cut(spec, ":")
	if !ok || rest == "" {
		return nil, fmt.Errorf("%w: %q: want bbolt:PATH or etcd:URL[,URL...]", errUsage, spec)
	}
	opts := cfg.storeOptions(nil, nil)
	switch kind {
	case backendBbolt:
		// Never a new empty file for a mistyped source: the copy would "succeed" with nothing.
		if source {
			if _, err := os.Stat(rest); err != nil {
				return nil, err
			}
		}
		db, err := store.Open(rest, opts)
		if err != nil {
			return nil, err
		}
		return db, nil
	case backendEtcd:
		eps := strings.Split(rest, ",")
		for _, ep := range eps {
			if err := checkEndpoint(ep); err != nil {
				return nil, fmt.Errorf("%w: %w", errUsage, err)
			}
		}
		return openEtcd(cfg, eps, "", opts)
	}
	return nil, fmt.Errorf("%w: %q: want bbolt:PATH or etcd:URL[,URL...]", errUsage, spec)
}

package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/threefoldtech/bootstrapd/httpd"
	"github.com/threefoldtech/bootstrapd/ipxe"
	"github.com/threefoldtech/bootstrapd/ipxe/media"
	"github.com/threefoldtech/bootstrapd/store"
	"github.com/threefoldtech/bootstrapd/store/etcdstore"
	"github.com/threefoldtech/bootstrapd/store/kernels"
	"github.com/threefoldtech/bootstrapd/tftpd"
)

// Config mirrors appliance.yaml; the file documents each key.
type Config struct {
	HTTP struct {
		Listen            string        `yaml:"listen"`
		PublicURL         string        `yaml:"public_url"`
		ShutdownGrace     time.Duration `yaml:"shutdown_grace"`
		ReadHeaderTimeout time.Duration `yaml:"read_header_timeout"`
		IdleTimeout       time.Duration `yaml:"idle_timeout"`
		WriteTimeout      time.Duration `yaml:"write_timeout"`
		MaxHeaderBytes    int           `yaml:"max_header_bytes"`
		MaxConnections    int           `yaml:"max_connections"`
		TrustedProxies    []string      `yaml:"trusted_proxies"`
		TLSListen         string        `yaml:"tls_listen"`
		TLSCert           string        `yaml:"tls_cert"`
		TLSKey            string        `yaml:"tls_key"`
	} `yaml:"http"`
	TFTP struct {
		Listen       string `yaml:"listen"`
		MaxTransfers int    `yaml:"max_transfers"`
		MaxPerSource int    `yaml:"max_per_source"`
	} `yaml:"tftp"`
	DHCP struct {
		Enabled    bool     `yaml:"enabled"`
		Interfaces []string `yaml:"interfaces"`
		EFIBinary  string   `yaml:"efi_binary"`
	} `yaml:"dhcp"`
	Paths struct {
		Data         string `yaml:"data"`
		Kernels      string `yaml:"kernels"`
		IPXE         string `yaml:"ipxe"`
		IPXEEmbed    string `yaml:"ipxe_embed"`
		IPXETrust    string `yaml:"ipxe_trust"`
		Isolinux     string `yaml:"isolinux"`
		SyslinuxBIOS string `yaml:"syslinux_bios"`
	} `yaml:"paths"`
	Kernels struct {
		Upstream map[string]string `yaml:"upstream"`
		Refresh  time.Duration     `yaml:"refresh"`
	} `yaml:"kernels"`
	Media struct {
		CacheBytes int64 `yaml:"cache_bytes"`
	} `yaml:"media"`
	Syslog struct {
		Listen  string `yaml:"listen"`
		Address string `yaml:"address"`
	} `yaml:"syslog"`
	Networks map[string]string `yaml:"networks"`
	Admin    struct {
		Socket    string `yaml:"socket"`
		TokenFile string `yaml:"token_file"`
	} `yaml:"admin"`
	DefaultNode struct {
		Network string `yaml:"network"`
		Farm    uint64 `yaml:"farm"`
		Args    string `yaml:"args"`
	} `yaml:"default_node"`
	Boot struct {
		BaseArgs     string `yaml:"base_args"`
		ArgsSuffix   string `yaml:"args_suffix"`
		NTP          string `yaml:"ntp"`
		RetrySeconds int    `yaml:"retry_seconds"`
	} `yaml:"boot"`
	Events struct {
		Keep          int           `yaml:"keep"`
		KeepUnknown   int           `yaml:"keep_unknown"`
		StuckAfter    time.Duration `yaml:"stuck_after"`
		MaxDiscovered int           `yaml:"max_discovered"`
		ExpireAfter   time.Duration `yaml:"expire_after"`
		FlushInterval time.Duration `yaml:"flush_interval"`
	} `yaml:"events"`
	Store struct {
		Backend string `yaml:"backend"`
		Etcd    struct {
			Endpoints   []string      `yaml:"endpoints"`
			Prefix      string        `yaml:"prefix"`
			DialTimeout time.Duration `yaml:"dial_timeout"`
			Name        string        `yaml:"name"`
			TLS         struct {
				CA   string `yaml:"ca"`
				Cert string `yaml:"cert"`
				Key  string `yaml:"key"`
			} `yaml:"tls"`
		} `yaml:"etcd"`
	} `yaml:"store"`
	Log struct {
		Format string `yaml:"format"`
		Level  string `yaml:"level"`
	} `yaml:"log"`
}

// defaultConfig is the configuration with no file; appliance.yaml in the repository spells
// out the same values (a test keeps them equal).
func defaultConfig() Config {
	var c Config
	c.HTTP.Listen = httpd.DefaultAddr
	c.HTTP.ShutdownGrace = httpd.DefaultShutdownGrace
	c.HTTP.ReadHeaderTimeout = httpd.DefaultReadHeaderTimeout
	c.HTTP.IdleTimeout = httpd.DefaultIdleTimeout
	c.HTTP.WriteTimeout = httpd.DefaultWriteTimeout
	c.HTTP.MaxHeaderBytes = httpd.DefaultMaxHeaderBytes
	c.HTTP.MaxConnections = httpd.DefaultMaxConnections
	c.TFTP.Listen = tftpd.DefaultAddr
	c.TFTP.MaxTransfers = tftpd.DefaultMaxTransfers
	c.TFTP.MaxPerSource = tftpd.DefaultMaxPerSource
	c.DHCP.Enabled = true
	c.DHCP.EFIBinary = ipxe.EFIBinaryIPXE
	c.Paths.Data = "./var"
	c.Paths.Kernels = "./var/kernels"
	c.Paths.IPXE = "./var/ipxe"
	c.Paths.IPXEEmbed = "./var/ipxe-embed"
	c.Paths.IPXETrust = "./var/ipxe-trust"
	c.Paths.Isolinux = media.DefaultIsolinuxDir
	c.Paths.SyslinuxBIOS = media.DefaultSyslinuxBIOS
	c.Media.CacheBytes = media.DefaultCacheBytes
	c.Kernels.Upstream = map[string]string{}
	c.Kernels.Refresh = time.Hour
	c.Networks = map[string]string{
		"prod": "production (v3)", "test": "testing (v3)", "dev": "development (v3)", "qa": "qa-network (v3)",
	}
	c.Admin.Socket = "./var/admin.sock"
	c.Boot.BaseArgs = "nomodeset panic=7200"
	c.Boot.NTP = "pool.ntp.org"
	c.Boot.RetrySeconds = 30
	c.Events.Keep = store.DefaultMaxEvents
	c.Events.KeepUnknown = store.DefaultMaxDiscoveredEvents
	c.Events.StuckAfter = httpd.DefaultStuckAfter
	c.Events.MaxDiscovered = store.DefaultMaxDiscovered
	c.Events.ExpireAfter = store.DefaultEventTTL
	c.Events.FlushInterval = store.DefaultFlushInterval
	c.Store.Backend = backendBbolt
	c.Store.Etcd.Endpoints = []string{}
	c.Store.Etcd.Prefix = etcdstore.DefaultPrefix
	c.Store.Etcd.DialTimeout = etcdstore.DefaultDialTimeout
	c.Log.Format = "text"
	c.Log.Level = "info"
	return c
}

// parseConfig reads YAML over the defaults. Unknown keys are errors naming the key.
func parseConfig(r io.Reader) (Config, error) {
	c := defaultConfig()
	data, err := io.ReadAll(r)
	if err != nil {
		return c, err
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return c, nil
	}
	// A networks map in the file replaces the default one rather than merging into it.
	c.Networks = nil
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil && !errors.Is(err, io.EOF) {
		return c, err
	}
	if c.Networks == nil {
		c.Networks = defaultConfig().Networks
	}
	return c, nil
}

// parseConfigFile is parseConfig on a file, with the file named in errors.
func parseConfigFile(path string) (Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return defaultConfig(), fmt.Errorf("config: %w", err)
	}
	defer f.Close()
	c, err := parseConfig(f)
	if err != nil {
		return c, fmt.Errorf("config %s: %w", path, err)
	}
	return c, nil
}

// loadConfig reads and validates path; path "" means the built-in defaults. Relative paths in
// the file stay relative to the working directory, as `make run` expects.
func loadConfig(path string) (Config, error) {
	c := defaultConfig()
	if path != "" {
		var err error
		if c, err = parseConfigFile(path); err != nil {
			return c, err
		}
	}
	if err := c.validate(); err != nil {
		if path == "" {
			path = "built-in defaults"
		}
		return c, fmt.Errorf("config %s: %w", path, err)
	}
	return c, nil
}

// validate checks values that parsing cannot; each error names its key. It changes nothing
// (serve creates the data directory when it opens the store) and reads only the two
// directories every command needs.
func (c *Config) validate() error {
	for _, kv := range [][2]string{{"http.listen", c.HTTP.Listen}, {"tftp.listen", c.TFTP.Listen}} {
		if err := checkListen(kv[1]); err != nil {
			return fmt.Errorf("%s: %w", kv[0], err)
		}
	}
	if err := c.validateTLS(); err != nil {
		return err
	}
	if c.HTTP.PublicURL != "" {
		if _, err := ipxe.ValidateBaseURL(c.HTTP.PublicURL); err != nil {
			return fmt.Errorf("http.public_url: %w", err)
		}
	}
	if _, err := parseProxies(c.HTTP.TrustedProxies); err != nil {
		return fmt.Errorf("http.trusted_proxies: %w", err)
	}
	for _, lim := range []struct {
		key       string
		v, lo, hi int
	}{
		{"http.max_header_bytes", c.HTTP.MaxHeaderBytes, 1 << 10, 1 << 20},
		{"http.max_connections", c.HTTP.MaxConnections, 16, 1 << 20},
		{"tftp.max_transfers", c.TFTP.MaxTransfers, 1, 1 << 16},
		{"tftp.max_per_source", c.TFTP.MaxPerSource, 1, 1 << 16},
		{"events.max_discovered", c.Events.MaxDiscovered, 1, 10_000_000},
	} {
		if lim.v < lim.lo || lim.v > lim.hi {
			return fmt.Errorf("%s: %d is not between %d and %d", lim.key, lim.v, lim.lo, lim.hi)
		}
	}
	for _, d := range []struct {
		key    string
		v, min time.Duration
	}{
		{"http.read_header_timeout", c.HTTP.ReadHeaderTimeout, time.Second},
		{"http.idle_timeout", c.HTTP.IdleTimeout, time.Second},
		{"http.write_timeout", c.HTTP.WriteTimeout, time.Second},
		{"events.expire_after", c.Events.ExpireAfter, time.Hour},
		{"events.flush_interval", c.Events.FlushInterval, 10 * time.Millisecond},
	} {
		if d.v < d.min {
			return fmt.Errorf("%s: %v is shorter than %v", d.key, d.v, d.min)
		}
	}
	if c.Events.FlushInterval > time.Minute {
		return fmt.Errorf("events.flush_interval: %v is longer than 1m (a kill -9 loses up to one interval of boot events)", c.Events.FlushInterval)
	}
	// Interface names are checked where they are used (dhcpd.New, tftpd.New): validate
	// stays pure, so `bootstrapd media` works on a machine without them.
	for _, name := range c.DHCP.Interfaces {
		if name == "" || strings.ContainsAny(name, "/ \x00") || len(name) > 15 {
			return fmt.Errorf("dhcp.interfaces: %q is not an interface name", name)
		}
	}
	if len(c.Networks) == 0 {
		return errors.New("networks: at least one network is needed")
	}
	for name, display := range c.Networks {
		if err := ipxe.ValidateNetwork(name); err != nil {
			return fmt.Errorf("networks: %w", err)
		}
		if err := ipxe.ValidateDisplay(display); err != nil {
			return fmt.Errorf("networks.%s: display name: %w", name, err)
		}
	}
	// net/<n>-arm64.efi is n's arm64 kernel: no network may be called <n>-arm64 beside n.
	if err := ipxe.CheckNetworkNames(c.Networks); err != nil {
		return fmt.Errorf("networks: %w", err)
	}
	if c.Paths.Data == "" {
		return errors.New("paths.data: must be set")
	}
	for _, kv := range [][2]string{{"paths.kernels", c.Paths.Kernels}, {"paths.ipxe", c.Paths.IPXE}} {
		st, err := os.Stat(kv[1])
		if err != nil || !st.IsDir() {
			return fmt.Errorf("%s: %q is not a directory (create it; `make run` does)", kv[0], kv[1])
		}
	}
	for key, u := range c.Kernels.Upstream {
		// "prod" feeds net/prod.efi, "prod-arm64" net/prod-arm64.efi.
		network, _ := kernels.SplitUpstreamKey(key)
		if _, ok := c.Networks[network]; !ok {
			return fmt.Errorf("kernels.upstream: %q is not a network in networks (nor <network>-arm64)", key)
		}
		if err := kernels.ValidateUpstream(u); err != nil {
			return fmt.Errorf("kernels.upstream.%s: %w", key, err)
		}
	}
	if c.Kernels.Refresh < time.Minute || c.Kernels.Refresh > 7*24*time.Hour {
		return fmt.Errorf("kernels.refresh: %v is not between 1m and 168h", c.Kernels.Refresh)
	}
	if c.Syslog.Listen != "" {
		if err := checkListen(c.Syslog.Listen); err != nil {
			return fmt.Errorf("syslog.listen: %w", err)
		}
	}
	if a := c.Syslog.Address; a != "" {
		if ip, err := netip.ParseAddr(a); err != nil || !ip.Is4() {
			return fmt.Errorf("syslog.address: %q is not an IPv4 address (iPXE's syslog setting takes one)", a)
		}
	}
	if c.Media.CacheBytes < 0 {
		return fmt.Errorf("media.cache_bytes: %d is negative (0 turns the cache off)", c.Media.CacheBytes)
	}
	if c.Admin.Socket != "" && len(c.Admin.Socket) > 100 {
		return fmt.Errorf("admin.socket: %q is too long for a unix socket path", c.Admin.Socket)
	}
	if dn := c.DefaultNode; dn.Network != "" {
		if _, ok := c.Networks[dn.Network]; !ok {
			return fmt.Errorf("default_node.network: %q is not in networks", dn.Network)
		}
		if dn.Farm == 0 {
			return errors.New("default_node.farm: must be a positive integer when default_node.network is set")
		}
	}
	if err := ipxe.ValidateArgs(c.DefaultNode.Args); err != nil {
		return fmt.Errorf("default_node.args: %w", err)
	}
	if c.DHCP.EFIBinary == "" {
		return fmt.Errorf("dhcp.efi_binary: empty: want %q or %q", ipxe.EFIBinaryIPXE, ipxe.EFIBinarySNPOnly)
	}
	if err := ipxe.ValidateEFIBinary(c.DHCP.EFIBinary); err != nil {
		return fmt.Errorf("dhcp.efi_binary: %w", err)
	}
	if err := ipxe.ValidateArgs(c.Boot.BaseArgs); err != nil {
		return fmt.Errorf("boot.base_args: %w", err)
	}
	if err := ipxe.ValidateArgs(c.Boot.ArgsSuffix); err != nil {
		return fmt.Errorf("boot.args_suffix: %w", err)
	}
	if c.Boot.RetrySeconds < 1 || c.Boot.RetrySeconds > 3600 {
		return fmt.Errorf("boot.retry_seconds: %d is not between 1 and 3600", c.Boot.RetrySeconds)
	}
	if c.HTTP.ShutdownGrace < 0 || c.HTTP.ShutdownGrace > 10*time.Minute {
		return fmt.Errorf("http.shutdown_grace: %v is not between 0 and 10m", c.HTTP.ShutdownGrace)
	}
	if c.Events.Keep < 1 || c.Events.Keep > 10000 {
		return fmt.Errorf("events.keep: %d is not between 1 and 10000", c.Events.Keep)
	}
	if c.Events.KeepUnknown < 1 || c.Events.KeepUnknown > c.Events.Keep {
		return fmt.Errorf("events.keep_unknown: %d is not between 1 and events.keep (%d)", c.Events.KeepUnknown, c.Events.Keep)
	}
	if c.Events.StuckAfter < time.Minute {
		return fmt.Errorf("events.stuck_after: %v is shorter than 1m", c.Events.StuckAfter)
	}
	if err := c.validateStore(); err != nil {
		return err
	}
	if c.Log.Format != "text" && c.Log.Format != "json" {
		return fmt.Errorf("log.format: %q is not text or json", c.Log.Format)
	}
	if _, err := parseLevel(c.Log.Level); err != nil {
		return fmt.Errorf("log.level: %w", err)
	}
	return nil
}

// validateTLS checks the http.tls_* keys belong together. The files themselves are read by
// serve (a `bootstrapd node` run by another user need not be able to read the key).
func (c *Config) validateTLS() error {
	h := c.HTTP
	if h.TLSListen == "" {
		if h.TLSCert != "" || h.TLSKey != "" {
			return errors.New("http.tls_cert, http.tls_key: set only with http.tls_listen")
		}
		return nil
	}
	if err := checkListen(h.TLSListen); err != nil {
		return fmt.Errorf("http.tls_listen: %w", err)
	}
	if h.TLSCert == "" || h.TLSKey == "" {
		return errors.New("http.tls_listen: needs http.tls_cert and http.tls_key (PEM files)")
	}
	if h.TLSListen == h.Listen {
		return fmt.Errorf("http.tls_listen: %q is http.listen too", h.TLSListen)
	}
	return nil
}

// parseProxies reads http.trusted_proxies: addresses or CIDR prefixes.
func parseProxies(list []string) ([]netip.Prefix, error) {
	out := make([]netip.Prefix, 0, len(list))
	for _, s := range list {
		if p, err := netip.ParsePrefix(s); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(s)
		if err != nil || a.Zone() != "" {
			return nil, fmt.Errorf("%q is not an IP address or CIDR prefix", s)
		}
		out = append(out, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
	}
	return out, nil
}

func checkListen(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%q: %w", addr, err)
	}
	if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
		return fmt.Errorf("%q: port %q is not a number from 0 to 65535", addr, port)
	}
	if host != "" && net.ParseIP(host) == nil {
		return fmt.Errorf("%q: host %q is not an IP address", addr, host)
	}
	return nil
}

// adminToken reads admin.token_file; "" when none is configured.
func (c *Config) adminToken() (string, error) {
	if c.Admin.TokenFile == "" {
		return "", nil
	}
	b, err := os.ReadFile(c.Admin.TokenFile)
	if err != nil {
		return "", fmt.Errorf("admin.token_file: %w", err)
	}
	tok := strings.TrimSpace(string(b))
	if len(tok) < 16 {
		return "", fmt.Errorf("admin.token_file: %s holds a token shorter than 16 characters", c.Admin.TokenFile)
	}
	return tok, nil
}

func (c *Config) dbPath() string { return filepath.Join(c.Paths.Data, "bootstrapd.db") }

// scriptConfig is the boot scripts' part of the configuration, the same for the daemon and
// the offline media builder.
func (c Config) scriptConfig() ipxe.ScriptConfig {
	return ipxe.ScriptConfig{
		BaseArgs: c.Boot.BaseArgs, ArgsSuffix: c.Boot.ArgsSuffix,
		NTPServer: c.Boot.NTP, RetrySeconds: c.Boot.RetrySeconds,
		Syslog: c.syslogAddress(),
	}
}

// syslogAddress is where scripts tell iPXE to log: syslog.address, else syslog.listen's
// host when that is one IPv4 address; "" (scripts do not set it) otherwise.
func (c Config) syslogAddress() string {
	if c.Syslog.Address != "" {
		return c.Syslog.Address
	}
	host, _, err := net.SplitHostPort(c.Syslog.Listen)
	if ip, perr := netip.ParseAddr(host); err == nil && perr == nil && ip.Is4() && !ip.IsUnspecified() {
		return ip.String()
	}
	return ""
}

// The values of store.backend.
const (
	backendBbolt = "bbolt"
	backendEtcd  = "etcd"
)

// validateStore checks the store keys; the etcd ones only when etcd is the backend.
func (c *Config) validateStore() error {
	switch c.Store.Backend {
	case backendBbolt:
		return nil
	case backendEtcd:
	default:
		return fmt.Errorf("store.backend: %q is not bbolt or etcd", c.Store.Backend)
	}
	e := c.Store.Etcd
	if len(e.Endpoints) == 0 {
		return errors.New("store.etcd.endpoints: at least one is needed with store.backend etcd")
	}
	for _, ep := range e.Endpoints {
		if err := checkEndpoint(ep); err != nil {
			return fmt.Errorf("store.etcd.endpoints: %w", err)
		}
	}
	if !strings.HasPrefix(e.Prefix, "/") || !strings.HasSuffix(e.Prefix, "/") || strings.ContainsAny(e.Prefix, "\x00\n") {
		return fmt.Errorf("store.etcd.prefix: %q must start and end with /", e.Prefix)
	}
	if e.DialTimeout < 100*time.Millisecond || e.DialTimeout > time.Minute {
		return fmt.Errorf("store.etcd.dial_timeout: %v is not between 100ms and 1m", e.DialTimeout)
	}
	if e.Name != "" && !etcdstore.ValidName(e.Name) {
		return fmt.Errorf("store.etcd.name: %q: want 1 to 32 of A-Z a-z 0-9 . _ - (empty: the host name)", e.Name)
	}
	if (e.TLS.Cert == "") != (e.TLS.Key == "") {
		return errors.New("store.etcd.tls: cert and key go together")
	}
	return nil
}

// checkEndpoint accepts http://host:port and https://host:port, nothing more: a path or a
// query would be ignored by the etcd client, silently.
func checkEndpoint(ep string) error {
	u, err := url.Parse(ep)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Port() == "" ||
		(u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.User != nil {
		return fmt.Errorf("%q: want http://host:port or https://host:port", ep)
	}
	return nil
}

// applianceName is store.etcd.name, or the host name cut to a valid name.
func (c *Config) applianceName() (string, error) {
	if c.Store.Etcd.Name != "" {
		return c.Store.Etcd.Name, nil
	}
	h, err := os.Hostname()
	if err != nil {
		return "", fmt.Errorf("store.etcd.name: empty, and no host name: %w", err)
	}
	h, _, _ = strings.Cut(h, ".")
	if len(h) > 32 {
		h = h[:32]
	}
	if !etcdstore.ValidName(h) {
		return "", fmt.Errorf("store.etcd.name: empty, and the host name %q is not a valid name: set one", h)
	}
	return h, nil
}

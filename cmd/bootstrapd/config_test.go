package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// The documented appliance.yaml and the built-in defaults must never drift apart: the README
// promises that `bootstrapd serve` without a file behaves like the file.
func TestApplianceYAMLIsTheDefault(t *testing.T) {
	got, err := parseConfigFile("../../appliance.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(defaultConfig(), got, cmpopts.EquateEmpty()); diff != "" {
		t.Fatalf("appliance.yaml differs from defaultConfig (-default +file):\n%s", diff)
	}
}

func TestConfigErrors(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir) // the defaults' relative paths land here, not in the source tree
	for _, d := range []string{"k", "i"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	paths := "paths: {data: " + dir + "/d, kernels: " + dir + "/k, ipxe: " + dir + "/i}\n"
	tests := map[string]struct {
		yaml string
		want string // substring of the error; "" means valid
	}{
		"valid":              {paths, ""},
		"empty file":         {"", "paths.kernels"}, // defaults point at ./var, absent here
		"unknown key":        {paths + "htpp: {listen: ':80'}\n", "field htpp not found"},
		"unknown nested key": {paths + "http: {listne: ':80'}\n", "field listne not found"},
		"bad listen":         {paths + "http: {listen: 'localhost'}\n", "http.listen"},
		"bad port":           {paths + "tftp: {listen: ':99999'}\n", "tftp.listen"},
		"host name":          {paths + "tftp: {listen: 'example.org:69'}\n", "tftp.listen"},
		"public url":         {paths + "http: {public_url: 'ftp://x'}\n", "http.public_url"},
		"public url braces":  {paths + "http: {public_url: 'http://x/{a}'}\n", "http.public_url"},
		"public url zone":    {paths + "http: {public_url: 'http://[fe80::1%25eth0]:8080'}\n", "http.public_url"},
		"public url query":   {paths + "http: {public_url: 'http://x/?a=b'}\n", "http.public_url"},
		"public url ok":      {paths + "http: {public_url: 'https://boot.example.org/zos/'}\n", ""},
		"trusted proxies":    {paths + "http: {trusted_proxies: [10.0.0.1, '192.168.0.0/16', '::1']}\n", ""},
		"bad proxy":          {paths + "http: {trusted_proxies: [proxy.example.org]}\n", "http.trusted_proxies"},
		"upstream ok":        {paths + "kernels: {upstream: {test: 'https://b.example.org/kernel/net/test.efi', test-arm64: 'http://10.0.0.1:8080/k'}}\n", ""},
		"upstream network":   {paths + "kernels: {upstream: {mainnet: 'https://b.example.org/k'}}\n", "kernels.upstream: \"mainnet\""},
		"upstream url":       {paths + "kernels: {upstream: {test: 'file:///etc/passwd'}}\n", "kernels.upstream.test"},
		"refresh":            {paths + "kernels: {refresh: 10s}\n", "kernels.refresh"},
		"syslog ok":          {paths + "syslog: {listen: '10.0.0.2:514'}\n", ""},
		"syslog listen":      {paths + "syslog: {listen: 'boot:514'}\n", "syslog.listen"},
		"syslog address":     {paths + "syslog: {listen: ':514', address: 'fd00::1'}\n", "syslog.address"},
		"tls ok":             {paths + "http: {tls_listen: ':8443', tls_cert: c.pem, tls_key: k.pem}\n", ""},
		"tls without files":  {paths + "http: {tls_listen: ':8443'}\n", "http.tls_listen: needs http.tls_cert"},
		"tls bad address":    {paths + "http: {tls_listen: 'boot:8443', tls_cert: c.pem, tls_key: k.pem}\n", "http.tls_listen"},
		"tls same as plain":  {paths + "http: {listen: ':8080', tls_listen: ':8080', tls_cert: c.pem, tls_key: k.pem}\n", "is http.listen too"},
		"tls files alone":    {paths + "http: {tls_cert: c.pem}\n", "set only with http.tls_listen"},
		"header bytes":       {paths + "http: {max_header_bytes: 10}\n", "http.max_header_bytes"},
		"connections":        {paths + "http: {max_connections: 0}\n", "http.max_connections"},
		"idle timeout":       {paths + "http: {idle_timeout: 0s}\n", "http.idle_timeout"},
		"write timeout":      {paths + "http: {write_timeout: 10ms}\n", "http.write_timeout"},
		"header timeout":     {paths + "http: {read_header_timeout: 0s}\n", "http.read_header_timeout"},
		"tftp transfers":     {paths + "tftp: {max_transfers: 0}\n", "tftp.max_transfers"},
		"tftp per source":    {paths + "tftp: {max_per_source: -1}\n", "tftp.max_per_source"},
		"keep unknown":       {paths + "events: {keep: 5, keep_unknown: 6}\n", "events.keep_unknown"},
		"max discovered":     {paths + "events: {max_discovered: 0}\n", "events.max_discovered"},
		"expire after":       {paths + "events: {expire_after: 1m}\n", "events.expire_after"},
		"flush interval":     {paths + "events: {flush_interval: 5m}\n", "events.flush_interval"},
		"missing kernels":    {"paths: {data: " + dir + "/d, kernels: " + dir + "/nope, ipxe: " + dir + "/i}\n", "paths.kernels"},
		"missing ipxe":       {"paths: {data: " + dir + "/d, kernels: " + dir + "/k, ipxe: " + dir + "/nope}\n", "paths.ipxe"},
		"bad interface":      {paths + "dhcp: {interfaces: ['eth0/1']}\n", "dhcp.interfaces"},
		"absent interface":   {paths + "dhcp: {interfaces: [nosuch0]}\n", ""}, // checked by serve, not by validate
		"bad network name":   {paths + "networks: {Prod: x}\n", "networks"},
		"unsafe display":     {paths + "networks: {prod: 'a;b'}\n", "networks.prod"},
		"arm64 link clash":   {paths + "networks: {prod: x, prod-arm64: y}\n", "net/prod-arm64.efi"},
		"default unknown":    {paths + "default_node: {network: main, farm: 1}\n", "default_node.network"},
		"default no farm":    {paths + "default_node: {network: prod}\n", "default_node.farm"},
		"default args":       {paths + "default_node: {args: 'a${b}'}\n", "default_node.args"},
		"suffix":             {paths + "boot: {args_suffix: 'a\\nb'}\n", "boot.args_suffix"},
		"base args":          {paths + "boot: {base_args: 'a;reboot'}\n", "boot.base_args"},
		"efi binary":         {paths + "dhcp: {efi_binary: snp}\n", "dhcp.efi_binary"},
		"efi binary empty":   {paths + "dhcp: {efi_binary: ''}\n", "dhcp.efi_binary"},
		"retry":              {paths + "boot: {retry_seconds: 0}\n", "boot.retry_seconds"},
		"log format":         {paths + "log: {format: xml}\n", "log.format"},
		"log level":          {paths + "log: {level: loud}\n", "log.level"},
		"wrong type":         {paths + "dhcp: {enabled: maybe}\n", "line 2"},
		"store backend":      {paths + "store: {backend: sqlite}\n", "store.backend"},
		"etcd no endpoints":  {paths + "store: {backend: etcd}\n", "store.etcd.endpoints"},
		"etcd endpoint path": {paths + "store: {backend: etcd, etcd: {endpoints: ['http://e:2379/v3']}}\n", "store.etcd.endpoints"},
		"etcd endpoint port": {paths + "store: {backend: etcd, etcd: {endpoints: ['http://e']}}\n", "store.etcd.endpoints"},
		"etcd prefix":        {paths + "store: {backend: etcd, etcd: {endpoints: ['http://e:2379'], prefix: bootstrapd}}\n", "store.etcd.prefix"},
		"etcd dial timeout":  {paths + "store: {backend: etcd, etcd: {endpoints: ['http://e:2379'], dial_timeout: 1ms}}\n", "store.etcd.dial_timeout"},
		"etcd name":          {paths + "store: {backend: etcd, etcd: {endpoints: ['http://e:2379'], name: 'a b'}}\n", "store.etcd.name"},
		"etcd tls half":      {paths + "store: {backend: etcd, etcd: {endpoints: ['https://e:2379'], tls: {cert: c.pem}}}\n", "store.etcd.tls"},
		"etcd ok":            {paths + "store: {backend: etcd, etcd: {endpoints: ['http://10.0.0.5:2379', 'https://e:2379'], name: boot-a}}\n", ""},
		"etcd keys ignored":  {paths + "store: {backend: bbolt, etcd: {endpoints: ['nonsense']}}\n", ""},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "appliance.yaml")
			if err := os.WriteFile(file, []byte(tc.yaml), 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := loadConfig(file)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("valid config refused: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one naming %q", err, tc.want)
			}
		})
	}
}

func TestNetworksReplaceDefaults(t *testing.T) {
	c, err := parseConfig(strings.NewReader("networks: {main: mainnet}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[string]string{"main": "mainnet"}, c.Networks); diff != "" {
		t.Fatal(diff)
	}
}

// The packaged conffile spells out every key too, with production paths: a key added to the
// daemon but forgotten there fails here, not on an operator's machine.
func TestPackagedConfigDiffersOnlyInPaths(t *testing.T) {
	got, err := parseConfigFile("../../packaging/deb/appliance.yaml")
	if err != nil {
		t.Fatal(err)
	}
	want := defaultConfig()
	want.Paths.Data = "/var/lib/bootstrapd"
	want.Paths.Kernels = "/var/lib/bootstrapd/kernels"
	want.Paths.IPXE = "/usr/lib/ipxe"
	want.Paths.IPXEEmbed = "/usr/lib/bootstrapd/ipxe-embed"
	want.Paths.IPXETrust = "/usr/lib/bootstrapd/ipxe-trust"
	want.Admin.Socket = "/run/bootstrapd/admin.sock"
	want.Admin.TokenFile = "/etc/bootstrapd/admin.token"
	if diff := cmp.Diff(want, got, cmpopts.EquateEmpty()); diff != "" {
		t.Fatalf("packaging/deb/appliance.yaml (-want +got):\n%s", diff)
	}
	// Every documented key of the repository's appliance.yaml is in the packaged one.
	keys := func(path string) []string {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, line := range strings.Split(string(b), "\n") {
			if k, _, ok := strings.Cut(line, ":"); ok && !strings.HasPrefix(strings.TrimSpace(k), "#") && strings.TrimSpace(k) != "" {
				out = append(out, strings.TrimSpace(k))
			}
		}
		return out
	}
	if diff := cmp.Diff(keys("../../appliance.yaml"), keys("../../packaging/deb/appliance.yaml")); diff != "" {
		t.Fatalf("keys of appliance.yaml and packaging/deb/appliance.yaml differ (-repo +deb):\n%s", diff)
	}
}

// Reading the configuration changes nothing on disk: `bootstrapd media` and the node CLI
// load it too, and must not create ./var where they happen to run.
func TestValidateIsPure(t *testing.T) {
	dir := t.TempDir()
	for _, d := range []string{"k", "i"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	cfgFile := filepath.Join(dir, "appliance.yaml")
	yaml := "paths: {data: " + dir + "/data, kernels: " + dir + "/k, ipxe: " + dir + "/i}\ndhcp: {interfaces: [nosuch0]}\n"
	if err := os.WriteFile(cfgFile, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := loadConfig(cfgFile); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "data")); !os.IsNotExist(err) {
		t.Errorf("loadConfig created paths.data (%v)", err)
	}
}

func TestSyslogAddress(t *testing.T) {
	tests := map[string]struct{ listen, address, want string }{
		"off":              {"", "", ""},
		"any address":      {":514", "", ""},
		"one address":      {"10.0.0.2:514", "", "10.0.0.2"},
		"ipv6 listen":      {"[fd00::2]:514", "", ""},
		"explicit address": {":514", "192.0.2.7", "192.0.2.7"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			var c Config
			c.Syslog.Listen, c.Syslog.Address = tc.listen, tc.address
			if got := c.scriptConfig().Syslog; got != tc.want {
				t.Errorf("script syslog %q, want %q", got, tc.want)
			}
		})
	}
}

package ipxe

import (
	_ "embed"
	"fmt"
	"net/netip"
	"net/url"
	"regexp"
	"strconv"
	"strings"
)

//go:embed templates/boot.ipxe
var bootTemplate string

//go:embed templates/wait.ipxe
var waitTemplate string

//go:embed templates/provision.ipxe
var provisionTemplate string

// Boot is what a boot script needs. Every field is validated by Render.
type Boot struct {
	Network     string // short name: prod, test, ...
	NetworkName string // display name: "production (v3)"
	Farm        uint64
	Args        string // extra kernel arguments from the URL or the node record
	// KernelURL is the absolute http(s) URL of the kernel x86 iPXE boots (${buildarch}
	// x86_64, or i386 for the BIOS builds), KernelURLArm64 the one arm64 iPXE boots. "" means
	// that architecture has no kernel: the script says so on the console instead. Equal
	// URLs (a node's own kernel) boot on any architecture.
	KernelURL      string
	KernelURLArm64 string
}

// ScriptConfig holds the parts of every script that come from configuration.
type ScriptConfig struct {
	// BaseArgs open every kernel command line, before the Zero-OS arguments and the
	// operator's, so an operator's argument (panic=0) overrides them: the kernel keeps the
	// last value of a repeated parameter. The predecessor sent "nomodeset panic=7200".
	BaseArgs string
	// ArgsSuffix is appended after the operator's arguments, so it overrides them; kept for
	// configurations written before BaseArgs (boot.args_suffix). Empty by default.
	ArgsSuffix string
	// NTPServer is synchronised with before the kernel is fetched (HTTPS needs a sane clock);
	// empty skips it.
	NTPServer string
	// RetrySeconds is how long a node without a record waits before asking again.
	RetrySeconds int
	// Syslog is the IPv4 address boot scripts tell iPXE to copy its console to (iPXE's
	// "syslog" setting, UDP port 514); empty: scripts do not set it.
	Syslog string
}

// Scripts renders boot scripts. Templates are parsed once.
type Scripts struct {
	cfg       ScriptConfig
	boot      template
	wait      template
	provision template
}

// NewScripts validates cfg and parses the templates.
func NewScripts(cfg ScriptConfig) (*Scripts, error) {
	if err := ValidateArgs(cfg.BaseArgs); err != nil {
		return nil, fmt.Errorf("base args: %w", err)
	}
	if err := ValidateArgs(cfg.ArgsSuffix); err != nil {
		return nil, fmt.Errorf("args suffix: %w", err)
	}
	if cfg.NTPServer != "" && !hostRE.MatchString(cfg.NTPServer) {
		return nil, fmt.Errorf("%w: ntp server %q is not a host name or address", ErrUnsafe, cfg.NTPServer)
	}
	if cfg.Syslog != "" {
		// iPXE's syslog setting is an IPv4 address: a name would not resolve.
		a, err := netip.ParseAddr(cfg.Syslog)
		if err != nil || !a.Is4() {
			return nil, fmt.Errorf("%w: syslog server %q is not an IPv4 address", ErrUnsafe, cfg.Syslog)
		}
		cfg.Syslog = a.String()
	}
	if cfg.RetrySeconds <= 0 {
		cfg.RetrySeconds = 30
	}
	return &Scripts{
		cfg:       cfg,
		boot:      parseTemplate("boot", bootTemplate),
		wait:      parseTemplate("wait", waitTemplate),
		provision: parseTemplate("provision", provisionTemplate),
	}, nil
}

// Cmdline is the kernel command line for b: <base> version=v3 runmode=<network>
// farmer_id=<farm> <args> <suffix>, each argument separated by one space. The operator's
// arguments come after everything but the (legacy, normally empty) suffix, as with the
// predecessor, so they win over the base arguments.
func (s *Scripts) Cmdline(b Boot) string {
	parts := strings.Fields(s.cfg.BaseArgs)
	parts = append(parts, "version=v3", "runmode="+b.Network)
	// Without a farm (a bare /ipxe/<network>) the kernel asks for one, as with the predecessor.
	if b.Farm != 0 {
		parts = append(parts, "farmer_id="+strconv.FormatUint(b.Farm, 10))
	}
	for _, extra := range []string{b.Args, s.cfg.ArgsSuffix} {
		parts = append(parts, strings.Fields(extra)...)
	}
	return strings.Join(parts, " ")
}

// Render returns the boot script for b.
func (s *Scripts) Render(b Boot) ([]byte, error) {
	if err := ValidateNetwork(b.Network); err != nil {
		return nil, err
	}
	if err := ValidateDisplay(b.NetworkName); err != nil {
		return nil, err
	}
	if err := ValidateArgs(b.Args); err != nil {
		return nil, err
	}
	if b.KernelURL == "" && b.KernelURLArm64 == "" {
		return nil, fmt.Errorf("%w: a boot script needs a kernel URL", ErrNoKernel)
	}
	for _, u := range []string{b.KernelURL, b.KernelURLArm64} {
		if u == "" {
			continue
		}
		if err := ValidateURL(u); err != nil {
			return nil, err
		}
	}
	cmdline := s.Cmdline(b)
	ntp := ""
	if s.cfg.NTPServer != "" {
		ntp = "\necho ${cyan}Synchronizing time...${reset}\nntp " + s.cfg.NTPServer +
			" || echo ${yellow}Time synchronisation failed, going on${reset}"
	}
	syslog := ""
	if s.cfg.Syslog != "" {
		syslog = "\n# iPXE copies its console to the appliance's syslog receiver from here on (builds with it).\nset syslog " + s.cfg.Syslog
	}
	kernel, noKernel := kernelChoice(b)
	return s.boot.render(map[string]string{
		"syslog":       syslog,
		"kernel":       kernel,
		"network_name": b.NetworkName,
		"network":      b.Network,
		"farm":         strconv.FormatUint(b.Farm, 10),
		"cmdline":      cmdline,
		"ntp":          ntp,
		"no_kernel":    noKernel,
	})
}

// kernelChoice returns the script line that sets ${kernel} for the CPU this iPXE was built
// for, told by ${buildarch}: arm64, or x86 (x86_64 EFI builds, i386 BIOS builds; the
// catalogue has no other). Equal URLs are a node's own kernel, booted on any CPU. When one
// architecture has no kernel, noKernel is the :no_kernel section its nodes jump to, which
// tells the operator how to set one.
func kernelChoice(b Boot) (line, noKernel string) {
	switch {
	case b.KernelURL == b.KernelURLArm64:
		return "set kernel " + b.KernelURL, ""
	case b.KernelURLArm64 == "":
		line = "iseq ${buildarch} arm64 && goto no_kernel || set kernel " + b.KernelURL
	case b.KernelURL == "":
		line = "iseq ${buildarch} arm64 && set kernel " + b.KernelURLArm64 + " || goto no_kernel"
	default:
		line = "iseq ${buildarch} arm64 && set kernel " + b.KernelURLArm64 + " || set kernel " + b.KernelURL
	}
	arch := ""
	if b.KernelURL != "" {
		arch = " --arch arm64"
	}
	noKernel = "\n\n:no_kernel\necho ${red}No kernel for ${buildarch} nodes on network " + b.Network +
		"${reset}, set it with:\necho  >> bootstrapd kernel default --network " + b.Network + arch +
		" --name KERNEL\ngoto master_end"
	return line, noKernel
}

// Wait returns the script for a MAC that has no record: it says so on the console and asks
// again every RetrySeconds, so a node boots as soon as an operator adds it.
func (s *Scripts) Wait(mac, retryURL string) ([]byte, error) {
	if err := ValidateURL(retryURL); err != nil {
		return nil, err
	}
	if err := ValidateDisplay(mac); err != nil {
		return nil, err
	}
	return s.wait.render(map[string]string{"mac": mac, "url": retryURL, "seconds": strconv.Itoa(s.cfg.RetrySeconds)})
}

// Provision returns the script that configures each NIC in turn and chains
// <base>/provision/${netX/mac}, for media that do not know which node they are in.
func (s *Scripts) Provision(base string) ([]byte, error) {
	if err := ValidateURL(base); err != nil {
		return nil, err
	}
	ntp := ""
	if s.cfg.NTPServer != "" {
		ntp = "\nntp " + s.cfg.NTPServer + " ||"
	}
	return s.provision.render(map[string]string{"base": strings.TrimSuffix(base, "/"), "ntp": ntp})
}

// template is a script's text cut at its slots, {{name}}. Values are placed as they are:
// every one was validated (or built here from validated parts) before it reaches a script.
// Not text/template: its reflection (method calls by name) makes the linker keep every
// exported method of every type in the program, 7 MB of a 24 MB binary
// (docs/PERFORMANCE.md, Binary size).
type template struct {
	name  string
	texts []string // texts[i] comes before slots[i]; the last one ends the script
	slots []string
}

func parseTemplate(name, text string) template {
	t := template{name: name}
	for {
		open := strings.Index(text, "{{")
		if open < 0 {
			break
		}
		end := strings.Index(text[open:], "}}")
		if end < 0 {
			panic(fmt.Sprintf("%s script: unclosed {{ at byte %d", name, open))
		}
		t.texts = append(t.texts, text[:open])
		t.slots = append(t.slots, text[open+2:open+end])
		text = text[open+end+2:]
	}
	t.texts = append(t.texts, text)
	return t
}

func (t template) render(values map[string]string) ([]byte, error) {
	n := 0
	for _, s := range t.texts {
		n += len(s)
	}
	for _, v := range values {
		n += 2 * len(v) // the command line appears twice
	}
	out := make([]byte, 0, n)
	for i, slot := range t.slots {
		v, ok := values[slot]
		if !ok {
			return nil, fmt.Errorf("render %s script: no value for {{%s}}", t.name, slot)
		}
		out = append(out, t.texts[i]...)
		out = append(out, v...)
	}
	return append(out, t.texts[len(t.texts)-1]...), nil
}

var hostRE = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9.:-]{0,252}[A-Za-z0-9])?$`)

// ValidateDisplay accepts text shown with echo (a network's display name, a MAC):
// printable ASCII without Metachars.
func ValidateDisplay(s string) error {
	for _, r := range s {
		if r < 0x20 || r > 0x7e || strings.ContainsRune(Metachars, r) {
			return fmt.Errorf("%w: %q holds %q", ErrUnsafe, s, r)
		}
	}
	return nil
}

// ValidateURL accepts absolute http(s) URLs whose every character is safe in a script:
// url.Parse + String would re-escape, but iPXE's own ${...} and command syntax must not appear
// at all. Every URL that reaches a script or a DHCP reply passes here.
func ValidateURL(s string) error {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%w: %q is not an absolute http(s) URL", ErrUnsafe, s)
	}
	for _, r := range s {
		if r <= 0x20 || r > 0x7e || strings.ContainsRune(urlMetachars, r) {
			return fmt.Errorf("%w: URL %q holds %q", ErrUnsafe, s, r)
		}
	}
	return nil
}

// ValidateBaseURL checks a base URL that other URLs are built on (http.public_url, or one
// derived from a request): the rules of ValidateURL, no query or fragment, no IPv6 zone. It
// returns the base without a trailing slash.
func ValidateBaseURL(s string) (string, error) {
	if err := ValidateURL(s); err != nil {
		return "", err
	}
	u, _ := url.Parse(s)
	if u.RawQuery != "" || u.Fragment != "" || u.ForceQuery {
		return "", fmt.Errorf("%w: base URL %q has a query or fragment", ErrUnsafe, s)
	}
	if strings.Contains(u.Host, "%") {
		return "", fmt.Errorf("%w: base URL %q names an IPv6 zone", ErrUnsafe, s)
	}
	return strings.TrimRight(s, "/"), nil
}

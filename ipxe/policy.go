package ipxe

import (
	"errors"
	"fmt"
	"strings"
)

var (
	// ErrUnknownNetwork means a network is not in appliance.yaml's networks.
	ErrUnknownNetwork = errors.New("unknown network")
	// ErrNoKernel means the kernel file a boot needs does not exist.
	ErrNoKernel = errors.New("kernel file not found")
)

// BootRequest is what a boot asks for: <network>[/<farm>[/<extra-kernel-args>[/<kernel>]]]
// in a URL, a node's record or default_node.
type BootRequest struct {
	Network string
	Farm    uint64 // 0: not given
	Args    string
	Kernel  string // "": the network's defaults, net/<network>.efi and net/<network>-arm64.efi
}

// KernelSet tells which kernel files a boot can use; *kernels.Dir is one. The policy needs
// only this, so it can be decided without a kernels directory (tests, other stores).
type KernelSet interface {
	// Exists reports whether name, relative to the kernels directory, is a regular file
	// that can be served.
	Exists(name string) bool
}

// Kind says which rule chose a script. The values are bootstrapd_scripts_served_total's
// kind label.
type Kind string

// The kinds of script.
const (
	KindBoot    Kind = "boot"    // asked for explicitly: /ipxe/…, a medium
	KindNode    Kind = "node"    // the MAC's record
	KindDefault Kind = "default" // default_node, for a MAC without a record
	KindWait    Kind = "wait"    // wait and ask again
)

// Policy decides which script a boot gets. It reads nothing but its fields, so a caller
// builds one per request from the configuration of the moment (networks and default_node
// change on reload) and the base URL the request came in on.
type Policy struct {
	Scripts  *Scripts
	Networks map[string]string // short name -> display name
	// Default boots MACs without a record; an empty Network makes them wait.
	Default BootRequest
	Kernels KernelSet
	// Base is where nodes reach the appliance: the kernel and retry URLs are built on it.
	Base string
}

// Decision is what a MAC that asks for its script gets.
type Decision struct {
	Kind   Kind
	Script []byte
	// Reason is why a MAC with a record or a default_node waits instead of booting (a
	// removed network, a missing kernel, a failed lookup); nil when it had neither. A node
	// that cannot boot must still get a script, so this is for the log, not the answer.
	Reason error
}

// Boot is the script for req, its kernel fetched from Base/kernel/…: the one code path of
// /ipxe/, /provision/ and the boot media, served or built offline. An override kernel must
// exist, and boots whatever the node's architecture; without one, the script picks the
// network's default for the architecture iPXE was built for, and at least one of them must
// exist (a node whose architecture has none is told so on its console).
func (p Policy) Boot(req BootRequest) ([]byte, error) {
	display, ok := p.Networks[req.Network]
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrUnknownNetwork, req.Network)
	}
	b := Boot{Network: req.Network, NetworkName: display, Farm: req.Farm, Args: req.Args}
	if req.Kernel != "" {
		kernel, err := KernelFor(p.Kernels, req.Network, req.Kernel)
		if err != nil {
			return nil, err
		}
		b.KernelURL = p.base() + "/kernel/" + kernel
		b.KernelURLArm64 = b.KernelURL
	} else {
		x86, arm64, err := DefaultKernels(p.Kernels, req.Network)
		if err != nil {
			return nil, err
		}
		if x86 != "" {
			b.KernelURL = p.base() + "/kernel/" + x86
		}
		if arm64 != "" {
			b.KernelURLArm64 = p.base() + "/kernel/" + arm64
		}
	}
	return p.Scripts.Render(b)
}

// Provision decides what mac boots: its record (rec; nil when it has none) if that can boot,
// else default_node if it is set and the MAC has no record, else a script that waits and asks
// again. lookupErr is a failed lookup of the record (not its absence): the MAC then waits,
// since booting the default could take over a node that has a record. The error is non-nil
// only when not even the wait script can be rendered.
func (p Policy) Provision(mac string, rec *BootRequest, lookupErr error) (Decision, error) {
	var reason error
	switch {
	case lookupErr != nil:
		reason = fmt.Errorf("record of %s: %w", mac, lookupErr)
	case rec != nil:
		script, err := p.Boot(*rec)
		if err == nil {
			return Decision{Kind: KindNode, Script: script}, nil
		}
		reason = fmt.Errorf("record of %s: %w", mac, err)
	case p.Default.Network != "":
		script, err := p.Boot(p.Default)
		if err == nil {
			return Decision{Kind: KindDefault, Script: script}, nil
		}
		reason = fmt.Errorf("default_node for %s: %w", mac, err)
	}
	script, err := p.Scripts.Wait(mac, p.base()+"/provision/"+mac)
	if err != nil {
		return Decision{}, err
	}
	return Decision{Kind: KindWait, Script: script, Reason: reason}, nil
}

func (p Policy) base() string { return strings.TrimSuffix(p.Base, "/") }

// KernelFor names the kernel file a boot of network uses (override, or the network's x86-64
// default net/<network>.efi) and checks that kernels has it.
func KernelFor(kernels KernelSet, network, override string) (string, error) {
	name := override
	if name == "" {
		name = DefaultKernel(network, ArchX86)
	}
	if err := ValidateKernel(name); err != nil {
		return "", err
	}
	if kernels == nil || !kernels.Exists(name) {
		// Only the name: where the kernels directory is is the operator's business, not the
		// client's.
		return "", fmt.Errorf("%w: %s", ErrNoKernel, name)
	}
	return name, nil
}

// DefaultKernels names the network's default kernels that kernels has: net/<network>.efi
// (x86-64) and net/<network>-arm64.efi, "" for a missing one. Neither: ErrNoKernel.
func DefaultKernels(kernels KernelSet, network string) (x86, arm64 string, err error) {
	if err := ValidateNetwork(network); err != nil {
		return "", "", err
	}
	x86, arm64 = DefaultKernel(network, ArchX86), DefaultKernel(network, ArchARM64)
	if kernels == nil {
		return "", "", fmt.Errorf("%w: %s", ErrNoKernel, x86)
	}
	if !kernels.Exists(x86) {
		x86 = ""
	}
	if !kernels.Exists(arm64) {
		arm64 = ""
	}
	if x86 == "" && arm64 == "" {
		// Only the names: where the kernels directory is is the operator's business.
		return "", "", fmt.Errorf("%w: %s (nor %s)", ErrNoKernel, DefaultKernel(network, ArchX86), DefaultKernel(network, ArchARM64))
	}
	return x86, arm64, nil
}

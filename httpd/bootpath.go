package httpd

import (
	"fmt"
	"strings"

	"github.com/threefoldtech/bootstrapd/ipxe"
)

// ParseBootPath parses the segments after the endpoint name of /ipxe/ and the media:
// <network>[/<farm>[/<extra-kernel-args>[/<kernel>]]]. networks lists the configured
// networks. Errors are meant for the client: they say what is wrong and how it should look.
func ParseBootPath(path string, networks map[string]string) (ipxe.BootRequest, error) {
	path = strings.TrimPrefix(path, "/")
	path = strings.TrimSuffix(path, "/")
	parts := strings.SplitN(path, "/", 4)
	var r ipxe.BootRequest
	if len(parts) == 0 || parts[0] == "" {
		return r, fmt.Errorf("%w: missing network: want <network>[/<farm>[/<extra-args>[/<kernel>]]]", ipxe.ErrUnsafe)
	}
	r.Network = parts[0]
	if err := ipxe.ValidateNetwork(r.Network); err != nil {
		return r, err
	}
	if _, ok := networks[r.Network]; !ok {
		return r, fmt.Errorf("%w: %q", ipxe.ErrUnknownNetwork, r.Network)
	}
	if len(parts) > 1 && parts[1] != "" {
		farm, err := ipxe.ParseFarm(parts[1])
		if err != nil {
			return r, err
		}
		r.Farm = farm
	}
	if len(parts) > 2 {
		r.Args = ipxe.DecodeExtra(parts[2])
		if err := ipxe.ValidateArgs(r.Args); err != nil {
			return r, err
		}
	}
	if len(parts) > 3 && parts[3] != "" {
		r.Kernel = parts[3]
		if err := ipxe.ValidateKernel(r.Kernel); err != nil {
			return r, err
		}
	}
	return r, nil
}

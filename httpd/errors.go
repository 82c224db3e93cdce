package httpd

import "errors"

var (
	// ErrUnknownNetwork means a network is not in appliance.yaml's networks.
	ErrUnknownNetwork = errors.New("unknown network")
	// ErrNoKernel means the kernel file a boot needs does not exist.
	ErrNoKernel = errors.New("kernel file not found")
)

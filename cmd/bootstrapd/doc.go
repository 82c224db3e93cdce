// Command bootstrapd is the Zero-OS network-boot appliance: ProxyDHCP, TFTP and HTTP in one
// daemon (serve), and the tools to manage it (node, kernel, media, version).
//
// It owns the command line, the configuration (appliance.yaml: parsed and validated without
// touching the disk) and the wiring: it builds every component from the configuration, passes
// each what it needs, and owns the process's lifetime (signals, shutdown). It must not hold
// business logic of its own: boot policy lives in ipxe, state in store, the protocols in
// dhcpd, tftpd and httpd.
package main

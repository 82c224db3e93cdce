// Package timeline is a node's boot as the appliance sees it: the stages the ProxyDHCP, TFTP
// and HTTP servers report for a MAC, recorded as events in the store.
//
// It owns the names of the boot stages and the one place they are counted, logged and
// stored. Every stage carries the MAC it belongs to: the DHCP request's client address, the
// <mac>/ prefix of the TFTP file and /boot/ path the ProxyDHCP hands out, and the mac=
// query the boot script puts on the kernel URL. Nothing is guessed from an IP address.
// The servers import this package only for Stage and Event; it must not reach back into them.
package timeline

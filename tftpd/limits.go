package tftpd

import (
	"net"
	"net/netip"
	"slices"
	"sync"
	"time"
)

// slots bounds the transfers in flight, in all and per client address, and keeps their
// sockets so that Serve can close the ones still running when its grace period is over.
type slots struct {
	max, perSource int

	mu        sync.Mutex
	total     int
	bySource  map[netip.Addr]int
	conns     map[*net.UDPConn]struct{}
	abandoned bool // Serve gave up on the transfers in flight
}

func newSlots(max, perSource int) *slots {
	return &slots{max: max, perSource: perSource, bySource: map[netip.Addr]int{}, conns: map[*net.UDPConn]struct{}{}}
}

// acquire takes a slot for a transfer from src, whose socket is conn (nil if unknown), or
// refuses it. release must be called when the transfer ends.
func (l *slots) acquire(src netip.Addr, conn *net.UDPConn) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case l.abandoned:
		// Serve has returned: nothing is listening for this transfer any more.
		return refuse(reasonShutdown, "server shutting down")
	case l.total >= l.max:
		return refuse(reasonTooMany, "too many transfers, try again later")
	case l.bySource[src] >= l.perSource:
		return refuse(reasonTooManyFrom, "too many transfers from your address, try again later")
	}
	l.total++
	l.bySource[src]++
	if conn != nil {
		l.conns[conn] = struct{}{}
	}
	return nil
}

func (l *slots) release(src netip.Addr, conn *net.UDPConn) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.total--
	if l.bySource[src]--; l.bySource[src] <= 0 {
		delete(l.bySource, src)
	}
	delete(l.conns, conn)
}

// inFlight is the number of transfers holding a slot.
func (l *slots) inFlight() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.total
}

// isAbandoned tells whether Serve gave up on the transfers in flight.
func (l *slots) isAbandoned() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.abandoned
}

// abandon closes the sockets of the transfers in flight, which makes pin/tftp end them at
// once, and refuses every later one. It returns how many transfers were in flight.
func (l *slots) abandon() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.abandoned = true
	for c := range l.conns {
		_ = c.Close() // pin/tftp closes it again when the transfer fails; that is harmless
	}
	return l.total
}

// ifaceAddrs answers whether an address is one of the addresses of the named interfaces. The
// addresses are looked up again after ttl, so that a changed address is picked up without a
// restart and a flood of requests costs one lookup per ttl.
type ifaceAddrs struct {
	names []string
	ttl   time.Duration

	mu      sync.Mutex
	addrs   []netip.Addr
	expires time.Time
}

func (c *ifaceAddrs) has(ip netip.Addr) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if now := time.Now(); now.After(c.expires) {
		c.addrs = interfaceAddrs(c.names)
		c.expires = now.Add(c.ttl)
	}
	return slices.Contains(c.addrs, ip.Unmap())
}

// interfaceAddrs lists the addresses of the named interfaces that exist now.
func interfaceAddrs(names []string) []netip.Addr {
	var out []netip.Addr
	for _, name := range names {
		ifi, err := net.InterfaceByName(name)
		if err != nil {
			continue // gone since New checked it: its addresses are no longer ours
		}
		addrs, err := ifi.Addrs()
		if err != nil {
			continue
		}
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok {
				if ip, ok := netip.AddrFromSlice(n.IP); ok {
					out = append(out, ip.Unmap())
				}
			}
		}
	}
	return out
}

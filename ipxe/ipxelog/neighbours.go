package ipxelog

import (
	"net/netip"
	"sync"

	"github.com/threefoldtech/bootstrapd/store/timeline"
)

// Neighbours remembers which MAC last used each IP address, from the timeline's events that
// carry both (a script served, a kernel requested): the boot script that turns iPXE's
// syslog on is itself such an event, so a node's address is known before its first line.
// It holds at most max addresses; beyond that the one learnt longest ago is forgotten.
type Neighbours struct {
	mu  sync.Mutex
	max int
	seq uint64
	m   map[netip.Addr]neighbour
}

type neighbour struct {
	mac string
	seq uint64
}

// NewNeighbours remembers at most limit addresses (at least 1).
func NewNeighbours(limit int) *Neighbours {
	return &Neighbours{max: max(limit, 1), m: map[netip.Addr]neighbour{}}
}

// Observe learns e's address and MAC when it has both. It is a timeline.Sink.
func (n *Neighbours) Observe(e timeline.Event) {
	if !e.IP.IsValid() || e.MAC == "" {
		return
	}
	ip := e.IP.Unmap().WithZone("")
	n.mu.Lock()
	defer n.mu.Unlock()
	n.seq++
	if _, ok := n.m[ip]; !ok && len(n.m) >= n.max {
		n.evictOldest()
	}
	n.m[ip] = neighbour{mac: e.MAC, seq: n.seq}
}

// evictOldest scans for the oldest entry: it runs only when the table is full.
func (n *Neighbours) evictOldest() {
	var (
		victim netip.Addr
		oldest uint64
		found  bool
	)
	for a, nb := range n.m {
		if !found || nb.seq < oldest {
			victim, oldest, found = a, nb.seq, true
		}
	}
	delete(n.m, victim)
}

// Lookup is the MAC that last used ip.
func (n *Neighbours) Lookup(ip netip.Addr) (string, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	nb, ok := n.m[ip.Unmap().WithZone("")]
	return nb.mac, ok
}

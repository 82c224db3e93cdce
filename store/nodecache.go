package store

import (
	"sync"
	"sync/atomic"
)

// nodeCache keeps records GetNode decoded, so the boot path (/provision, every DHCP
// decision) reads a record from memory instead of a bbolt transaction and its JSON: a tenth
// of a /provision request's CPU. Every write of a record bumps the generation once its
// transaction has committed, and an entry is used only while its generation is current, so
// a reader never sees a record older than the last committed write it could have read
// from disk. A generation change empties the map, so it holds at most the records that exist;
// a MAC without a record is never kept (anyone can ask for any MAC).
type nodeCache struct {
	gen atomic.Uint64

	mu     sync.RWMutex
	mapGen uint64 // the generation the entries of m were read at
	m      map[string]Node
}

// changed is called after every committed write to the records.
func (c *nodeCache) changed() { c.gen.Add(1) }

// generation is read before the disk: an entry put with it is stale if a write committed
// since.
func (c *nodeCache) generation() uint64 { return c.gen.Load() }

func (c *nodeCache) get(mac string) (Node, bool) {
	gen := c.gen.Load()
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.mapGen != gen {
		return Node{}, false
	}
	n, ok := c.m[mac]
	return n, ok
}

// put keeps n, read from disk at generation gen.
func (c *nodeCache) put(gen uint64, n Node) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if gen != c.gen.Load() {
		return // read before a write that has committed since
	}
	if gen != c.mapGen || c.m == nil {
		c.m = map[string]Node{}
		c.mapGen = gen
	}
	c.m[n.MAC] = n
}

package media

import (
	"container/list"
	"sync"
)

// cache keeps finished media by key, least recently used first out, bounded by the sum
// of their sizes. Media are immutable once built, so a hit hands out the same *Medium.
type cache struct {
	mu    sync.Mutex
	max   int64
	used  int64
	order *list.List // front = most recent; values are *Medium
	byKey map[[32]byte]*list.Element
}

func newCache(maxBytes int64) *cache {
	return &cache{max: maxBytes, order: list.New(), byKey: map[[32]byte]*list.Element{}}
}

func (c *cache) get(key [32]byte) *Medium {
	if c.max <= 0 {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.byKey[key]
	if !ok {
		return nil
	}
	c.order.MoveToFront(e)
	return e.Value.(*Medium)
}

func (c *cache) put(m *Medium) {
	size := m.memSize()
	if c.max <= 0 || size > c.max {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.byKey[m.key]; ok {
		return
	}
	c.byKey[m.key] = c.order.PushFront(m)
	c.used += size
	for c.used > c.max {
		e := c.order.Back()
		old := e.Value.(*Medium)
		c.order.Remove(e)
		delete(c.byKey, old.key)
		c.used -= old.memSize()
	}
}

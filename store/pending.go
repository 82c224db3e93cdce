package store

import (
	"log/slog"
	"strings"
	"sync"
	"time"
)

// PendingLimits bound a Pending buffer: MACs without a record (anyone can invent one)
// take at most MaxDiscovered entries and keep MaxDiscoveredEvents events each; MACs with a
// record are bounded by the records and keep MaxEvents.
type PendingLimits struct {
	MaxDiscovered, MaxEvents, MaxDiscoveredEvents int
}

// PendingEntry is what the network told the store about one MAC since the last flush.
type PendingEntry[E any] struct {
	// Seen is the change to the seen entry: FirstSeen and LastSeen of the pending marks,
	// Count of them, and the last non-empty Arch and IP. nil: no mark pending.
	Seen *Seen
	// Events are the pending events, oldest first, within the entry's limit: older ones
	// would be trimmed in the store anyway.
	Events []E
	// Discovered: the MAC had no record when the entry was made, so it counts against
	// MaxDiscovered.
	Discovered bool
}

// Pending is the activity written behind, the same for every backend: MarkSeen and
// AppendEvent put it here on the boot path (memory only), and a flush takes it all at
// once. E is the backend's pending event (an Event, or one with its key chosen). It is
// safe for concurrent use; its lock is held only for map operations.
type Pending[E any] struct {
	lim   PendingLimits
	known func(mac string) bool
	drop  func()
	log   *slog.Logger

	mu         sync.Mutex
	entries    map[string]*PendingEntry[E]
	discovered int // entries with Discovered set
	dropped    int // marks and events dropped since the last Take
}

// NewPending makes an empty buffer. known says whether a MAC has a record (called with
// the buffer's lock held, so it must not call back); dropped is called for each mark or
// event refused at the bound, and log gets one warning per Take that had any.
func NewPending[E any](lim PendingLimits, known func(mac string) bool, dropped func(), log *slog.Logger) *Pending[E] {
	return &Pending[E]{lim: lim, known: known, drop: dropped, log: log, entries: map[string]*PendingEntry[E]{}}
}

// entryLocked returns mac's entry, making one if the bound allows, else counts a drop and
// returns nil. A MAC with a record always gets one, so a flood of made-up MACs cannot
// crowd out the real nodes.
func (p *Pending[E]) entryLocked(mac string) *PendingEntry[E] {
	if e, ok := p.entries[mac]; ok {
		return e
	}
	known := p.known(mac)
	if !known {
		if p.discovered >= p.lim.MaxDiscovered {
			p.dropped++
			p.drop()
			return nil
		}
		p.discovered++
	}
	e := &PendingEntry[E]{Discovered: !known}
	p.entries[mac] = e
	return e
}

func (p *Pending[E]) limit(e *PendingEntry[E]) int {
	if e.Discovered {
		return p.lim.MaxDiscoveredEvents
	}
	return p.lim.MaxEvents
}

// Mark records that mac (parsed) asked for something at now. arch and ip that are empty,
// too long (MaxArchLen, MaxIPLen), not UTF-8 or with control characters keep the previous
// value. It reports false if the mark was dropped at the bound.
func (p *Pending[E]) Mark(mac string, now time.Time, arch, ip string) bool {
	arch, ip = dropLong(arch, MaxArchLen), dropLong(ip, MaxIPLen)
	p.mu.Lock()
	defer p.mu.Unlock()
	e := p.entryLocked(mac)
	if e == nil {
		return false
	}
	if e.Seen == nil {
		e.Seen = &Seen{MAC: mac, FirstSeen: now}
	}
	e.Seen.LastSeen = now
	e.Seen.Count++
	// Cloned, and only when changed: a caller's string is often a slice of the whole
	// request (a URL query value is), which a 16-byte field would keep alive until the flush.
	if arch != "" && arch != e.Seen.Arch {
		e.Seen.Arch = strings.Clone(arch)
	}
	if ip != "" && ip != e.Seen.IP {
		e.Seen.IP = strings.Clone(ip)
	}
	return true
}

// Append adds ev to mac's (parsed) events, dropping the oldest past the entry's limit. It
// reports false if the event was dropped at the bound.
func (p *Pending[E]) Append(mac string, ev E) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	e := p.entryLocked(mac)
	if e == nil {
		return false
	}
	if len(e.Events) >= p.limit(e) {
		// Shift rather than reslice, so the backing array stays limit long.
		copy(e.Events, e.Events[1:])
		e.Events = e.Events[:len(e.Events)-1]
	}
	e.Events = append(e.Events, ev)
	return true
}

// Take hands over everything pending and starts afresh, warning once if activity was
// dropped at the bound since the last Take.
func (p *Pending[E]) Take() map[string]*PendingEntry[E] {
	p.mu.Lock()
	batch := p.entries
	p.entries = make(map[string]*PendingEntry[E], len(batch))
	p.discovered = 0
	dropped := p.dropped
	p.dropped = 0
	p.mu.Unlock()
	if dropped > 0 {
		p.log.Warn("store: pending activity at its bound, activity dropped (spoofed MACs?)",
			"dropped", dropped, "max_discovered", p.lim.MaxDiscovered)
	}
	return batch
}

// Restore puts back activity a flush could not write, under the activity that arrived
// meanwhile, so a transient failure loses nothing the bounds allow to keep.
func (p *Pending[E]) Restore(batch map[string]*PendingEntry[E]) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for mac, old := range batch {
		e := p.entryLocked(mac)
		if e == nil {
			continue
		}
		if old.Seen != nil {
			if e.Seen == nil {
				e.Seen = old.Seen
			} else {
				merged := mergeSeen(old.Seen, *e.Seen)
				e.Seen = &merged
			}
		}
		e.Events = lastN(append(old.Events, e.Events...), p.limit(e))
	}
}

// Forget drops mac's pending activity; it reports whether there was any.
func (p *Pending[E]) Forget(mac string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	e, ok := p.entries[mac]
	if !ok {
		return false
	}
	if e.Discovered {
		p.discovered--
	}
	delete(p.entries, mac)
	return true
}

// Seen copies the pending seen changes: all of them for mac "", else mac's.
func (p *Pending[E]) Seen(mac string) map[string]Seen {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := map[string]Seen{}
	if mac != "" {
		if e := p.entries[mac]; e != nil && e.Seen != nil {
			out[mac] = *e.Seen
		}
		return out
	}
	for m, e := range p.entries {
		if e.Seen != nil {
			out[m] = *e.Seen
		}
	}
	return out
}

// Events copies mac's pending events, oldest first.
func (p *Pending[E]) Events(mac string) []E {
	p.mu.Lock()
	defer p.mu.Unlock()
	if e := p.entries[mac]; e != nil {
		return append([]E(nil), e.Events...)
	}
	return nil
}

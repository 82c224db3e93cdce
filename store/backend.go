package store

import (
	"context"
	"errors"
	"strings"
	"time"
)

// Store is the appliance's state as the rest of bootstrapd uses it, whatever keeps it: *DB
// (one bbolt file, the default) or the etcd backend in store/etcdstore (several appliances
// sharing one farm). The errors are this package's (ErrNotFound, ErrExists, ErrBadMAC).
type Store interface {
	GetNode(mac string) (Node, error)
	ListNodes() ([]Node, error)
	// CreateNode refuses to overwrite: ErrExists if the MAC has a record.
	CreateNode(n Node) (Node, error)
	// UpdateNode applies change to the record atomically; an error from change leaves it
	// as it was.
	UpdateNode(mac string, change func(*Node) error) (Node, error)
	DeleteNode(mac string) error
	// ImportNodes creates or replaces every record at once: all land, or none.
	ImportNodes(nodes []Node) (created, updated int, err error)

	// MarkSeen and AppendEvent are on the boot path: they only touch memory, and Run
	// writes the activity behind, bounded.
	MarkSeen(mac, arch, ip string) error
	AppendEvent(mac string, ev Event) error
	ListSeen() ([]Seen, error)
	GetSeen(mac string) (Seen, error)
	Events(mac string) ([]Event, error)
	Forget(mac string) error
	CountNodes(seenSince time.Time) (known, seen int, err error)
	// Revision changes whenever anything the reads above return changes, after the change
	// is visible to them (the admin lists rebuild only when it moved).
	Revision() uint64

	// Flush writes the pending activity now and applies the bounds.
	Flush() error
	// Run writes the activity behind until ctx ends.
	Run(ctx context.Context)
	// Close writes what is pending and releases the backend.
	Close() error
}

var _ Store = (*DB)(nil)

// CleanEvent is ev as a store keeps it: a zero Time set to now, UTC, Stage and Detail cut
// to MaxStageLen and MaxDetailLen without control characters. Every backend applies it,
// the strings being the network's.
func CleanEvent(ev Event, now time.Time) Event {
	if ev.Time.IsZero() {
		ev.Time = now
	}
	ev.Time = ev.Time.UTC()
	ev.Stage = strings.Clone(truncate(ev.Stage, MaxStageLen))
	ev.Detail = strings.Clone(truncate(ev.Detail, MaxDetailLen))
	ev.Appliance = strings.Clone(truncate(ev.Appliance, MaxStageLen))
	return ev
}

// MergeSeen applies the marks in d (FirstSeen and LastSeen of them, Count of them, the last
// non-empty Arch and IP) to the entry before them; nil before: none.
func MergeSeen(before *Seen, d Seen) Seen { return mergeSeen(before, d) }

// ErrUnavailable means the shared store (etcd) cannot be reached: a write is refused and
// nothing changed; boots go on from the appliance's last known copy of the records.
var ErrUnavailable = errors.New("store unavailable")

// Dump is a store's content as `bootstrapd store copy` moves it: records, seen entries and
// each MAC's events, with their times.
type Dump struct {
	Nodes  []Node
	Seen   []Seen
	Events map[string][]Event
}

// Restorer writes a Dump as it is, over what the store has for the same MACs: writing the
// same Dump twice changes nothing.
type Restorer interface {
	Restore(d Dump) error
}

// ReadDump reads everything s holds: the records, the seen entries, and the events of every
// MAC with either.
func ReadDump(s Store) (Dump, error) {
	var d Dump
	var err error
	if d.Nodes, err = s.ListNodes(); err != nil {
		return d, err
	}
	if d.Seen, err = s.ListSeen(); err != nil {
		return d, err
	}
	d.Events = map[string][]Event{}
	macs := map[string]bool{}
	for _, n := range d.Nodes {
		macs[n.MAC] = true
	}
	for _, sn := range d.Seen {
		macs[sn.MAC] = true
	}
	for mac := range macs {
		evs, err := s.Events(mac)
		if err != nil {
			return d, err
		}
		if len(evs) > 0 {
			d.Events[mac] = evs
		}
	}
	return d, nil
}

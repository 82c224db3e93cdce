package store

import (
	"fmt"

	bolt "go.etcd.io/bbolt"
)

var _ Restorer = (*DB)(nil)

// Restore writes d in one transaction: records and seen entries replace the ones of the same
// MACs, and each MAC in d.Events gets exactly those events as its timeline. Pending activity
// of those MACs is written first, so it is replaced too rather than added after.
func (s *DB) Restore(d Dump) error {
	if err := s.Flush(); err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	s.flushMu.Lock()
	defer s.flushMu.Unlock()
	err := s.db.Update(func(tx *bolt.Tx) error {
		nodes, seen, events := tx.Bucket(bucketNodes), tx.Bucket(bucketSeen), tx.Bucket(bucketEvents)
		for _, n := range d.Nodes {
			k, err := key(n.MAC)
			if err != nil {
				return err
			}
			n.MAC = string(k)
			if err := putJSON(nodes, k, n); err != nil {
				return err
			}
		}
		for _, sn := range d.Seen {
			k, err := key(sn.MAC)
			if err != nil {
				return err
			}
			sn.MAC = string(k)
			if err := putJSON(seen, k, sn); err != nil {
				return err
			}
		}
		for mac, evs := range d.Events {
			k, err := key(mac)
			if err != nil {
				return err
			}
			if events.Bucket(k) != nil {
				if err := events.DeleteBucket(k); err != nil {
					return fmt.Errorf("replace events of %s: %w", k, err)
				}
			}
			b, err := events.CreateBucket(k)
			if err != nil {
				return fmt.Errorf("events of %s: %w", k, err)
			}
			for _, ev := range evs {
				seq, err := b.NextSequence()
				if err != nil {
					return err
				}
				if err := putJSON(b, seqKey(seq), CleanEvent(ev, ev.Time)); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	s.nodes.changed()
	s.knownMu.Lock()
	for _, n := range d.Nodes {
		if m, err := ParseMAC(n.MAC); err == nil {
			s.known[m] = struct{}{}
		}
	}
	s.knownMu.Unlock()
	s.rev.Add(1)
	return nil
}

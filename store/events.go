package store

import (
	"encoding/json"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Event is one boot stage seen for a MAC (proxy offer, TFTP fetch, script served, ...).
type Event struct {
	Time   time.Time `json:"time"`
	Stage  string    `json:"stage"`
	Detail string    `json:"detail,omitempty"`
	// Appliance names the appliance that saw the event when several share a store (etcd);
	// empty for the one appliance of a bbolt file.
	Appliance string `json:"appliance,omitempty"`
}

// AppendEvent adds an event to mac's timeline, keeping the newest Options.MaxEvents. A zero
// Time is set to now; Stage and Detail are cut to MaxStageLen and MaxDetailLen. It only
// touches memory: the next flush writes it. When the pending activity is at its bound the
// event is dropped and counted, as in MarkSeen.
func (s *DB) AppendEvent(mac string, ev Event) error {
	m, err := ParseMAC(mac)
	if err != nil {
		return err
	}
	if s.pending.Append(m, CleanEvent(ev, s.now())) {
		s.rev.Add(1)
	}
	return nil
}

// Events returns mac's timeline, oldest first (empty if none), pending events included.
func (s *DB) Events(mac string) ([]Event, error) {
	k, err := key(mac)
	if err != nil {
		return nil, err
	}
	s.flushMu.RLock()
	defer s.flushMu.RUnlock()
	out := []Event{}
	err = s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketEvents).Bucket(k)
		if b == nil {
			return nil
		}
		return b.ForEach(func(_, v []byte) error {
			var ev Event
			if err := json.Unmarshal(v, &ev); err != nil {
				return fmt.Errorf("decode event of %s: %w", k, err)
			}
			out = append(out, ev)
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	out = append(out, s.pending.Events(string(k))...)
	return lastN(out, s.maxEvents), nil
}

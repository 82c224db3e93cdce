package store

import (
	"encoding/binary"
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
}

// AppendEvent adds an event to mac's timeline, dropping the oldest beyond the bound set in
// Options.MaxEvents. A zero Time is set to now.
func (s *DB) AppendEvent(mac string, ev Event) error {
	k, err := key(mac)
	if err != nil {
		return err
	}
	if ev.Time.IsZero() {
		ev.Time = s.now()
	}
	ev.Time = ev.Time.UTC()
	// Batch, as in MarkSeen: events come in bursts from every booting node.
	return s.db.Batch(func(tx *bolt.Tx) error {
		b, err := tx.Bucket(bucketEvents).CreateBucketIfNotExists(k)
		if err != nil {
			return fmt.Errorf("events %s: %w", k, err)
		}
		seq, err := b.NextSequence()
		if err != nil {
			return err
		}
		var sk [8]byte
		binary.BigEndian.PutUint64(sk[:], seq)
		if err := putJSON(b, sk[:], ev); err != nil {
			return err
		}
		// Keys are big-endian sequence numbers, so the cursor's first keys are the oldest.
		n := 0
		c := b.Cursor()
		for k, _ := c.First(); k != nil; k, _ = c.Next() {
			n++
		}
		for k, _ := c.First(); k != nil && n > s.maxEvents; k, _ = c.First() {
			if err := c.Delete(); err != nil {
				return err
			}
			n--
		}
		return nil
	})
}

// Events returns mac's timeline, oldest first (empty if none).
func (s *DB) Events(mac string) ([]Event, error) {
	k, err := key(mac)
	if err != nil {
		return nil, err
	}
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
	return out, err
}

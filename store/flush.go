package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
)

// sweepEvery is how often Run expires old activity: a sweep reads every seen entry and the
// oldest event of every MAC, too much for each flush, and a minute is nothing next to a
// TTL of hours or days.
const sweepEvery = time.Minute

// errNoChange rolls back a write transaction that changed nothing, so it costs no fsync.
var errNoChange = errors.New("no change")

// Run writes the pending activity every FlushInterval and expires old activity about once a
// minute, until ctx ends; then it flushes one last time and returns. It also returns once
// the store is closed. Run it in one goroutine, and Close after it returned. Errors are
// logged and counted (the activity is kept for the next try), never fatal: a full disk must
// not stop the boots.
func (s *DB) Run(ctx context.Context) {
	RunFlushes(ctx, s.flushInterval, s.sweepDue, s.flush, func(err error) {
		s.log.Error("store: flush", "err", err)
	})
}

func (s *DB) sweepDue() bool {
	s.flushMu.RLock()
	defer s.flushMu.RUnlock()
	return s.now().Sub(s.lastSweep) >= sweepEvery
}

// RunFlushes is a backend's flush loop: flush every interval, sweeping when sweepDue says,
// until ctx ends, then once more without a sweep. It returns early once flush reports
// ErrClosed: Close wrote the activity, nothing is left to do. Any other error goes to
// failed, the final flush's too.
func RunFlushes(ctx context.Context, interval time.Duration, sweepDue func() bool, flush func(sweep bool) error, failed func(error)) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			if err := flush(false); err != nil && !errors.Is(err, ErrClosed) {
				failed(fmt.Errorf("final flush: %w", err))
			}
			return
		case <-t.C:
			err := flush(sweepDue())
			if errors.Is(err, ErrClosed) {
				return
			}
			if err != nil {
				failed(err)
			}
		}
	}
}

// Flush writes all pending activity in one transaction, then applies MaxDiscovered and
// EventTTL.
func (s *DB) Flush() error { return s.flush(true) }

func (s *DB) flush(sweep bool) error {
	s.flushMu.Lock()
	defer s.flushMu.Unlock()
	return s.flushLocked(sweep)
}

// sweepResult is what a full scan removed and found.
type sweepResult struct {
	expiredSeen, expiredEvents, evicted int
	// discovered is the exact number of MACs without a record left on disk.
	discovered int
}

func (s *DB) flushLocked(sweep bool) error {
	if s.closed {
		return ErrClosed
	}
	start := time.Now()
	batch := s.pending.Take()
	if len(batch) == 0 && !sweep {
		// Nothing can have pushed the discovered MACs past the cap since the last flush.
		return nil
	}
	now := s.now().UTC()
	var (
		res     sweepResult
		scanned bool
		est     int
	)
	err := s.db.Update(func(tx *bolt.Tx) error {
		added, err := s.writeBatch(tx, batch)
		if err != nil {
			return err
		}
		est = s.discovered + added
		changed := len(batch) > 0
		if sweep || est > s.maxDiscovered {
			if res, err = s.scan(tx, now); err != nil {
				return err
			}
			scanned, est = true, res.discovered
			changed = changed || res.expiredSeen+res.expiredEvents+res.evicted > 0
		}
		if !changed {
			return errNoChange
		}
		return nil
	})
	if err != nil && !errors.Is(err, errNoChange) {
		s.metrics.FlushFailed()
		s.pending.Restore(batch)
		return fmt.Errorf("flush activity of %d MACs: %w", len(batch), err)
	}
	s.discovered = est
	if scanned {
		if res.expiredSeen+res.expiredEvents+res.evicted > 0 {
			s.rev.Add(1)
		}
		s.lastSweep = now
		s.metrics.Swept(res.evicted, res.expiredSeen, res.expiredEvents)
	}
	s.metrics.Flushed(time.Since(start))
	return nil
}

// writeBatch writes pending activity; it returns how many MACs without a record it added
// to the disk.
func (s *DB) writeBatch(tx *bolt.Tx, batch map[string]*PendingEntry[Event]) (added int, err error) {
	nodes, seen, events := tx.Bucket(bucketNodes), tx.Bucket(bucketSeen), tx.Bucket(bucketEvents)
	// In key order: neighbouring MACs share pages, so the transaction dirties fewer of them.
	for _, mac := range slices.Sorted(maps.Keys(batch)) {
		a, k := batch[mac], []byte(mac)
		old := seen.Get(k)
		if nodes.Get(k) == nil && old == nil && events.Bucket(k) == nil {
			added++
		}
		if a.Seen != nil {
			var before *Seen
			if old != nil {
				before = &Seen{}
				if err := json.Unmarshal(old, before); err != nil {
					// Overwrite rather than fail: a flush that fails keeps failing.
					s.log.Warn("store: replacing undecodable seen entry", "mac", mac, "err", err)
					before = nil
				}
			}
			if err := putJSON(seen, k, mergeSeen(before, *a.Seen)); err != nil {
				return 0, fmt.Errorf("seen %s: %w", mac, err)
			}
		}
		if len(a.Events) > 0 {
			keep := s.maxEvents
			if nodes.Get(k) == nil {
				// Anyone can invent a MAC: its timeline is kept short.
				keep = s.maxDiscoveredEvents
			}
			if err := appendEvents(events, k, a.Events, keep); err != nil {
				return 0, fmt.Errorf("events of %s: %w", mac, err)
			}
		}
	}
	return added, nil
}

// appendEvents adds evs to k's sub-bucket under the next sequence numbers and trims it to
// the newest keep.
func appendEvents(parent *bolt.Bucket, k []byte, evs []Event, keep int) error {
	b, err := parent.CreateBucketIfNotExists(k)
	if err != nil {
		return err
	}
	// Keys only ever grow, so a page split never gets an insert in its first half: filling
	// pages before splitting halves the space a timeline takes (bbolt's default leaves them
	// half empty).
	b.FillPercent = 1.0
	for _, ev := range evs {
		seq, err := b.NextSequence()
		if err != nil {
			return err
		}
		if err := putJSON(b, seqKey(seq), ev); err != nil {
			return err
		}
	}
	// Keys are big-endian sequence numbers, so the cursor's first keys are the oldest.
	n := 0
	c := b.Cursor()
	for k, _ := c.First(); k != nil; k, _ = c.Next() {
		n++
	}
	for k, _ := c.First(); k != nil && n > keep; k, _ = c.First() {
		if err := c.Delete(); err != nil {
			return err
		}
		n--
	}
	return nil
}

func seqKey(seq uint64) []byte {
	var k [8]byte
	binary.BigEndian.PutUint64(k[:], seq)
	return k[:]
}

// timeField reads the time in field of a stored JSON value without decoding the rest: a
// scan reads one per MAC, and the strings after it are most of the bytes. The first match
// is the field itself: it comes before every free-form string in Seen and Event, and a quote
// inside a string is escaped, so no string can hold the pattern. Anything else (an older or
// damaged value) falls back to a full decode; ok is false if that fails too.
func timeField(v []byte, field string) (t time.Time, ok bool) {
	pat := `"` + field + `":"`
	if i := bytes.Index(v, []byte(pat)); i >= 0 {
		rest := v[i+len(pat):]
		if j := bytes.IndexByte(rest, '"'); j > 0 {
			if t, err := time.Parse(time.RFC3339Nano, string(rest[:j])); err == nil {
				return t, true
			}
		}
	}
	var m map[string]json.RawMessage
	if json.Unmarshal(v, &m) != nil {
		return time.Time{}, false
	}
	return t, json.Unmarshal(m[field], &t) == nil
}

// scan removes expired activity and evicts the MACs without a record beyond MaxDiscovered,
// least recently heard of first.
//
// A MAC without a record counts as discovered if it has a seen entry or events: timelines
// can be written for a MAC that never marked itself seen (a TFTP fetch matched through the
// ARP table), and those must be bounded too. Its age is its LastSeen, or for events alone
// the time of its newest event.
//
// Events are expired from the oldest and the scan stops at the first one still young:
// events are appended in time order, so this reads one event per MAC instead of all.
// An event with an out-of-order older time behind a young one waits for that one.
func (s *DB) scan(tx *bolt.Tx, now time.Time) (sweepResult, error) {
	var res sweepResult
	nodes, seen, events := tx.Bucket(bucketNodes), tx.Bucket(bucketSeen), tx.Bucket(bucketEvents)
	cutoff := now.Add(-s.eventTTL)
	lastHeard := map[string]time.Time{}

	// Keys are collected first: bbolt forbids changing a bucket inside its ForEach.
	var expired [][]byte
	err := seen.ForEach(func(k, v []byte) error {
		if nodes.Get(k) != nil {
			return nil
		}
		// An undecodable entry has a zero LastSeen, so it expires: nothing else removes it.
		last, _ := timeField(v, "last_seen")
		if last.Before(cutoff) {
			expired = append(expired, bytes.Clone(k))
		} else {
			lastHeard[string(k)] = last
		}
		return nil
	})
	if err != nil {
		return res, fmt.Errorf("scan seen: %w", err)
	}
	for _, k := range expired {
		n := eventCount(events, k)
		if _, err := deleteActivity(tx, k); err != nil {
			return res, err
		}
		res.expiredSeen++
		res.expiredEvents += n
	}

	var timelines [][]byte
	err = events.ForEach(func(k, v []byte) error {
		if v == nil {
			timelines = append(timelines, bytes.Clone(k))
		}
		return nil
	})
	if err != nil {
		return res, fmt.Errorf("scan events: %w", err)
	}
	for _, k := range timelines {
		b := events.Bucket(k)
		c := b.Cursor()
		for ek, v := c.First(); ek != nil; ek, v = c.First() {
			if at, ok := timeField(v, "time"); ok && !at.Before(cutoff) {
				break
			}
			if err := c.Delete(); err != nil {
				return res, fmt.Errorf("expire event of %s: %w", k, err)
			}
			res.expiredEvents++
		}
		last, v := c.Last()
		if last == nil {
			if err := events.DeleteBucket(k); err != nil {
				return res, fmt.Errorf("delete empty events of %s: %w", k, err)
			}
			continue
		}
		if _, ok := lastHeard[string(k)]; ok || nodes.Get(k) != nil {
			continue
		}
		lastHeard[string(k)], _ = timeField(v, "time")
	}

	res.discovered = len(lastHeard)
	if over := len(lastHeard) - s.maxDiscovered; over > 0 {
		macs := slices.Collect(maps.Keys(lastHeard))
		slices.SortFunc(macs, func(a, b string) int {
			if c := lastHeard[a].Compare(lastHeard[b]); c != 0 {
				return c
			}
			return strings.Compare(a, b)
		})
		for _, mac := range macs[:over] {
			if _, err := deleteActivity(tx, []byte(mac)); err != nil {
				return res, err
			}
		}
		res.evicted = over
		res.discovered = s.maxDiscovered
	}
	return res, nil
}

// eventCount counts k's events, for the expired metric. It walks them rather than ask
// Stats, which reads the committed pages and misses this transaction's appends.
func eventCount(events *bolt.Bucket, k []byte) int {
	b := events.Bucket(k)
	if b == nil {
		return 0
	}
	n := 0
	c := b.Cursor()
	for k, _ := c.First(); k != nil; k, _ = c.Next() {
		n++
	}
	return n
}

package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	bolt "go.etcd.io/bbolt"
)

// Defaults for the zero Options.
const (
	DefaultMaxEvents           = 50
	DefaultMaxDiscoveredEvents = 10
	DefaultMaxDiscovered       = 10000
	DefaultEventTTL            = 7 * 24 * time.Hour
	DefaultFlushInterval       = time.Second
)

// Bounds on the strings the network can make the store keep. The store enforces them itself,
// being the last line: every caller passes request data through.
const (
	// MaxStageLen and MaxDetailLen bound Event.Stage and Event.Detail: longer ones are cut,
	// on a UTF-8 boundary, since a truncated detail still tells the operator something.
	// Invalid UTF-8 and control characters become U+FFFD before the cut.
	MaxStageLen  = 32
	MaxDetailLen = 256
	// MaxArchLen and MaxIPLen bound Seen.Arch and Seen.IP: longer ones (or invalid UTF-8,
	// or with control characters) are dropped, since a cut architecture or address would
	// be a wrong one. 45 bytes is the longest textual IPv6 address (IPv4-mapped).
	MaxArchLen = 40
	MaxIPLen   = 45
)

// MarkSeen records that mac asked for something. Empty arch or ip keep the previous value;
// so do ones beyond MaxArchLen or MaxIPLen, not UTF-8 or with control characters. It only
// touches memory: the next flush writes it. When the pending activity is at its bound the
// mark is dropped and counted in bootstrapd_store_activity_dropped_total, not an error, so
// a flood does not also flood the callers' logs.
func (s *DB) MarkSeen(mac, arch, ip string) error {
	m, err := ParseMAC(mac)
	if err != nil {
		return err
	}
	if s.pending.Mark(m, s.now().UTC(), arch, ip) {
		s.rev.Add(1)
	}
	return nil
}

func (s *DB) addKnown(mac string) {
	s.knownMu.Lock()
	s.known[mac] = struct{}{}
	s.knownMu.Unlock()
}

// mergeSeen applies a pending change d to the entry before it (nil: none).
func mergeSeen(before *Seen, d Seen) Seen {
	if before == nil {
		return d
	}
	out := *before
	out.MAC = d.MAC
	out.LastSeen = d.LastSeen
	out.Count += d.Count
	if d.Arch != "" {
		out.Arch = d.Arch
	}
	if d.IP != "" {
		out.IP = d.IP
	}
	return out
}

func lastN[T any](s []T, n int) []T {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// dropLong returns s, or "" if it is longer than n bytes, not UTF-8 or holds a control
// character: an architecture or an address has none, and an escape sequence would reach
// the operator's terminal through `bootstrapd node` listings.
func dropLong(s string, n int) string {
	if len(s) > n || !utf8.ValidString(s) || strings.IndexFunc(s, unicode.IsControl) >= 0 {
		return ""
	}
	return s
}

// truncate cuts s to at most n bytes of valid UTF-8 without control characters (replaced by
// U+FFFD, for the operator's terminal), never splitting a character.
func truncate(s string, n int) string {
	if len(s) > n {
		// Bounds the work below to n bytes, whatever the caller passed.
		s = s[:n]
	}
	s = strings.ToValidUTF8(s, "\uFFFD")
	if strings.IndexFunc(s, unicode.IsControl) >= 0 {
		s = strings.Map(func(r rune) rune {
			if unicode.IsControl(r) {
				return utf8.RuneError
			}
			return r
		}, s)
	}
	if len(s) <= n {
		return s
	}
	i := n
	for i > 0 && !utf8.RuneStart(s[i]) {
		i--
	}
	return s[:i]
}

// Forget removes the seen entry and all events of mac, pending ones too; ErrNotFound if
// there was neither. A record, if any, stays.
func (s *DB) Forget(mac string) error {
	k, err := key(mac)
	if err != nil {
		return err
	}
	s.flushMu.Lock()
	defer s.flushMu.Unlock()
	had := s.pending.Forget(string(k))
	var onDisk bool
	err = s.db.Update(func(tx *bolt.Tx) error {
		var err error
		if onDisk, err = deleteActivity(tx, k); err != nil {
			return err
		}
		if !onDisk {
			return errNoChange
		}
		return nil
	})
	if err != nil && !errors.Is(err, errNoChange) {
		return fmt.Errorf("forget %s: %w", k, err)
	}
	if !had && !onDisk {
		return fmt.Errorf("%w: %s", ErrNotFound, k)
	}
	s.rev.Add(1)
	return nil
}

// deleteActivity removes the seen entry and the events of k; it reports whether there was
// either.
func deleteActivity(tx *bolt.Tx, k []byte) (bool, error) {
	sb, eb := tx.Bucket(bucketSeen), tx.Bucket(bucketEvents)
	found := false
	if sb.Get(k) != nil {
		found = true
		if err := sb.Delete(k); err != nil {
			return false, fmt.Errorf("delete seen %s: %w", k, err)
		}
	}
	if eb.Bucket(k) != nil {
		found = true
		if err := eb.DeleteBucket(k); err != nil {
			return false, fmt.Errorf("delete events %s: %w", k, err)
		}
	}
	return found, nil
}

// Reads merge the pending activity into what is on disk rather than flush first: an
// operator's read (or a /metrics scrape) then never writes, and never waits for more than a
// flush already running.

// ListSeen returns every MAC that asked, ordered by MAC, pending marks included.
func (s *DB) ListSeen() ([]Seen, error) {
	s.flushMu.RLock()
	defer s.flushMu.RUnlock()
	pend := s.pending.Seen("")
	out := []Seen{}
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketSeen).ForEach(func(k, v []byte) error {
			var sn Seen
			if err := json.Unmarshal(v, &sn); err != nil {
				return fmt.Errorf("decode seen %s: %w", k, err)
			}
			if d, ok := pend[string(k)]; ok {
				sn = mergeSeen(&sn, d)
				delete(pend, string(k))
			}
			out = append(out, sn)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("list seen: %w", err)
	}
	for _, d := range pend {
		out = append(out, d)
	}
	slices.SortFunc(out, func(a, b Seen) int { return strings.Compare(a.MAC, b.MAC) })
	return out, nil
}

// GetSeen returns what is known of a MAC that asked, pending marks included; ErrNotFound if
// it never did.
func (s *DB) GetSeen(mac string) (Seen, error) {
	k, err := key(mac)
	if err != nil {
		return Seen{}, err
	}
	s.flushMu.RLock()
	defer s.flushMu.RUnlock()
	var disk *Seen
	err = s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketSeen).Get(k)
		if v == nil {
			return nil
		}
		disk = &Seen{}
		if err := json.Unmarshal(v, disk); err != nil {
			return fmt.Errorf("decode seen %s: %w", k, err)
		}
		return nil
	})
	if err != nil {
		return Seen{}, err
	}
	d, ok := s.pending.Seen(string(k))[string(k)]
	switch {
	case ok:
		return mergeSeen(disk, d), nil
	case disk != nil:
		return *disk, nil
	}
	return Seen{}, fmt.Errorf("%w: %s", ErrNotFound, k)
}

// CountNodes counts records, and MACs seen at or after seenSince (pending marks included).
func (s *DB) CountNodes(seenSince time.Time) (known, seen int, err error) {
	s.flushMu.RLock()
	defer s.flushMu.RUnlock()
	pend := s.pending.Seen("")
	err = s.db.View(func(tx *bolt.Tx) error {
		known = tx.Bucket(bucketNodes).Stats().KeyN
		return tx.Bucket(bucketSeen).ForEach(func(k, v []byte) error {
			if _, ok := pend[string(k)]; ok {
				// Pending marks are newer: counted below.
				return nil
			}
			var sn struct {
				LastSeen time.Time `json:"last_seen"`
			}
			if err := json.Unmarshal(v, &sn); err != nil {
				return fmt.Errorf("decode seen %s: %w", k, err)
			}
			if !sn.LastSeen.Before(seenSince) {
				seen++
			}
			return nil
		})
	})
	if err != nil {
		return 0, 0, fmt.Errorf("count nodes: %w", err)
	}
	for _, d := range pend {
		if !d.LastSeen.Before(seenSince) {
			seen++
		}
	}
	return known, seen, nil
}

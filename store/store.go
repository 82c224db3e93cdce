package store

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

var (
	bucketNodes  = []byte("nodes")
	bucketSeen   = []byte("seen")
	bucketEvents = []byte("events")
)

// Node is an operator's record for one NIC: what it boots.
type Node struct {
	MAC     string    `json:"mac"`
	Network string    `json:"network"`
	Farm    uint64    `json:"farm"`
	Args    string    `json:"args,omitempty"`   // extra kernel arguments
	Kernel  string    `json:"kernel,omitempty"` // file under the kernels dir; empty: net/<network>.efi
	Created time.Time `json:"created"`
	Updated time.Time `json:"updated"`
}

// Seen records a MAC that asked the appliance for something, known or not.
type Seen struct {
	MAC       string    `json:"mac"`
	FirstSeen time.Time `json:"first_seen"`
	LastSeen  time.Time `json:"last_seen"`
	Arch      string    `json:"arch,omitempty"`
	IP        string    `json:"ip,omitempty"`
	Count     uint64    `json:"count"`
}

// Options tune Open. The zero value is usable.
type Options struct {
	// Now is the clock used for timestamps; nil means time.Now.
	Now func() time.Time
	// LockTimeout is how long Open waits for another process's lock; 0 means 1 s.
	LockTimeout time.Duration
	// MaxEvents bounds the events kept per node; 0 means 50.
	MaxEvents int
}

// DB is the appliance's state. It is safe for concurrent use.
type DB struct {
	db        *bolt.DB
	now       func() time.Time
	maxEvents int
}

// Open opens (creating if needed) the bbolt file at path.
func Open(path string, opts Options) (*DB, error) {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.LockTimeout == 0 {
		opts.LockTimeout = time.Second
	}
	if opts.MaxEvents == 0 {
		opts.MaxEvents = 50
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, fmt.Errorf("open store %q: %w", path, err)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: opts.LockTimeout})
	if errors.Is(err, berrors.ErrTimeout) {
		return nil, fmt.Errorf("open store %q: %w", path, ErrLocked)
	}
	if err != nil {
		return nil, fmt.Errorf("open store %q: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketNodes, bucketSeen, bucketEvents} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("open store %q: create buckets: %w", path, err)
	}
	return &DB{db: db, now: opts.Now, maxEvents: opts.MaxEvents}, nil
}

// Close flushes and closes the file.
func (s *DB) Close() error { return s.db.Close() }

func key(mac string) ([]byte, error) {
	m, err := ParseMAC(mac)
	if err != nil {
		return nil, err
	}
	return []byte(m), nil
}

// CreateNode stores a new record; ErrExists if the MAC has one.
func (s *DB) CreateNode(n Node) (Node, error) {
	k, err := key(n.MAC)
	if err != nil {
		return Node{}, err
	}
	n.MAC = string(k)
	n.Created = s.now().UTC()
	n.Updated = n.Created
	err = s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketNodes)
		if b.Get(k) != nil {
			return fmt.Errorf("%w: %s", ErrExists, n.MAC)
		}
		return putJSON(b, k, n)
	})
	if err != nil {
		return Node{}, err
	}
	return n, nil
}

// UpdateNode applies change to an existing record inside one transaction; ErrNotFound if
// there is none. An error from change aborts the update.
func (s *DB) UpdateNode(mac string, change func(*Node) error) (Node, error) {
	k, err := key(mac)
	if err != nil {
		return Node{}, err
	}
	var n Node
	err = s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketNodes)
		v := b.Get(k)
		if v == nil {
			return fmt.Errorf("%w: %s", ErrNotFound, k)
		}
		if err := json.Unmarshal(v, &n); err != nil {
			return fmt.Errorf("decode node %s: %w", k, err)
		}
		if err := change(&n); err != nil {
			return err
		}
		n.MAC = string(k)
		n.Updated = s.now().UTC()
		return putJSON(b, k, n)
	})
	if err != nil {
		return Node{}, err
	}
	return n, nil
}

// GetNode returns the record for mac; ErrNotFound if there is none.
func (s *DB) GetNode(mac string) (Node, error) {
	k, err := key(mac)
	if err != nil {
		return Node{}, err
	}
	var n Node
	err = s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketNodes).Get(k)
		if v == nil {
			return fmt.Errorf("%w: %s", ErrNotFound, k)
		}
		// Unmarshal copies out of the mmap before the transaction ends.
		return json.Unmarshal(v, &n)
	})
	return n, err
}

// DeleteNode removes the record and its events; ErrNotFound if there is none.
func (s *DB) DeleteNode(mac string) error {
	k, err := key(mac)
	if err != nil {
		return err
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketNodes)
		if b.Get(k) == nil {
			return fmt.Errorf("%w: %s", ErrNotFound, k)
		}
		return b.Delete(k)
	})
}

// ListNodes returns every record, ordered by MAC.
func (s *DB) ListNodes() ([]Node, error) {
	nodes := []Node{}
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketNodes).ForEach(func(k, v []byte) error {
			var n Node
			if err := json.Unmarshal(v, &n); err != nil {
				return fmt.Errorf("decode node %s: %w", k, err)
			}
			nodes = append(nodes, n)
			return nil
		})
	})
	return nodes, err
}

// ImportNodes creates or replaces every record in one transaction: all of them land, or none.
// Created times of replaced records are kept.
func (s *DB) ImportNodes(nodes []Node) (created, updated int, err error) {
	now := s.now().UTC()
	err = s.db.Update(func(tx *bolt.Tx) error {
		created, updated = 0, 0
		b := tx.Bucket(bucketNodes)
		for _, n := range nodes {
			k, err := key(n.MAC)
			if err != nil {
				return err
			}
			n.MAC = string(k)
			n.Created, n.Updated = now, now
			if v := b.Get(k); v != nil {
				var old Node
				if json.Unmarshal(v, &old) == nil {
					n.Created = old.Created
				}
				updated++
			} else {
				created++
			}
			if err := putJSON(b, k, n); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return 0, 0, fmt.Errorf("import %d nodes: %w", len(nodes), err)
	}
	return created, updated, nil
}

// MarkSeen records that mac asked for something. Empty arch or ip keep the previous value.
func (s *DB) MarkSeen(mac, arch, ip string) (Seen, error) {
	k, err := key(mac)
	if err != nil {
		return Seen{}, err
	}
	now := s.now().UTC()
	var seen Seen
	// Batch: a boot storm's many small writes share one transaction and one fsync. The
	// function may run again if another in the batch fails, so it starts from the stored
	// value every time.
	err = s.db.Batch(func(tx *bolt.Tx) error {
		seen = Seen{}
		b := tx.Bucket(bucketSeen)
		if v := b.Get(k); v != nil {
			if err := json.Unmarshal(v, &seen); err != nil {
				return fmt.Errorf("decode seen %s: %w", k, err)
			}
		} else {
			seen = Seen{MAC: string(k), FirstSeen: now}
		}
		seen.LastSeen = now
		seen.Count++
		if arch != "" {
			seen.Arch = arch
		}
		if ip != "" {
			seen.IP = ip
		}
		return putJSON(b, k, seen)
	})
	return seen, err
}

// ListSeen returns every MAC that asked, ordered by MAC.
func (s *DB) ListSeen() ([]Seen, error) {
	out := []Seen{}
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketSeen).ForEach(func(k, v []byte) error {
			var sn Seen
			if err := json.Unmarshal(v, &sn); err != nil {
				return fmt.Errorf("decode seen %s: %w", k, err)
			}
			out = append(out, sn)
			return nil
		})
	})
	return out, err
}

// GetSeen returns what is known of a MAC that asked; ErrNotFound if it never did.
func (s *DB) GetSeen(mac string) (Seen, error) {
	k, err := key(mac)
	if err != nil {
		return Seen{}, err
	}
	var sn Seen
	err = s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketSeen).Get(k)
		if v == nil {
			return fmt.Errorf("%w: %s", ErrNotFound, k)
		}
		return json.Unmarshal(v, &sn)
	})
	return sn, err
}

func putJSON(b *bolt.Bucket, k []byte, v any) error {
	var buf bytes.Buffer
	if err := json.NewEncoder(&buf).Encode(v); err != nil {
		return fmt.Errorf("encode %s: %w", k, err)
	}
	return b.Put(k, bytes.TrimSuffix(buf.Bytes(), []byte("\n")))
}

// CountNodes counts records, and MACs seen at or after seenSince.
func (s *DB) CountNodes(seenSince time.Time) (known, seen int, err error) {
	err = s.db.View(func(tx *bolt.Tx) error {
		known = tx.Bucket(bucketNodes).Stats().KeyN
		return tx.Bucket(bucketSeen).ForEach(func(k, v []byte) error {
			var sn Seen
			if err := json.Unmarshal(v, &sn); err != nil {
				return fmt.Errorf("decode seen %s: %w", k, err)
			}
			if !sn.LastSeen.Before(seenSince) {
				seen++
			}
			return nil
		})
	})
	return known, seen, err
}

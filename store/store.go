package store

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
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
	MAC     string `json:"mac"`
	Network string `json:"network"`
	Farm    uint64 `json:"farm"`
	Args    string `json:"args,omitempty"`   // extra kernel arguments
	Kernel  string `json:"kernel,omitempty"` // file under the kernels dir; empty: net/<network>.efi
	// EFIBinary is the iPXE binary the ProxyDHCP hands this node's x86_64 UEFI firmware:
	// "ipxe" (ipxe-amd64.efi), "snponly" (snponly.efi, the firmware's own NIC driver), or
	// empty for dhcp.efi_binary.
	EFIBinary string    `json:"efi_binary,omitempty"`
	Created   time.Time `json:"created"`
	Updated   time.Time `json:"updated"`
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
	// Now is the clock used for timestamps and expiry; nil means time.Now.
	Now func() time.Time
	// LockTimeout is how long Open waits for another process's lock; 0 means 1 s.
	LockTimeout time.Duration
	// MaxEvents bounds the events kept per MAC; 0 means 50.
	MaxEvents int
	// MaxDiscoveredEvents bounds the events kept for a MAC without a record, which anyone on
	// the network can invent; 0 means 10 (never more than MaxEvents).
	MaxDiscoveredEvents int
	// MaxDiscovered bounds the MACs without a node record that the store keeps activity of
	// (a seen entry, events or both); 0 means 10000. Beyond it, the ones heard of least
	// recently are evicted with their events.
	MaxDiscovered int
	// EventTTL is how long activity is kept: seen entries of MACs without a record, and
	// events of any MAC, older than this are removed; 0 means 7 days.
	EventTTL time.Duration
	// FlushInterval is how often Run writes pending activity to disk; 0 means 1 s. It is also
	// the most activity a kill -9 can lose.
	FlushInterval time.Duration
	// Registerer receives the store's metrics; nil counts them without registering.
	Registerer prometheus.Registerer
	// Logger receives flush errors and dropped-activity warnings; nil discards them.
	Logger *slog.Logger
}

// DB is the appliance's state. It is safe for concurrent use.
type DB struct {
	db      *bolt.DB
	now     func() time.Time
	log     *slog.Logger
	metrics *ActivityMetrics

	maxEvents           int
	maxDiscoveredEvents int
	maxDiscovered       int
	eventTTL            time.Duration
	flushInterval       time.Duration

	// flushMu makes a flush atomic for readers: a flush holds it from the moment it takes
	// the pending activity until its transaction commits, so a reader (holding it shared)
	// sees every piece of activity exactly once, on disk or in memory. Forget and
	// DeleteNode hold it too, so no flush can write back what they remove. The request
	// path (MarkSeen, AppendEvent) never takes it.
	flushMu sync.RWMutex
	closed  bool
	// discovered is an upper bound on the MACs without a record on disk: exact after a full
	// scan, raised by every flush that adds one. Records and removals only lower the true
	// count, so the bound stays safe without tracking them, and a full scan (costly: it
	// reads every seen entry) runs only when the bound passes MaxDiscovered.
	discovered int
	lastSweep  time.Time

	// pending is the activity the next flush writes.
	pending *Pending[Event]
	// knownMu guards known, the MACs with a record. It is held only for map operations,
	// never across disk I/O, so a request never waits on the disk.
	knownMu sync.Mutex
	known   map[string]struct{}

	// rev counts changes readers can see (see Revision).
	rev atomic.Uint64
	// nodes holds records as GetNode last read them.
	nodes nodeCache
}

// Revision is a number that changes whenever anything a reader can see changes: a record,
// a seen entry, an event, a removal or an expiry. It is bumped after the change is visible,
// so a reader that reads Revision before reading the data never labels old data with a new
// revision. It starts at 0 at every Open: callers that hand it out (an HTTP ETag) pair it
// with something unique to the process.
func (s *DB) Revision() uint64 { return s.rev.Load() }

// Open opens (creating if needed) the bbolt file at path.
func Open(path string, opts Options) (*DB, error) {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	opts.LockTimeout = cmp.Or(opts.LockTimeout, time.Second)
	opts.MaxEvents = cmp.Or(opts.MaxEvents, DefaultMaxEvents)
	opts.MaxDiscoveredEvents = min(cmp.Or(opts.MaxDiscoveredEvents, DefaultMaxDiscoveredEvents), opts.MaxEvents)
	opts.MaxDiscovered = cmp.Or(opts.MaxDiscovered, DefaultMaxDiscovered)
	opts.EventTTL = cmp.Or(opts.EventTTL, DefaultEventTTL)
	opts.FlushInterval = cmp.Or(opts.FlushInterval, DefaultFlushInterval)
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.MaxEvents < 0 || opts.MaxDiscoveredEvents < 0 || opts.MaxDiscovered < 0 || opts.EventTTL < 0 || opts.FlushInterval < 0 {
		return nil, fmt.Errorf("open store %q: negative MaxEvents, MaxDiscovered, EventTTL or FlushInterval", path)
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
	known := map[string]struct{}{}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketNodes, bucketSeen, bucketEvents} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return fmt.Errorf("create bucket %s: %w", b, err)
			}
		}
		return tx.Bucket(bucketNodes).ForEach(func(k, _ []byte) error {
			known[string(k)] = struct{}{}
			return nil
		})
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("open store %q: %w", path, err)
	}
	// Registered last, so a failed Open leaves nothing registered and can be retried.
	m := NewActivityMetrics("Time to write pending activity to disk (one transaction and its fsync), expiry and eviction included.")
	if opts.Registerer != nil {
		if err := Register(opts.Registerer, m.Collectors()); err != nil {
			db.Close()
			return nil, fmt.Errorf("open store %q: %w", path, err)
		}
	}
	s := &DB{
		db: db, now: opts.Now, log: opts.Logger, metrics: m,
		maxEvents: opts.MaxEvents, maxDiscoveredEvents: opts.MaxDiscoveredEvents, maxDiscovered: opts.MaxDiscovered,
		eventTTL: opts.EventTTL, flushInterval: opts.FlushInterval,
		// Unknown until the first full scan: start above the cap so the first flush does one.
		discovered: opts.MaxDiscovered + 1,
		known:      known,
	}
	lim := PendingLimits{MaxDiscovered: opts.MaxDiscovered, MaxEvents: opts.MaxEvents, MaxDiscoveredEvents: opts.MaxDiscoveredEvents}
	s.pending = NewPending[Event](lim, s.isKnown, m.Dropped, opts.Logger)
	return s, nil
}

// isKnown reports whether mac has a record.
func (s *DB) isKnown(mac string) bool {
	s.knownMu.Lock()
	defer s.knownMu.Unlock()
	_, ok := s.known[mac]
	return ok
}

// Close writes the pending activity, then closes the file: a clean shutdown loses nothing.
// Closing twice is harmless.
func (s *DB) Close() error {
	s.flushMu.Lock()
	defer s.flushMu.Unlock()
	if s.closed {
		return nil
	}
	ferr := s.flushLocked(false)
	s.closed = true
	if err := s.db.Close(); err != nil {
		return errors.Join(ferr, fmt.Errorf("close store: %w", err))
	}
	return ferr
}

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
	s.nodes.changed()
	s.addKnown(n.MAC)
	s.rev.Add(1)
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
	s.nodes.changed()
	s.rev.Add(1)
	return n, nil
}

// GetNode returns the record for mac; ErrNotFound if there is none.
func (s *DB) GetNode(mac string) (Node, error) {
	k, err := key(mac)
	if err != nil {
		return Node{}, err
	}
	if n, ok := s.nodes.get(string(k)); ok {
		return n, nil
	}
	// Most MACs that ask have no record (a LAN's other PXE clients, a flood of made-up ones):
	// the set of MACs with a record answers those without a transaction. It is updated
	// right after each write commits, as the cache is.
	if !s.isKnown(string(k)) {
		return Node{}, fmt.Errorf("%w: %s", ErrNotFound, k)
	}
	gen := s.nodes.generation()
	var n Node
	err = s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketNodes).Get(k)
		if v == nil {
			return fmt.Errorf("%w: %s", ErrNotFound, k)
		}
		// Unmarshal copies out of the mmap before the transaction ends.
		return json.Unmarshal(v, &n)
	})
	if err == nil && n.MAC == string(k) {
		s.nodes.put(gen, n)
	}
	return n, err
}

// DeleteNode removes the record, the seen entry and the events of mac (on disk and pending)
// in one transaction; ErrNotFound if there is no record.
func (s *DB) DeleteNode(mac string) error {
	k, err := key(mac)
	if err != nil {
		return err
	}
	// Held across the transaction and the removal of the pending activity, so no flush
	// writes that activity back in between.
	s.flushMu.Lock()
	defer s.flushMu.Unlock()
	err = s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketNodes)
		if b.Get(k) == nil {
			return fmt.Errorf("%w: %s", ErrNotFound, k)
		}
		if err := b.Delete(k); err != nil {
			return fmt.Errorf("delete node %s: %w", k, err)
		}
		_, err := deleteActivity(tx, k)
		return err
	})
	if err != nil {
		return err
	}
	s.nodes.changed()
	// The record goes first: activity that arrives after its pending entry is dropped
	// below then counts as a MAC without a record.
	s.knownMu.Lock()
	delete(s.known, string(k))
	s.knownMu.Unlock()
	s.pending.Forget(string(k))
	s.rev.Add(1)
	return nil
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
	s.nodes.changed()
	for _, n := range nodes {
		// Already validated by the transaction.
		if m, err := ParseMAC(n.MAC); err == nil {
			s.addKnown(m)
		}
	}
	s.rev.Add(1)
	return created, updated, nil
}

func putJSON(b *bolt.Bucket, k []byte, v any) error {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	// Unescaped, '<' takes 1 byte instead of 6: a string then costs at most twice its length
	// on disk ('"', '\\', U+2028), which the size bound in doc.go counts on. Any JSON decoder
	// reads both forms, so existing files stay readable.
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return fmt.Errorf("encode %s: %w", k, err)
	}
	return b.Put(k, bytes.TrimSuffix(buf.Bytes(), []byte("\n")))
}

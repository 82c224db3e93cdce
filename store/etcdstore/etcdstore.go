package etcdstore

import (
	"cmp"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/threefoldtech/bootstrapd/store"
)

// Defaults for the zero Config.
const (
	DefaultPrefix      = "/bootstrapd/"
	DefaultDialTimeout = 5 * time.Second
)

// maxOps is the most operations one transaction carries: below etcd's default
// --max-txn-ops (128), so activity and sweeps work against any etcd.
const maxOps = 100

// probeEvery is how often the appliance checks that etcd answers.
const probeEvery = time.Second

// Config tells Open where etcd is and how this appliance appears in it.
type Config struct {
	// Endpoints are the etcd members' client URLs (http://host:2379, https://...).
	Endpoints []string
	// Prefix is put before every key; "" means DefaultPrefix. It ends with "/".
	Prefix string
	// DialTimeout bounds a connection attempt and each request; 0 means DefaultDialTimeout.
	DialTimeout time.Duration
	// TLS, if not nil, is used to reach etcd (LoadTLS builds one from files).
	TLS *tls.Config
	// Name is this appliance in seen entries and events: 1 to 32 of [A-Za-z0-9._-].
	Name string
	// CacheFile, if not empty, keeps the copy of the records on disk, so an appliance
	// started while etcd is down boots the nodes it knew.
	CacheFile string
	// Options are the bounds, clock, metrics and logger, as for the bbolt store.
	store.Options
}

var validName = regexp.MustCompile(`^[A-Za-z0-9._-]{1,32}$`)

// ValidName tells whether name can name an appliance in keys.
func ValidName(name string) bool { return validName.MatchString(name) }

// LoadTLS builds a client TLS configuration: ca (PEM) verifies the server, cert and key
// (PEM, both or neither) authenticate the client. All empty: nil, plain connections.
func LoadTLS(ca, cert, key string) (*tls.Config, error) {
	if ca == "" && cert == "" && key == "" {
		return nil, nil
	}
	c := &tls.Config{MinVersion: tls.VersionTLS12}
	if ca != "" {
		pem, err := os.ReadFile(ca)
		if err != nil {
			return nil, fmt.Errorf("etcd tls ca: %w", err)
		}
		c.RootCAs = x509.NewCertPool()
		if !c.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("etcd tls ca %s: no PEM certificate in it", ca)
		}
	}
	if (cert == "") != (key == "") {
		return nil, errors.New("etcd tls: cert and key go together")
	}
	if cert != "" {
		kp, err := tls.LoadX509KeyPair(cert, key)
		if err != nil {
			return nil, fmt.Errorf("etcd tls cert/key: %w", err)
		}
		c.Certificates = []tls.Certificate{kp}
	}
	return c, nil
}

// entry is a record in the copy, with the etcd revision it was written at.
type entry struct {
	node store.Node
	rev  int64
}

// DB is the etcd store. It is safe for concurrent use.
type DB struct {
	cli     *clientv3.Client
	cfg     Config
	now     func() time.Time
	log     *slog.Logger
	metrics *metrics
	timeout time.Duration

	stop context.CancelFunc
	done sync.WaitGroup

	// copyMu guards the copy of the records. It is never held across a request to etcd.
	copyMu sync.RWMutex
	nodes  map[string]entry
	// deleted holds the revision of records deleted through this appliance, so a watch
	// event older than the delete cannot bring a record back.
	deleted map[string]int64
	dirty   bool // the copy changed since CacheFile was written

	// up is whether the last probe succeeded; cancelWatch ends the current watch, so the
	// sync loop reloads the copy once etcd is back.
	upMu        sync.Mutex
	up          bool
	downSince   time.Time
	cancelWatch context.CancelFunc

	// rev counts this appliance's changes; etcdRev is the cluster's revision at the last
	// probe (it moves with every write of every appliance); copyRev the revision the copy
	// of the records is at. Revision is their sum.
	rev     atomic.Uint64
	etcdRev atomic.Int64
	copyRev atomic.Int64

	activity
}

// Revision changes whenever what the reads return may have changed: a change made here
// (counted after it is visible), a write by any appliance (seen at the next probe, within a
// second, after which reads see it), or a record that reached the copy.
func (s *DB) Revision() uint64 {
	return s.rev.Load() + uint64(s.etcdRev.Load()) + uint64(s.copyRev.Load())
}

// Open connects to etcd and loads the copy of the records. If etcd cannot be reached, it
// starts from Config.CacheFile when that holds a copy, and fails otherwise: an appliance
// that knows no record would boot every node as an unknown one.
func Open(cfg Config) (*DB, error) {
	o := &cfg.Options
	if o.Now == nil {
		o.Now = time.Now
	}
	o.MaxEvents = cmp.Or(o.MaxEvents, store.DefaultMaxEvents)
	o.MaxDiscoveredEvents = min(cmp.Or(o.MaxDiscoveredEvents, store.DefaultMaxDiscoveredEvents), o.MaxEvents)
	o.MaxDiscovered = cmp.Or(o.MaxDiscovered, store.DefaultMaxDiscovered)
	o.EventTTL = cmp.Or(o.EventTTL, store.DefaultEventTTL)
	o.FlushInterval = cmp.Or(o.FlushInterval, store.DefaultFlushInterval)
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	cfg.Prefix = cmp.Or(cfg.Prefix, DefaultPrefix)
	cfg.DialTimeout = cmp.Or(cfg.DialTimeout, DefaultDialTimeout)
	switch {
	case len(cfg.Endpoints) == 0:
		return nil, errors.New("open etcd store: no endpoints")
	case !strings.HasSuffix(cfg.Prefix, "/"):
		return nil, fmt.Errorf("open etcd store: prefix %q does not end with /", cfg.Prefix)
	case !ValidName(cfg.Name):
		return nil, fmt.Errorf("open etcd store: appliance name %q: want 1 to 32 of A-Z a-z 0-9 . _ -", cfg.Name)
	case o.MaxEvents < 0 || o.MaxDiscoveredEvents < 0 || o.MaxDiscovered < 0 || o.EventTTL < 0 || o.FlushInterval < 0 || cfg.DialTimeout < 0:
		return nil, errors.New("open etcd store: negative bound or timeout")
	}
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   cfg.Endpoints,
		DialTimeout: cfg.DialTimeout,
		TLS:         cfg.TLS,
		// The client's own logs would repeat, per retry, what the probe says once.
		Logger: zap.NewNop(),
		// Without these a dead member is noticed only when a request times out.
		DialKeepAliveTime:    5 * time.Second,
		DialKeepAliveTimeout: cfg.DialTimeout,
	})
	if err != nil {
		return nil, fmt.Errorf("open etcd store %v: %w", cfg.Endpoints, err)
	}
	m := newMetrics()
	s := &DB{
		cli: cli, cfg: cfg, now: o.Now, log: o.Logger, metrics: m, timeout: cfg.DialTimeout,
		nodes: map[string]entry{}, deleted: map[string]int64{},
	}
	s.activity.init(s)
	rev, err := s.load(context.Background())
	if err != nil {
		cached, cerr := s.readCache()
		if cerr != nil {
			cli.Close()
			return nil, fmt.Errorf("open etcd store %v: %w (and no copy of the records to start from: %v)", cfg.Endpoints, err, cerr)
		}
		s.downSince = s.now()
		s.log.Warn("store: etcd unreachable at start: booting from the copy of the records on disk",
			"endpoints", cfg.Endpoints, "records", cached, "err", err)
	} else {
		s.up = true
		s.metrics.up.Set(1)
	}
	if o.Registerer != nil {
		if err := m.register(o.Registerer); err != nil {
			cli.Close()
			return nil, fmt.Errorf("open etcd store: %w", err)
		}
	}
	ctx, stop := context.WithCancel(context.Background())
	s.stop = stop
	s.done.Add(2)
	go func() { defer s.done.Done(); s.syncLoop(ctx, rev) }()
	go func() { defer s.done.Done(); s.probeLoop(ctx) }()
	return s, nil
}

// Close stops the watch, writes the pending activity and disconnects. Closing twice is
// harmless.
func (s *DB) Close() error {
	s.flushMu.Lock()
	if s.closed {
		s.flushMu.Unlock()
		return nil
	}
	ferr := s.flushLocked(false)
	s.closed = true
	s.flushMu.Unlock()
	s.stop()
	s.done.Wait()
	s.saveCache()
	if err := s.cli.Close(); err != nil && !errors.Is(err, context.Canceled) {
		return errors.Join(ferr, fmt.Errorf("close etcd store: %w", err))
	}
	return ferr
}

func (s *DB) nodeKey(mac string) string    { return s.cfg.Prefix + "nodes/" + mac }
func (s *DB) seenPrefix(mac string) string { return s.cfg.Prefix + "seen/" + mac + "/" }
func (s *DB) eventPrefix(mac string) string {
	return s.cfg.Prefix + "events/" + mac + "/"
}

// ctx bounds a request to etcd. While the probe finds etcd down, requests fail at once
// rather than each wait for the timeout.
func (s *DB) ctx() (context.Context, context.CancelFunc, error) {
	s.upMu.Lock()
	up, since := s.up, s.downSince
	s.upMu.Unlock()
	if !up && !since.IsZero() {
		return nil, nil, fmt.Errorf("%w: etcd %v unreachable since %s", store.ErrUnavailable,
			s.cfg.Endpoints, since.UTC().Format(time.RFC3339))
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.timeout)
	return ctx, cancel, nil
}

// unavailable wraps an error of a request to etcd.
func unavailable(what string, err error) error {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return fmt.Errorf("%s: %w: etcd did not answer in time", what, store.ErrUnavailable)
	}
	return fmt.Errorf("%s: %w: %v", what, store.ErrUnavailable, err)
}

func encode(v any) (string, error) {
	b, err := json.Marshal(v)
	return string(b), err
}

// CreateNode stores a new record; store.ErrExists if the MAC has one, in etcd.
func (s *DB) CreateNode(n store.Node) (store.Node, error) {
	mac, err := store.ParseMAC(n.MAC)
	if err != nil {
		return store.Node{}, err
	}
	n.MAC = mac
	n.Created = s.now().UTC()
	n.Updated = n.Created
	v, err := encode(n)
	if err != nil {
		return store.Node{}, fmt.Errorf("encode node %s: %w", mac, err)
	}
	ctx, cancel, err := s.ctx()
	if err != nil {
		return store.Node{}, fmt.Errorf("create node %s: %w", mac, err)
	}
	defer cancel()
	k := s.nodeKey(mac)
	resp, err := s.cli.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision(k), "=", 0)).
		Then(clientv3.OpPut(k, v)).Commit()
	if err != nil {
		return store.Node{}, unavailable("create node "+mac, err)
	}
	if !resp.Succeeded {
		return store.Node{}, fmt.Errorf("%w: %s", store.ErrExists, mac)
	}
	s.putLocal(n, resp.Header.Revision)
	return n, nil
}

// UpdateNode reads the record from etcd, applies change and writes it back if nobody
// wrote it in between (else it reads again); store.ErrNotFound if there is none.
func (s *DB) UpdateNode(mac string, change func(*store.Node) error) (store.Node, error) {
	m, err := store.ParseMAC(mac)
	if err != nil {
		return store.Node{}, err
	}
	k := s.nodeKey(m)
	for range 10 {
		ctx, cancel, err := s.ctx()
		if err != nil {
			return store.Node{}, fmt.Errorf("update node %s: %w", m, err)
		}
		n, rev, err := s.getNode(ctx, m)
		if err != nil {
			cancel()
			return store.Node{}, err
		}
		if err := change(&n); err != nil {
			cancel()
			return store.Node{}, err
		}
		n.MAC = m
		n.Updated = s.now().UTC()
		v, err := encode(n)
		if err != nil {
			cancel()
			return store.Node{}, fmt.Errorf("encode node %s: %w", m, err)
		}
		resp, err := s.cli.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision(k), "=", rev)).
			Then(clientv3.OpPut(k, v)).Commit()
		cancel()
		if err != nil {
			return store.Node{}, unavailable("update node "+m, err)
		}
		if resp.Succeeded {
			s.putLocal(n, resp.Header.Revision)
			return n, nil
		}
	}
	return store.Node{}, fmt.Errorf("update node %s: written by others 10 times while updating, try again", m)
}

// getNode reads a record from etcd, not the copy: an update starts from the latest.
func (s *DB) getNode(ctx context.Context, mac string) (store.Node, int64, error) {
	resp, err := s.cli.Get(ctx, s.nodeKey(mac))
	if err != nil {
		return store.Node{}, 0, unavailable("read node "+mac, err)
	}
	if len(resp.Kvs) == 0 {
		return store.Node{}, 0, fmt.Errorf("%w: %s", store.ErrNotFound, mac)
	}
	var n store.Node
	if err := json.Unmarshal(resp.Kvs[0].Value, &n); err != nil {
		return store.Node{}, 0, fmt.Errorf("decode node %s: %w", mac, err)
	}
	return n, resp.Kvs[0].ModRevision, nil
}

// GetNode returns the record for mac from the copy; store.ErrNotFound if there is none.
func (s *DB) GetNode(mac string) (store.Node, error) {
	m, err := store.ParseMAC(mac)
	if err != nil {
		return store.Node{}, err
	}
	s.copyMu.RLock()
	e, ok := s.nodes[m]
	s.copyMu.RUnlock()
	if !ok {
		return store.Node{}, fmt.Errorf("%w: %s", store.ErrNotFound, m)
	}
	return e.node, nil
}

// ListNodes returns every record of the copy, ordered by MAC.
func (s *DB) ListNodes() ([]store.Node, error) {
	s.copyMu.RLock()
	out := make([]store.Node, 0, len(s.nodes))
	for _, mac := range slices.Sorted(maps.Keys(s.nodes)) {
		out = append(out, s.nodes[mac].node)
	}
	s.copyMu.RUnlock()
	return out, nil
}

// DeleteNode removes the record, the seen entries and the events of mac in one
// transaction; store.ErrNotFound if there is no record.
func (s *DB) DeleteNode(mac string) error {
	m, err := store.ParseMAC(mac)
	if err != nil {
		return err
	}
	s.flushMu.Lock()
	defer s.flushMu.Unlock()
	ctx, cancel, err := s.ctx()
	if err != nil {
		return fmt.Errorf("delete node %s: %w", m, err)
	}
	defer cancel()
	k := s.nodeKey(m)
	resp, err := s.cli.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision(k), ">", 0)).Then(
		clientv3.OpDelete(k),
		clientv3.OpDelete(s.seenPrefix(m), clientv3.WithPrefix()),
		clientv3.OpDelete(s.eventPrefix(m), clientv3.WithPrefix()),
	).Commit()
	if err != nil {
		return unavailable("delete node "+m, err)
	}
	if !resp.Succeeded {
		return fmt.Errorf("%w: %s", store.ErrNotFound, m)
	}
	s.deleteLocal(m, resp.Header.Revision)
	s.pending.Forget(m)
	return nil
}

// ImportNodes creates or replaces every record in one etcd transaction, which compares
// each record's revision with the one read: all land, or none (and it is tried again if
// another appliance wrote one of them in between). Created times of replaced records are
// kept.
func (s *DB) ImportNodes(nodes []store.Node) (created, updated int, err error) {
	norm := make([]store.Node, 0, len(nodes))
	for _, n := range nodes {
		m, err := store.ParseMAC(n.MAC)
		if err != nil {
			return 0, 0, fmt.Errorf("import %d nodes: %w", len(nodes), err)
		}
		n.MAC = m
		norm = append(norm, n)
	}
	for range 5 {
		created, updated, done, err := s.tryImport(norm)
		if err != nil || done {
			if err != nil {
				return 0, 0, fmt.Errorf("import %d nodes: %w", len(nodes), err)
			}
			return created, updated, nil
		}
	}
	return 0, 0, fmt.Errorf("import %d nodes: records written by others 5 times while importing, try again", len(nodes))
}

func (s *DB) tryImport(nodes []store.Node) (created, updated int, done bool, err error) {
	ctx, cancel, err := s.ctx()
	if err != nil {
		return 0, 0, false, err
	}
	defer cancel()
	resp, err := s.cli.Get(ctx, s.cfg.Prefix+"nodes/", clientv3.WithPrefix())
	if err != nil {
		return 0, 0, false, unavailable("read nodes", err)
	}
	type old struct {
		rev     int64
		created time.Time
	}
	before := make(map[string]old, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		var n store.Node
		_ = json.Unmarshal(kv.Value, &n)
		before[strings.TrimPrefix(string(kv.Key), s.cfg.Prefix+"nodes/")] = old{kv.ModRevision, n.Created}
	}
	now := s.now().UTC()
	final := map[string]store.Node{}
	var order []string
	for _, n := range nodes {
		n.Created, n.Updated = now, now
		if o, ok := before[n.MAC]; ok {
			n.Created = o.created
			updated++
		} else if _, ok := final[n.MAC]; ok {
			// The same MAC twice: the second replaces the first, as in the bbolt store.
			n.Created = final[n.MAC].Created
			updated++
		} else {
			created++
		}
		if _, ok := final[n.MAC]; !ok {
			order = append(order, n.MAC)
		}
		final[n.MAC] = n
	}
	cmps := make([]clientv3.Cmp, 0, len(order))
	ops := make([]clientv3.Op, 0, len(order))
	for _, mac := range order {
		k := s.nodeKey(mac)
		cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(k), "=", before[mac].rev))
		v, err := encode(final[mac])
		if err != nil {
			return 0, 0, false, fmt.Errorf("encode node %s: %w", mac, err)
		}
		ops = append(ops, clientv3.OpPut(k, v))
	}
	tr, err := s.cli.Txn(ctx).If(cmps...).Then(ops...).Commit()
	if err != nil {
		if strings.Contains(err.Error(), "too many operations") {
			return 0, 0, false, fmt.Errorf("%d records in one transaction: etcd refuses more than its --max-txn-ops (128 by default); raise it on every member, or import in parts: %w", len(ops), err)
		}
		return 0, 0, false, unavailable("write nodes", err)
	}
	if !tr.Succeeded {
		return 0, 0, false, nil
	}
	for _, mac := range order {
		s.putLocal(final[mac], tr.Header.Revision)
	}
	return created, updated, true, nil
}

// putLocal puts a record written at rev into the copy, unless the copy has a newer one.
func (s *DB) putLocal(n store.Node, rev int64) {
	s.copyMu.Lock()
	defer s.copyMu.Unlock()
	if e, ok := s.nodes[n.MAC]; ok && e.rev >= rev {
		return
	}
	if d, ok := s.deleted[n.MAC]; ok {
		if d >= rev {
			return
		}
		delete(s.deleted, n.MAC)
	}
	s.nodes[n.MAC] = entry{n, rev}
	s.dirty = true
	s.rev.Add(1)
}

// deleteLocal removes a record deleted at rev from the copy.
func (s *DB) deleteLocal(mac string, rev int64) {
	s.copyMu.Lock()
	defer s.copyMu.Unlock()
	if e, ok := s.nodes[mac]; ok && e.rev > rev {
		return
	}
	delete(s.nodes, mac)
	s.deleted[mac] = max(s.deleted[mac], rev)
	s.dirty = true
	s.rev.Add(1)
}

// isUp tells whether the last probe found etcd answering.
func (s *DB) isUp() bool {
	s.upMu.Lock()
	defer s.upMu.Unlock()
	return s.up
}

func (s *DB) isKnown(mac string) bool {
	s.copyMu.RLock()
	_, ok := s.nodes[mac]
	s.copyMu.RUnlock()
	return ok
}

// load reads every record from etcd and replaces the copy; it returns the revision read.
func (s *DB) load(ctx context.Context) (int64, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	resp, err := s.cli.Get(ctx, s.cfg.Prefix+"nodes/", clientv3.WithPrefix())
	if err != nil {
		return 0, unavailable("load records", err)
	}
	nodes := make(map[string]entry, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		var n store.Node
		if err := json.Unmarshal(kv.Value, &n); err != nil {
			s.log.Warn("store: skipping undecodable record in etcd", "key", string(kv.Key), "err", err)
			continue
		}
		nodes[n.MAC] = entry{n, kv.ModRevision}
	}
	s.copyMu.Lock()
	s.nodes, s.deleted, s.dirty = nodes, map[string]int64{}, true
	s.copyMu.Unlock()
	s.copyRev.Store(max(s.copyRev.Load(), resp.Header.Revision))
	s.metrics.records.Set(float64(len(nodes)))
	s.metrics.loads.Inc()
	return resp.Header.Revision, nil
}

// syncLoop keeps the copy current: a watch from the revision loaded, and a fresh load
// whenever the watch ends (etcd lost, compacted past us, or the probe gave up on it).
func (s *DB) syncLoop(ctx context.Context, rev int64) {
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		if rev == 0 {
			var err error
			if rev, err = s.load(ctx); err != nil {
				select {
				case <-ctx.Done():
					return
				case <-time.After(backoff):
				}
				backoff = min(2*backoff, 5*time.Second)
				continue
			}
			backoff = 100 * time.Millisecond
		}
		wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
		s.upMu.Lock()
		s.cancelWatch = cancel
		s.upMu.Unlock()
		for wr := range s.cli.Watch(wctx, s.cfg.Prefix+"nodes/", clientv3.WithPrefix(), clientv3.WithRev(rev+1)) {
			if wr.Err() != nil {
				s.log.Warn("store: etcd watch ended, reloading the records", "err", wr.Err())
				break
			}
			for _, ev := range wr.Events {
				mac := strings.TrimPrefix(string(ev.Kv.Key), s.cfg.Prefix+"nodes/")
				if ev.Type == clientv3.EventTypeDelete {
					s.deleteLocal(mac, ev.Kv.ModRevision)
					continue
				}
				var n store.Node
				if err := json.Unmarshal(ev.Kv.Value, &n); err != nil {
					s.log.Warn("store: skipping undecodable record in etcd", "key", string(ev.Kv.Key), "err", err)
					continue
				}
				s.putLocal(n, ev.Kv.ModRevision)
			}
			s.copyRev.Store(max(s.copyRev.Load(), wr.Header.Revision))
			s.copyMu.RLock()
			s.metrics.records.Set(float64(len(s.nodes)))
			s.copyMu.RUnlock()
		}
		cancel()
		rev = 0
	}
}

// probeLoop asks etcd every second whether it answers (a linearizable read, so a member
// cut from its quorum does not count), logs each change once, and writes the copy to
// CacheFile when it changed.
func (s *DB) probeLoop(ctx context.Context) {
	t := time.NewTicker(probeEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		pctx, cancel := context.WithTimeout(ctx, s.timeout)
		resp, err := s.cli.Get(pctx, s.cfg.Prefix+"nodes/", clientv3.WithPrefix(), clientv3.WithCountOnly())
		cancel()
		if err == nil {
			s.etcdRev.Store(max(s.etcdRev.Load(), resp.Header.Revision))
		}
		if ctx.Err() != nil {
			return
		}
		s.upMu.Lock()
		was := s.up
		switch {
		case err != nil && was:
			s.up, s.downSince = false, s.now()
			s.metrics.up.Set(0)
			if s.cancelWatch != nil {
				s.cancelWatch()
			}
			s.copyMu.RLock()
			n := len(s.nodes)
			s.copyMu.RUnlock()
			s.log.Error("store: etcd unreachable: boots go on from the last known copy of the records, writes fail",
				"endpoints", s.cfg.Endpoints, "records", n, "err", err)
		case err == nil && !was:
			s.up, s.downSince = true, time.Time{}
			s.metrics.up.Set(1)
			// The watch may have hung on a dead connection: start it afresh from a load.
			if s.cancelWatch != nil {
				s.cancelWatch()
			}
			s.log.Info("store: etcd reachable again: reloading the records", "endpoints", s.cfg.Endpoints)
		}
		s.upMu.Unlock()
		s.saveCache()
	}
}

// cacheFile is CacheFile's content.
type cacheFile struct {
	Nodes []store.Node `json:"nodes"`
}

// saveCache replaces CacheFile with the copy, if it changed: write, fsync, rename.
func (s *DB) saveCache() {
	if s.cfg.CacheFile == "" {
		return
	}
	s.copyMu.Lock()
	if !s.dirty {
		s.copyMu.Unlock()
		return
	}
	s.dirty = false
	c := cacheFile{Nodes: make([]store.Node, 0, len(s.nodes))}
	for _, mac := range slices.Sorted(maps.Keys(s.nodes)) {
		c.Nodes = append(c.Nodes, s.nodes[mac].node)
	}
	s.copyMu.Unlock()
	if err := writeAtomic(s.cfg.CacheFile, c); err != nil {
		s.log.Error("store: write the copy of the records", "file", s.cfg.CacheFile, "err", err)
		s.copyMu.Lock()
		s.dirty = true
		s.copyMu.Unlock()
	}
}

func writeAtomic(path string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, ".etcd-copy-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// readCache loads CacheFile into the copy; it returns how many records it held.
func (s *DB) readCache() (int, error) {
	if s.cfg.CacheFile == "" {
		return 0, errors.New("no cache file configured")
	}
	b, err := os.ReadFile(s.cfg.CacheFile)
	if err != nil {
		return 0, err
	}
	var c cacheFile
	if err := json.Unmarshal(b, &c); err != nil {
		return 0, fmt.Errorf("decode %s: %w", s.cfg.CacheFile, err)
	}
	s.copyMu.Lock()
	for _, n := range c.Nodes {
		if m, err := store.ParseMAC(n.MAC); err == nil {
			n.MAC = m
			s.nodes[m] = entry{node: n}
		}
	}
	s.copyMu.Unlock()
	s.metrics.records.Set(float64(len(c.Nodes)))
	return len(c.Nodes), nil
}

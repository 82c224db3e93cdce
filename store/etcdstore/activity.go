package etcdstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/threefoldtech/bootstrapd/store"
)

// sweepEvery is how often Run applies the bounds to what is in etcd: a sweep reads every
// seen entry and every event key.
const sweepEvery = time.Minute

// pendingEvent is an event waiting for the flush, with its key chosen when it arrived, so
// a flush that is tried again writes the same key and never doubles an event.
type pendingEvent struct {
	key string
	ev  store.Event
}

// activity is the write-behind half of DB: the bbolt store's bounds, etcd's writes.
type activity struct {
	db *DB

	// flushMu makes a flush atomic for readers, as in the bbolt store; Forget and
	// DeleteNode hold it so no flush writes back what they remove.
	flushMu    sync.RWMutex
	closed     bool
	discovered int // upper bound on the MACs without a record in etcd, exact after a sweep
	lastSweep  time.Time

	pending *store.Pending[pendingEvent]
	// seq tells apart the keys of events this appliance saw in the same nanosecond.
	seq atomic.Uint64

	// lastSeen is when each MAC was last seen at the last CountNodes that could read
	// etcd: /metrics counts from it while etcd is down.
	seenMu   sync.Mutex
	lastSeen map[string]time.Time
}

func (a *activity) init(db *DB) {
	a.db = db
	o := db.cfg.Options
	lim := store.PendingLimits{MaxDiscovered: o.MaxDiscovered, MaxEvents: o.MaxEvents, MaxDiscoveredEvents: o.MaxDiscoveredEvents}
	a.pending = store.NewPending[pendingEvent](lim, db.isKnown, db.metrics.Dropped, db.log)
	a.discovered = o.MaxDiscovered + 1
}

// MarkSeen records that mac asked for something; memory only, as in the bbolt store.
func (s *DB) MarkSeen(mac, arch, ip string) error {
	m, err := store.ParseMAC(mac)
	if err != nil {
		return err
	}
	if s.pending.Mark(m, s.now().UTC(), arch, ip) {
		s.rev.Add(1)
	}
	return nil
}

// AppendEvent adds an event to mac's timeline, naming this appliance; memory only.
func (s *DB) AppendEvent(mac string, ev store.Event) error {
	m, err := store.ParseMAC(mac)
	if err != nil {
		return err
	}
	ev.Appliance = s.cfg.Name
	ev = store.CleanEvent(ev, s.now())
	key := fmt.Sprintf("%s%016x-%s-%x", s.eventPrefix(m), uint64(ev.Time.UnixNano()), s.cfg.Name, s.seq.Add(1))
	if s.pending.Append(m, pendingEvent{key, ev}) {
		s.rev.Add(1)
	}
	return nil
}

// Run writes the pending activity every FlushInterval and sweeps about once a minute,
// until ctx ends or the store is closed; then it flushes one last time.
func (s *DB) Run(ctx context.Context) {
	sweepDue := func() bool {
		s.flushMu.RLock()
		defer s.flushMu.RUnlock()
		return s.now().Sub(s.lastSweep) >= sweepEvery
	}
	store.RunFlushes(ctx, s.cfg.FlushInterval, sweepDue, s.flush, func(err error) {
		if errors.Is(err, store.ErrUnavailable) && !s.isUp() {
			// The probe said so once; the activity waits in memory, bounded.
			s.log.Debug("store: flush waits for etcd", "err", err)
			return
		}
		s.log.Error("store: flush", "err", err)
	})
}

// Flush writes the pending activity now, then applies the bounds to what is in etcd.
func (s *DB) Flush() error { return s.flush(true) }

func (s *DB) flush(sweep bool) error {
	s.flushMu.Lock()
	defer s.flushMu.Unlock()
	return s.flushLocked(sweep)
}

func (s *DB) flushLocked(sweep bool) error {
	if s.closed {
		return store.ErrClosed
	}
	start := time.Now()
	batch := s.pending.Take()
	if len(batch) == 0 && !sweep {
		return nil
	}
	added, err := s.writeBatch(batch)
	if err != nil {
		s.metrics.FlushFailed()
		return fmt.Errorf("flush activity of %d MACs: %w", len(batch), err)
	}
	s.discovered += added
	if sweep || s.discovered > s.cfg.MaxDiscovered {
		if err := s.sweep(); err != nil {
			s.metrics.FlushFailed()
			return fmt.Errorf("sweep: %w", err)
		}
	}
	s.metrics.Flushed(time.Since(start))
	return nil
}

// writeBatch writes the batch: this appliance's seen entry of each MAC (read, merged,
// written) and its events, in transactions of at most maxOps operations. What it could not
// write goes back to the pending activity. It returns how many MACs without a record it
// wrote, an upper bound on the ones it added.
func (s *DB) writeBatch(batch map[string]*store.PendingEntry[pendingEvent]) (added int, err error) {
	macs := slices.Sorted(maps.Keys(batch))
	for len(macs) > 0 {
		// A chunk of MACs whose seen entries one transaction reads.
		n := min(len(macs), maxOps)
		chunk := macs[:n]
		if err := s.writeChunk(chunk, batch); err != nil {
			rest := map[string]*store.PendingEntry[pendingEvent]{}
			for _, mac := range macs {
				rest[mac] = batch[mac]
			}
			s.pending.Restore(rest)
			return added, err
		}
		for _, mac := range chunk {
			if batch[mac].Discovered {
				added++
			}
		}
		macs = macs[n:]
	}
	return added, nil
}

func (s *DB) writeChunk(macs []string, batch map[string]*store.PendingEntry[pendingEvent]) error {
	ctx, cancel, err := s.ctx()
	if err != nil {
		return err
	}
	defer cancel()
	var gets []clientv3.Op
	for _, mac := range macs {
		if batch[mac].Seen != nil {
			gets = append(gets, clientv3.OpGet(s.seenPrefix(mac)+s.cfg.Name))
		}
	}
	before := map[string]*store.Seen{}
	if len(gets) > 0 {
		resp, err := s.cli.Txn(ctx).Then(gets...).Commit()
		if err != nil {
			return unavailable("read seen entries", err)
		}
		for _, r := range resp.Responses {
			for _, kv := range r.GetResponseRange().Kvs {
				var sn store.Seen
				if json.Unmarshal(kv.Value, &sn) == nil {
					before[sn.MAC] = &sn
				}
			}
		}
	}
	// Events first and each MAC's seen entry after them: a chunk that fails after some
	// transactions went through is tried again whole, which rewrites the same event keys
	// (no event twice); only marks whose seen entry landed before the failure can be
	// counted twice.
	var ops []clientv3.Op
	commit := func() error {
		if len(ops) == 0 {
			return nil
		}
		_, err := s.cli.Txn(ctx).Then(ops...).Commit()
		ops = ops[:0]
		if err != nil {
			return unavailable("write activity", err)
		}
		return nil
	}
	for _, mac := range macs {
		p := batch[mac]
		for _, e := range p.Events {
			v, err := encode(e.ev)
			if err != nil {
				return fmt.Errorf("encode event of %s: %w", mac, err)
			}
			ops = append(ops, clientv3.OpPut(e.key, v))
			if len(ops) == maxOps {
				if err := commit(); err != nil {
					return err
				}
			}
		}
		if p.Seen != nil {
			v, err := encode(store.MergeSeen(before[mac], *p.Seen))
			if err != nil {
				return fmt.Errorf("encode seen %s: %w", mac, err)
			}
			ops = append(ops, clientv3.OpPut(s.seenPrefix(mac)+s.cfg.Name, v))
			if len(ops) == maxOps {
				if err := commit(); err != nil {
					return err
				}
			}
		}
	}
	return commit()
}

// eventTime reads the time from an event key: the 16 hex digits after the MAC.
func eventTime(rest string) (time.Time, bool) {
	if len(rest) < 16 {
		return time.Time{}, false
	}
	ns, err := strconv.ParseUint(rest[:16], 16, 64)
	if err != nil {
		return time.Time{}, false
	}
	return time.Unix(0, int64(ns)).UTC(), true
}

// sweep applies EventTTL, the per-MAC event bounds and MaxDiscovered to what is in etcd.
func (s *DB) sweep() error {
	ctx, cancel, err := s.ctx()
	if err != nil {
		return err
	}
	defer cancel()
	now := s.now().UTC()
	cutoff := now.Add(-s.cfg.EventTTL)
	seenRoot, eventsRoot := s.cfg.Prefix+"seen/", s.cfg.Prefix+"events/"

	seenResp, err := s.cli.Get(ctx, seenRoot, clientv3.WithPrefix())
	if err != nil {
		return unavailable("sweep: read seen entries", err)
	}
	evResp, err := s.cli.Get(ctx, eventsRoot, clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		return unavailable("sweep: read event keys", err)
	}
	var dels []string
	lastHeard := map[string]time.Time{}
	expiredSeen, expiredEvents := 0, 0
	for _, kv := range seenResp.Kvs {
		mac, _, ok := strings.Cut(strings.TrimPrefix(string(kv.Key), seenRoot), "/")
		if !ok || s.isKnown(mac) {
			continue
		}
		var sn struct {
			LastSeen time.Time `json:"last_seen"`
		}
		// An undecodable entry has a zero LastSeen, so it expires: nothing else removes it.
		_ = json.Unmarshal(kv.Value, &sn)
		if sn.LastSeen.Before(cutoff) {
			dels = append(dels, string(kv.Key))
			expiredSeen++
			continue
		}
		if sn.LastSeen.After(lastHeard[mac]) {
			lastHeard[mac] = sn.LastSeen
		}
	}
	byMAC := map[string][]string{}
	for _, kv := range evResp.Kvs {
		mac, _, ok := strings.Cut(strings.TrimPrefix(string(kv.Key), eventsRoot), "/")
		if ok {
			byMAC[mac] = append(byMAC[mac], string(kv.Key))
		}
	}
	for mac, keys := range byMAC {
		// Keys come sorted: oldest first.
		known := s.isKnown(mac)
		limit := s.cfg.MaxEvents
		if !known {
			limit = s.cfg.MaxDiscoveredEvents
		}
		keep := keys
		for len(keep) > 0 {
			at, ok := eventTime(strings.TrimPrefix(keep[0], s.eventPrefix(mac)))
			if ok && !at.Before(cutoff) {
				break
			}
			dels = append(dels, keep[0])
			expiredEvents++
			keep = keep[1:]
		}
		if over := len(keep) - limit; over > 0 {
			dels = append(dels, keep[:over]...)
			keep = keep[over:]
		}
		if known || len(keep) == 0 {
			continue
		}
		if at, ok := eventTime(strings.TrimPrefix(keep[len(keep)-1], s.eventPrefix(mac))); ok && at.After(lastHeard[mac]) {
			lastHeard[mac] = at
		} else if _, ok := lastHeard[mac]; !ok {
			lastHeard[mac] = at
		}
	}
	var evictOps []clientv3.Op
	evicted := 0
	if over := len(lastHeard) - s.cfg.MaxDiscovered; over > 0 {
		macs := slices.Collect(maps.Keys(lastHeard))
		slices.SortFunc(macs, func(a, b string) int {
			if c := lastHeard[a].Compare(lastHeard[b]); c != 0 {
				return c
			}
			return strings.Compare(a, b)
		})
		for _, mac := range macs[:over] {
			evictOps = append(evictOps,
				clientv3.OpDelete(s.seenPrefix(mac), clientv3.WithPrefix()),
				clientv3.OpDelete(s.eventPrefix(mac), clientv3.WithPrefix()))
		}
		evicted = over
	}
	ops := evictOps
	for _, k := range dels {
		ops = append(ops, clientv3.OpDelete(k))
	}
	for len(ops) > 0 {
		n := min(len(ops), maxOps)
		if _, err := s.cli.Txn(ctx).Then(ops[:n]...).Commit(); err != nil {
			return unavailable("sweep: delete", err)
		}
		ops = ops[n:]
	}
	if len(dels)+evicted > 0 {
		s.rev.Add(1)
	}
	s.discovered = min(len(lastHeard), s.cfg.MaxDiscovered)
	s.lastSweep = now
	s.metrics.Swept(evicted, expiredSeen, expiredEvents)
	return nil
}

// Forget removes the seen entries and all events of mac, from every appliance, pending
// ones too; store.ErrNotFound if there was neither.
func (s *DB) Forget(mac string) error {
	m, err := store.ParseMAC(mac)
	if err != nil {
		return err
	}
	s.flushMu.Lock()
	defer s.flushMu.Unlock()
	ctx, cancel, err := s.ctx()
	if err != nil {
		return fmt.Errorf("forget %s: %w", m, err)
	}
	defer cancel()
	resp, err := s.cli.Txn(ctx).Then(
		clientv3.OpDelete(s.seenPrefix(m), clientv3.WithPrefix()),
		clientv3.OpDelete(s.eventPrefix(m), clientv3.WithPrefix()),
	).Commit()
	if err != nil {
		return unavailable("forget "+m, err)
	}
	had := s.pending.Forget(m)
	n := int64(0)
	for _, r := range resp.Responses {
		n += r.GetResponseDeleteRange().Deleted
	}
	if !had && n == 0 {
		return fmt.Errorf("%w: %s", store.ErrNotFound, m)
	}
	s.rev.Add(1)
	return nil
}

// readSeen reads the seen entries under prefix and merges each MAC's, from every
// appliance, with this appliance's pending marks.
func (s *DB) readSeen(prefix string, pend map[string]store.Seen) (map[string]store.Seen, error) {
	ctx, cancel, err := s.ctx()
	if err != nil {
		return nil, err
	}
	defer cancel()
	resp, err := s.cli.Get(ctx, prefix, clientv3.WithPrefix())
	if err != nil {
		return nil, unavailable("read seen entries", err)
	}
	out := map[string]store.Seen{}
	add := func(sn store.Seen) {
		old, ok := out[sn.MAC]
		if !ok {
			out[sn.MAC] = sn
			return
		}
		out[sn.MAC] = combine(old, sn)
	}
	for _, kv := range resp.Kvs {
		rest := strings.TrimPrefix(string(kv.Key), s.cfg.Prefix+"seen/")
		mac, name, _ := strings.Cut(rest, "/")
		var sn store.Seen
		if err := json.Unmarshal(kv.Value, &sn); err != nil {
			continue
		}
		sn.MAC = mac
		if name == s.cfg.Name {
			if d, ok := pend[mac]; ok {
				sn = store.MergeSeen(&sn, d)
				delete(pend, mac)
			}
		}
		add(sn)
	}
	for _, d := range pend {
		add(d)
	}
	return out, nil
}

// combine merges the entries of two appliances for one MAC.
func combine(a, b store.Seen) store.Seen {
	if b.LastSeen.After(a.LastSeen) {
		a, b = b, a
	}
	// a is the latest: its LastSeen, Arch and IP, unless it has none.
	out := a
	if b.FirstSeen.Before(out.FirstSeen) {
		out.FirstSeen = b.FirstSeen
	}
	out.Count += b.Count
	if out.Arch == "" {
		out.Arch = b.Arch
	}
	if out.IP == "" {
		out.IP = b.IP
	}
	return out
}

// ListSeen returns every MAC that asked any appliance, ordered by MAC.
func (s *DB) ListSeen() ([]store.Seen, error) {
	s.flushMu.RLock()
	defer s.flushMu.RUnlock()
	all, err := s.readSeen(s.cfg.Prefix+"seen/", s.pending.Seen(""))
	if err != nil {
		return nil, fmt.Errorf("list seen: %w", err)
	}
	out := make([]store.Seen, 0, len(all))
	for _, mac := range slices.Sorted(maps.Keys(all)) {
		out = append(out, all[mac])
	}
	return out, nil
}

// GetSeen returns what the appliances know of a MAC that asked; store.ErrNotFound if it
// never did.
func (s *DB) GetSeen(mac string) (store.Seen, error) {
	m, err := store.ParseMAC(mac)
	if err != nil {
		return store.Seen{}, err
	}
	s.flushMu.RLock()
	defer s.flushMu.RUnlock()
	all, err := s.readSeen(s.seenPrefix(m), s.pending.Seen(m))
	if err != nil {
		return store.Seen{}, fmt.Errorf("seen %s: %w", m, err)
	}
	sn, ok := all[m]
	if !ok {
		return store.Seen{}, fmt.Errorf("%w: %s", store.ErrNotFound, m)
	}
	return sn, nil
}

// CountNodes counts records (from the copy) and MACs seen at or after seenSince.
func (s *DB) CountNodes(seenSince time.Time) (known, seen int, err error) {
	s.copyMu.RLock()
	known = len(s.nodes)
	s.copyMu.RUnlock()
	s.flushMu.RLock()
	defer s.flushMu.RUnlock()
	pend := s.pending.Seen("")
	all, err := s.readSeen(s.cfg.Prefix+"seen/", maps.Clone(pend))
	if err != nil {
		// /metrics must still answer (bootstrapd_store_etcd_up says etcd is down): count
		// from the last read, with this appliance's marks since.
		s.seenMu.Lock()
		last := s.lastSeen
		s.seenMu.Unlock()
		if last == nil {
			return 0, 0, fmt.Errorf("count nodes: %w", err)
		}
		at := maps.Clone(last)
		for mac, d := range pend {
			if d.LastSeen.After(at[mac]) {
				at[mac] = d.LastSeen
			}
		}
		for _, when := range at {
			if !when.Before(seenSince) {
				seen++
			}
		}
		return known, seen, nil
	}
	last := make(map[string]time.Time, len(all))
	for mac, sn := range all {
		last[mac] = sn.LastSeen
		if !sn.LastSeen.Before(seenSince) {
			seen++
		}
	}
	s.seenMu.Lock()
	s.lastSeen = last
	s.seenMu.Unlock()
	return known, seen, nil
}

// Events returns mac's timeline from every appliance, oldest first, pending events of
// this one included, at most MaxEvents.
func (s *DB) Events(mac string) ([]store.Event, error) {
	m, err := store.ParseMAC(mac)
	if err != nil {
		return nil, err
	}
	s.flushMu.RLock()
	defer s.flushMu.RUnlock()
	ctx, cancel, err := s.ctx()
	if err != nil {
		return nil, fmt.Errorf("events of %s: %w", m, err)
	}
	defer cancel()
	resp, err := s.cli.Get(ctx, s.eventPrefix(m), clientv3.WithPrefix())
	if err != nil {
		return nil, unavailable("events of "+m, err)
	}
	out := []store.Event{}
	for _, kv := range resp.Kvs {
		var ev store.Event
		if err := json.Unmarshal(kv.Value, &ev); err != nil {
			return nil, fmt.Errorf("decode event of %s: %w", m, err)
		}
		out = append(out, ev)
	}
	for _, e := range s.pending.Events(m) {
		out = append(out, e.ev)
	}
	slices.SortStableFunc(out, func(a, b store.Event) int { return a.Time.Compare(b.Time) })
	if len(out) > s.cfg.MaxEvents {
		out = out[len(out)-s.cfg.MaxEvents:]
	}
	return out, nil
}

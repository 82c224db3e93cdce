package etcdstore

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/threefoldtech/bootstrapd/store"
)

var _ store.Restorer = (*DB)(nil)

// Restore writes d as it is: records, one seen entry per MAC (under this appliance's name,
// the others' entries of that MAC removed), and each MAC's events (its timeline replaced).
// The keys depend only on d, so writing d again changes nothing. It writes in transactions
// of at most maxOps operations, so unlike ImportNodes it is not all-or-nothing: after a
// failure, run it again.
func (s *DB) Restore(d store.Dump) error {
	if err := s.Flush(); err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	puts := map[string]string{}
	put := func(k string, v any) error {
		b, err := encode(v)
		if err != nil {
			return fmt.Errorf("restore: encode %s: %w", k, err)
		}
		puts[k] = b
		return nil
	}
	// Prefixes whose keys d replaces: a key under one that d does not write is deleted.
	var replaced []string
	for _, n := range d.Nodes {
		m, err := store.ParseMAC(n.MAC)
		if err != nil {
			return fmt.Errorf("restore: %w", err)
		}
		n.MAC = m
		if err := put(s.nodeKey(m), n); err != nil {
			return err
		}
	}
	for _, sn := range d.Seen {
		m, err := store.ParseMAC(sn.MAC)
		if err != nil {
			return fmt.Errorf("restore: %w", err)
		}
		sn.MAC = m
		replaced = append(replaced, s.seenPrefix(m))
		if err := put(s.seenPrefix(m)+s.cfg.Name, sn); err != nil {
			return err
		}
	}
	for mac, evs := range d.Events {
		m, err := store.ParseMAC(mac)
		if err != nil {
			return fmt.Errorf("restore: %w", err)
		}
		replaced = append(replaced, s.eventPrefix(m))
		for i, ev := range evs {
			ev = store.CleanEvent(ev, ev.Time)
			who := ev.Appliance
			if !ValidName(who) {
				who = "copy"
			}
			// The index keeps events of one time in their order.
			k := fmt.Sprintf("%s%016x-%04x-%s", s.eventPrefix(m), uint64(ev.Time.UnixNano()), i, who)
			if err := put(k, ev); err != nil {
				return err
			}
		}
	}
	var ops []clientv3.Op
	if len(replaced) > 0 {
		// etcd refuses a put and a range delete over the same key in one transaction, so
		// the keys to go are listed and deleted one by one.
		ctx, cancel, err := s.ctx()
		if err != nil {
			return fmt.Errorf("restore: %w", err)
		}
		for _, root := range []string{s.cfg.Prefix + "seen/", s.cfg.Prefix + "events/"} {
			resp, err := s.cli.Get(ctx, root, clientv3.WithPrefix(), clientv3.WithKeysOnly())
			if err != nil {
				cancel()
				return fmt.Errorf("restore: %w", unavailable("read keys", err))
			}
			for _, kv := range resp.Kvs {
				k := string(kv.Key)
				if _, ok := puts[k]; ok {
					continue
				}
				for _, p := range replaced {
					if strings.HasPrefix(k, p) {
						ops = append(ops, clientv3.OpDelete(k))
						break
					}
				}
			}
		}
		cancel()
	}
	for _, k := range slices.Sorted(maps.Keys(puts)) {
		ops = append(ops, clientv3.OpPut(k, puts[k]))
	}
	for len(ops) > 0 {
		n := min(len(ops), maxOps)
		ctx, cancel, err := s.ctx()
		if err != nil {
			return fmt.Errorf("restore: %w", err)
		}
		_, err = s.cli.Txn(ctx).Then(ops[:n]...).Commit()
		cancel()
		if err != nil {
			return fmt.Errorf("restore: %w", unavailable("write", err))
		}
		ops = ops[n:]
	}
	for _, n := range d.Nodes {
		if m, err := store.ParseMAC(n.MAC); err == nil {
			n.MAC = m
			s.putLocal(n, 0)
		}
	}
	s.rev.Add(1)
	return nil
}
